"""Reading links: every link of a namespace as a plain dict, the NICs, the default route's link.

`management_address` answers what host.address shows: the address of the
interface that carries the default route (its preferred source, else its
first global IPv4 address), or else the first global address of any
interface, or else 127.0.0.1.
"""

import errno
import logging
import os
import socket
import struct
from typing import Dict, List, Optional

from pyroute2.netlink.exceptions import NetlinkError

from .errors import (AF_INET, ARPHRD_ETHER, IFF_PROMISC, IFF_UP, MAIN_TABLE, SCOPE_UNIVERSE, LinkError, in_netns, ipr,
                     lookup, translated)

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
    """One link as a plain dict, or None when there is none of that name (one request for the
    link, and one for each of its master and, for a VLAN, parent)."""
    with translated("read link", name), ipr(netns) as ip:
        try:
            msg = ip.link("get", ifname=name)[0]
        except NetlinkError as e:
            if e.code in (errno.ENODEV, errno.ENOENT, errno.EINVAL):
                return None
            raise
        related = [msg.get("IFLA_MASTER")]
        info = msg.get("IFLA_LINKINFO")
        if info and info.get("IFLA_INFO_KIND") == "vlan":
            related.append(msg.get("IFLA_LINK"))
        names = {}
        for other in filter(None, related):
            try:
                names[other] = ip.get_links(other)[0].get("IFLA_IFNAME")
            except NetlinkError:
                continue  # the master or parent went away meanwhile: the link is read without its name
    return _as_dict(msg, names)


def ports(name: str, netns: Optional[str] = None) -> List[str]:
    """The names of the links whose master is `name`: a dump the kernel filters by master
    (pyroute2 dumps and parses every link instead, some 60 ms with a hundred links)."""
    with translated("list ports of", name), ipr(netns) as ip:
        found = lookup(ip, name)
    if found is None:
        return []
    with translated("list ports of", name):
        return [li["name"] for li in in_netns(netns, lambda: raw_links(found)) if li["master"] == found]


def link_states(netns: Optional[str] = None) -> List[dict]:
    """Every link's {name, up, carrier, master (a name)}: what the link monitor compares,
    read without pyroute2's parsing of every attribute (a dump of hundreds of links a
    second costs it a quarter of a core)."""
    with translated("list links"):
        found = in_netns(netns, raw_links)
    names = {li["index"]: li["name"] for li in found}
    return [{"name": li["name"], "up": li["up"], "carrier": li["carrier"], "master": names.get(li["master"])}
            for li in found]


RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
NLM_F_REQUEST, NLM_F_DUMP, NLMSG_DONE, NLMSG_ERROR = 1, 0x300, 3, 2
IFLA_IFNAME, IFLA_MASTER, IFLA_CARRIER = 3, 10, 33


def parse_link(data: bytes, offset: int, length: int) -> dict:
    """One RTM_NEWLINK/RTM_DELLINK message at `offset` (its nlmsghdr's length `length`) as
    {name, index, family, up, carrier, master (an index, 0 for none)}."""
    family = data[offset + 16]
    index, flags = struct.unpack_from("=iI", data, offset + 20)
    li = {"name": None, "index": index, "family": family, "up": bool(flags & IFF_UP), "carrier": False,
          "master": 0}
    pos = offset + 32  # past nlmsghdr and ifinfomsg
    while pos + 4 <= offset + length:
        alen, atype = struct.unpack_from("=HH", data, pos)
        if alen < 4:
            break
        if atype == IFLA_IFNAME:
            li["name"] = data[pos + 4:pos + alen].split(b"\0")[0].decode()
        elif atype == IFLA_MASTER:
            li["master"] = struct.unpack_from("=I", data, pos + 4)[0]
        elif atype == IFLA_CARRIER:
            li["carrier"] = bool(data[pos + 4])
        pos += (alen + 3) & ~3
    return li


def raw_links(master: int = 0) -> List[dict]:
    """An RTM_GETLINK dump over a plain netlink socket in this thread's namespace (filtered
    by the kernel to `master`'s ports when given): [{name, index, up, carrier, master}]."""
    body = struct.pack("=BxHiII", 0, 0, 0, 0, 0)
    if master:
        body += struct.pack("=HHI", 8, IFLA_MASTER, master)
    request = struct.pack("=IHHII", 16 + len(body), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body
    out = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as sock:  # NETLINK_ROUTE
        sock.bind((0, 0))
        sock.send(request)
        while True:
            data = sock.recv(1 << 17)
            offset = 0
            while offset < len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, offset + 16)[0]
                    raise OSError(code, os.strerror(code))
                out.append(parse_link(data, offset, length))
                offset += (length + 3) & ~3


def nics(netns: Optional[str] = None, veths: Optional[bool] = None) -> List[dict]:
    """The links that are network cards: Ethernet links no driver kind made (hardware), and,
    inside a namespace (where veth pairs stand in for NICs; `veths` says so when the caller
    already runs inside one), veth links too."""
    nic_kinds = (None, "veth") if (netns if veths is None else veths) else (None,)
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
