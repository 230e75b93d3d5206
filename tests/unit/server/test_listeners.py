"""Listeners from the configuration: IPv6 hosts, URLs in brackets, TLS descriptions quoted."""

import os

import pytest
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactor

from hostagent.config import Config
from hostagent.server.listeners import listen_all, tcp_endpoint, tls_description, url
from tests.functional.tls_cert import make_self_signed


@pytest.fixture
def odd_dir(tmp_path):
    """A directory whose name holds what endpoint descriptions treat specially."""
    return str(tmp_path / "tls:dir=x\\y")


def run(coro):
    """The result of a coroutine that never waits (MemoryReactor fires everything at once)."""
    out = []
    Deferred.fromCoroutine(coro).addBoth(out.append)
    result, = out
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


@pytest.mark.parametrize("host, expected", [
    ("127.0.0.1", "http://127.0.0.1:8080/"),
    ("0.0.0.0", "http://0.0.0.0:8080/"),
    ("::1", "http://[::1]:8080/"),
    ("::", "http://[::]:8080/"),
    ("fe80::1%eth0", "http://[fe80::1%25eth0]:8080/"),
])
def test_urls_put_ipv6_hosts_in_brackets(host, expected):
    assert url("http", host, 8080) == expected


def test_ipv6_hosts_get_tcp6_endpoints():
    assert isinstance(tcp_endpoint(MemoryReactor(), "::1", 0), endpoints.TCP6ServerEndpoint)
    assert isinstance(tcp_endpoint(MemoryReactor(), "127.0.0.1", 0), endpoints.TCP4ServerEndpoint)


def test_tls_descriptions_survive_colons_in_paths_and_interfaces(odd_dir):
    cert, key = make_self_signed(odd_dir)
    assert ":" in cert and "=" in cert and "\\" in cert
    reactor = MemoryReactor()
    ep = endpoints.serverFromString(reactor, tls_description("::1", 8443, cert, key))
    ep.listen(object())
    (port, _factory, context, _backlog, interface), = reactor.sslServers
    assert (port, interface) == (8443, "::1")
    assert context.certificate is not None and context.privateKey is not None  # both files were read


def test_listen_all_listens_on_every_address(odd_dir):
    cert, key = make_self_signed(odd_dir)
    config = Config(state_dir=os.path.dirname(odd_dir), listen=["127.0.0.1:8080", "[::1]:0"],
                    tls_listen=["[::1]:8443"], cert=cert, key=key)
    reactor = MemoryReactor()
    sites = []
    opened = run(listen_all(reactor, config, lambda: sites.append(object()) or sites[-1]))
    assert [u for _, u in opened] == ["http://127.0.0.1:8080/", "http://[::1]:0/", "https://[::1]:8443/"]
    assert [(p, i) for p, _, _, i in reactor.tcpServers] == [(8080, "127.0.0.1"), (0, "::1")]
    assert [(p, i) for p, _, _, _, i in reactor.sslServers] == [(8443, "::1")]
    assert len(sites) == 3


def test_a_failed_listener_closes_the_ones_already_open(odd_dir):
    config = Config(state_dir=odd_dir, listen=["127.0.0.1:8080"], tls_listen=["127.0.0.1:8443"],
                    cert=os.path.join(odd_dir, "missing:cert.pem"), key=os.path.join(odd_dir, "missing.pem"))
    reactor = MemoryReactor()
    stopped = []

    class Port:
        def __init__(self, real):
            self.real = real

        def getHost(self):
            return self.real.getHost()

        def stopListening(self):
            stopped.append(self)

    listen_tcp = reactor.listenTCP
    reactor.listenTCP = lambda *a, **k: Port(listen_tcp(*a, **k))
    with pytest.raises(Exception):
        run(listen_all(reactor, config, object))
    assert len(stopped) == 1
