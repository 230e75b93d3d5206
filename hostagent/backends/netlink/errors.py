"""The links adapter's exceptions, the one place netlink errors are translated, and sockets.

`translated(what, name)` turns pyroute2's NetlinkError (by errno: ENODEV,
EEXIST, EOPNOTSUPP, EBUSY) and socket errors into LinkError subclasses;
`ipr(netns)` opens IPRoute, or NetNS when a namespace is named;
`in_netns(netns, fn)` runs fn inside the namespace.
"""

import errno
import threading
from contextlib import contextmanager
from typing import Callable, Optional

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netns import setns

MAIN_TABLE = 254
SCOPE_UNIVERSE = 0
AF_INET = 2
ARPHRD_ETHER = 1
IFF_UP = 0x1
IFF_PROMISC = 0x100


class LinkError(Exception):
    """A link operation failed; `name` is the link, `errno` netlink's value."""

    def __init__(self, message: str, name: str = "", code: int = 0):
        super().__init__(message)
        self.name = name
        self.errno = code


class LinkNotFound(LinkError):
    """No link of that name (ENODEV)."""


class LinkExists(LinkError):
    """A link of that name exists and is not what was asked for."""


class LinkNotSupported(LinkError):
    """The kernel or the link's driver cannot do this (no 8021q or bonding support, no
    settable speed on a veth, ...)."""


class LinkBusy(LinkError):
    """The link is in use (EBUSY)."""


ERRORS = {
    errno.ENODEV: LinkNotFound,
    errno.ENOENT: LinkNotFound,
    errno.EEXIST: LinkExists,
    errno.EOPNOTSUPP: LinkNotSupported,
    errno.EBUSY: LinkBusy,
}


@contextmanager
def translated(what: str, name: str = ""):
    """Translate netlink and socket errors raised inside into LinkError subclasses."""
    try:
        yield
    except NetlinkError as e:
        kind = ERRORS.get(e.code, LinkError)
        raise kind(f"{what} {name}: {e.args[1] if len(e.args) > 1 else e}", name, e.code) from None
    except OSError as e:
        kind = ERRORS.get(e.errno, LinkError)
        raise kind(f"{what} {name}: {e}", name, e.errno or 0) from None


_thread = threading.local()


class _Kept:
    """The calling thread's own kept socket, as a context manager that does not close it."""

    def __init__(self, sock):
        self.sock = sock

    def __enter__(self):
        return self.sock

    def __exit__(self, *exc):
        return False


def keep_socket() -> None:
    """From now on this thread's `ipr(None)` is one IPRoute kept open (see port.NamespaceThread)."""
    _thread.ipr = IPRoute()


def ipr(netns: Optional[str]):
    """An IPRoute for the namespace: NetNS when one is named (a socket made in a child
    process: about 10 ms), the thread's kept socket when it has one, else a new IPRoute."""
    if netns:
        from pyroute2 import NetNS
        return NetNS(netns)
    kept = getattr(_thread, "ipr", None)
    return _Kept(kept) if kept is not None else IPRoute()


def lookup(ip, name: str) -> Optional[int]:
    """The index of link `name`, or None: one request for that name (pyroute2's link_lookup
    dumps every link and filters them here, which costs milliseconds on a busy host)."""
    try:
        return ip.link("get", ifname=name)[0]["index"]
    except NetlinkError as e:
        if e.code in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
            return None
        raise


def index(ip, name: str) -> int:
    found = lookup(ip, name)
    if found is None:
        raise LinkNotFound(f"no link {name}", name, errno.ENODEV)
    return found


def in_netns(netns: Optional[str], fn: Callable):
    """fn() run in the namespace `netns` (None: here), its result or exception passed back.
    Sockets that take no namespace argument (ethtool's, plain ones) are opened inside: in a
    thread of its own, because setns moves only the calling thread and this one ends with the
    call, so no worker thread is left inside."""
    if not netns:
        return fn()
    box = {}

    def work():
        try:
            setns(netns, flags=0)
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the caller's thread
            box["error"] = e
    thread = threading.Thread(target=work, name=f"in-{netns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
