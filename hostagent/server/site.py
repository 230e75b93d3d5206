"""The HTTP site: XML-RPC and JSON-RPC endpoints on every listener.

XML-RPC on POST /, /RPC2, /xmlrpc and /json; JSON-RPC 1.0/2.0 on POST
/jsonrpc. API outcomes are always HTTP 200 with a XenAPI envelope; a body that
cannot be parsed gets HTTP 500 and the connection stays usable. Bodies over
the size limit are refused with 413 before they are read.
"""

import logging

from twisted.internet.defer import CancelledError, Deferred
from twisted.web import resource, server

from ..rpc import jsonrpc, xmlrpc
from ..rpc.dispatch import Origin, Reply
from ..rpc.wire_errors import Malformed

log = logging.getLogger("hostagent.http")

MAX_BODY = 300 * 1024
XML_PATHS = (b"", b"RPC2", b"xmlrpc", b"json")
CORS = (b"Access-Control-Allow-Origin", b"*")


class LimitedRequest(server.Request):
    """Refuses bodies over the site's limit before buffering them."""

    def gotLength(self, length):
        limit = getattr(self.channel.site, "max_body", MAX_BODY)
        if length is not None and length > limit:
            self._too_large()
            return
        self._received = 0
        super().gotLength(length)

    def handleContentChunk(self, data):
        self._received = getattr(self, "_received", 0) + len(data)
        if self._received > getattr(self.channel.site, "max_body", MAX_BODY):
            self._too_large()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        # The channel keeps reading (and may deliver the rest of a chunked body and its
        # end) after the 413 is queued; a refused body must never be dispatched.
        if getattr(self, "_refused", False):
            return
        super().requestReceived(command, path, version)

    def _too_large(self):
        if getattr(self, "_refused", False):
            return
        self._refused = True
        self.channel.transport.write(
            b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        self.channel.transport.loseConnection()


class ApiResource(resource.Resource):
    isLeaf = True

    def __init__(self, dispatcher, encoder, transport: str):
        super().__init__()
        self.dispatcher = dispatcher
        self.xml = encoder
        self.transport = transport

    def render_OPTIONS(self, request):
        request.setHeader(*CORS)
        request.setHeader(b"Access-Control-Allow-Methods", b"POST, OPTIONS")
        request.setHeader(b"Access-Control-Allow-Headers", b"Content-Type")
        return b""

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/plain")
        return b"hostagent: XenAPI over XML-RPC (POST /) and JSON-RPC (POST /jsonrpc)\n"

    def render_POST(self, request):
        path = request.path.strip(b"/")
        body = request.content.read()
        origin = self._origin(request)
        if path == b"jsonrpc":
            return self._serve(request, body, origin, self._json)
        if path in XML_PATHS:
            return self._serve(request, body, origin, self._xml)
        request.setResponseCode(404)
        request.setHeader(b"Content-Type", b"text/plain")
        return b"not found\n"

    def _origin(self, request) -> Origin:
        originator = request.getHeader(b"originator") or ""
        if self.transport == "unix":
            return Origin("unix", "unix socket", originator)
        peer = request.getClientAddress()
        return Origin("tcp", f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}", originator)

    def _serve(self, request, body, origin, codec):
        try:
            encode, method, params = codec(body)
        except Malformed as e:
            request.setResponseCode(500)
            request.setHeader(b"Content-Type", b"text/html")
            log.info("malformed request from %s: %s", origin.peer, e)
            return b"<html><body>Malformed request: " + _html(str(e)) + b"</body></html>"
        out = self.dispatcher.call(method, params, origin)
        if isinstance(out, Reply):
            return encode(request, out)
        finished = []
        work = Deferred.fromCoroutine(out)

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


class ApiSite(server.Site):
    requestFactory = LimitedRequest

    def __init__(self, dispatcher, encoder, transport: str, max_body: int = MAX_BODY):
        # No form decoding of POST bodies: nothing reads request.args from a body, and
        # Twisted's Content-Type parsing (email.headerregistry) cost a quarter of a call.
        super().__init__(ApiResource(dispatcher, encoder, transport), parsePOSTFormSubmission=False)
        self.max_body = max_body
        self.displayTracebacks = False

    def log(self, request):  # access logging costs a third of a fast call; keep it off
        pass
