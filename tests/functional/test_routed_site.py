"""The routed HTTP site as clients meet it: 404 for unknown paths, IPv6 and TLS listeners
(certificate paths with colons), and a streaming handler that takes a 5 MiB body (17
times the RPC limit) piece by piece with xapi's authentication.

The streaming handler is registered by tests/functional/routed_agent.py, which is
`hostagent serve` plus one `router.route(...)`.
"""

import base64
import http.client
import os
import re
import socket
import time

import pytest
import XenAPI

from . import agent as agent_module
from .agent import AgentProcess
from .tls_cert import make_self_signed

MiB = 1 << 20
TIMEOUT = 20.0
ROUTED_AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "routed_agent.py")


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


IPV6 = has_ipv6_loopback()
needs_ipv6 = pytest.mark.skipif(not IPV6, reason="this machine has no IPv6 loopback (::1)")


def banner_urls(agent, scheme):
    return [m.group(1) for line in agent.banner
            for m in [re.match(r"hostagent listening on (%s://\S+)" % scheme, line)] if m]


def xenapi_round_trip(url, password, **kw):
    session = XenAPI.Session(url, **kw)
    session.xenapi.login_with_password("root", password, "1.0", "routed-site-test")
    try:
        pools = session.xenapi.pool.get_all()
        assert len(pools) == 1
        return session.xenapi.pool.get_name_label(pools[0])
    finally:
        session.xenapi.session.logout()


# ---------------------------------------------------------------------------- 404

def test_unknown_paths_get_404_for_every_method(agent):
    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=TIMEOUT)
    try:
        for method in ("GET", "POST", "PUT", "DELETE", "OPTIONS", "CONNECT"):
            conn.request(method, "/no/such/handler?session_id=x", body=b"x" if method in ("POST", "PUT") else None)
            r = conn.getresponse()
            r.read()
            assert r.status == 404, method
        conn.request("POST", "/", body=b"<methodCall><methodName>system.listMethods</methodName>"
                                       b"<params/></methodCall>", headers={"Content-Type": "text/xml"})
        r = conn.getresponse()  # the same connection still serves the API
        assert r.status == 200 and b"VM.get_all" in r.read()
    finally:
        conn.close()


# ---------------------------------------------------------------------------- listeners

@needs_ipv6
def test_an_ipv6_listener_answers_xenapi(tmp_path):
    a = AgentProcess(str(tmp_path / "state"), extra_args=["--listen", "[::1]:0"])
    try:
        a.start()
        urls = banner_urls(a, "http")
        v6 = [u for u in urls if re.fullmatch(r"http://\[::1\]:\d+/", u)]
        assert v6, f"no IPv6 URL in the banner: {urls}"
        xenapi_round_trip(v6[0], a.password)
    finally:
        a.cleanup()


def test_a_tls_listener_with_colons_in_its_certificate_paths(tmp_path):
    cert, key = make_self_signed(str(tmp_path / "tls:certs=here"))
    listen = ["--tls-listen", "127.0.0.1:0"] + (["--tls-listen", "[::1]:0"] if IPV6 else [])
    a = AgentProcess(str(tmp_path / "state"), extra_args=listen + ["--cert", cert, "--key", key])
    try:
        a.start()
        urls = banner_urls(a, "https")
        assert len(urls) == (2 if IPV6 else 1), urls
        for url in urls:
            xenapi_round_trip(url, a.password, ignore_ssl=True)
    finally:
        a.cleanup()


# ---------------------------------------------------------------------------- a streaming handler

@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    """An agent process whose router also serves the test handler /count."""
    a = AgentProcess(str(tmp_path_factory.mktemp("routed")))
    real_popen = agent_module.subprocess.Popen

    def popen(cmd, **kw):
        assert cmd[1:3] == ["-m", "hostagent"], cmd
        return real_popen([cmd[0], ROUTED_AGENT, *cmd[3:]], **kw)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(agent_module.subprocess, "Popen", popen)
        a.start()
    yield a
    a.cleanup()


@pytest.fixture(scope="module")
def session(routed):
    s = XenAPI.Session(routed.url)
    s.xenapi.login_with_password("root", routed.password, "1.0", "routed-site-test")
    yield s._session
    s.xenapi.session.logout()


def chunk(data: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 65536]), data[i:i + 65536])
                    for i in range(0, len(data), 65536))


def read_until(sock, marker: bytes, got: bytes = b"") -> bytes:
    deadline = time.monotonic() + TIMEOUT
    while marker not in got:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(65536)
        if not data:
            break
        got += data
    return got


def put_counted(connect, target: str, body: bytes, chunked: bool, headers: bytes = b""):
    """PUT `body` to the handler: 2 MiB, then wait for its early answer, then the rest.
    (early answer, final answer) as text; the early answer proves the body was handed over
    while it was still arriving."""
    sock = connect()
    try:
        head = b"PUT %s HTTP/1.1\r\nHost: test\r\n%s" % (target.encode(), headers)
        head += b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Content-Length: %d\r\n\r\n" % len(body)
        first, rest = body[:2 * MiB], body[2 * MiB:]
        sock.sendall(head + (chunk(first) if chunked else first))
        early = read_until(sock, b"first MiB after")
        assert b"first MiB after" in early, early[:300]
        sock.sendall(chunk(rest) + b"0\r\n\r\n" if chunked else rest)
        reply = read_until(sock, b"\r\n0\r\n\r\n", early)
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]
    return reply.decode("latin-1")


def tcp(agent):
    return lambda: socket.create_connection(("127.0.0.1", agent.port), timeout=TIMEOUT)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_streaming_handler_counts_5_mib_as_it_arrives(routed, session, chunked):
    body = os.urandom(5 * MiB)
    reply = put_counted(tcp(routed), f"/count?session_id={session}", body, chunked)
    m = re.search(r"total (\d+) pieces (\d+) largest (\d+) user (\S+)", reply)
    assert m, reply[-300:]
    total, pieces, largest = int(m.group(1)), int(m.group(2)), int(m.group(3))
    assert total == len(body)
    assert pieces > 5 and largest <= 1 * MiB  # handed over in pieces, never gathered
    assert re.search(r"first MiB after (\d+) bytes", reply)


def test_the_streaming_handler_takes_basic_credentials(routed):
    auth = b"Authorization: Basic %s\r\n" % base64.b64encode(b"root:" + routed.password.encode())
    reply = put_counted(tcp(routed), "/count", os.urandom(3 * MiB), chunked=False, headers=auth)
    assert "total %d" % (3 * MiB) in reply and "user root" in reply


def test_the_unix_socket_needs_no_credentials(routed):
    def unix():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(routed.socket)
        return s
    reply = put_counted(unix, "/count", os.urandom(3 * MiB), chunked=True)
    assert "total %d" % (3 * MiB) in reply and "user root" in reply


@pytest.mark.parametrize("query", ["", "?session_id=OpaqueRef:not-a-session"])
def test_the_streaming_handler_refuses_unauthenticated_callers_before_their_body(routed, query):
    sock = socket.create_connection(("127.0.0.1", routed.port), timeout=TIMEOUT)
    try:
        sock.sendall(b"PUT /count%s HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n"
                     % (query.encode(), 5 * MiB))  # no body byte is sent
        reply = read_until(sock, b"\r\n\r\n")
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 401 "), reply[:300]
    assert b'WWW-Authenticate: Basic realm="xapi"' in reply
