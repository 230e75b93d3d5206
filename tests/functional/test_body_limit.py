"""Request bodies are limited to 300 KiB: larger ones get 413 and are never run.

The bodies over the limit are real mutations (pool.set_name_description)
padded with whitespace, so a body that slipped through would show in the
pool's description. Bodies up to the limit, to the byte, are served.
"""

import http.client
import json
import socket
import time
from typing import Tuple

import pytest

LIMIT = 300 * 1024
TIMEOUT = 10.0


def jsonrpc(port, method, *params):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("POST", "/jsonrpc", body=json.dumps({"method": method, "params": list(params), "id": 1}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        assert r.status == 200, (r.status, data[:300])
        reply = json.loads(data)
        assert reply["error"] is None, (method, reply["error"])
        return reply["result"]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def world(agent):
    session = jsonrpc(agent.port, "session.login_with_password", "root", agent.password, "1.0", "body-limit")
    pool = jsonrpc(agent.port, "pool.get_all", session)[0]
    return {"session": session, "pool": pool,
            "description": jsonrpc(agent.port, "pool.get_name_description", session, pool)}


def set_description_body(path, world, text, size=None) -> bytes:
    """pool.set_name_description(text) as XML-RPC or JSON-RPC, padded with spaces to `size` bytes."""
    if path == "/jsonrpc":
        body = json.dumps({"method": "pool.set_name_description",
                           "params": [world["session"], world["pool"], text], "id": 7}).encode()
    else:
        body = ("<?xml version='1.0'?><methodCall><methodName>pool.set_name_description</methodName><params>"
                "<param><value>%s</value></param><param><value>%s</value></param>"
                "<param><value><string>%s</string></value></param></params></methodCall>"
                % (world["session"], world["pool"], text)).encode()
    if size is not None:
        assert len(body) <= size
        body += b" " * (size - len(body))
    return body


def exact_size_body(path, world, size, fill="d") -> Tuple[bytes, str]:
    """A valid set_name_description body of exactly `size` bytes (the text fills it)."""
    overhead = len(set_description_body(path, world, ""))
    text = fill * (size - overhead)
    body = set_description_body(path, world, text)
    assert len(body) == size
    return body, text


def post(port, path, body, chunked=False):
    """(status, body) or the connection error the client saw."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        if chunked:
            pieces = [body[i:i + 8192] for i in range(0, len(body), 8192)]
            conn.request("POST", path, body=iter(pieces), encode_chunked=True,
                         headers={"Content-Type": "text/xml"})
        else:
            conn.request("POST", path, body=body, headers={"Content-Type": "text/xml"})
        r = conn.getresponse()
        return r.status, r.read(), r.will_close
    except (ConnectionError, http.client.HTTPException) as e:
        return e
    finally:
        conn.close()


def read_until_closed(sock, deadline) -> bytes:
    """Everything the server sends until it closes the connection (bounded by `deadline`)."""
    out = b""
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return out
        except socket.timeout:
            raise AssertionError(f"the server kept the connection open; got {out[:300]!r}") from None
        if not data:
            return out
        out += data


def assert_untouched(agent, world):
    assert jsonrpc(agent.port, "pool.get_name_description", world["session"], world["pool"]) == \
        world["description"]


def assert_serving(agent):
    methods = jsonrpc(agent.port, "system.listMethods")
    assert "VM.get_all_records" in methods


@pytest.mark.parametrize("path", ["/", "/jsonrpc"])
def test_301_kib_refused_before_the_body_is_sent(agent, world, path):
    """The 413 comes as soon as the headers announce too much, then the server closes."""
    body = set_description_body(path, world, "REFUSED", size=301 * 1024)
    sock = socket.create_connection(("127.0.0.1", agent.port), timeout=TIMEOUT)
    try:
        sock.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
                     b"Content-Length: %d\r\n\r\n" % (path.encode(), len(body)))
        reply = read_until_closed(sock, time.monotonic() + TIMEOUT)  # no body byte was sent
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:300]
    head, _, rest = reply.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert rest == b""
    assert_serving(agent)
    assert_untouched(agent, world)


@pytest.mark.parametrize("path", ["/", "/jsonrpc"])
def test_301_kib_body_gets_413_or_a_closed_connection(agent, world, path):
    body = set_description_body(path, world, "REFUSED", size=301 * 1024)
    out = post(agent.port, path, body)
    if not isinstance(out, Exception):
        status, data, will_close = out
        assert status == 413, (status, data[:300])
        assert will_close
    assert_serving(agent)  # a new connection works
    assert_untouched(agent, world)


def test_one_byte_over_the_limit_is_refused(agent, world):
    body, _ = exact_size_body("/", world, LIMIT + 1)
    out = post(agent.port, "/", body)
    if not isinstance(out, Exception):
        assert out[0] == 413, out[:2]
    assert_untouched(agent, world)


@pytest.mark.parametrize("size", [LIMIT + 1, 301 * 1024, 2 * 1024 * 1024])
def test_chunked_body_over_the_limit_is_never_run(agent, world, size):
    """A chunked body has no length up front: it is refused once it grows past the limit,
    and even when all of it (and its last chunk) arrives, the call must not run."""
    body = set_description_body("/", world, "CHUNKED-RAN", size=size)
    chunk = 64 * 1024
    wire = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + chunk]), body[i:i + chunk])
                    for i in range(0, len(body), chunk)) + b"0\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", agent.port), timeout=TIMEOUT)
    try:
        try:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n" + wire)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still sending: fine, the reply was already queued
        reply = read_until_closed(sock, time.monotonic() + TIMEOUT)
    finally:
        sock.close()
    if reply:  # a reset may discard what the server sent; if anything arrived it is the 413
        assert reply.startswith(b"HTTP/1.1 413 "), reply[:300]
        assert b"200 OK" not in reply, reply[:600]
    assert_serving(agent)
    assert_untouched(agent, world)


@pytest.mark.parametrize("path,size", [("/", 299 * 1024), ("/jsonrpc", 299 * 1024), ("/", LIMIT),
                                       ("/jsonrpc", LIMIT)])
def test_valid_body_up_to_the_limit_succeeds(agent, world, path, size):
    body, text = exact_size_body(path, world, size)
    out = post(agent.port, path, body)
    assert not isinstance(out, Exception), out
    status, data, will_close = out
    assert status == 200, (status, data[:300])
    if path == "/jsonrpc":
        assert json.loads(data) == {"result": "", "error": None, "id": 7}
    else:
        assert b"<name>Status</name><value>Success</value>" in data, data[:300]
    assert not will_close
    try:
        assert jsonrpc(agent.port, "pool.get_name_description", world["session"], world["pool"]) == text
    finally:
        jsonrpc(agent.port, "pool.set_name_description", world["session"], world["pool"], world["description"])
    assert_untouched(agent, world)
