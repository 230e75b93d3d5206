"""The RFB (VNC) server protocol for one client, without I/O: bytes in, events and replies out.

Handshakes for protocol versions 3.3, 3.7 and 3.8 with security type None, then the client's
messages. Every length is checked before anything is read, a ClientCutText longer than
CUT_TEXT_LIMIT is kept up to that limit and the rest discarded as it arrives (never allocated),
and an unknown message type ends the session (RFB cannot resynchronise).
"""

import re
import struct

from .pixelformat import PixelFormat

SERVER_VERSION = b"RFB 003.008\n"
CUT_TEXT_LIMIT = 64 * 1024
SECURITY_NONE = 1

ENCODING_RAW = 0
ENCODING_COPYRECT = 1

_VERSION = re.compile(rb"RFB (\d{3})\.(\d{3})\n\Z")


class RfbError(Exception):
    """The client broke the protocol; the message says how (the connection is closed)."""


def failure_33(reason: str) -> bytes:
    """The RFB 3.3 'connection failed' reply, understood by clients of every version."""
    text = reason.encode()
    return struct.pack(">II", 0, len(text)) + text


def server_init(width: int, height: int, pf: PixelFormat, name: bytes) -> bytes:
    return struct.pack(">HH", width, height) + pf.pack() + struct.pack(">I", len(name)) + name


def update_header(nrects: int) -> bytes:
    return struct.pack(">BxH", 0, nrects)


def rect_header(x: int, y: int, w: int, h: int, encoding: int) -> bytes:
    return struct.pack(">HHHHi", x, y, w, h, encoding)


def copyrect_source(x: int, y: int) -> bytes:
    return struct.pack(">HH", x, y)


BELL = b"\x02"


class Session:
    """One client's protocol state. ``feed`` takes received bytes and returns (events, reply):
    events are tuples ('ready',), ('pixel_format', PixelFormat), ('encodings', tuple),
    ('update', incremental, x, y, w, h), ('key', down, keysym), ('pointer',), ('cut', bytes);
    reply is the bytes to send back. RfbError means: send what ``farewell`` holds, then close."""

    def __init__(self, width: int, height: int, pixel_format: PixelFormat, name: bytes):
        self._init = server_init(width, height, pixel_format, name)
        self._buf = bytearray()
        self._state = "version"
        self._remaining = 0
        self._cut = None
        self._cut_len = 0
        self.version = None
        self.farewell = b""

    @property
    def ready(self) -> bool:
        return self._state in ("normal", "discard")

    def feed(self, data: bytes):
        events, out = [], bytearray()
        self._buf += data
        while True:
            step = getattr(self, "_" + self._state)(events, out)
            if not step:
                break
        return events, bytes(out)

    def _fail(self, reason: str, farewell: bytes = b""):
        self.farewell = farewell
        self._state = "closed"
        raise RfbError(reason)

    def _closed(self, events, out):
        return False

    def _take(self, n: int):
        if len(self._buf) < n:
            return None
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    # Handshake.
    def _version(self, events, out):
        if len(self._buf) < 12:
            if b"\n" in self._buf or not b"RFB ".startswith(bytes(self._buf[:4])):
                self._fail("bad protocol version", failure_33("unsupported protocol version"))
            return False
        raw = self._take(12)
        m = _VERSION.match(raw)
        if not m or int(m.group(1)) != 3 or int(m.group(2)) < 3:
            self._fail(f"bad protocol version {raw!r}", failure_33("unsupported protocol version"))
        minor = int(m.group(2))
        self.version = 8 if minor >= 8 else 7 if minor == 7 else 3
        if self.version == 3:
            out += struct.pack(">I", SECURITY_NONE)
            self._state = "client_init"
        else:
            out += bytes([1, SECURITY_NONE])
            self._state = "security"
        return True

    def _security(self, events, out):
        raw = self._take(1)
        if raw is None:
            return False
        if raw[0] != SECURITY_NONE:
            reason = b"only security type None is offered"
            farewell = struct.pack(">I", 1)
            if self.version == 8:
                farewell += struct.pack(">I", len(reason)) + reason
            self._fail(f"security type {raw[0]} refused", farewell)
        if self.version == 8:
            out += struct.pack(">I", 0)
        self._state = "client_init"
        return True

    def _client_init(self, events, out):
        if self._take(1) is None:
            return False
        out += self._init
        self._state = "normal"
        events.append(("ready",))
        return True

    # Normal operation.
    def _normal(self, events, out):
        buf = self._buf
        if not buf:
            return False
        kind = buf[0]
        if kind == 0:
            raw = self._take(20)
            if raw is None:
                return False
            events.append(("pixel_format", PixelFormat.unpack(raw[4:20])))
        elif kind == 2:
            if len(buf) < 4:
                return False
            n = struct.unpack_from(">H", buf, 2)[0]
            raw = self._take(4 + 4 * n)
            if raw is None:
                return False
            events.append(("encodings", struct.unpack_from(f">{n}i", raw, 4)))
        elif kind == 3:
            raw = self._take(10)
            if raw is None:
                return False
            _t, incremental, x, y, w, h = struct.unpack(">BBHHHH", raw)
            events.append(("update", bool(incremental), x, y, w, h))
        elif kind == 4:
            raw = self._take(8)
            if raw is None:
                return False
            _t, down, key = struct.unpack(">BB2xI", raw)
            events.append(("key", bool(down), key))
        elif kind == 5:
            if self._take(6) is None:
                return False
            events.append(("pointer",))
        elif kind == 6:
            raw = self._take(8)
            if raw is None:
                return False
            self._cut_len = struct.unpack_from(">I", raw, 4)[0]
            self._cut = bytearray()
            self._remaining = self._cut_len
            self._state = "discard"
        else:
            self._fail(f"unknown message type {kind}")
        return True

    def _discard(self, events, out):
        take = min(self._remaining, len(self._buf))
        room = CUT_TEXT_LIMIT - len(self._cut)
        if room > 0:
            self._cut += self._buf[:min(take, room)]
        del self._buf[:take]
        self._remaining -= take
        if self._remaining:
            return False
        events.append(("cut", bytes(self._cut)))
        self._cut = None
        self._state = "normal"
        return True
