"""The links adapter (pyroute2): the only module that talks netlink.

For now it answers one question, the management address: the address of the
interface that carries the default route (its preferred source, else its
first global IPv4 address), or else the first global address of any
interface, or else 127.0.0.1. Networking (bridges, VLANs, bonds) grows here.
"""

import logging
from typing import Optional

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger("hostagent.netlink")

MAIN_TABLE = 254
SCOPE_UNIVERSE = 0
AF_INET = 2


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


def _ipr(netns: Optional[str]):
    if netns:
        from pyroute2 import NetNS
        return NetNS(netns)
    return IPRoute()
