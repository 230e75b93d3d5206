"""Routes of the HTTP site: which paths exist, how their bodies are taken, who may call them.

The XML-RPC/JSON-RPC paths are built in and keep the site's 300 KiB body limit. Every
other path is a handler registered once (`router.route("/import", handler,
streaming=True)`) with its own methods (CONNECT included), body rule and `auth`; unknown
paths get 404. A buffered handler's `render(call)` runs once the whole body (at most
`max_body`) is in `call.request.content`, like a Twisted resource. A streaming handler's
`stream(call)` runs as soon as the headers are in and the caller is known, and returns a
receiver that gets the body piece by piece as it arrives (`dataReceived(data)`, then
`bodyEnded()`), never held in memory or a file; it may answer before reading (xapi's
/import does), apply backpressure with `call.pause_body()`/`resume_body()`, and finishing
before the body has ended closes the connection. Refusals before a streaming handler starts
(401, 405, 413) are answered at once and close the connection without reading the body.
"""

import collections
import logging
from dataclasses import dataclass
from typing import Callable, Dict, Optional
from urllib.parse import parse_qsl

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.web import http, resource, server

from ..rpc.dispatch import Origin

log = logging.getLogger("hostagent.http")

MAX_BODY = 300 * 1024
PRE_AUTH_MAX_BODY = 64 * 1024  # bytes, for a route whose auth can refuse on the headers alone
RPC_PATHS = (b"", b"RPC2", b"xmlrpc", b"json", b"jsonrpc")
UNLIMITED = float("inf")
CHALLENGE = (b"WWW-Authenticate", b'Basic realm="xapi"')


class Unauthorized(Exception):
    """An `auth` callable refuses the caller; the message says why (for the log only)."""


@dataclass(frozen=True)
class Caller:
    """Who a handler works for: a live session, and whether it was made for this request."""

    session: str
    user: str
    temporary: bool = False


class Call:
    """One request to a handler: the Twisted request, its route, origin, query and caller."""

    def __init__(self, request, route: "Route", origin: Origin, query: Dict[str, str]):
        self.request, self.route, self.origin, self.query = request, route, origin, query
        self.caller: Optional[Caller] = None
        self.over = False  # the response is finished or the client has gone
        self._at_end = []
        request.notifyFinish().addBoth(self._ended)

    def at_end(self, fn: Callable[[], None]) -> None:
        """Run `fn()` once the response is finished or the connection lost (now if it already is)."""
        if self.over:
            fn()
        else:
            self._at_end.append(fn)

    def _ended(self, _result):
        self.over, todo, self._at_end = True, self._at_end, []
        for fn in todo:
            fn()

    def pause_body(self) -> None:
        """Streaming handlers: deliver no more of the body until `resume_body()`."""
        self.request.pause_body()

    def resume_body(self) -> None:
        self.request.resume_body()


class Route:
    """A path and its rules; `handler` is None for the site's own XML-RPC/JSON-RPC paths."""

    __slots__ = ("path", "handler", "methods", "max_body", "streaming", "auth", "resource")

    def __init__(self, path: bytes, handler=None, methods=frozenset(), max_body: Optional[int] = None,
                 streaming: bool = False, auth: Optional[Callable] = None):
        self.path, self.handler, self.methods = path, handler, methods
        self.max_body, self.streaming, self.auth = max_body, streaming, auth
        self.resource = None if handler is None or streaming else HandlerResource(self)


def public(call: Call) -> Caller:
    """`auth` for routes that check their callers themselves (the pool's internal endpoint)."""
    return Caller("", "")


class Router:
    """The routes every listener of the agent serves; `default_auth` is xapi's session check."""

    def __init__(self, default_auth: Optional[Callable] = None):
        self.default_auth = default_auth
        self._routes = {p: Route(p) for p in RPC_PATHS}

    def route(self, path: str, handler, *, max_body: Optional[int] = None, streaming: bool = False,
              auth: Optional[Callable] = None) -> Route:
        """Serve `path` with `handler` (its `methods` say which HTTP methods). `max_body`:
        None is 300 KiB for buffered handlers and no limit for streaming ones. `auth(call)`
        returns a Caller (or a Deferred of one) or raises Unauthorized; default xapi's."""
        key = path.encode("ascii").strip(b"/")
        if key in self._routes:
            raise ValueError(f"{path} is already routed")
        methods = frozenset(m.upper() if isinstance(m, bytes) else m.upper().encode("ascii")
                            for m in handler.methods)
        if not methods:
            raise ValueError(f"the handler of {path} lists no methods")
        if not callable(getattr(handler, "stream" if streaming else "render", None)):
            raise TypeError(f"the handler of {path} lacks {'stream' if streaming else 'render'}(call)")
        auth = auth or self.default_auth
        if auth is None:
            raise ValueError(f"{path} needs an auth (this router has no default)")
        max_body = max_body if max_body is not None else UNLIMITED if streaming else MAX_BODY
        r = self._routes[key] = Route(key, handler, methods, max_body, streaming, auth)
        return r

    def match(self, target: bytes) -> Optional[Route]:
        """The route of a request target (path and query, as on the request line)."""
        return self._routes.get(target.split(b"?", 1)[0].strip(b"/"))


class Refusal(Exception):
    """An answer instead of the handler: an HTTP status and its headers."""

    def __init__(self, code: int, headers=()):
        super().__init__(code)
        self.code, self.headers = code, tuple(headers)


def admit(request, route: Route) -> Deferred:
    """The Call once its method is listed and its caller authenticated; fails with Refusal."""
    method = request.method
    if method not in route.methods and not (method == b"HEAD" and b"GET" in route.methods):
        return fail(Refusal(405, [(b"Allow", b", ".join(sorted(route.methods)))]))
    path, _, query = request.uri.partition(b"?")
    args = dict(parse_qsl(query.decode("utf-8", "replace"), keep_blank_values=True)) if query else {}
    call = Call(request, route, origin_of(request, request.site.transport), args)

    def known(caller):
        call.caller = caller
        return call

    def refused(failure):
        failure.trap(Unauthorized)
        log.info("%s %s from %s: 401, %s", method.decode("ascii", "replace"), path.decode("utf-8", "replace"),
                 call.origin.peer or call.origin.transport, failure.value)
        raise Refusal(401, [CHALLENGE])
    return maybeDeferred(route.auth, call).addCallbacks(known, refused)


def origin_of(request, transport: str) -> Origin:
    originator = request.getHeader(b"originator") or ""
    if transport == "unix":
        return Origin("unix", "unix socket", originator)
    peer = request.getClientAddress()
    return Origin("tcp", f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}", originator)


def _text(code: int) -> bytes:
    return http.RESPONSES.get(code, b"Error").lower() + b"\n"


class HandlerResource(resource.Resource):
    """A buffered handler as a Twisted resource: the body is in, admit, then render."""

    isLeaf = True

    def __init__(self, route: Route):
        super().__init__()
        self.route = route

    def render(self, request):
        admit(request, self.route).addCallbacks(self._render, self._refused, errbackArgs=(request,))
        return server.NOT_DONE_YET

    def _render(self, call: Call):
        if call.over:
            return
        request = call.request
        try:
            out = self.route.handler.render(call)
        except Exception:  # noqa: BLE001 - a handler's bug is a 500, not a hung request
            log.exception("handler of /%s failed", self.route.path.decode())
            if not request.startedWriting:
                request.setResponseCode(500)
            out = b""
        if out is not server.NOT_DONE_YET and not call.over:
            out = out or b""
            if not request.startedWriting:
                request.setHeader(b"Content-Length", b"%d" % len(out))
            request.write(out)
            request.finish()

    def _refused(self, failure, request):
        if request.finished or request._closed:
            return
        code, headers = 500, ()
        if failure.check(Refusal):
            code, headers = failure.value.code, failure.value.headers
        else:
            log.error("admitting a request failed: %s", failure.getTraceback())
        request.setResponseCode(code)
        for name, value in headers:
            request.setHeader(name, value)
        request.setHeader(b"Content-Type", b"text/plain")
        request.write(_text(code))
        request.finish()


class _Stream:
    """The body of a streaming request on its way to the handler's receiver."""

    __slots__ = ("receiver", "held", "paused", "ended", "told_end")

    def __init__(self):
        self.receiver = None  # set once the caller is admitted and the handler started
        self.held = collections.deque()  # pieces that came while there was no receiver or a pause
        self.paused = self.ended = self.told_end = False  # ended: the channel has the whole body


def _request_line(channel):
    """(method, target, version) of the request whose headers just came in, which Twisted
    gives the request only with its body: HTTP/1.x channels keep them private till then."""
    try:
        return channel._command, channel._path, channel._version
    except AttributeError:
        return channel.command, channel.path, b"HTTP/2"


class RoutedRequest(server.Request):
    """A request routed as soon as its headers are in: its route decides the body limit
    and whether the body is buffered (RPC, buffered handlers, unknown paths) or handed
    to a streaming handler as it arrives."""

    route = None  # the Route of the request's path; None: 404
    _stream = None  # a _Stream for streaming routes
    _closed = False  # answered outside Twisted or gone: ignore the rest of the body
    _received = 0
    _limit = MAX_BODY

    def gotLength(self, length):
        channel = self.channel
        site = channel.site
        route = self.route = site.router.match(_request_line(channel)[1])
        limit = self._limit = site.max_body if route is None or route.handler is None else route.max_body
        before_body = getattr(route.auth, "before_body", None) if route is not None else None
        if before_body is not None and not before_body(self):
            # a caller its headers do not yet admit sends no large body (it is refused after it)
            limit = self._limit = min(limit, PRE_AUTH_MAX_BODY)
        if length is not None and length > limit:
            self._refuse(413)
        elif route is not None and route.streaming:
            self._start_stream(route)
        else:
            super().gotLength(length)

    def handleContentChunk(self, data):
        if self._closed:
            return
        self._received += len(data)
        if self._received > self._limit:
            self._refuse(413)
            return
        s = self._stream
        if s is None:
            self.content.write(data)
        elif s.receiver is not None and not s.paused and not s.held:
            self._safely(s.receiver.dataReceived, data)
        else:
            s.held.append(data)
            self.channel.transport.pauseProducing()

    def requestReceived(self, command, path, version):
        # The channel keeps reading (and may deliver the rest of a chunked body and its
        # end) after a refusal is queued; a refused body must never be dispatched.
        if self._closed:
            return
        if self._stream is None:
            super().requestReceived(command, path, version)
            return
        self._stream.ended = True
        self._deliver()

    def finish(self):
        s = self._stream
        if s is None or s.ended or self._closed:
            self._closed = self._closed or s is not None
            super().finish()
            return
        # The body is still arriving: send the whole response now, leave the channel (still
        # parsing the body) alone and close the connection instead of reading the rest.
        self._closed = True
        self.queued = 1  # Twisted's legacy flag: finish() then skips the channel's bookkeeping
        try:
            super().finish()
        finally:
            self.queued = 0
        self.channel.transport.loseConnection()
        for d in self.notifications:  # what the skipped bookkeeping would have done
            d.callback(None)
        self.notifications = []

    def connectionLost(self, reason):
        self._closed = True
        super().connectionLost(reason)

    def pause_body(self):
        s = self._stream
        if s is not None and not s.paused:
            s.paused = True
            if not s.ended and not self._closed:
                self.channel.transport.pauseProducing()

    def resume_body(self):
        s = self._stream
        if s is not None and s.paused:
            s.paused = False
            self._deliver()

    def _start_stream(self, route: Route):
        channel = self.channel
        # What requestReceived() and process() set, set now: the handler runs before the body.
        self.method, self.uri, self.clientproto = _request_line(channel)
        self.path, _, query = self.uri.partition(b"?")
        self.args = http.parse_qs(query, 1) if query else {}
        self.site = channel.site
        self.prepath, self.postpath = [], []
        self.setHeader(b"Server", server.version)
        self.setHeader(b"Date", http.datetimeToString())
        self._stream = _Stream()
        admit(self, route).addCallbacks(self._attach, self._not_admitted)

    def _attach(self, call: Call):
        if self._closed:
            return
        try:
            receiver = call.route.handler.stream(call)
        except Exception:  # noqa: BLE001 - a handler's bug is a 500
            log.exception("handler of /%s failed", call.route.path.decode())
            self._refuse(500)
            return
        self._stream.receiver = receiver
        self._deliver()

    def _not_admitted(self, failure):
        if failure.check(Refusal):
            self._refuse(failure.value.code, failure.value.headers)
        else:
            log.error("admitting a request failed: %s", failure.getTraceback())
            self._refuse(500)

    def _deliver(self):
        """Hand held pieces (then the end) to the receiver while it is not paused."""
        s = self._stream
        while s.held and s.receiver is not None and not s.paused and not self._closed:
            if not self._safely(s.receiver.dataReceived, s.held.popleft()):
                return
        if s.held or s.receiver is None or s.paused or self._closed:
            return
        if not s.ended:
            self.channel.transport.resumeProducing()
        elif not s.told_end:
            s.told_end = True
            self._safely(s.receiver.bodyEnded)

    def _safely(self, fn, *args) -> bool:
        try:
            fn(*args)
            return True
        except Exception:  # noqa: BLE001 - a receiver's bug ends its request, not the channel
            log.exception("receiving the body of %s failed", self.uri.decode("utf-8", "replace"))
            self._refuse(500)
            return False

    def _refuse(self, code: int, headers=()):
        """Answer outside Twisted's response machinery and close, leaving the body unread.
        Once a handler has started its response, only the close is left; a streaming
        handler sees its client gone (notifyFinish fails, writes are dropped)."""
        if self._closed:
            return
        self._closed = True
        self.requestHeaders.removeHeader(b"Expect")  # no "100 Continue" after the refusal
        transport = self.channel.transport
        if not self.startedWriting:
            body = b"" if code == 413 else _text(code)
            head = [b"HTTP/1.1 %d %s\r\n" % (code, http.RESPONSES.get(code, b"Error"))]
            head += [b"%s: %s\r\n" % h for h in headers]
            if body:
                head.append(b"Content-Type: text/plain\r\n")
            head.append(b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
            transport.write(b"".join(head) + body)
        transport.loseConnection()
        if self._stream is not None:
            super().connectionLost(Failure(ConnectionDone(f"refused with HTTP {code}")))
