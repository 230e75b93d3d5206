"""Consoles of a pool member's VMs: the master relays `CONNECT /console` to the member.

Clients connect to the master (a console's `location` names it). For a VM resident on a
member, the master checks the session and the console as for its own VMs, then opens TLS to
the member's pool endpoint, checks the certificate against the one pinned at join (and that
it names the address) before anything is sent, and asks `CONNECT /pool/v1/console?uuid=<VM
uuid>&protocol=vt100|rfb` with the pool secret. The member (`MemberConsole`) relays that
connection to its own 127.0.0.1 server (the vncterm the master asked for, or the domain's
VNC server: `actions.consoles.local_target`) and answers 200; from then on bytes flow
client - master - member - server, each hop a `Relay` with the same backpressure (transports
paused while the other side's send buffer is full). A member that is not live, cannot be
reached or presents another certificate is 503 to the client; nothing to connect to there,
404. The master's relay closes when the client's session ends or the VM stops (the master's
records say so); the member's closes with its vncterm or with the master's connection.
"""

import logging
from urllib.parse import urlencode

from OpenSSL import crypto
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from ..actions import consoles, consoles_pool
from ..datamodel.errors import ApiError
from ..pool.client import PREFIX, SECRET_HEADER
from ..pool.identity import IdentityError, der, names_peer
from ..pool.role import split_address
from .console import (
    CONNECT_TIMEOUT,
    Backend,
    ConsoleHandler,
    Refused,
    Relay,
    answer,
    connect_local,
)
from .pool_endpoint import JsonOp, SecretAuth

log = logging.getLogger("hostagent.console")

HEAD_LIMIT = 8192  # bytes of the member's answer before its blank line


@implementer(IHandshakeListener)
class MemberBackend(Backend):
    """The master's connection to a member's console relay (TLS, pinned). `ready` fires
    with itself once the member answered 200; with Refused otherwise."""

    def __init__(self, pinned: bytes, name: str, request: bytes):
        self.pinned, self.name, self.request = pinned, name, request
        self.ready: Deferred = Deferred()
        self.head = b""
        self.checked = False

    def handshakeCompleted(self):
        cert = self.transport.getPeerCertificate()
        presented = crypto.dump_certificate(crypto.FILETYPE_ASN1, cert) if cert is not None else b""
        if presented != self.pinned or not names_peer(presented, self.name):
            self.fail(Refused(503, "the member presented a certificate other than the one recorded at join"))
            return
        self.checked = True
        self.transport.write(self.request)  # the secret goes only to the pinned peer

    def dataReceived(self, data):
        if self.ready.called:
            super().dataReceived(data)
            return
        self.head += data
        if b"\r\n\r\n" not in self.head:
            if len(self.head) > HEAD_LIMIT:
                self.fail(Refused(503, "the member answered no HTTP head"))
            return
        head, _, rest = self.head.partition(b"\r\n\r\n")
        self.head = b""
        status = head.split(b"\r\n", 1)[0].split()
        code = int(status[1]) if len(status) > 1 and status[1].isdigit() else 0
        if code != 200:
            self.fail(Refused(404 if code == 404 else 503, f"the member answered HTTP {code or '?'}"))
            return
        self.transport.pauseProducing()  # until the relay starts: `early` keeps what came
        self.early = rest
        self.ready.callback(self)

    def connectionLost(self, reason):
        if not self.ready.called:
            self.ready.errback(Refused(503, f"the member closed the connection: {reason.getErrorMessage()}"))
        super().connectionLost(reason)

    def fail(self, refused: Refused) -> None:
        if not self.ready.called:
            self.ready.errback(refused)
        self.transport.abortConnection()


async def connect_member(reactor, ctx, host: str, vm_uuid: str, protocol: str) -> Backend:
    """The master's relay to member `host` for a VM's console, answered 200; Refused else."""
    try:
        address, cert = consoles_pool.member_address(ctx, host)
        pinned = der(cert)
        name, port = split_address(address)
    except ApiError as e:
        raise Refused(503, f"host {host}: {' '.join(e.description)}") from None
    except (IdentityError, ValueError) as e:
        raise Refused(503, f"host {host}: its pool endpoint is unusable: {e}") from None
    query = urlencode({"uuid": vm_uuid, "protocol": protocol})
    request = (f"CONNECT {PREFIX}console?{query} HTTP/1.1\r\nHost: {address}\r\n"
               f"{SECRET_HEADER}: {ctx.rt.pool.secret}\r\n\r\n").encode()
    backend = MemberBackend(pinned, name, request)
    ep = endpoints.SSL4ClientEndpoint(reactor, name, port, CertificateOptions(raiseMinimumTo=TLSVersion.TLSv1_2),
                                      timeout=CONNECT_TIMEOUT)
    try:
        await endpoints.connectProtocol(ep, backend)
    except Exception as e:  # noqa: BLE001 - any failure to connect is "cannot contact"
        raise Refused(503, f"cannot reach host {host} at {address}: {e}") from None
    timer = reactor.callLater(CONNECT_TIMEOUT, backend.fail, Refused(
        503, f"host {host} did not answer within {CONNECT_TIMEOUT:.0f}s"))
    try:
        return await backend.ready
    finally:
        if timer.active():
            timer.cancel()


class MemberConsole:
    """A member's side: `CONNECT /pool/v1/console?uuid=&protocol=` from its master (TLS, the
    pool secret: checked by the route) relayed to this host's own console server."""

    methods = ("CONNECT",)

    def __init__(self, runtime, reactor, relays):
        self.runtime, self.reactor, self.relays = runtime, reactor, relays

    def render(self, call):
        Deferred.fromCoroutine(self._run(call)).addErrback(self._crashed, call)
        return NOT_DONE_YET

    async def _run(self, call):
        ctx = self.runtime.internal()
        try:
            try:
                uuid, protocol = consoles_pool.check_relay(ctx, call.query)
            except ApiError as e:
                raise Refused(403 if e.code == "OPERATION_NOT_ALLOWED" else 400, " ".join(e.description)) from None
            port = await consoles.local_target(ctx, uuid, protocol)
            if not port:
                raise Refused(404, f"no {protocol} console of VM {uuid} here")
            backend = await connect_local(self.reactor, port)
        except Refused as e:
            log.info("pool console relay from %s: %d, %s", call.origin.peer, e.code, e)
            answer(call, e.code)
            return
        if call.over or not consoles_pool.is_member(ctx):
            backend.transport.loseConnection()
            return
        relay = Relay(call.request, backend, "", uuid, self.relays)
        self.relays.add(relay)
        relay.start()
        log.info("%s console of VM %s: relayed for the master (%s) to 127.0.0.1:%d", protocol, uuid,
                 call.origin.peer, port)

    def _crashed(self, failure, call):
        log.error("pool console relay failed: %s", failure.getTraceback())
        answer(call, 500)


def register(router, runtime, reactor, relays, membership) -> None:
    """`CONNECT /console` for every client; on the pool endpoint (TLS, the pool secret) a
    member's relay for its master and the master's word on which terminals it runs."""
    secret = SecretAuth(membership)
    router.route("/console", ConsoleHandler(runtime, reactor, relays, connect_member))
    router.route(PREFIX + "console", MemberConsole(runtime, reactor, relays), auth=secret)
    router.route(PREFIX + "consoles", JsonOp(runtime, consoles_pool.serve_wanted), auth=secret)
