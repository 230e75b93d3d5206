"""One console: reads the pty into the emulator, draws dirty rows, hands damage to the clients.

Output is read in large chunks and fed to the emulator at most once per COALESCE seconds; the
emulator may use at most CPU_SHARE of a core (beyond that the pty is left unread for a while,
which holds the writer back instead of burning the host). Nothing is sent to a client here:
clients take their damage when they have an update request outstanding (see client.py).

A console that has printed at least FLOOD_WINDOW_BYTES in each of FLOOD_WINDOWS windows of
FLOOD_WINDOW seconds in a row is flooding, until a window carries less: its output is then
gathered for FLOOD_COALESCE seconds per emulator pass (lines that scroll away within one pass
never go through the emulator), the emulator gets FLOOD_CPU_SHARE, and clients are sent fewer
screens a second (client.py). Typing and the odd burst (a listing) never count as a flood, and
small output (an echoed key) is shown at once whenever the console is not flooding.

While it floods, the process also runs at a lower CPU priority (``priority``, a
priority.Priority): lowered when output makes the console a flood, and back at its base at the
first check (every FLOOD_WINDOW, at a window's start) that finds the flood over, so that an idle
console is never left waking up late for the next key echo.
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
FLOOD_WINDOW = 0.5           # seconds: output is counted per window...
FLOOD_WINDOW_BYTES = 2048    # ... a window with this much output is heavy...
FLOOD_WINDOWS = 4            # ... and this many heavy windows in a row are a flood
FLOOD_COALESCE = 0.2         # seconds of output gathered per emulator pass while flooding
FLOOD_CPU_SHARE = 0.25       # of one core, at most, for the emulator while flooding


class Console:
    def __init__(self, loop, fd: int, emulator, framebuffer, priority=None):
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
        self._window = -2            # the last FLOOD_WINDOW with output (its number)
        self._window_bytes = 0       # output read in that window
        self._heavy_windows = 0      # heavy windows in a row before it
        self.priority = priority     # lower()/restore() the CPU priority; None: never lower
        self._lowered = None         # the timer that checks the flood while lowered

    @property
    def flooding(self) -> bool:
        """Whether the console has printed FLOOD_WINDOW_BYTES or more in each of the last
        FLOOD_WINDOWS windows (the one under way counts once it has that much)."""
        heavy = self._heavy_windows + (self._window_bytes >= FLOOD_WINDOW_BYTES)
        window = int(self.loop.time() / FLOOD_WINDOW)
        if window > self._window + 1 or (window > self._window and self._window_bytes < FLOOD_WINDOW_BYTES):
            return False  # a window went by with little or no output: the flood is over
        return heavy >= FLOOD_WINDOWS

    def _note_output(self, size: int) -> None:
        window = int(self.loop.time() / FLOOD_WINDOW)
        if window != self._window:
            heavy = window == self._window + 1 and self._window_bytes >= FLOOD_WINDOW_BYTES
            self._heavy_windows = self._heavy_windows + 1 if heavy else 0
            self._window, self._window_bytes = window, 0
        self._window_bytes += size
        if self.priority is not None and self._lowered is None and self.flooding:
            self.priority.lower()
            self._schedule_priority_check()

    def _schedule_priority_check(self) -> None:
        now = self.loop.time()
        start = (int(now / FLOOD_WINDOW) + 1) * FLOOD_WINDOW  # the next window's start
        self._lowered = self.loop.call_later(start - now + 0.001, self._check_priority)

    def _check_priority(self) -> None:
        """While lowered: back to the base priority as soon as the console stops flooding."""
        if self.flooding and not self.finished.done():
            self._schedule_priority_check()
            return
        self._lowered = None
        self.priority.restore()

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
        if self._lowered is not None:
            self._lowered.cancel()
            self._lowered = None

    def _resume_reading(self) -> None:
        if not self._reading and not self.finished.done():
            self.loop.add_reader(self.fd, self._on_readable)
            self._reading = True

    def _pause_reading(self) -> None:
        if self._reading:
            self.loop.remove_reader(self.fd)
            self._reading = False

    def _on_readable(self) -> None:
        before = len(self._pending)
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
        self._note_output(len(self._pending) - before)
        if self._pending and self._feed_handle is None:
            # A few bytes (an echoed key) are shown at once; more wait a moment for the rest.
            delay = 0 if len(self._pending) < INTERACTIVE else self._coalesce()
            self._feed_handle = self.loop.call_later(delay, self._feed)

    def _coalesce(self) -> float:
        return FLOOD_COALESCE if self.flooding else COALESCE

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
        rest = cost * (1 / (FLOOD_CPU_SHARE if self.flooding else CPU_SHARE) - 1)
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
            self._feed_handle = self.loop.call_later(self._coalesce(), self._feed)

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
