"""network: a virtual switch, implemented on this host as a Linux bridge.

`network.create` records the network; an empty `bridge` gets the first free
`xapi<N>` name, and a bridge another network already names is refused
(BRIDGE_NAME_EXISTS). The bridge itself appears when a PIF is plugged on the
network (as xapi, which makes bridges when something attaches to them).
`network.destroy` is refused while PIFs or VIFs are on the network and, when
the agent manages networking, removes the network's bridge if it is left.

`link_errors` is the one table from the links port's exceptions to XenAPI
errors; pif.py and vlan.py use it too.
"""

import logging
from contextlib import contextmanager

from ..backends.netlink import LinkError, LinkExists
from ..datamodel.errors import ApiError
from ..rpc.implicit import check_refs

log = logging.getLogger("hostagent.network")


@contextmanager
def link_errors(pif: str = "", bridge: str = ""):
    """Links port failures as XenAPI errors: a name taken by a link of another kind is
    BRIDGE_NAME_EXISTS for a bridge; anything else is PIF_CONFIGURATION_ERROR [PIF, msg]."""
    try:
        yield
    except LinkExists as e:
        if bridge and e.name == bridge:
            raise ApiError("BRIDGE_NAME_EXISTS", bridge) from None
        raise ApiError("PIF_CONFIGURATION_ERROR", pif, str(e)) from None
    except LinkError as e:
        raise ApiError("PIF_CONFIGURATION_ERROR", pif, str(e)) from None


def free_bridge_name(store, prefix: str = "xapi") -> str:
    taken = {rec["bridge"] for rec in store.all("network").values()}
    n = 0
    while f"{prefix}{n}" in taken:
        n += 1
    return f"{prefix}{n}"


def create(ctx, args):
    values = dict(args)
    check_refs(ctx.store, "network", values)
    bridge = str(values.get("bridge") or "")
    if not bridge:
        bridge = free_bridge_name(ctx.store)
    elif ctx.store.find("network", bridge=bridge):
        raise ApiError("BRIDGE_NAME_EXISTS", bridge)
    values["bridge"] = bridge
    with ctx.store.transaction():
        return ctx.store.create("network", values)


async def destroy(ctx, self):
    """Refused while VIFs or PIFs are on the network (as xapi)."""
    rec = ctx.need("network", self)
    if rec["VIFs"]:
        raise ApiError("NETWORK_CONTAINS_VIF", rec["VIFs"])
    if rec["PIFs"]:
        raise ApiError("NETWORK_CONTAINS_PIF", rec["PIFs"])
    links = ctx.ports.links
    if links is not None and rec["managed"] and rec["bridge"]:
        await remove_bridge_if_empty(links, rec["bridge"])
    with ctx.store.transaction():
        ctx.store.delete("network", self)
    return ""


async def remove_bridge_if_empty(links, bridge: str) -> bool:
    """Remove `bridge` unless a link (a NIC, a VLAN link, a guest's vif) is still on it."""
    with link_errors(bridge=bridge):
        found = await links.link(bridge)
        if found is None:
            return True
        if found["kind"] != "bridge":
            return False  # not ours to remove
        if await links.ports(bridge):
            return False
        await links.remove(bridge)
    log.info("removed bridge %s", bridge)
    return True


HANDLERS = {"network.create": create, "network.destroy": destroy}
