"""Calls to another member's internal endpoint: JSON over HTTPS, blocking (run it in a worker).

The peer is checked by pinning: the certificate it presents must be the one recorded at
join, byte for byte, and must name the address used (service_identity, in identity.py).
Before a certificate is recorded (the first contact of pool.join) `pinned` is None and
the certificate presented is returned for the caller to record. Failures are exceptions
of this module: `Unreachable` (no connection, TLS failure, a different certificate, an
answer that is not ours) and `Refused` (the peer answered with a XenAPI error).
"""

import contextlib
import http.client
import json
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Optional

from .identity import IdentityError, der, names_peer, pem_of
from .role import split_address

SECRET_HEADER = "X-Hostagent-Pool-Secret"
PREFIX = "/pool/v1/"
TIMEOUT = 30.0  # seconds for a connection, and for an answer unless the call says otherwise
RELAY_TIMEOUT = 3600.0  # a proxied API call may wait long (event.from, long VM operations)


class Unreachable(Exception):
    """The peer cannot be reached, or is not who it should be; the message says which."""


class Refused(Exception):
    """The peer answered with a XenAPI error (its ErrorDescription in `description`)."""

    def __init__(self, description):
        super().__init__(*description)
        self.description = list(description)


@dataclass
class Answer:
    value: Any
    peer_cert: str  # the PEM the peer presented


def _context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # no CA: the peer's certificate is compared with the pinned one after the handshake,
    # which proved the peer holds the key of the certificate it showed
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class Idle:
    """Open connections to peers, kept between calls (keep-alive) so that a call pays no TLS
    handshake; by (address, pinned certificate): a connection is reused only for the peer
    and certificate it was checked against. Thread-safe."""

    KEEP = 8  # idle connections kept per peer

    def __init__(self):
        self._lock = threading.Lock()
        self._idle = {}  # (address, pinned) -> [(conn, peer PEM)]

    def take(self, key):
        with self._lock:
            kept = self._idle.get(key)
            return kept.pop() if kept else None

    def give(self, key, conn, pem) -> None:
        with self._lock:
            kept = self._idle.setdefault(key, [])
            if len(kept) < self.KEEP:
                kept.append((conn, pem))
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            kept, self._idle = self._idle, {}
        for conns in kept.values():
            for conn, _ in conns:
                conn.close()


def post(address: str, op: str, body: bytes, *, secret: Optional[str], pinned: Optional[str],
         content_type: str = "application/json", query: str = "", timeout: float = TIMEOUT,
         track: Optional[set] = None, idle: Optional[Idle] = None):
    """(content type, bytes, the peer's PEM) of `POST /pool/v1/<op>` at `address`; see the
    module doc. Connecting takes at most TIMEOUT seconds, the answer `timeout`. The open
    connection is in `track` meanwhile, for `abort` to end it. With `idle` (and a pinned
    certificate) a connection kept from an earlier call is used, and kept afterwards."""
    key = (address, pinned) if idle is not None and pinned else None
    kept = idle.take(key) if key else None
    if kept is not None:
        try:
            return _exchange(address, kept[0], kept[1], op, body, secret, content_type, query, timeout, track,
                             idle, key, reused=True)
        except _Stale:
            pass  # the peer closed it while it was idle, before reading this request: a new one
    try:
        host, port = split_address(address)
    except ValueError as e:
        raise Unreachable(str(e)) from None
    conn = http.client.HTTPSConnection(host, port, timeout=min(timeout, TIMEOUT), context=_context())
    conn.auto_open = 0  # never reconnected behind our back: a new connection is checked again
    try:
        conn.connect()
        presented = conn.sock.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError, socket.timeout) as e:
        conn.close()
        raise Unreachable(f"cannot connect to {address}: {e}") from None
    try:
        _check_peer(address, host, presented, pinned)
    except Unreachable:
        conn.close()
        raise
    return _exchange(address, conn, pem_of(presented), op, body, secret, content_type, query, timeout, track,
                     idle, key, reused=False)


class _Stale(Exception):
    """A kept connection the peer had closed: nothing was sent on it."""


def _exchange(address, conn, pem, op, body, secret, content_type, query, timeout, track, idle, key, reused):
    if track is not None:
        track.add(conn)
    keep = False
    try:
        if conn.sock is None:
            raise _Stale()
        conn.sock.settimeout(timeout)
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        try:
            conn.request("POST", PREFIX + op + (("?" + query) if query else ""), body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ssl.SSLEOFError) as e:
            if reused:  # a kept connection the peer closed (it restarted, say): TLS may say EOF
                raise _Stale() from None
            raise Unreachable(f"{address} did not answer: {e}") from None
        except (OSError, http.client.HTTPException, socket.timeout) as e:
            raise Unreachable(f"{address} did not answer: {e}") from None
        if resp.status != 200:
            raise Unreachable(f"{address} refused the call: HTTP {resp.status}")
        keep = key is not None and not resp.will_close
        return resp.getheader("Content-Type", ""), data, pem
    finally:
        if track is not None:
            track.discard(conn)
        if keep:
            idle.give(key, conn, pem)
        else:
            conn.close()


def abort(track: set) -> None:
    """End the connections in `track` now (their calls fail with Unreachable): at shutdown."""
    for conn in list(track):
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed by its own thread
                sock.shutdown(socket.SHUT_RDWR)


def _check_peer(address: str, host: str, presented: Optional[bytes], pinned: Optional[str]) -> None:
    if not presented:
        raise Unreachable(f"{address} presented no certificate")
    if pinned is None:
        return
    try:
        expected = der(pinned)
    except IdentityError as e:
        raise Unreachable(f"the certificate recorded for {address} is unusable: {e}") from None
    if presented != expected:
        raise Unreachable(f"{address} presented a certificate other than the one recorded at join")
    if not names_peer(presented, host):
        raise Unreachable(f"the certificate of {address} does not name {host}")


def call(address: str, op: str, payload: dict, *, secret: Optional[str], pinned: Optional[str],
         timeout: float = TIMEOUT, track: Optional[set] = None, idle: Optional[Idle] = None) -> Answer:
    """The value of a JSON call; `Refused` when the peer answers with a XenAPI error."""
    body = json.dumps(payload).encode("utf-8")
    ctype, data, peer_cert = post(address, op, body, secret=secret, pinned=pinned, timeout=timeout, track=track,
                                  idle=idle)
    try:
        reply = json.loads(data)
    except ValueError:
        raise Unreachable(f"{address} answered something other than JSON") from None
    if not isinstance(reply, dict) or not ("value" in reply or "error" in reply):
        raise Unreachable(f"{address} answered something other than a pool reply")
    if "error" in reply:
        err = reply["error"]
        if not isinstance(err, list) or not err or not all(isinstance(x, str) for x in err):
            raise Unreachable(f"{address} answered a malformed error")
        raise Refused(err)
    return Answer(reply["value"], peer_cert)
