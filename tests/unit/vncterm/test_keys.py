"""Key events (X11 keysyms) to terminal input bytes."""

import pytest

from hostagent.vncterm.keys import KeyState, control_byte, keysym_text

CONTROL_L, ALT_L, SHIFT_L = 0xffe3, 0xffe9, 0xffe1


def press(state, keysym, app_cursor=False):
    out = state.event(True, keysym, app_cursor)
    assert state.event(False, keysym, app_cursor) == b""      # releases send nothing
    return out


@pytest.mark.parametrize("keysym, expected", [
    (0xff0d, b"\r"), (0xff08, b"\x7f"), (0xff09, b"\t"), (0xff1b, b"\x1b"),
    (0xff52, b"\x1b[A"), (0xff54, b"\x1b[B"), (0xff53, b"\x1b[C"), (0xff51, b"\x1b[D"),
    (0xffff, b"\x1b[3~"), (0xff50, b"\x1b[1~"), (0xff57, b"\x1b[4~"), (0xff55, b"\x1b[5~"),
    (0xffbe, b"\x1bOP"), (0xffc9, b"\x1b[24~"), (0xff8d, b"\r"), (0xffb7, b"7"),
    (ord("a"), b"a"), (ord("Z"), b"Z"), (ord(" "), b" "), (0xe9, "é".encode()),
    (0x010020ac, "€".encode()), (0x12345678, b""), (0xfe50, b""),
])
def test_plain_keys(keysym, expected):
    assert press(KeyState(), keysym) == expected


def test_cursor_keys_in_application_mode():
    assert press(KeyState(), 0xff52, app_cursor=True) == b"\x1bOA"
    assert press(KeyState(), 0xff51, app_cursor=True) == b"\x1bOD"


@pytest.mark.parametrize("char, expected", [
    ("c", b"\x03"), ("C", b"\x03"), ("d", b"\x04"), ("[", b"\x1b"), ("@", b"\x00"),
    (" ", b"\x00"), ("\\", b"\x1c"), ("_", b"\x1f"), ("?", b"\x7f"),
])
def test_control_combinations(char, expected):
    state = KeyState()
    state.event(True, CONTROL_L)
    assert press(state, ord(char)) == expected
    state.event(False, CONTROL_L)
    assert press(state, ord(char)) == char.encode()


def test_alt_prefixes_escape_and_shift_changes_nothing_itself():
    state = KeyState()
    assert state.event(True, SHIFT_L) == b""
    state.event(True, ALT_L)
    assert press(state, ord("x")) == b"\x1bx"
    state.event(False, ALT_L)
    assert press(state, ord("X")) == b"X"


def test_each_client_has_its_own_modifiers():
    a, b = KeyState(), KeyState()
    a.event(True, CONTROL_L)
    assert press(a, ord("c")) == b"\x03"
    assert press(b, ord("c")) == b"c"


def test_helpers():
    assert keysym_text(0x41) == "A" and keysym_text(0xff0d) is None
    assert keysym_text(0x0100d800) is None                       # a lone surrogate
    assert control_byte("é") is None
