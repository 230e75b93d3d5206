"""The emulator's flood skipping gives exactly the screen that feeding everything gives."""

import pyte
from hypothesis import given, settings
from hypothesis import strategies as st

from hostagent.vncterm.emulator import Emulator

COLS, ROWS = 20, 6


def reference(data: bytes, prefix: bytes = b""):
    screen = pyte.Screen(COLS, ROWS)
    stream = pyte.ByteStream(screen)
    stream.feed(prefix)
    stream.feed(data)
    return screen


def snapshot(screen):
    return ([[screen.buffer[y][x] for x in range(COLS)] for y in range(ROWS)],
            (screen.cursor.x, screen.cursor.y), screen.cursor.attrs)


words = st.sampled_from([b"a", b"word", b"longer words here", b"\t", b"x\x08y", b"\r",
                         b"\x1b[31m", b"\x1b[1;42m", b"\x1b[0m", b"\x1b[m", b"\xc3\xa9",
                         b"\xe4\xb8\xad", b"twenty-two characters", b"\xff"])
line = st.lists(words, max_size=6).map(lambda ws: b"".join(ws) + b"\r\n")
flood = st.lists(line, min_size=0, max_size=60).map(b"".join)
tail = st.sampled_from([b"", b"prompt$ ", b"\x1b[2;3Hmoved", b"\x1b[1", b"\x1b[?25l",
                        b"\x1b[3;4r", b"\x1b]0;title\x07"])
prefix = st.sampled_from([b"", b"\x1b[3;5r", b"\x1b[4;1Hstart", b"\x1b[", b"\xe4", b"\x1b[1;33m"])


@settings(max_examples=300, deadline=None)
@given(prefix=prefix, data=flood, end=tail)
def test_skipping_gives_the_same_screen(prefix, data, end):
    emu = Emulator(COLS, ROWS)
    emu.feed(prefix)
    consumed = 0
    whole = data + end
    while consumed < len(whole):
        consumed += emu.feed(whole[consumed:], limit=64)
    assert snapshot(emu.screen) == snapshot(reference(whole, prefix))


def test_a_plain_flood_is_mostly_skipped():
    emu = Emulator(80, 25)
    data = b"".join(b"line %06d with some text\r\n" % i for i in range(20000))
    assert emu.feed(data) == len(data)
    assert emu.skipped > 0.99 * len(data)
    assert snapshot_text(emu.screen)[-2] == "line 019999 with some text"


def test_nothing_is_skipped_inside_a_scroll_region_or_a_sequence():
    data = b"".join(b"line %d\r\n" % i for i in range(200))
    emu = Emulator(80, 25)
    emu.feed(b"\x1b[5;10r")
    emu.feed(data)
    assert emu.skipped == 0
    emu = Emulator(80, 25)
    emu.feed(b"\x1b[1")
    emu.feed(data)
    assert emu.skipped == 0


def test_limit_cuts_after_a_line_feed():
    emu = Emulator(80, 25)
    assert emu.feed(b"abc\r\ndef\r\nghi", limit=8) == 5
    assert emu.feed(b"x" * 100, limit=10) == 10


def test_replies_and_bells_are_collected_and_size_is_kept():
    emu = Emulator(80, 25)
    emu.feed(b"\x1b[5;7H\x1b[6n\x07\x1b[?3h")
    assert emu.take_replies() == b"\x1b[5;7R"
    assert emu.screen.bells == 1
    assert (emu.screen.columns, emu.screen.lines) == (80, 25)      # no 132-column switch
    emu.feed(b"\x1b[?1h")
    assert emu.app_cursor


def snapshot_text(screen):
    return [line.rstrip() for line in screen.display]


def test_a_coloured_utf8_flood_is_skipped_and_identical():
    data = b"".join(b"\x1b[3%dm\xc3\xa9l\xc3\xa8ve %d\x1b[0m\ttab\r\n" % (i % 8, i) for i in range(100))
    data += b"\x1b[1;31mstill red"
    emu = Emulator(COLS, ROWS)
    emu.feed(data)
    assert emu.skipped > len(data) // 2
    assert snapshot(emu.screen) == snapshot(reference(data))


PIECES = [b"\x1b[", b"\x1b]", b"\x1b(", b"\x1b#", b"\x1b%", b";", b"?", b"9999999", b"0", b"1",
          b"m", b"H", b"J", b"K", b"r", b"h", b"l", b"@", b"P", b"X", b"L", b"M", b"g", b"n",
          b"c", b"x", b"\x07", b"\x9b", b"\xc2\x9b", b"\xc2\x9d", b"a", b"\r\n", b"\x0e", b"\x0f",
          b"\x1bc", b"\x1b7", b"\x1b8", b"\x1bD", b"\x1bM", b"\x1bE", b"\x1bH", b"\x00", b"\x7f",
          b"\x08", b"\t", b"\xff", b"\xe4\xb8"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=300))
def test_malformed_sequences_never_stop_the_emulation(pieces):
    emu = Emulator(80, 25)
    emu.feed(b"".join(pieces))
    # BEL ends a string (OSC), CAN aborts a sequence, ESC c resets: then text shows again.
    emu.feed(b"\x07\x18\x07\x18\x1bc\x1b[Hstill alive")
    assert emu.screen.display[0].startswith("still alive")


def test_a_sequence_pyte_chokes_on_is_dropped():
    emu = Emulator(80, 25)
    emu.feed(b"\x1b[?1;2;3;4;5;6;7@" + b"after")   # pyte raises TypeError inside
    assert emu.stream.malformed >= 1
    assert "after" in emu.screen.display[0]
