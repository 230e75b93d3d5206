"""Reading links: every link of a namespace as a plain dict, the NICs, the default route's link.

`management_address` answers what host.address shows: the address of the
interface that carries the default route (its preferred source, else its
first global IPv4 address), or else the first global address of any
interface, or else 127.0.0.1.
"""

import logging
import socket
from typing import Dict, List, Optional

from pyroute2.netlink.exceptions import NetlinkError

from .errors import (AF_INET, ARPHRD_ETHER, IFF_PROMISC, IFF_UP, MAIN_TABLE, SCOPE_UNIVERSE, LinkError, in_netns, ipr,
                     translated)

log = logging.getLogger("hostagent.netlink")

# Linux bonding mode numbers back to XenAPI's names (see change.BOND_MODES)
BOND_MODE_NAMES = {1: "active-backup", 5: "balance-slb", 4: "lacp"}


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
    with translated("list links"), ipr(netns) as ip:
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
    with translated("read routes"), ipr(netns) as ip:
        for r in ip.get_routes(family=AF_INET, table=MAIN_TABLE):
            oif = r.get_attr("RTA_OIF")
            if r.get("dst_len") == 0 and oif:
                found = ip.get_links(oif)
                return found[0].get("IFLA_IFNAME") if found else None
    return None


def management_address(netns: Optional[str] = None) -> str:
    """The address host.address should show (see the module doc)."""
    try:
        with ipr(netns) as ip:
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


def address_answers(address: str, netns: Optional[str] = None) -> bool:
    """Whether the namespace answers on IPv4 `address`: a UDP datagram sent from a socket bound
    to it comes back to it (the address is assigned, usable, on a link that is up)."""
    def work():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.25)
            try:
                sock.bind((address, 0))
                sock.sendto(b"hostagent", sock.getsockname())
                return sock.recvfrom(64)[0] == b"hostagent"
            except OSError:
                return False
    try:
        return in_netns(netns, work)
    except OSError as e:
        raise LinkError(f"enter namespace {netns}: {e}", "", e.errno or 0) from None
