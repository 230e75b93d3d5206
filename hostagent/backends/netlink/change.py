"""Changing links: bridges, 802.1Q VLAN links, bonds, enslaving, MTU, promiscuous, up/down.

Every change is an `ensure`: applying it twice changes nothing.
"""

import errno
from typing import List, Optional

from pyroute2.netlink.exceptions import NetlinkError

from .errors import (AF_INET, IFF_PROMISC, SCOPE_UNIVERSE, LinkExists, LinkNotFound, LinkNotSupported, index, ipr,
                     lookup, translated)
from .read import link, links

# XenAPI bond modes onto Linux bonding modes. balance-slb (xapi's source-MAC load balancing
# that needs nothing from the switch) has no Linux twin; balance-tlb is the closest: it also
# needs no switch support and, unlike balance-alb, never rewrites ARP replies of bridged guests.
BOND_MODES = {"active-backup": 1, "balance-slb": 5, "lacp": 4}


def _ensure_kind(name: str, kind: str, netns: Optional[str], **create) -> dict:
    """Create link `name` of `kind` unless it exists; a link of another kind is LinkExists."""
    have = link(name, netns)
    if have is None:
        with translated(f"create {kind}", name), ipr(netns) as ip:
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
    with translated("find", parent), ipr(netns) as ip:
        parent_index = index(ip, parent)
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


def _change(name: str, what: str, netns: Optional[str], needed, **change) -> dict:
    """Set `change` on link `name` only when `needed(current dict)` says so; the link after."""
    have = link(name, netns)
    if have is None:
        raise LinkNotFound(f"{what} {name}: no such link", name, errno.ENODEV)
    if not needed(have):
        return have
    with translated(what, name), ipr(netns) as ip:
        ip.link("set", index=have["index"], **change)
    return link(name, netns)


def enslave(name: str, master: str, netns: Optional[str] = None) -> dict:
    """Make `master` (a bridge or bond) the master of `name`."""
    with translated("enslave", name), ipr(netns) as ip:
        master_index = index(ip, master)
    return _change(name, "enslave", netns, lambda li: li["master"] != master, master=master_index)


def release(name: str, netns: Optional[str] = None) -> Optional[dict]:
    """Free `name` from its master; a missing link is already free."""
    if link(name, netns) is None:
        return None
    return _change(name, "release", netns, lambda li: li["master"] is not None, master=0)


def set_up(name: str, up: bool = True, netns: Optional[str] = None) -> dict:
    return _change(name, "set state of", netns, lambda li: li["up"] != up, state="up" if up else "down")


def set_mtu(name: str, mtu: int, netns: Optional[str] = None) -> dict:
    return _change(name, "set MTU of", netns, lambda li: li["mtu"] != int(mtu), mtu=int(mtu))


def set_promiscuous(name: str, on: bool, netns: Optional[str] = None) -> dict:
    have = link(name, netns)
    if have is None:
        raise LinkNotFound(f"set promiscuous mode of {name}: no such link", name, errno.ENODEV)
    if have["promiscuous"] == on:
        return have
    with translated("set promiscuous mode of", name), ipr(netns) as ip:
        ip.link("set", index=have["index"], flags=IFF_PROMISC if on else 0, change=IFF_PROMISC)
    return link(name, netns)


def remove(name: str, netns: Optional[str] = None) -> None:
    """Delete link `name`; one that is already gone is fine."""
    with translated("remove", name), ipr(netns) as ip:
        found = lookup(ip, name)
        if found is None:
            return
        try:
            ip.link("del", index=found)
        except NetlinkError as e:
            if e.code not in (errno.ENODEV, errno.ENOENT):
                raise


def addresses(name: str, netns: Optional[str] = None) -> List[str]:
    """The link's global IPv4 addresses as "a.b.c.d/len"."""
    with translated("read addresses of", name), ipr(netns) as ip:
        found = index(ip, name)
        return [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ip.get_addr(family=AF_INET, index=found)
                if a["scope"] == SCOPE_UNIVERSE]


def set_addresses(name: str, wanted: List[str], keep_others: bool = False,
                  netns: Optional[str] = None) -> List[str]:
    """Make the link's global IPv4 addresses `wanted` ("a.b.c.d/len"): missing ones added,
    others removed unless `keep_others`."""
    have = addresses(name, netns)
    with translated("set addresses of", name), ipr(netns) as ip:
        found = index(ip, name)
        # removals first: deleting a subnet's primary address takes its secondaries with it
        for cidr in [] if keep_others else [c for c in have if c not in wanted]:
            address, length = cidr.split("/")
            ip.addr("del", index=found, address=address, prefixlen=int(length))
        for cidr in wanted:
            if cidr not in have:
                address, length = cidr.split("/")
                ip.addr("add", index=found, address=address, prefixlen=int(length))
    return addresses(name, netns)
