"""RFB key events (X11 keysyms) to the bytes a VT100/xterm-style terminal sends to its tty."""

SHIFT = frozenset((0xffe1, 0xffe2))
CONTROL = frozenset((0xffe3, 0xffe4))
ALT = frozenset((0xffe7, 0xffe8, 0xffe9, 0xffea, 0xffeb, 0xffec))  # Meta, Alt, Super
MODIFIERS = SHIFT | CONTROL | ALT | frozenset((0xffe5, 0xffe6, 0xfe03))  # locks, AltGr

_PLAIN = {
    0xff08: b"\x7f",          # BackSpace (DEL, as the Linux console and xterm send)
    0xff09: b"\t",            # Tab
    0xfe20: b"\x1b[Z",        # ISO_Left_Tab (Shift-Tab)
    0xff0a: b"\n",            # Linefeed
    0xff0d: b"\r",            # Return
    0xff1b: b"\x1b",          # Escape
    0xffff: b"\x1b[3~",       # Delete
    0xff63: b"\x1b[2~",       # Insert
    0xff50: b"\x1b[1~",       # Home
    0xff57: b"\x1b[4~",       # End
    0xff55: b"\x1b[5~",       # Page_Up
    0xff56: b"\x1b[6~",       # Page_Down
    0xff8d: b"\r",            # KP_Enter
    0xff95: b"\x1b[1~", 0xff9c: b"\x1b[4~", 0xff9a: b"\x1b[5~", 0xff9b: b"\x1b[6~",
    0xff9e: b"\x1b[2~", 0xff9f: b"\x1b[3~",
    0xffaa: b"*", 0xffab: b"+", 0xffad: b"-", 0xffae: b".", 0xffaf: b"/", 0xff80: b" ",
}
_PLAIN.update({0xffb0 + i: str(i).encode() for i in range(10)})                 # KP_0..KP_9
# F1-F4 as xterm's SS3 forms, F5-F12 as the CSI ~ forms.
_FKEYS = (b"\x1bOP", b"\x1bOQ", b"\x1bOR", b"\x1bOS", b"\x1b[15~", b"\x1b[17~", b"\x1b[18~",
          b"\x1b[19~", b"\x1b[20~", b"\x1b[21~", b"\x1b[23~", b"\x1b[24~")
_PLAIN.update({0xffbe + i: seq for i, seq in enumerate(_FKEYS)})

# Cursor keys: (normal mode, application mode), with KP_ variants.
_CURSOR = {0xff52: b"A", 0xff54: b"B", 0xff53: b"C", 0xff51: b"D",
           0xff97: b"A", 0xff99: b"B", 0xff98: b"C", 0xff96: b"D"}


def keysym_text(keysym: int):
    """The character a printable keysym stands for, or None."""
    if 0x20 <= keysym <= 0x7e or 0xa0 <= keysym <= 0xff:
        return chr(keysym)
    if 0x01000100 <= keysym <= 0x0110ffff:
        cp = keysym - 0x01000000
        if not 0xd800 <= cp <= 0xdfff:
            return chr(cp)
    return None


def control_byte(char: str):
    """The C0 control a Ctrl-<char> combination sends, or None."""
    c = char.upper()
    if "@" <= c <= "_":
        return bytes([ord(c) - 0x40])
    if c == " " or c == "2":
        return b"\x00"
    if c == "?" or c == "8":
        return b"\x7f"
    if "3" <= c <= "7":
        return bytes([ord(c) - ord("3") + 0x1b])
    if c == "/":
        return b"\x1f"
    return None


class KeyState:
    """One client's held modifiers; turns each key press into terminal input bytes."""

    def __init__(self):
        self.held: set = set()

    def event(self, down: bool, keysym: int, app_cursor: bool = False) -> bytes:
        if keysym in MODIFIERS:
            if down:
                self.held.add(keysym)
            else:
                self.held.discard(keysym)
            return b""
        if not down:
            return b""
        ctrl = bool(self.held & CONTROL)
        alt = bool(self.held & ALT)
        out = self._base(keysym, ctrl, app_cursor)
        if out and alt:
            out = b"\x1b" + out
        return out

    @staticmethod
    def _base(keysym: int, ctrl: bool, app_cursor: bool) -> bytes:
        if keysym in _CURSOR:
            return (b"\x1bO" if app_cursor else b"\x1b[") + _CURSOR[keysym]
        seq = _PLAIN.get(keysym)
        if seq is not None:
            if ctrl and keysym == 0xff08:
                return b"\x08"
            return seq
        text = keysym_text(keysym)
        if text is None:
            return b""
        if ctrl:
            c = control_byte(text)
            if c is not None:
                return c
        return text.encode("utf-8")
