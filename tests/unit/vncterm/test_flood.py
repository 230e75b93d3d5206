"""When a console counts as flooding (console.py): heavy output in several windows in a row,
never typing or a single burst, and over as soon as a window carries little or nothing; the
CPU priority lowered only while it floods (priority.py)."""

import asyncio

import pytest

from hostagent.vncterm import console as console_
from hostagent.vncterm.priority import Priority


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Recorder:
    """Stands in for priority.Priority: records the console's calls."""

    def __init__(self):
        self.calls = []

    def lower(self):
        self.calls.append("lower")

    def restore(self):
        self.calls.append("restore")


@pytest.fixture
def term():
    loop = asyncio.new_event_loop()
    clock = Clock()
    loop.time = clock  # the console reads time only through its loop
    c = console_.Console(loop, -1, None, None, Recorder())
    c.clock = clock
    yield c
    loop.close()


def checks(term):
    """Run the priority checks that are due by the fake clock (the loop itself never runs)."""
    while term._lowered is not None and term._lowered.when() <= term.clock.now:
        term._lowered._run()


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


def heavy_windows(term, n):
    """Output of 600 bytes every 0.05 s until `n` windows have been heavy; the calls so far."""
    start = (int(term.clock.now / console_.FLOOD_WINDOW) + 1) * console_.FLOOD_WINDOW
    for i in range(round(n * console_.FLOOD_WINDOW / 0.05)):
        term.clock.now = start + (i + 0.5) * 0.05
        checks(term)
        term._note_output(600)
    term.clock.now = start + n * console_.FLOOD_WINDOW
    return term.priority.calls


def test_the_priority_is_lowered_on_the_fourth_heavy_window_only(term):
    assert heavy_windows(term, 3) == []
    assert term.priority.calls == []
    term.clock.now += 0.01
    term._note_output(1500)
    assert term.priority.calls == []                    # the fourth window is not heavy yet...
    term._note_output(600)                              # ... and now is
    assert term.priority.calls == ["lower"]
    assert heavy_windows(term, 4) == ["lower"]          # lowered once, however long it floods


def test_the_priority_is_restored_in_the_first_window_without_output(term):
    heavy_windows(term, 5)
    quiet = term.clock.now
    for i in range(1, 21):                              # the first quiet window and the next
        term.clock.now = quiet + i * console_.FLOOD_WINDOW / 10 + 0.002
        checks(term)
    assert term.priority.calls == ["lower", "restore"]
    assert term._lowered is None                        # no timer left while idle
    heavy_windows(term, 5)                              # a new flood lowers it again
    assert term.priority.calls == ["lower", "restore", "lower"]


def test_a_light_window_restores_the_priority(term):
    heavy_windows(term, 5)
    output(term, 1.0, 0.1, 10)                          # typing in a window of its own
    checks(term)
    assert term.priority.calls == ["lower", "restore"]


def test_typing_and_a_single_burst_never_lower_the_priority(term):
    output(term, 10.0, 0.1, 3)
    output(term, 0.1, 0.1, 256 * 1024)
    output(term, 3.0, 0.25, 10)
    checks(term)
    assert term.priority.calls == []


def test_priority_sets_base_plus_steps_and_returns_to_base():
    calls = []
    p = Priority(10, base=3, setpriority=lambda which, who, value: calls.append(value))
    p.lower()
    p.restore()
    assert calls == [13, 3]
    assert Priority(10, base=15, setpriority=lambda *a: None).low == 19


def test_a_refused_return_leaves_it_lowered_and_is_said_once(caplog):
    calls = []

    def setpriority(which, who, value):
        if value == 0:
            raise PermissionError(13, "Permission denied")
        calls.append(value)
    p = Priority(10, base=0, setpriority=setpriority)
    for _ in range(3):
        p.lower()
        p.restore()
    assert calls == [10] and p.stuck
    assert sum("cannot return to nice 0" in r.getMessage() for r in caplog.records) == 1
