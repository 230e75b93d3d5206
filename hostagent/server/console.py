"""`CONNECT /console?ref=...|uuid=...`: a console's VNC server relayed to the client.

As xapi (xapi-protocol.md §8.4): the query names a console or a VM (whose `rfb` console is
meant) by ref or uuid, the caller is known as on every handler (`session_id` in the query or
a cookie, HTTP Basic, the Unix socket's root), the host's own console needs a superuser's
session (403 otherwise), and the console's VM must be Running on this host. Then the answer
is `HTTP/1.1 200 OK` and a blank line, and from there on the connection carries raw bytes
between the client and the console's VNC server on 127.0.0.1 (a vncterm, or qemu's VNC).
Nothing to connect to (unknown ref, a VM not running here, a console without a server,
libvirt's test driver) is 404; a caller without a valid session 401; nothing is relayed.

A relay holds no buffer of its own: each side's transport is paused while the other's send
buffer is full (Twisted's producers), so a flooding console or a slow client costs bounded
memory. Relays end when either side closes, when their session ends (logout, expiry) and
when their VM stops. `ConsoleSettler` runs the vncterm lifecycle (actions/consoles.py) on
the reactor: when poked by a VM's start or stop and every few seconds.
"""

import logging
from typing import Optional, Set

from twisted.internet import endpoints, task
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET

from ..actions import consoles, consoles_pool
from ..datamodel.errors import ApiError

log = logging.getLogger("hostagent.console")

CONNECT_TIMEOUT = 5.0  # seconds to reach a console's VNC server
SETTLE_INTERVAL = 3.0  # seconds between two looks at the vncterms (deaths are noticed so)
OK = b"HTTP/1.1 200 OK\r\n\r\n"


class Refused(Exception):
    def __init__(self, code: int, why: str):
        super().__init__(why)
        self.code = code


def find_console(ctx, query) -> str:
    """The console the query names (a VM names its rfb console); Refused(404) otherwise."""
    store = ctx.store
    ref, uuid = query.get("ref", ""), query.get("uuid", "")
    if uuid:
        ref = store.by_uuid("VM", uuid) or store.by_uuid("console", uuid) or ""
    if ref and store.exists("VM", ref):
        rfb = [c for c in store.get("VM", ref)["consoles"] if store.get("console", c)["protocol"] == "rfb"]
        if not rfb:
            raise Refused(404, f"VM {ref} has no rfb console")
        return rfb[0]
    if ref and store.exists("console", ref):
        return ref
    raise Refused(404, f"no console or VM {(uuid or ref)[:80]!r}")


class ConsoleHandler:
    methods = ("CONNECT",)

    def __init__(self, runtime, reactor, relays: "Relays", connect_member=None):
        self.runtime = runtime
        self.reactor = reactor
        self.relays = relays
        self.connect_member = connect_member  # (reactor, ctx, host, vm uuid, protocol) -> a pool member's relay

    def render(self, call):
        Deferred.fromCoroutine(self._run(call)).addErrback(self._crashed, call)
        return NOT_DONE_YET

    async def _run(self, call):
        ctx = self.runtime.internal()
        try:
            console, vm_uuid, host = self._check(ctx, call)
            if host == ctx.host:
                port = await consoles.target(ctx, console)
                if not port:
                    raise Refused(404, f"console {console} has no VNC server to connect to")
                backend = await connect_local(self.reactor, port)
                where = f"127.0.0.1:{port}"
            else:  # a pool member's VM: relayed by that member (server/console_pool.py)
                protocol = ctx.store.get("console", console)["protocol"]
                backend = await self.connect_member(self.reactor, ctx, host, vm_uuid, protocol)
                where = f"host {host}"
        except Refused as e:
            log.info("CONNECT /console from %s: %d, %s", call.origin.peer, e.code, e)
            answer(call, e.code)
            return
        session = call.caller.session
        if call.over or not ctx.sessions.active.get(session) or _resident(ctx, console) != host:
            backend.transport.loseConnection()  # the client, its session or the VM went meanwhile
            answer(call, 404)
            return
        relay = Relay(call.request, backend, session, vm_uuid, self.relays)
        self.relays.add(relay)
        relay.start()
        log.info("console %s of VM %s: relayed for %s (%s) to %s", console, vm_uuid,
                 call.caller.user or "root", call.origin.peer, where)

    def _check(self, ctx, call):
        console = find_console(ctx, call.query)
        store = ctx.store
        vm = store.get("VM", store.get("console", console)["VM"])
        if vm["is_control_domain"]:
            try:
                superuser = ctx.sessions.check(call.caller.session)["is_local_superuser"]
            except ApiError:
                superuser = False
            if not superuser:
                raise Refused(403, "the host console needs a pool administrator's session")
        host = _resident(ctx, console)
        if not host or (host != ctx.host and self.connect_member is None):
            raise Refused(404, f"VM {vm['uuid']} is not running on this host")
        return console, vm["uuid"], host

    def _crashed(self, failure, call):
        log.error("CONNECT /console failed: %s", failure.getTraceback())
        answer(call, 500)


async def connect_local(reactor, port: int) -> "Backend":
    """A connection to this host's console server at 127.0.0.1:`port`; Refused(404) if none."""
    ep = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=CONNECT_TIMEOUT)
    try:
        return await endpoints.connectProtocol(ep, Backend())
    except Exception as e:  # noqa: BLE001 - any failure to connect is "nothing there"
        raise Refused(404, f"cannot reach 127.0.0.1:{port}: {e}") from None


def _resident(ctx, console: str) -> str:
    """The host whose server serves `console` (its VM Running there), or ""."""
    store = ctx.store
    if not store.exists("console", console):
        return ""
    vm = store.get("VM", store.get("console", console)["VM"])
    if vm["is_control_domain"]:  # the host's own console: this host's only (a member's is not relayed)
        return ctx.host if vm["resident_on"] == ctx.host else ""
    return vm["resident_on"] if vm["power_state"] == "Running" and store.exists("host", vm["resident_on"]) else ""


def answer(call, code: int) -> None:
    if call.over:
        return
    request = call.request
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/plain")
    request.setHeader(b"Connection", b"close")
    body = {404: b"not found\n", 403: b"forbidden\n", 503: b"the VM's host cannot be reached\n"}.get(
        code, b"error\n")
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)
    request.finish()


class Backend(Protocol):
    """The relay's connection to the console's VNC server."""

    relay = None
    early = b""  # what the server sent before the relay started (its RFB version)

    def connectionMade(self):
        # keystrokes are tiny writes: without this, Nagle holds each one back until the
        # server's delayed ACK (tens of milliseconds)
        self.transport.setTcpNoDelay(True)

    def dataReceived(self, data):
        if self.relay is None:
            self.early += data
            self.transport.pauseProducing()
        else:
            self.relay.to_client(data)

    def connectionLost(self, reason):
        if self.relay is not None:
            self.relay.close()


class Relay:
    """One console connection: the client's HTTP channel, taken over, and the VNC server."""

    def __init__(self, request, backend: Backend, session: str, vm: str, registry: "Relays"):
        self.request = request
        self.channel = request.channel
        self.client = self.channel.transport
        self.backend = backend
        self.session, self.vm = session, vm
        self.registry = registry
        self.closed = False

    def start(self) -> None:
        channel, backend = self.channel, self.backend
        pending = b"".join(getattr(channel, "_dataBuffer", []))  # bytes sent after the request
        channel._dataBuffer = []
        lost = channel.connectionLost

        def client_lost(reason):
            self.close()
            lost(reason)  # the request hears of it: a temporary session is logged out
        # From here on the channel parses nothing: what the client sends goes to the server
        channel.dataReceived = self.from_client
        channel.connectionLost = client_lost
        channel.setTimeout(None)
        self.client.write(OK)
        # client's send buffer full -> the channel pauses its request producer: the server side
        self.request.registerProducer(_Pausing(backend.transport), True)
        # server's send buffer full -> stop reading the client
        backend.transport.registerProducer(_Pausing(self.client), True)
        backend.relay = self
        self.client.resumeProducing()
        if backend.early:
            self.to_client(backend.early)
            backend.early = b""
        backend.transport.resumeProducing()
        if pending:
            self.from_client(pending)

    def from_client(self, data: bytes) -> None:
        if not self.closed:
            self.backend.transport.write(data)

    def to_client(self, data: bytes) -> None:
        if not self.closed:
            self.client.write(data)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.registry.discard(self)
        # a TLS transport shuts down only once no producer is registered on it: the relay's
        # own, and on the client's side the HTTP channel's (its loseConnection drops that)
        if self.backend.relay is self:
            self.request.unregisterProducer()
            self.backend.transport.unregisterProducer()
        self.backend.transport.loseConnection()
        self.channel.loseConnection()


class _Pausing:
    """A streaming producer that pauses and resumes reading on another transport."""

    def __init__(self, transport):
        self.transport = transport

    def pauseProducing(self):
        self.transport.pauseProducing()

    def resumeProducing(self):
        self.transport.resumeProducing()

    def stopProducing(self):
        self.transport.loseConnection()


class Relays:
    """The open relays, closed when their session ends or their VM stops."""

    def __init__(self):
        self.open: Set[Relay] = set()

    def add(self, relay: Relay) -> None:
        self.open.add(relay)

    def discard(self, relay: Relay) -> None:
        self.open.discard(relay)

    def session_gone(self, session: str) -> None:
        for relay in [r for r in self.open if r.session == session]:
            log.info("console relay of VM %s closed: its session ended", relay.vm)
            relay.close()

    def vm_gone(self, vm_uuid: str) -> None:
        for relay in [r for r in self.open if r.vm == vm_uuid]:
            log.info("console relay of VM %s closed: the VM stopped", relay.vm)
            relay.close()

    def close_all(self) -> None:
        for relay in list(self.open):
            relay.close()


class ConsoleSettler:
    """Runs `actions.consoles.settle` on the reactor, one run at a time: when poked and
    every SETTLE_INTERVAL seconds (which is how a vncterm that died is restarted)."""

    def __init__(self, reactor, runtime, interval: float = SETTLE_INTERVAL):
        self.reactor = reactor
        self.runtime = runtime
        self.interval = interval
        self._busy = False
        self._again = False
        self._pending: Optional[object] = None
        self._loop = task.LoopingCall(self.poke)
        self._loop.clock = reactor
        self._telling = False

    def start(self) -> None:
        self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
        if self._pending is not None and self._pending.active():
            self._pending.cancel()

    def poke(self) -> None:
        if self._busy:
            self._again = True
        elif self._pending is None or not self._pending.active():
            self._pending = self.reactor.callLater(0, self._run)

    def _tell(self) -> None:
        """A master tells its members which of their VMs want terminals: apart from the
        settle, one round at a time, so that a slow member holds back no local terminal."""
        if self._telling:
            return
        self._telling = True

        def told(failure):
            self._telling = False
            if failure is not None:
                log.error("telling members which consoles they serve failed: %s", failure.getTraceback())

        Deferred.fromCoroutine(consoles_pool.tell_members(self.runtime.internal())).addBoth(
            lambda r: told(r if isinstance(r, Failure) else None))

    def _run(self) -> Deferred:
        self._busy = True
        d = Deferred.fromCoroutine(consoles.settle(self.runtime.internal()))
        d.addCallback(lambda _: self._tell())

        def done(result):
            self._busy = False
            if self._again:
                self._again = False
                self.poke()
            return None

        def failed(failure):
            log.error("settling the console terminals failed: %s", failure.getTraceback())
        return d.addErrback(failed).addBoth(done)
