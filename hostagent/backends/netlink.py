"""The links adapter (pyroute2): the only module that talks netlink.

Stateless functions over `IPRoute` (or `NetNS` when a namespace is named, so
the whole agent can manage links inside one): bridges, 802.1Q VLAN links,
bonds, enslaving, MTU, promiscuous mode, up/down, and link state read back as
plain dicts. Every change is an `ensure`: applying it twice changes nothing.
Netlink errno values become our own exceptions in one place (`_netlink`).
`NetworkPort` binds the functions to a namespace and runs them off the
reactor for actions.

`management_address` answers what host.address shows: the address of the
interface that carries the default route (its preferred source, else its
first global IPv4 address), or else the first global address of any
interface, or else 127.0.0.1.
"""

import errno
import logging
import threading
from contextlib import contextmanager
from typing import Callable, Dict, List, Optional

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger("hostagent.netlink")

MAIN_TABLE = 254
SCOPE_UNIVERSE = 0
AF_INET = 2
ARPHRD_ETHER = 1
IFF_UP = 0x1
IFF_PROMISC = 0x100

# XenAPI bond modes onto Linux bonding modes. balance-slb (xapi's source-MAC load balancing
# that needs nothing from the switch) has no Linux twin; balance-tlb is the closest: it also
# needs no switch support and, unlike balance-alb, never rewrites ARP replies of bridged guests.
BOND_MODES = {"active-backup": 1, "balance-slb": 5, "lacp": 4}
BOND_MODE_NAMES = {1: "active-backup", 5: "balance-slb", 4: "lacp"}


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
    """The kernel cannot make this kind of link (no 8021q or bonding support)."""


class LinkBusy(LinkError):
    """The link is in use (EBUSY)."""


_ERRORS = {
    errno.ENODEV: LinkNotFound,
    errno.ENOENT: LinkNotFound,
    errno.EEXIST: LinkExists,
    errno.EOPNOTSUPP: LinkNotSupported,
    errno.EBUSY: LinkBusy,
}


@contextmanager
def _netlink(what: str, name: str = ""):
    """Translate netlink and socket errors raised inside into LinkError subclasses."""
    try:
        yield
    except NetlinkError as e:
        kind = _ERRORS.get(e.code, LinkError)
        raise kind(f"{what} {name}: {e.args[1] if len(e.args) > 1 else e}", name, e.code) from None
    except OSError as e:
        raise LinkError(f"{what} {name}: {e}", name, e.errno or 0) from None


def _ipr(netns: Optional[str]):
    if netns:
        from pyroute2 import NetNS
        return NetNS(netns)
    return IPRoute()


# reading

def _as_dict(msg, names: Dict[int, str]) -> dict:
    info = msg.get("IFLA_LINKINFO")
    kind = info.get("IFLA_INFO_KIND") if info else None
    data = (info.get("IFLA_INFO_DATA") if info else None) or None
    flags = msg["flags"]
    master = msg.get("IFLA_MASTER")
    parent = msg.get("IFLA_LINK")
    out = {
        "name": msg.get("IFLA_IFNAME"),
        "index": msg["index"],
        "kind": kind,
        "mac": msg.get("IFLA_ADDRESS") or "",
        "mtu": msg.get("IFLA_MTU"),
        "up": bool(flags & IFF_UP),
        "promiscuous": bool(flags & IFF_PROMISC),
        "carrier": bool(msg.get("IFLA_CARRIER")),
        "master": names.get(master) if master else None,
        "parent": None,
        "vlan": None,
        "bond_mode": None,
        "ether": msg["ifi_type"] == ARPHRD_ETHER,
    }
    if kind == "vlan" and data is not None:
        out["vlan"] = data.get("IFLA_VLAN_ID")
        out["parent"] = names.get(parent)
    if kind == "bond" and data is not None:
        out["bond_mode"] = BOND_MODE_NAMES.get(data.get("IFLA_BOND_MODE"), str(data.get("IFLA_BOND_MODE")))
    return out


def links(netns: Optional[str] = None) -> List[dict]:
    """Every link of the namespace as a plain dict (see `_as_dict` for the keys)."""
    with _netlink("list links"), _ipr(netns) as ip:
        msgs = list(ip.get_links())
    names = {m["index"]: m.get("IFLA_IFNAME") for m in msgs}
    return [_as_dict(m, names) for m in msgs]


def link(name: str, netns: Optional[str] = None) -> Optional[dict]:
    """One link as a plain dict, or None when there is none of that name."""
    for found in links(netns):
        if found["name"] == name:
            return found
    return None


def nics(netns: Optional[str] = None) -> List[dict]:
    """The links that are network cards: Ethernet links no driver kind made (hardware), and,
    inside a namespace (where veth pairs stand in for NICs), veth links too."""
    nic_kinds = (None, "veth") if netns else (None,)
    return [li for li in links(netns) if li["ether"] and li["kind"] in nic_kinds]


def default_route_link(netns: Optional[str] = None) -> Optional[str]:
    """The name of the link the IPv4 default route leaves by, or None."""
    with _netlink("read routes"), _ipr(netns) as ip:
        for r in ip.get_routes(family=AF_INET, table=MAIN_TABLE):
            oif = r.get_attr("RTA_OIF")
            if r.get("dst_len") == 0 and oif:
                found = ip.get_links(oif)
                return found[0].get("IFLA_IFNAME") if found else None
    return None


def _index(ip, name: str) -> int:
    found = ip.link_lookup(ifname=name)
    if not found:
        raise LinkNotFound(f"no link {name}", name, errno.ENODEV)
    return found[0]


# changing

def _ensure_kind(name: str, kind: str, netns: Optional[str], **create) -> dict:
    """Create link `name` of `kind` unless it exists; a link of another kind is LinkExists."""
    have = link(name, netns)
    if have is None:
        with _netlink(f"create {kind}", name), _ipr(netns) as ip:
            try:
                ip.link("add", ifname=name, kind=kind, **create)
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
        have = link(name, netns)
    if have is None or have["kind"] != kind:
        raise LinkExists(f"{name} exists and is not a {kind}", name, errno.EEXIST)
    return have


def ensure_bridge(name: str, netns: Optional[str] = None) -> dict:
    """A bridge named `name`, up."""
    _ensure_kind(name, "bridge", netns)
    return set_up(name, True, netns)


def ensure_vlan(name: str, parent: str, tag: int, netns: Optional[str] = None) -> dict:
    """An 802.1Q link `name` carrying `tag` on `parent`, up (and `parent` up)."""
    with _netlink("find", parent), _ipr(netns) as ip:
        parent_index = _index(ip, parent)
    have = _ensure_kind(name, "vlan", netns, link=parent_index, vlan_id=tag)
    if have["vlan"] != tag or have["parent"] != parent:
        raise LinkExists(f"{name} carries tag {have['vlan']} on {have['parent']}", name, errno.EEXIST)
    set_up(parent, True, netns)
    return set_up(name, True, netns)


def ensure_bond(name: str, mode: str, members: List[str], netns: Optional[str] = None) -> dict:
    """A bond `name` in XenAPI `mode` (see BOND_MODES) with exactly `members` enslaved, up."""
    if mode not in BOND_MODES:
        raise LinkNotSupported(f"bond mode {mode}", name, errno.EOPNOTSUPP)
    have = _ensure_kind(name, "bond", netns, bond_mode=BOND_MODES[mode])
    if have["bond_mode"] != mode:
        raise LinkExists(f"{name} is a bond in mode {have['bond_mode']}, not {mode}", name, errno.EEXIST)
    current = {li["name"] for li in links(netns) if li["master"] == name}
    for gone in current - set(members):
        release(gone, netns)
    for member in members:
        if member in current:
            continue  # already there: no flap
        set_up(member, False, netns)  # the kernel enslaves only links that are down
        enslave(member, name, netns)
        set_up(member, True, netns)
    return set_up(name, True, netns)


def enslave(name: str, master: str, netns: Optional[str] = None) -> dict:
    """Make `master` (a bridge or bond) the master of `name`."""
    with _netlink("enslave", name), _ipr(netns) as ip:
        index, master_index = _index(ip, name), _index(ip, master)
        ip.link("set", index=index, master=master_index)
    return link(name, netns)


def release(name: str, netns: Optional[str] = None) -> Optional[dict]:
    """Free `name` from its master; a missing link is already free."""
    with _netlink("release", name), _ipr(netns) as ip:
        found = ip.link_lookup(ifname=name)
        if not found:
            return None
        ip.link("set", index=found[0], master=0)
    return link(name, netns)


def set_up(name: str, up: bool = True, netns: Optional[str] = None) -> dict:
    with _netlink("set state of", name), _ipr(netns) as ip:
        ip.link("set", index=_index(ip, name), state="up" if up else "down")
    return link(name, netns)


def set_mtu(name: str, mtu: int, netns: Optional[str] = None) -> dict:
    with _netlink("set MTU of", name), _ipr(netns) as ip:
        ip.link("set", index=_index(ip, name), mtu=int(mtu))
    return link(name, netns)


def set_promiscuous(name: str, on: bool, netns: Optional[str] = None) -> dict:
    with _netlink("set promiscuous mode of", name), _ipr(netns) as ip:
        index = _index(ip, name)
        flags = ip.get_links(index)[0]["flags"]
        wanted = (flags | IFF_PROMISC) if on else (flags & ~IFF_PROMISC)
        if wanted != flags:
            ip.link("set", index=index, flags=wanted, change=IFF_PROMISC)
    return link(name, netns)


def remove(name: str, netns: Optional[str] = None) -> None:
    """Delete link `name`; one that is already gone is fine."""
    with _netlink("remove", name), _ipr(netns) as ip:
        found = ip.link_lookup(ifname=name)
        if not found:
            return
        try:
            ip.link("del", index=found[0])
        except NetlinkError as e:
            if e.code not in (errno.ENODEV, errno.ENOENT):
                raise


# the port actions use

OPERATIONS = ("links", "link", "nics", "default_route_link", "ensure_bridge", "ensure_vlan", "ensure_bond",
              "enslave", "release", "set_up", "set_mtu", "set_promiscuous", "remove")


class NetworkPort:
    """The functions above bound to one namespace, each run by `run(fn, *args)` (a worker
    thread in the agent) and awaited: `await port.ensure_bridge("xenbr0")`. `discover(name)`
    adds what udev knows of a NIC (vendor, speed, ...) outside a namespace."""

    def __init__(self, netns: Optional[str] = None, run: Optional[Callable] = None,
                 discover: Optional[Callable[[str], dict]] = None):
        self.netns = netns
        self._run = run
        self._discover = discover

    def _call(self, fn, *args):
        if self._run is None:
            async def now():
                return fn(*args)
            return now()
        return self._run(fn, *args)

    def __getattr__(self, name):
        if name not in OPERATIONS:
            raise AttributeError(name)
        fn = globals()[name]
        return lambda *args: self._call(lambda *a: fn(*a, netns=self.netns), *args)

    def scan(self):
        """The NICs, each marked `physical`, with their udev facts in the host's namespace
        (where udev decides what is physical); inside another namespace sysfs and udev
        describe the host's links, not the namespace's, so its NICs are taken as they are."""
        def work():
            found = nics(self.netns)
            if self.netns or self._discover is None:
                return [dict(nic, physical=True) for nic in found]
            for nic in found:
                nic.update(self._discover(nic["name"]))
            return [nic for nic in found if nic["physical"]]
        return self._call(work)


class LinkMonitor:
    """Link changes reported from a thread: `report("link", {name, deleted, carrier, up,
    master})` for each link that appeared, went or changed (`report` must be thread-safe).

    It compares a dump of the namespace's links every `interval` seconds rather than
    listening to netlink's multicast group: pyroute2 0.9 buffers broadcast messages where a
    select() on its socket cannot see them, and one dump per interval is cheap."""

    def __init__(self, netns: Optional[str], report: Callable[[str, dict], None], interval: float = 1.0):
        self.netns = netns
        self.report = report
        self.interval = interval
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="link-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Blocks until the thread has ended (at most one dump and one interval)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @staticmethod
    def _state(li: dict) -> dict:
        return {"name": li["name"], "deleted": False, "carrier": li["carrier"], "up": li["up"],
                "master": li["master"]}

    def _run(self) -> None:
        before = None
        while not self._stop.is_set():
            try:
                now = {li["name"]: self._state(li) for li in links(self.netns)}
            except LinkError as e:
                log.warning("link monitor: %s", e)
                now = before
            if before is not None and now is not None:
                for name, state in now.items():
                    if before.get(name) != state:
                        self.report("link", state)
                for name in before.keys() - now.keys():
                    self.report("link", dict(before[name], deleted=True))
            before = now
            self._stop.wait(self.interval)


def management_address(netns: Optional[str] = None) -> str:
    """The address host.address should show (see the module doc)."""
    try:
        with _ipr(netns) as ip:
            addrs = {}  # ifindex -> [global IPv4 addresses]
            for a in ip.get_addr(family=AF_INET):
                if a["scope"] == SCOPE_UNIVERSE:
                    addrs.setdefault(a["index"], []).append(a.get_attr("IFA_ADDRESS"))
            for r in ip.get_routes(family=AF_INET, table=MAIN_TABLE):
                if r.get("dst_len") != 0:
                    continue
                src = r.get_attr("RTA_PREFSRC")
                if src:
                    return src
                oif = r.get_attr("RTA_OIF")
                if addrs.get(oif):
                    return addrs[oif][0]
            for found in addrs.values():
                return found[0]
    except (NetlinkError, OSError) as e:
        log.warning("cannot read addresses: %s", e)
    return "127.0.0.1"
