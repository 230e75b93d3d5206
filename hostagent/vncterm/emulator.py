"""The terminal model: a pyte screen of fixed size fed with the console's bytes.

pyte costs about 2 us a character, so a flood would keep a core busy for seconds per megabyte.
``Emulator.feed`` therefore skips output that scrolls off the screen unseen: when a chunk is
plain text (printable characters, CR, LF, TAB, BS, colour changes) for more than two screens,
only its colour changes and its last screenful go through pyte, with the cursor set where the
skipped text would have left it. The result is the same screen, checked by the unit tests
against feeding everything.
"""

import re

import pyte
from pyte import modes

DECCKM = 1 << 5            # cursor keys in application mode (private mode 1)
REPLY_LIMIT = 4096         # bytes of terminal replies (DSR, DA) kept for the pty

# Bytes and sequences that cannot move the cursor up, change modes, margins, charsets or the
# parser's state: printable ASCII and DEL, BS, HT, LF, CR, UTF-8 text (but not C1 controls
# encoded as U+0080..U+009F) and SGR colour changes.
_SAFE = re.compile(
    rb"(?:[\x08\x09\x0a\x0d\x20-\x7f\x80-\xbf\xc3-\xff]+|\xc2[\xa0-\xbf]|\x1b\[[0-9;]*m)*")
_SGR = re.compile(rb"\x1b\[[0-9;]*m")
_RESET = re.compile(rb"\x1b\[(?:0*|0*;[0-9;]*)m")


class ConsoleScreen(pyte.Screen):
    """A pyte screen that keeps its size (no 132-column switch), collects the replies the
    terminal owes the program (cursor position reports...) and counts bells."""

    def __init__(self, columns: int, lines: int):
        self.replies = bytearray()
        self.bells = 0
        super().__init__(columns, lines)

    def set_mode(self, *modes_: int, **kwargs) -> None:
        private = kwargs.get("private", False)
        super().set_mode(*[m for m in modes_ if not (private and m == 3)], **kwargs)

    def reset_mode(self, *modes_: int, **kwargs) -> None:
        private = kwargs.get("private", False)
        super().reset_mode(*[m for m in modes_ if not (private and m == 3)], **kwargs)

    def write_process_input(self, data: str) -> None:
        if len(self.replies) < REPLY_LIMIT:
            self.replies += data.encode("utf-8", "replace")

    def bell(self, *args) -> None:
        self.bells += 1


class TolerantStream(pyte.ByteStream):
    """pyte's byte stream, except that a malformed control sequence (which makes pyte's screen
    methods raise, e.g. with too many parameters) is dropped instead of aborting the feed: the
    console's output is the guest's to choose, and must not stop the emulation."""

    def __init__(self, *args, **kwargs):
        self.malformed = 0
        super().__init__(*args, **kwargs)

    def _send_to_parser(self, data):
        try:
            return super()._send_to_parser(data)
        except Exception:  # noqa: BLE001 (pyte raises all kinds; it has reset its parser)
            self.malformed += 1
            return True     # pyte's fresh parser takes plain text


class Emulator:
    """A screen and the byte stream that feeds it."""

    def __init__(self, cols: int, rows: int):
        self.cols, self.rows = cols, rows
        self.screen = ConsoleScreen(cols, rows)
        self.stream = TolerantStream(self.screen)
        self.skipped = 0

    @property
    def app_cursor(self) -> bool:
        return DECCKM in self.screen.mode

    def take_replies(self) -> bytes:
        data = bytes(self.screen.replies)
        self.screen.replies.clear()
        return data

    def feed(self, data, limit: int = 0) -> int:
        """Feed output to the screen; returns how many bytes were consumed. With a limit, at
        most that many bytes (cut after a line feed where possible) go through pyte after the
        skippable part, so one call stays short; the caller keeps the rest for the next call."""
        consumed = self._skippable(data)
        if consumed:
            self._skip(data[:consumed])
        rest = len(data) - consumed
        if limit and rest > limit:
            end = data.rfind(b"\n", consumed, consumed + limit)
            rest = (end + 1 - consumed) if end >= consumed else limit
        self.stream.feed(bytes(data[consumed:consumed + rest]))
        return consumed + rest

    def _idle(self) -> bool:
        """The parser and decoder hold no partial sequence and no scroll region is set."""
        screen = self.screen
        margins = screen.margins
        if margins is not None and (margins.top, margins.bottom) != (0, self.rows - 1):
            return False
        if getattr(self.stream, "_taking_plain_text", None) is not True:
            return False
        return self.stream.utf8_decoder.getstate()[0] == b"" and modes.DECOM not in screen.mode

    def _skippable(self, data: bytes) -> int:
        """How many leading bytes can be skipped without changing the final screen (0: none).

        The skipped part holds at least a screenful of line feeds (so the cursor ends on the
        bottom line) and ends with CR LF (so the rest starts in column 0); the rest begins with
        at least a screenful of plain line feeds, which scroll every skipped line away."""
        rows = self.rows
        if len(data) < 4 * rows or data.count(b"\n") <= 2 * rows or not self._idle():
            return 0
        safe = _SAFE.match(data).end()
        q = safe
        for _ in range(rows):
            q = data.rfind(b"\n", 0, q)
            if q < 0:
                return 0
        j = data.rfind(b"\r\n", 0, q)
        if j < 0:
            return 0
        cut = j + 2
        if data.count(b"\n", 0, cut) < rows:
            return 0
        return cut

    def _skip(self, part: bytes) -> None:
        screen = self.screen
        start = 0
        for m in _RESET.finditer(part):
            start = m.start()
        colours = b"".join(_SGR.findall(part, start))
        if colours:
            self.stream.feed(colours)
        screen.cursor.x = 0
        screen.cursor.y = self.rows - 1
        self.skipped += len(part)
