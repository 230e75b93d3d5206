"""TCP listeners from the configuration: plain HTTP (`listen`) and TLS (`tls_listen`).

Hosts are IPv4 or IPv6 (`[::1]:8080`, `[::]:443`); URLs put IPv6 hosts in brackets.
TLS endpoints are described to Twisted as strings, so every value in them is quoted:
a certificate path or an IPv6 interface holds colons.
"""

from typing import Callable, List, Tuple

from twisted.internet import endpoints
from twisted.internet.abstract import isIPv6Address

from ..config import Config, parse_hostport


def url(scheme: str, host: str, port: int) -> str:
    if ":" in host:  # IPv6; a zone (fe80::1%eth0) is %25 in a URL (RFC 6874)
        host = "[" + host.replace("%", "%25") + "]"
    return f"{scheme}://{host}:{port}/"


def tcp_endpoint(reactor, host: str, port: int):
    if isIPv6Address(host):
        return endpoints.TCP6ServerEndpoint(reactor, port, interface=host)
    return endpoints.TCP4ServerEndpoint(reactor, port, interface=host)


def tls_description(host: str, port: int, cert: str, key: str) -> str:
    q = endpoints.quoteStringArgument
    return f"ssl:port={port}:interface={q(host)}:privateKey={q(key)}:certKey={q(cert)}"


async def listen_all(reactor, config: Config, make_site: Callable[[], object], cert: str = None,
                     key: str = None) -> List[Tuple[object, str]]:
    """Listen on every `listen` and `tls_listen` address with a site from `make_site()`;
    (port, URL) pairs. TLS serves `config.cert`/`config.key` when given, else `cert`/`key`
    (the host's own identity). If one fails, the ports already open are closed again."""
    cert, key = (config.cert, config.key) if config.cert and config.key else (cert, key)
    opened = []
    try:
        for spec in config.listen:
            host, port = parse_hostport(spec)
            p = await tcp_endpoint(reactor, host, port).listen(make_site())
            opened.append((p, url("http", host, p.getHost().port)))
        for spec in config.tls_listen:
            host, port = parse_hostport(spec)
            ep = endpoints.serverFromString(reactor, tls_description(host, port, cert, key))
            p = await ep.listen(make_site())
            opened.append((p, url("https", host, p.getHost().port)))
    except BaseException:
        for p, _ in opened:
            await p.stopListening()
        raise
    return opened
