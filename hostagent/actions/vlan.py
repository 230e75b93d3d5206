"""VLAN: an 802.1Q VLAN carried on a tagged PIF, as a Linux VLAN link on a bridge.

`VLAN.create(tagged_PIF, tag, network)` checks as xapi does (tag 0..4094,
VLAN_TAG_INVALID; a tagged PIF that is itself a VLAN, PIF_IS_VLAN, or a bond's
member, CANNOT_ADD_VLAN_TO_BOND_SLAVE; the tag
already carried on that PIF, PIF_VLAN_EXISTS [device]; a network that already
has a PIF on that host, NETWORK_ALREADY_CONNECTED), records a non-physical
PIF (the tagged PIF's device and MAC, VLAN=tag, on `network`) with the VLAN,
and plugs it: the link `<device>.<tag>` on the tagged PIF's device, enslaved
to the network's bridge. When the links cannot be made the records go again
and the error is PIF_CONFIGURATION_ERROR. The records are durable, marked
"creating", before any link is made: a start after a kill in between undoes
the creation (pif.settle_interrupted). `VLAN.destroy` unplugs and forgets
both records.
"""

from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from . import pif as P
from .pool_network import on_pif_host, on_vlan_host
from .storage_records import require_this_host, to_completion


@on_pif_host
@to_completion
async def create(ctx, tagged_PIF, tag, network):
    tagged = ctx.need("PIF", tagged_PIF)
    net = ctx.need("network", network)
    tag = int(tag)
    if not 0 <= tag <= 4094:
        raise ApiError("VLAN_TAG_INVALID", tag)
    if tagged["VLAN"] >= 0:
        raise ApiError("PIF_IS_VLAN", tagged_PIF)
    if tagged["bond_slave_of"] != NULL_REF:
        raise ApiError("CANNOT_ADD_VLAN_TO_BOND_SLAVE", tagged_PIF)
    host = tagged["host"]
    require_this_host(ctx, host, "VLAN.create")
    store = ctx.store
    for vlan in tagged["VLAN_slave_of"]:
        if store.get("VLAN", vlan)["tag"] == tag:
            raise ApiError("PIF_VLAN_EXISTS", tagged["device"])
    for other in net["PIFs"]:
        if store.get("PIF", other)["host"] == host:
            raise ApiError("NETWORK_ALREADY_CONNECTED", network, other)
    with store.transaction():
        untagged = P.create_virtual(ctx, {
            "device": tagged["device"], "network": network, "host": host, "MAC": tagged["MAC"],
            "MTU": tagged["MTU"], "VLAN": tag, "managed": tagged["managed"]})
        vlan = store.create("VLAN", {"tagged_PIF": tagged_PIF, "untagged_PIF": untagged, "tag": tag,
                                     "other_config": {}})
    await P.mark(ctx, untagged, creating=True)
    try:
        await P.attach(ctx, untagged)
    except ApiError:
        await undo_create(ctx, vlan)
        raise
    with store.transaction():
        store.set_private("PIF", untagged, creating=False)
    return vlan


async def undo_create(ctx, vlan: str) -> None:
    """A VLAN whose creation failed (or was interrupted by a kill): its link and emptied
    bridge removed, its records forgotten."""
    untagged = ctx.store.get("VLAN", vlan)["untagged_PIF"]
    if ctx.store.exists("PIF", untagged):
        await P.detach(ctx, untagged)
    _forget(ctx, vlan)


@on_vlan_host
@to_completion
async def destroy(ctx, self):
    rec = ctx.need("VLAN", self)
    untagged = rec["untagged_PIF"]
    if ctx.store.exists("PIF", untagged):
        require_this_host(ctx, ctx.store.get("PIF", untagged)["host"], "VLAN.destroy")
        await P.detach(ctx, untagged)
    _forget(ctx, self)
    return ""


def _forget(ctx, vlan: str) -> None:
    store = ctx.store
    rec = store.get("VLAN", vlan)
    with store.transaction():
        untagged = rec["untagged_PIF"]
        if store.exists("PIF", untagged):
            P.delete_record(store, untagged)
        store.delete("VLAN", vlan)


HANDLERS = {"VLAN.create": create, "VLAN.destroy": destroy}
