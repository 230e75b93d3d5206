"""The HTTP site: XML-RPC and JSON-RPC endpoints, and XenAPI's handlers, on every listener.

XML-RPC on POST /, /RPC2, /xmlrpc and /json; JSON-RPC 1.0/2.0 on POST
/jsonrpc. API outcomes are always HTTP 200 with a XenAPI envelope; a body that
cannot be parsed gets HTTP 500 and the connection stays usable. Bodies over
the size limit are refused with 413 before they are read. Other paths are the
router's (routes.py): registered handlers, authenticated by `SessionAuth`, or 404.
"""

import logging

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.web import resource, server

from ..datamodel.errors import ApiError
from ..rpc import jsonrpc, xmlrpc
from ..rpc.dispatch import Reply
from ..rpc.wire_errors import Malformed
from .routes import MAX_BODY, Call, Caller, RoutedRequest, Router, Unauthorized, origin_of

__all__ = ["ApiSite", "MAX_BODY", "SessionAuth", "xapi_router"]

log = logging.getLogger("hostagent.http")

CORS = (b"Access-Control-Allow-Origin", b"*")


class ApiResource(resource.Resource):
    isLeaf = True

    def __init__(self, dispatcher, encoder, transport: str, gate=None):
        super().__init__()
        self.dispatcher = dispatcher
        self.xml = encoder
        self.transport = transport
        # gate(method, params, origin, body, is_json): None to serve the call here, a Reply to
        # answer instead, or a Deferred of (content type, body) relayed as the answer (a
        # pool member's calls for its master: server/pool_endpoint.SlaveGate)
        self.gate = gate

    def render_OPTIONS(self, request):
        request.setHeader(*CORS)
        request.setHeader(b"Access-Control-Allow-Methods", b"POST, OPTIONS")
        request.setHeader(b"Access-Control-Allow-Headers", b"Content-Type")
        return b""

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/plain")
        return b"hostagent: XenAPI over XML-RPC (POST /) and JSON-RPC (POST /jsonrpc)\n"

    def render_POST(self, request):  # the router sends only its RPC paths here
        body = request.content.read()
        origin = origin_of(request, self.transport)
        if request.route.path == b"jsonrpc":
            return self._serve(request, body, origin, self._json)
        return self._serve(request, body, origin, self._xml)

    def serve_body(self, request, body: bytes, origin, json: bool):
        """Answer an RPC body taken from another route (the pool's relay of a member's calls)."""
        return self._serve(request, body, origin, self._json if json else self._xml)

    def _serve(self, request, body, origin, codec):
        try:
            encode, method, params = codec(body)
        except Malformed as e:
            request.setResponseCode(500)
            request.setHeader(b"Content-Type", b"text/html")
            log.info("malformed request from %s: %s", origin.peer, e)
            return b"<html><body>Malformed request: " + _html(str(e)) + b"</body></html>"
        if self.gate is not None:
            diverted = self.gate(method, params, origin, body, codec == self._json)
            if isinstance(diverted, Reply):
                return encode(request, diverted)
            if diverted is not None:
                return self._relay(request, diverted, encode, lambda: self._dispatch(request, method, params,
                                                                                      origin, encode))
        return self._dispatch(request, method, params, origin, encode)

    def _dispatch(self, request, method, params, origin, encode):
        serving = getattr(self.gate, "serving", None)
        done = serving(method) if serving is not None else None
        try:
            out = self.dispatcher.call(method, params, origin)
        except BaseException:
            if done is not None:
                done()
            raise
        if isinstance(out, Reply):
            if done is not None:
                done()
            return encode(request, out)
        finished = []
        work = Deferred.fromCoroutine(out)
        if done is not None:
            work.addBoth(lambda r: (done(), r)[1])

        def gone(reason):
            finished.append(reason)
            if not work.called:  # the client hung up mid-call (a long poll): stop waiting
                work.cancel()

        request.notifyFinish().addBoth(gone)

        def reply(r):
            if not finished:
                request.write(encode(request, r))
                request.finish()

        def crashed(failure):
            if finished and failure.check(CancelledError):
                return None
            log.error("reply failed: %s", failure.getTraceback())
            if not finished:
                request.setResponseCode(500)
                request.finish()

        work.addCallback(reply).addErrback(crashed)
        return server.NOT_DONE_YET

    def _relay(self, request, answer: Deferred, encode, serve=None):
        """Write another host's answer (content type, body) as ours; an ApiError or a Reply as
        a reply; None (a call held while the pool's master changed): `serve()` it here."""
        finished = []
        request.notifyFinish().addBoth(finished.append)

        def relayed(result):
            if finished:
                return
            if isinstance(result, Reply):
                request.write(encode(request, result))
                request.finish()
                return
            if result is None and serve is not None:
                out = serve()
                if out is not server.NOT_DONE_YET:
                    request.write(out)
                    request.finish()
                return
            ctype, data = result
            request.setHeader(b"Content-Type", ctype.encode("latin-1") or b"text/xml")
            request.write(data)
            request.finish()

        def failed(failure):
            if finished:
                return
            if failure.check(ApiError):
                request.write(encode(request, Reply(error=failure.value.description)))
            else:
                log.error("relaying a call failed: %s", failure.getTraceback())
                request.setResponseCode(500)
            request.finish()

        answer.addCallbacks(relayed, failed)
        return server.NOT_DONE_YET

    def _xml(self, body):
        method, params = xmlrpc.parse_call(body)

        def encode(request, r: Reply):
            request.setHeader(b"Content-Type", b"text/xml")
            request.setHeader(*CORS)
            if r.error is not None:
                return self.xml.failure(r.error)
            if r.bare:
                return self.xml.raw(r.value, r.type)
            return self.xml.success(r.value, r.type)

        return encode, method, params

    def _json(self, body):
        call = jsonrpc.parse_call(body)

        def encode(request, r: Reply):
            request.setHeader(b"Content-Type", b"application/json")
            request.setHeader(*CORS)
            if r.error is not None:
                return jsonrpc.failure(r.error, call)
            return jsonrpc.success(r.value, r.type, call)

        return encode, call.method, call.params


def _html(text: str) -> bytes:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")).encode("utf-8", "replace")


class NotFound(resource.Resource):
    """Any method on a path nobody routed."""

    isLeaf = True

    def render(self, request):
        request.setResponseCode(404)
        request.setHeader(b"Content-Type", b"text/plain")
        return b"not found\n"


class ApiSite(server.Site):
    """One listener's site. Listeners share a `router` (built from the dispatcher when
    not given): a handler registered once is served on every listener."""

    requestFactory = RoutedRequest

    def __init__(self, dispatcher, encoder, transport: str, max_body: int = MAX_BODY, router: Router = None,
                 gate=None):
        self.api = ApiResource(dispatcher, encoder, transport, gate)
        # No form decoding of POST bodies: nothing reads request.args from a body, and
        # Twisted's Content-Type parsing (email.headerregistry) cost a quarter of a call.
        super().__init__(self.api, parsePOSTFormSubmission=False)
        self.router = router if router is not None else xapi_router(dispatcher)
        self.transport = transport  # "tcp" | "unix": callers on a Unix socket are root
        self.max_body = max_body  # of XML-RPC/JSON-RPC bodies (and of those sent to unknown paths)
        self.not_found = NotFound()
        self.displayTracebacks = False

    def route(self, path: str, handler, **rules):
        """Serve `path` with `handler` on every listener of this router (Router.route)."""
        return self.router.route(path, handler, **rules)

    def getResourceFor(self, request):
        request.site = self
        request.sitepath = []
        route = request.route  # found when the headers came in (RoutedRequest.gotLength)
        if route is None:
            return self.not_found
        return self.api if route.handler is None else route.resource

    def log(self, request):  # access logging costs a third of a fast call; keep it off
        pass


class SessionAuth:
    """xapi's authentication of HTTP handlers, first match wins: a Unix socket caller is
    root; `session_id` (query argument or cookie) names a live session; HTTP Basic
    credentials log in for this request only. Temporary sessions (Unix socket without a
    session, Basic) are logged out when the request ends."""

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher

    def __call__(self, call: Call):
        request = call.request
        ref = call.query.get("session_id") or \
            request.received_cookies.get(b"session_id", b"").decode("utf-8", "replace")
        if ref:
            try:
                rec = self.dispatcher.sessions.check(ref)
            except ApiError:
                if not call.origin.local_root:
                    raise Unauthorized(f"invalid session {ref[:40]!r}") from None
            else:
                return Caller(ref, rec.get("auth_user_name") or "")
        if call.origin.local_root:
            return self._login(call, "root", "")
        user = request.getUser()
        if user:
            return self._login(call, user.decode("utf-8", "replace"),
                               request.getPassword().decode("utf-8", "replace"))
        raise Unauthorized("no session_id and no credentials")

    def _login(self, call: Call, user: str, password: str) -> Deferred:
        out = self.dispatcher.call("session.login_with_password", [user, password, "1.0", ""], call.origin)
        d = succeed(out) if isinstance(out, Reply) else Deferred.fromCoroutine(out)

        def logged_in(reply: Reply) -> Caller:
            if reply.error is not None:
                raise Unauthorized(f"login of {user!r} refused: {reply.error[0]}")
            ref = reply.value
            call.at_end(lambda: self.dispatcher.sessions.destroy(ref, "its HTTP request ended"))
            return Caller(ref, user, temporary=True)
        return d.addCallback(logged_in)


def xapi_router(dispatcher) -> Router:
    """A router whose handlers authenticate callers as xapi does (SessionAuth)."""
    return Router(SessionAuth(dispatcher))
