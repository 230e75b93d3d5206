"""One console: reads the pty into the emulator, draws dirty rows, hands damage to the clients.

Output is read in large chunks and fed to the emulator at most once per COALESCE seconds; the
emulator may use at most CPU_SHARE of a core (beyond that the pty is left unread for a while,
which holds the writer back instead of burning the host). Nothing is sent to a client here:
clients take their damage when they have an update request outstanding (see client.py).
"""

import errno
import logging
import os
import time

from .palette import DEFAULT_BG, DEFAULT_FG, colour_index
from .render import cell_key
from .terminal import read_chunk

log = logging.getLogger("hostagent.vncterm")

READ_SIZE = 65536
MAX_PENDING = 1 << 20        # stop reading the pty while this much output awaits the emulator
COALESCE = 0.004             # seconds of output gathered before one emulator pass
INTERACTIVE = 256            # output this small is fed at once, without coalescing
FEED_SLICE = 16 * 1024       # bytes pyte takes in one pass (about 30 ms), beyond what is skipped
CPU_SHARE = 0.5              # of one core, at most, for the emulator under a flood
INPUT_LIMIT = 64 * 1024      # bytes of keyboard/paste input queued for a pty that does not read


class Console:
    def __init__(self, loop, fd: int, emulator, framebuffer):
        self.loop = loop
        self.fd = fd
        self.emulator = emulator
        self.fb = framebuffer
        self.clients: dict = {}       # Client -> None, in connection order
        self.finished = loop.create_future()
        self._pending = bytearray()
        self._input = bytearray()
        self._feed_handle = None
        self._reading = False
        self._writing = False
        self._cursor = None
        self.dropped_input = 0
        self.feed_seconds = 0.0

    # The pty side.
    def start(self) -> None:
        self.emulator.screen.dirty.update(range(self.emulator.rows))
        self._resume_reading()
        self.refresh()

    def finish(self, reason: str) -> None:
        if not self.finished.done():
            log.info("stopping: %s", reason)
            self.finished.set_result(reason)
        self._pause_reading()
        if self._writing:
            self.loop.remove_writer(self.fd)
            self._writing = False
        if self._feed_handle:
            self._feed_handle.cancel()
            self._feed_handle = None

    def _resume_reading(self) -> None:
        if not self._reading and not self.finished.done():
            self.loop.add_reader(self.fd, self._on_readable)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading:
            self.loop.remove_reader(self.fd)
            self._reading = False

    def _on_readable(self) -> None:
        for _ in range(64):
            chunk = read_chunk(self.fd, READ_SIZE)
            if chunk is None:
                self.finish("the console hung up")
                return
            if not chunk:
                break
            self._pending += chunk
            if len(self._pending) >= MAX_PENDING:
                self._pause_reading()
                break
        if self._pending and self._feed_handle is None:
            # A few bytes (an echoed key) are shown at once; more wait a moment for the rest.
            delay = 0 if len(self._pending) < INTERACTIVE else COALESCE
            self._feed_handle = self.loop.call_later(delay, self._feed)

    def _feed(self) -> None:
        self._feed_handle = None
        started = time.thread_time()
        try:
            consumed = self.emulator.feed(self._pending, FEED_SLICE)
        except Exception:  # an emulator bug must not end the console
            log.exception("the emulator failed on this output; it is skipped")
            consumed = min(len(self._pending), FEED_SLICE)
        del self._pending[:consumed]
        replies = self.emulator.take_replies()
        if replies:
            self.write_input(replies)
        self.refresh()
        cost = time.thread_time() - started
        self.feed_seconds += cost
        rest = cost * (1 / CPU_SHARE - 1)
        if rest > 0.002:
            self._pause_reading()
            self._feed_handle = self.loop.call_later(rest, self._after_rest)
        else:
            self._after_rest()

    def _after_rest(self) -> None:
        self._feed_handle = None
        if len(self._pending) < MAX_PENDING:
            self._resume_reading()
        if self._pending:
            self._feed_handle = self.loop.call_later(COALESCE, self._feed)

    def write_input(self, data: bytes) -> None:
        """Queue keyboard or paste bytes for the pty; beyond INPUT_LIMIT they are dropped."""
        room = INPUT_LIMIT - len(self._input)
        if len(data) > room:
            self.dropped_input += len(data) - max(room, 0)
            data = data[:max(room, 0)]
        self._input += data
        self._flush_input()

    def _flush_input(self) -> None:
        while self._input and not self.finished.done():
            try:
                n = os.write(self.fd, self._input)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno in (errno.EIO, errno.ENXIO, errno.EBADF):
                    self._input.clear()
                    break
                raise
            del self._input[:n]
        want = bool(self._input) and not self.finished.done()
        if want and not self._writing:
            self.loop.add_writer(self.fd, self._flush_input)
            self._writing = True
        elif not want and self._writing:
            self.loop.remove_writer(self.fd)
            self._writing = False

    # The screen side.
    def _row_keys(self, y: int, cursor) -> list:
        font, line = self.fb.font, self.emulator.screen.buffer[y]
        keys = []
        cached = {}
        for x in range(self.emulator.cols):
            ch = line[x]
            inverse = bool(ch.reverse) != (cursor == (x, y))
            attrs = (ch.data, ch.fg, ch.bg, ch.bold, ch.underscore, inverse)
            key = cached.get(attrs)
            if key is None:
                fg = colour_index(ch.fg, DEFAULT_FG)
                bg = colour_index(ch.bg, DEFAULT_BG)
                if ch.bold and fg < 8:
                    fg += 8
                key = cached[attrs] = cell_key(font, ch.data, fg, bg, ch.underscore, inverse)
            keys.append(key)
        return keys

    def _cursor_cell(self):
        c = self.emulator.screen.cursor
        if c.hidden:
            return None
        return (min(c.x, self.emulator.cols - 1), min(c.y, self.emulator.rows - 1))

    def refresh(self) -> None:
        """Draw the rows pyte marked dirty (and the cursor's old and new rows), then offer the
        damage to every client."""
        screen = self.emulator.screen
        rows = set(screen.dirty)
        screen.dirty.clear()
        cursor = self._cursor_cell()
        if cursor != self._cursor:
            for c in (cursor, self._cursor):
                if c is not None:
                    rows.add(c[1])
            self._cursor = cursor
        keys = {y: self._row_keys(y, cursor) for y in rows if 0 <= y < self.emulator.rows}
        shift = self.fb.find_scroll(keys)
        if shift:
            self.fb.scroll(shift)
            for client in list(self.clients):
                client.add_scroll(shift)
        damage = {}
        for y in sorted(keys):
            span = self.fb.draw_row(y, keys[y])
            if span:
                damage[y] = span
        bells, screen.bells = screen.bells, 0
        for client in list(self.clients):
            client.add_damage(damage, bell=bells > 0)
