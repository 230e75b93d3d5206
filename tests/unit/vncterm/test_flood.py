"""When a console counts as flooding (console.py): heavy output in several windows in a row,
never typing or a single burst, and over as soon as a window carries little or nothing."""

import asyncio

import pytest

from hostagent.vncterm import console as console_


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def term():
    loop = asyncio.new_event_loop()
    clock = Clock()
    loop.time = clock  # the console reads time only through its loop
    c = console_.Console(loop, -1, None, None)
    c.clock = clock
    yield c
    loop.close()


def output(term, seconds, step, size):
    """`size` bytes every `step` seconds for `seconds`; whether the console flooded at the end."""
    for _ in range(round(seconds / step)):
        term.clock.now += step
        term._note_output(size)
    return term.flooding


def test_continuous_output_becomes_a_flood_and_slows_the_emulator(term):
    assert not output(term, 1.0, 0.05, 600)          # 12 KiB/s, but only two windows so far
    assert term._coalesce() == console_.COALESCE
    assert output(term, 1.5, 0.05, 600)
    assert term._coalesce() == console_.FLOOD_COALESCE


def test_typing_never_floods(term):
    assert not output(term, 10.0, 0.1, 3)            # an echoed key and a prompt, 10 a second


def test_a_single_burst_is_not_a_flood(term):
    assert not output(term, 0.1, 0.1, 256 * 1024)    # a long listing at once
    assert not output(term, 3.0, 0.25, 10)


def test_a_flood_ends_with_the_first_quiet_window(term):
    assert output(term, 3.0, 0.05, 600)
    term.clock.now += console_.FLOOD_WINDOW * 2      # nothing for two windows
    assert not term.flooding
    assert output(term, 3.0, 0.05, 600)
    assert not output(term, 1.0, 0.1, 10)            # a light window: over
    assert term._coalesce() == console_.COALESCE
