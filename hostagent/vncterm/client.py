"""One VNC client connection: protocol events in, framebuffer updates out.

Each client keeps its own damage (which cells changed since it was last sent them) and gets
an update only while it has a FramebufferUpdateRequest outstanding and its socket buffer is
below HIGH_WATER, at most 100 updates and, beyond a burst, 10 screens of pixels a second, 4
while the console floods (so a flood costs a viewer, and the agent relaying it, bounded
bandwidth while typing stays prompt). A client that stops reading receives nothing more
until it drains (and is dropped after SLOW_CLIENT_TIMEOUT), so it never holds up the pty or the
other clients. Pixels go raw or as ZRLE (the client's preference); scrolls go as one CopyRect
to clients that offer it.
"""

import asyncio
import logging

from . import damage as damage_
from . import rfb
from .keys import KeyState
from .pixelformat import DEFAULT, Converter, PixelFormatError, colour_map_entries
from .zrle import ENCODING_ZRLE, ZrleEncoder

log = logging.getLogger("hostagent.vncterm")

HANDSHAKE_TIMEOUT = 10.0
SLOW_CLIENT_TIMEOUT = 60.0
HIGH_WATER = 2 * 1024 * 1024
MIN_INTERVAL = 0.01         # seconds between two updates (at most 100 a second)
SCREENS_PER_SECOND = 10.0   # pixels sent, in whole screens, at most this many a second...
SCREENS_BURST = 2.0         # ... after a burst of this many (so one scroll never waits)
FLOOD_SCREENS_PER_SECOND = 4.0  # ... and this many while the console floods (console.py)
MAX_VIEWERS = 32            # clients past the handshake
MAX_CONNECTIONS = 128       # all connections; when full, the oldest mid-handshake one goes


class Client(asyncio.Protocol):
    def __init__(self, console, name: bytes):
        self.console = console
        fb = console.fb
        self.session = rfb.Session(fb.width, fb.height, DEFAULT, name)
        self.converter = Converter(DEFAULT)
        self.keys = KeyState()
        self.encoding = rfb.ENCODING_RAW
        self.zrle = None
        self.copyrect = False
        self.scrolled = 0            # rows the picture moved up since this client's last update
        self.damage: dict = {}
        self.request = None
        self.transport = None
        self.paused = False
        self.bell = False
        self._timer = None
        self._send_timer = None
        self._next_send = 0.0
        self._budget = SCREENS_BURST     # screens of pixels that may be sent right now
        self._budget_at = 0.0
        self.peer = "?"

    # asyncio callbacks.
    def connection_made(self, transport) -> None:
        self.transport = transport
        host, port = tuple(transport.get_extra_info("peername") or ("?", "?"))[:2]
        self.peer = f"{host}:{port}"
        if not self._make_room():
            log.warning("refusing %s: %d viewers already", self.peer, MAX_VIEWERS)
            transport.write(rfb.failure_33("too many viewers"))
            transport.close()
            return
        self.console.clients[self] = None
        transport.set_write_buffer_limits(high=HIGH_WATER)
        transport.write(rfb.SERVER_VERSION)
        self._timer = self.console.loop.call_later(HANDSHAKE_TIMEOUT, self._timeout,
                                                   "no handshake")

    def _make_room(self) -> bool:
        """Whether this connection may stay: viewers are capped, and connections that have not
        finished their handshake give way (oldest first) to new ones."""
        clients = self.console.clients
        if sum(1 for c in clients if c.session.ready) >= MAX_VIEWERS:
            return False
        if len(clients) >= MAX_CONNECTIONS:
            oldest = next((c for c in clients if not c.session.ready), None)
            if oldest is None:
                return False
            clients.pop(oldest, None)
            oldest.transport.abort()
        return True

    def connection_lost(self, exc) -> None:
        self.console.clients.pop(self, None)
        self._cancel_timer()
        if self._send_timer:
            self._send_timer.cancel()
            self._send_timer = None
        self.request = None

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        try:
            events, reply = self.session.feed(data)
        except rfb.RfbError as e:
            log.info("dropping client %s: %s", self.peer, e)
            if self.session.farewell:
                self.transport.write(self.session.farewell)
            self.transport.close()
            return
        if reply:
            self.transport.write(reply)
        for event in events:
            getattr(self, "_on_" + event[0])(*event[1:])
            if self.transport.is_closing():
                return

    def pause_writing(self) -> None:
        self.paused = True
        self._cancel_timer()
        self._timer = self.console.loop.call_later(SLOW_CLIENT_TIMEOUT, self._timeout,
                                                   "not reading its updates")

    def resume_writing(self) -> None:
        self.paused = False
        self._cancel_timer()
        self.try_send()

    def _cancel_timer(self) -> None:
        if self._timer:
            self._timer.cancel()
            self._timer = None

    def _timeout(self, why: str) -> None:
        log.info("dropping client %s: %s", self.peer, why)
        self.transport.abort()

    # Protocol events.
    def _on_ready(self) -> None:
        self._cancel_timer()
        self._all_damaged()
        log.info("client %s connected (RFB 3.%d)", self.peer, self.session.version)

    def _on_pixel_format(self, pf) -> None:
        try:
            self.converter = Converter(pf)
        except PixelFormatError as e:
            log.info("dropping client %s: %s", self.peer, e)
            self.transport.close()
            return
        if not pf.true_colour:
            self.transport.write(colour_map_entries())
        if self.zrle:
            self.zrle.set_converter(self.converter)
        self._all_damaged()

    def _on_encodings(self, encodings) -> None:
        # The client lists encodings in its order of preference: take the first we have.
        chosen = next((e for e in encodings if e in (ENCODING_ZRLE, rfb.ENCODING_RAW)),
                      rfb.ENCODING_RAW)
        self.copyrect = rfb.ENCODING_COPYRECT in encodings
        if chosen == ENCODING_ZRLE and self.zrle is None:
            self.zrle = ZrleEncoder(self.converter)
        self.encoding = chosen

    def _on_update(self, incremental, x, y, w, h) -> None:
        if self.request is not None:
            old_inc, ox, oy, ow, oh = self.request
            x0, y0 = min(x, ox), min(y, oy)
            x1, y1 = max(x + w, ox + ow), max(y + h, oy + oh)
            incremental, x, y, w, h = incremental and old_inc, x0, y0, x1 - x0, y1 - y0
        self.request = (incremental, x, y, w, h)
        self.console.refresh()
        self.try_send()

    def _on_key(self, down, keysym) -> None:
        data = self.keys.event(down, keysym, self.console.emulator.app_cursor)
        if data:
            self.console.write_input(data)

    def _on_pointer(self) -> None:
        """A text console has no pointer: the event was read and is dropped."""

    def _on_cut(self, text: bytes) -> None:
        # RFB cut text is Latin-1; a terminal gets UTF-8 with CR for each line end.
        data = text.decode("latin-1").replace("\r\n", "\r").replace("\n", "\r")
        self.console.write_input(data.encode("utf-8"))

    # Updates.
    def _all_damaged(self) -> None:
        self.damage = damage_.everything(self.console.fb.rows, self.console.fb.cols)
        self.scrolled = 0

    def add_scroll(self, k: int) -> None:
        """The picture moved up k rows: remembered for a CopyRect when the client takes it,
        otherwise every row is damaged."""
        if not self.session.ready:
            return
        fb = self.console.fb
        if not self.copyrect or self.scrolled + k >= fb.rows - 4:
            self._all_damaged()
            return
        self.scrolled += k
        self.damage = damage_.shift_up(self.damage, k)

    def add_damage(self, damage: dict, bell: bool = False) -> None:
        if not self.session.ready:
            return
        damage_.merge(self.damage, damage)
        if bell:
            self.bell = True
        self.try_send()

    def try_send(self) -> None:
        if self.request is None or self.paused or self.transport.is_closing():
            return
        if self._send_timer is not None:
            return
        now = self.console.loop.time()
        rate = FLOOD_SCREENS_PER_SECOND if self.console.flooding else SCREENS_PER_SECOND
        self._budget = min(SCREENS_BURST, self._budget + (now - self._budget_at) * rate)
        self._budget_at = now
        wait = max(self._next_send - now, -self._budget / rate)
        if wait > 0:
            self._send_timer = self.console.loop.call_later(wait, self._send_later)
            return
        fb = self.console.fb
        incremental, x, y, w, h = self.request
        rx0, ry0 = min(x, fb.width), min(y, fb.height)
        rx1, ry1 = min(x + w, fb.width), min(y + h, fb.height)
        cell = (fb.cell_w, fb.cell_h)
        full = (rx0, ry0, rx1, ry1) == (0, 0, fb.width, fb.height)
        if self.scrolled and not full:
            self._all_damaged()         # a CopyRect only for whole-screen requests
        copy = self.scrolled
        if incremental:
            rects = damage_.rectangles(self.damage, (rx0, ry0, rx1, ry1), cell)
            if not rects and not copy:
                if self.bell:
                    self.transport.write(rfb.BELL)
                    self.bell = False
                return
        else:
            rects = [(rx0, ry0, rx1 - rx0, ry1 - ry0)] if rx1 > rx0 and ry1 > ry0 else []
            copy = 0
        self.request = None
        self.scrolled = 0
        parts = [rfb.update_header(len(rects) + bool(copy))]
        if copy:
            # First move what the client has up, then paint over the rest.
            band = (fb.rows - copy) * fb.cell_h
            parts.append(rfb.rect_header(0, 0, fb.width, band, rfb.ENCODING_COPYRECT))
            parts.append(rfb.copyrect_source(0, copy * fb.cell_h))
        for px, py, pw, ph in rects:
            parts.append(rfb.rect_header(px, py, pw, ph, self.encoding))
            pixels = fb.region(px, py, pw, ph)
            if self.encoding == ENCODING_ZRLE:
                parts.append(self.zrle.encode(pixels, pw, ph))
            else:
                parts.append(self.converter.convert(pixels))
        if self.bell:
            parts.append(rfb.BELL)
            self.bell = False
        message = b"".join(parts)
        self.transport.write(message)
        self._next_send = now + MIN_INTERVAL
        self._budget -= sum(pw * ph for _x, _y, pw, ph in rects) / (fb.width * fb.height)
        damage_.forget(self.damage, (rx0, ry0, rx1, ry1), cell)

    def _send_later(self) -> None:
        self._send_timer = None
        self.console.refresh()
        self.try_send()
