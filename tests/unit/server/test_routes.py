"""The routed HTTP site, driven byte by byte through Twisted's in-memory transport.

RPC paths keep their 300 KiB limit; registered handlers get their own body rule and
xapi's authentication; streaming handlers get the body as it arrives, never held by
Twisted; unknown paths are 404 for every method.
"""

import base64
import re

import pytest
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web import server

from hostagent.datamodel.errors import ApiError
from hostagent.rpc.dispatch import Reply
from hostagent.server.routes import MAX_BODY, Router, public
from hostagent.server.site import ApiSite

MiB = 1 << 20
GOOD = "OpaqueRef:good-session"
TOO_LARGE = b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


# ---------------------------------------------------------------------------- fakes

class Sessions:
    def __init__(self):
        self.live = {GOOD: {"auth_user_name": "alice"}}
        self.destroyed = []

    def check(self, ref):
        if ref not in self.live:
            raise ApiError("SESSION_INVALID", ref)
        return self.live[ref]

    def destroy(self, ref, reason):
        self.live.pop(ref, None)
        self.destroyed.append(ref)


class Dispatcher:
    """Logins succeed for root/secret (and without a password on the Unix socket), after
    `gate` fires when a test sets one; other calls answer a fixed value."""

    def __init__(self):
        self.sessions = Sessions()
        self.calls = []
        self.gate = None
        self.made = 0

    def call(self, method, params, origin):
        self.calls.append((method, params, origin))
        if method != "session.login_with_password":
            return Reply("called " + method)

        async def login():
            if self.gate is not None:
                await self.gate
            user, password = params[0], params[1]
            if origin.local_root or (user, password) == ("root", "secret"):
                self.made += 1
                ref = f"OpaqueRef:temporary-{self.made}"
                self.sessions.live[ref] = {"auth_user_name": user}
                return Reply(ref)
            return Reply(error=["SESSION_AUTHENTICATION_FAILED", user, "wrong"])
        return login()


class Encoder:
    def success(self, value, t):
        return b"ok:" + str(value).encode()

    def failure(self, description):
        return b"failed:" + str(description).encode()


class Connection:
    """One client connection to a site over an in-memory transport."""

    def __init__(self, site, unix=False):
        addr = UNIXAddress("/tmp/x.sock") if unix else IPv4Address("TCP", "127.0.0.1", 40000)
        self.transport = StringTransport(peerAddress=addr,
                                         hostAddress=addr if unix else IPv4Address("TCP", "127.0.0.1", 80))
        self.protocol = site.buildProtocol(addr)
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes):
        self.protocol.dataReceived(data)

    def output(self) -> bytes:
        return self.transport.value()

    @property
    def closing(self) -> bool:
        return self.transport.disconnecting

    @property
    def paused(self) -> bool:
        return self.transport.producerState == "paused"


def make_site(transport="tcp", router=None, dispatcher=None):
    dispatcher = dispatcher or Dispatcher()
    site = ApiSite(dispatcher, Encoder(), transport, router=router)
    site.reactor = Clock()  # the channel's idle timeout
    site.dispatcher = dispatcher
    return site


def request(method, target, body=b"", headers=(), chunked=False, length=None):
    head = [b"%s %s HTTP/1.1" % (method, target), b"Host: test"]
    head += [b"%s: %s" % h for h in headers]
    if chunked:
        head.append(b"Transfer-Encoding: chunked")
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces(body, 64 * 1024)) + b"0\r\n\r\n"
    elif body or length is not None:
        head.append(b"Content-Length: %d" % (len(body) if length is None else length))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def pieces(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def status(output: bytes) -> int:
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", output)
    assert m, output[:200]
    return int(m.group(1))


def xml_call(method="system.listMethods") -> bytes:
    return b"<?xml version='1.0'?><methodCall><methodName>%s</methodName><params></params></methodCall>" % \
        method.encode()


def basic(user, password) -> tuple:
    return (b"Authorization", b"Basic " + base64.b64encode(f"{user}:{password}".encode()))


# ---------------------------------------------------------------------------- handlers

class Echo:
    """Buffered: answers the method, the caller and how many body bytes it got."""

    def __init__(self, methods=("GET", "POST", "PUT")):
        self.methods = methods
        self.calls = []

    def render(self, call):
        self.calls.append(call)
        body = call.request.content.read()
        return b"%s %s %d" % (call.request.method, call.caller.user.encode(), len(body))


class Counter:
    """Streaming: counts what arrives; optionally answers early, pauses or stops early."""

    methods = ("PUT", "POST")

    def __init__(self, answer_early=False, pause_after=None, finish_after=None, fail_after=None):
        self.answer_early, self.pause_after = answer_early, pause_after
        self.finish_after, self.fail_after = finish_after, fail_after
        self.receivers = []

    def stream(self, call):
        r = Receiver(self, call)
        self.receivers.append(r)
        if self.answer_early:
            call.request.write(b"started\n")
        return r


class Receiver:
    def __init__(self, handler, call):
        self.handler, self.call = handler, call
        self.total = self.count = self.largest = 0
        self.ended = False
        self.finished = []
        call.request.notifyFinish().addBoth(self.finished.append)

    def dataReceived(self, data):
        self.total += len(data)
        self.count += 1
        self.largest = max(self.largest, len(data))
        h = self.handler
        if h.fail_after is not None and self.total >= h.fail_after:
            raise RuntimeError("receiver bug")
        if h.pause_after is not None and self.total >= h.pause_after:
            self.call.pause_body()
        if h.finish_after is not None and self.total >= h.finish_after and not self.call.request.finished:
            self.call.request.setResponseCode(507)
            self.call.request.write(b"enough\n")
            self.call.request.finish()

    def bodyEnded(self):
        self.ended = True
        self.call.request.write(b"total %d\n" % self.total)
        self.call.request.finish()


# ---------------------------------------------------------------------------- 404 and RPC paths

@pytest.mark.parametrize("method", [b"GET", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"HEAD"])
def test_unknown_paths_get_404_for_any_method(method):
    c = Connection(make_site())
    c.send(request(method, b"/nowhere", b"x" if method in (b"POST", b"PUT") else b""))
    assert status(c.output()) == 404
    assert not c.closing


def test_404_keeps_the_connection_usable():
    site = make_site()
    c = Connection(site)
    c.send(request(b"GET", b"/nowhere") + request(b"POST", b"/RPC2", xml_call()))
    out = c.output()
    assert out.count(b"HTTP/1.1 404 ") == 1 and out.count(b"HTTP/1.1 200 ") == 1
    assert b"ok:" in out


@pytest.mark.parametrize("path", [b"/", b"/RPC2", b"/xmlrpc", b"/json", b"/jsonrpc", b"/RPC2/", b"/?x=1"])
def test_rpc_paths_are_dispatched(path):
    site = make_site()
    c = Connection(site)
    body = b'{"method": "system.listMethods", "params": [], "id": 1}' if b"jsonrpc" in path else xml_call()
    c.send(request(b"POST", path, body))
    assert status(c.output()) == 200
    assert site.dispatcher.calls[-1][0] == "system.listMethods"


@pytest.mark.parametrize("path", [b"/", b"/jsonrpc"])
def test_rpc_paths_keep_the_300_kib_limit(path):
    site = make_site()
    c = Connection(site)
    c.send(request(b"POST", path, length=MAX_BODY + 1))
    assert c.output() == TOO_LARGE and c.closing
    c2 = Connection(site)
    c2.send(request(b"POST", path, b" " * (MAX_BODY + 1), chunked=True))
    assert c2.output() == TOO_LARGE
    assert site.dispatcher.calls == []


def test_a_refused_body_gets_no_100_continue():
    c = Connection(make_site())
    c.send(request(b"POST", b"/", length=MAX_BODY + 1, headers=[(b"Expect", b"100-continue")]))
    assert c.output() == TOO_LARGE


def test_the_limit_of_unknown_paths_is_the_rpc_one():
    c = Connection(make_site())
    c.send(request(b"PUT", b"/import", length=5 * MiB))
    assert c.output() == TOO_LARGE


# ---------------------------------------------------------------------------- buffered handlers

def test_a_buffered_handler_has_its_own_limit():
    site = make_site()
    site.route("/small", Echo(), max_body=10, auth=public)
    site.route("/large", Echo(), max_body=MiB, auth=public)
    c = Connection(site)
    c.send(request(b"POST", b"/small", b"x" * 10))
    assert status(c.output()) == 200 and c.output().endswith(b"POST  10")
    c = Connection(site)
    c.send(request(b"POST", b"/small", b"x" * 11))
    assert c.output() == TOO_LARGE
    c = Connection(site)
    c.send(request(b"PUT", b"/large", b"y" * (500 * 1024), chunked=True))
    assert status(c.output()) == 200 and c.output().endswith(b"PUT  %d" % (500 * 1024))


def test_a_method_the_handler_does_not_list_gets_405():
    site = make_site()
    site.route("/only-get", Echo(methods=("GET",)), auth=public)
    c = Connection(site)
    c.send(request(b"DELETE", b"/only-get"))
    out = c.output()
    assert status(out) == 405 and b"Allow: GET" in out
    c.send(request(b"HEAD", b"/only-get"))  # HEAD goes where GET does
    assert status(c.output()[len(out):]) == 200


def test_connect_is_routed_to_a_handler_that_lists_it():
    site = make_site()
    console = Echo(methods=("CONNECT",))
    site.route("/console", console)
    c = Connection(site)
    c.send(b"CONNECT /console?uuid=abc&session_id=%s HTTP/1.0\r\n\r\n" % GOOD.encode())
    assert status(c.output()) == 200 and c.output().endswith(b"CONNECT alice 0")
    assert console.calls[0].query == {"uuid": "abc", "session_id": GOOD}


# ---------------------------------------------------------------------------- authentication

def test_no_session_gets_401_with_a_basic_challenge():
    site = make_site()
    echo = Echo()
    site.route("/export", echo)
    c = Connection(site)
    c.send(request(b"GET", b"/export?uuid=x"))
    out = c.output()
    assert status(out) == 401 and b'WWW-Authenticate: Basic realm="xapi"' in out
    assert echo.calls == [] and not c.closing


@pytest.mark.parametrize("how", ["query", "cookie"])
def test_a_session_id_names_the_caller(how):
    site = make_site()
    echo = Echo()
    site.route("/export", echo)
    c = Connection(site)
    if how == "query":
        c.send(request(b"GET", b"/export?session_id=" + GOOD.encode()))
    else:
        c.send(request(b"GET", b"/export", headers=[(b"Cookie", b"session_id=" + GOOD.encode())]))
    assert status(c.output()) == 200
    caller = echo.calls[0].caller
    assert (caller.session, caller.user, caller.temporary) == (GOOD, "alice", False)
    assert site.dispatcher.calls == []  # no login


def test_an_invalid_session_gets_401():
    site = make_site()
    site.route("/export", Echo())
    c = Connection(site)
    c.send(request(b"GET", b"/export?session_id=OpaqueRef:gone"))
    assert status(c.output()) == 401


def test_basic_credentials_log_in_for_the_request_only():
    site = make_site()
    echo = Echo()
    site.route("/export", echo)
    c = Connection(site)
    c.send(request(b"GET", b"/export", headers=[basic("root", "secret")]))
    assert status(c.output()) == 200
    caller = echo.calls[0].caller
    assert caller.temporary and caller.user == "root"
    assert site.dispatcher.sessions.destroyed == [caller.session]  # logged out when the response ended
    c = Connection(site)
    c.send(request(b"GET", b"/export", headers=[basic("root", "wrong")]))
    assert status(c.output()) == 401


def test_the_unix_socket_caller_is_root_without_credentials():
    site = make_site(transport="unix")
    echo = Echo()
    site.route("/export", echo)
    c = Connection(site, unix=True)
    c.send(request(b"GET", b"/export"))
    assert status(c.output()) == 200
    caller = echo.calls[0].caller
    assert caller.user == "root" and caller.temporary
    (method, params, origin), = site.dispatcher.calls
    assert method == "session.login_with_password" and origin.local_root
    assert site.dispatcher.sessions.destroyed == [caller.session]


def test_handlers_registered_once_serve_every_listener():
    router = Router(public)
    router.route("/shared", Echo())
    for site in (make_site(router=router), make_site(transport="unix", router=router)):
        c = Connection(site, unix=site.transport == "unix")
        c.send(request(b"GET", b"/shared"))
        assert status(c.output()) == 200


# ---------------------------------------------------------------------------- streaming handlers

@pytest.mark.parametrize("chunked", [False, True])
def test_a_streaming_handler_gets_5_mib_as_it_arrives(chunked):
    """A body 17 times the RPC limit is counted piece by piece, and Twisted keeps none of it."""
    site = make_site()
    counter = Counter()
    site.route("/import", counter, streaming=True, auth=public)
    body = bytes(range(256)) * (5 * MiB // 256)
    wire = request(b"PUT", b"/import", body, chunked=chunked)
    c = Connection(site)
    head_len = wire.index(b"\r\n\r\n") + 4
    c.send(wire[:head_len])
    r, = counter.receivers  # started on the headers, before any of the body
    assert r.total == 0
    half = head_len + len(wire[head_len:]) // 2
    for piece in pieces(wire[head_len:half], 64 * 1024):
        c.send(piece)
    assert 2 * MiB < r.total < 3 * MiB and not r.ended  # delivered before the body is complete
    assert r.call.request.content is None  # nothing buffered in memory or in a file
    for piece in pieces(wire[half:], 64 * 1024):
        c.send(piece)
    assert r.ended and r.total == len(body)
    assert r.largest <= 64 * 1024
    out = c.output()
    assert status(out) == 200 and b"total %d" % len(body) in out
    assert not c.closing


def test_a_streaming_handler_may_answer_before_the_body():
    site = make_site()
    site.route("/import", Counter(answer_early=True), streaming=True, auth=public)
    c = Connection(site)
    c.send(request(b"PUT", b"/import", length=MiB))
    assert status(c.output()) == 200 and b"started" in c.output()
    c.send(b"z" * MiB)
    assert b"total %d" % MiB in c.output()


def test_pause_holds_the_body_and_the_transport():
    site = make_site()
    counter = Counter(pause_after=1)
    site.route("/import", counter, streaming=True, auth=public)
    c = Connection(site)
    c.send(request(b"PUT", b"/import", length=3000))
    c.send(b"a" * 1000)
    r, = counter.receivers
    assert r.total == 1000 and c.paused
    c.send(b"b" * 1000)  # what was already read when the pause came
    c.send(b"c" * 1000)
    assert r.total == 1000 and not r.ended
    counter.pause_after = None
    r.call.resume_body()
    assert r.total == 3000 and r.ended
    assert status(c.output()) == 200


def test_pipelined_requests_after_a_streamed_one_are_served():
    site = make_site()
    site.route("/import", Counter(), streaming=True, auth=public)
    c = Connection(site)
    c.send(request(b"PUT", b"/import", b"x" * 5000) + request(b"POST", b"/", xml_call()))
    out = c.output()
    assert b"total 5000" in out and b"ok:" in out and not c.closing


def test_finishing_before_the_body_ends_closes_the_connection():
    site = make_site()
    counter = Counter(finish_after=1)
    site.route("/import", counter, streaming=True, auth=public)
    c = Connection(site)
    c.send(request(b"PUT", b"/import", b"x" * (2 * MiB), chunked=True))  # all in one read
    r, = counter.receivers
    out = c.output()
    assert status(out) == 507 and out.endswith(b"enough\n\r\n0\r\n\r\n")
    assert c.closing and r.total < 2 * MiB and not r.ended
    assert r.finished == [None]  # notifyFinish: the response is complete


def test_streaming_bodies_over_their_own_limit_get_413():
    site = make_site()
    counter = Counter()
    site.route("/import", counter, streaming=True, auth=public, max_body=1000)
    c = Connection(site)
    c.send(request(b"PUT", b"/import", length=1001))
    assert c.output() == TOO_LARGE
    c = Connection(site)
    c.send(request(b"PUT", b"/import", b"x" * 1500, chunked=True))
    r = counter.receivers[-1]
    assert c.output() == TOO_LARGE and c.closing
    assert r.total <= 1000 and not r.ended
    assert len(r.finished) == 1 and r.finished[0] is not None  # the handler sees its client gone


def test_a_streaming_handler_is_not_started_without_a_session():
    site = make_site()
    counter = Counter()
    site.route("/import", counter, streaming=True)
    c = Connection(site)
    c.send(request(b"PUT", b"/import?session_id=OpaqueRef:gone", length=5 * MiB,
                   headers=[(b"Expect", b"100-continue")]))
    out = c.output()
    assert status(out) == 401 and b"WWW-Authenticate: Basic" in out and b"100 Continue" not in out
    assert c.closing and counter.receivers == []


def test_the_body_waits_for_a_slow_login():
    dispatcher = Dispatcher()
    dispatcher.gate = Deferred()
    site = make_site(dispatcher=dispatcher)
    counter = Counter()
    site.route("/import", counter, streaming=True)
    c = Connection(site)
    c.send(request(b"PUT", b"/import", length=2000, headers=[basic("root", "secret")]))
    c.send(b"x" * 1500)
    assert counter.receivers == [] and c.paused  # held, transport paused
    dispatcher.gate.callback(None)
    r, = counter.receivers
    assert r.total == 1500 and not c.paused
    c.send(b"y" * 500)
    assert r.ended and status(c.output()) == 200
    assert dispatcher.sessions.destroyed == [r.call.caller.session]


def test_a_failed_slow_login_is_401_and_starts_nothing():
    dispatcher = Dispatcher()
    dispatcher.gate = Deferred()
    site = make_site(dispatcher=dispatcher)
    counter = Counter()
    site.route("/import", counter, streaming=True)
    c = Connection(site)
    c.send(request(b"PUT", b"/import", b"x" * 2000, headers=[basic("root", "wrong")]))
    dispatcher.gate.callback(None)
    assert status(c.output()) == 401 and c.closing and counter.receivers == []


def test_a_receiver_that_raises_ends_its_request_with_500():
    site = make_site()
    site.route("/import", Counter(fail_after=1), streaming=True, auth=public)
    c = Connection(site)
    c.send(request(b"PUT", b"/import", b"x" * 3000))
    assert status(c.output()) == 500 and c.closing


def test_a_buffered_handler_that_raises_gets_500():
    class Broken:
        methods = ("GET",)

        def render(self, call):
            raise ValueError("bug")
    site = make_site()
    site.route("/broken", Broken(), auth=public)
    c = Connection(site)
    c.send(request(b"GET", b"/broken"))
    assert status(c.output()) == 500


def test_a_buffered_handler_may_answer_later():
    later = []

    class Later:
        methods = ("GET",)

        def render(self, call):
            later.append(call.request)
            return server.NOT_DONE_YET
    site = make_site()
    site.route("/later", Later(), auth=public)
    c = Connection(site)
    c.send(request(b"GET", b"/later"))
    assert c.output() == b""
    later[0].write(b"done")
    later[0].finish()
    assert status(c.output()) == 200 and b"done" in c.output()


# ---------------------------------------------------------------------------- registration

def test_registration_rules():
    router = Router(public)
    router.route("/a", Echo())
    with pytest.raises(ValueError):
        router.route("/a/", Echo())  # the same path
    with pytest.raises(ValueError):
        router.route("/RPC2", Echo())  # the RPC paths are taken
    with pytest.raises(TypeError):
        router.route("/b", Echo(), streaming=True)  # no stream()
    with pytest.raises(ValueError):
        router.route("/c", Echo(methods=()))
    with pytest.raises(ValueError):
        Router().route("/d", Echo())  # no auth at all
    assert router.match(b"/a?x=1").handler is not None and router.match(b"/zzz") is None
