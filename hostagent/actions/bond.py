"""Bond: several PIFs of one host combined into one bond PIF, as a Linux bonding device.

`Bond.create(network, members, MAC, mode, properties)` checks as xapi does
(at least two members, PIF_BOND_NEEDS_MORE_MEMBERS; all on one host,
PIF_CANNOT_BOND_CROSS_HOST; none bonded already, PIF_ALREADY_BONDED, or a
VLAN, PIF_IS_VLAN; a network with no PIF on that host yet,
NETWORK_ALREADY_CONNECTED), takes the members off their own bridges, records
a bond PIF `bond<N>` (MAC given, else the first member's) and the Bond, and
plugs it: the bonding device with the members enslaved, on the network's
bridge. active-backup is Linux's active-backup, lacp is 802.3ad, and
balance-slb (no Linux twin) is balance-tlb (see backends/netlink/change.py). When
the links cannot be made the records go again and members that were plugged
are plugged again; the records are durable, marked "creating", before the
bond is made, so a start after a kill in between does the same. `Bond.destroy` unplugs and forgets the bond PIF and the
Bond; the members are left unplugged, for the caller to plug where wanted.
"""

from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from . import pif as P
from .storage_records import require_this_host, to_completion


def _free_device(store, host: str) -> str:
    taken = {store.get("PIF", p)["device"] for p in store.get("host", host)["PIFs"]}
    n = 0
    while f"bond{n}" in taken:
        n += 1
    return f"bond{n}"


@to_completion
async def create(ctx, network, members, MAC, mode="balance-slb", properties=None):
    net = ctx.need("network", network)
    members = list(dict.fromkeys(members))
    if len(members) < 2:
        raise ApiError("PIF_BOND_NEEDS_MORE_MEMBERS")
    recs = {m: ctx.need("PIF", m) for m in members}
    hosts = {rec["host"] for rec in recs.values()}
    if len(hosts) != 1:
        raise ApiError("PIF_CANNOT_BOND_CROSS_HOST")
    host = hosts.pop()
    require_this_host(ctx, host, "Bond.create")
    for ref, rec in recs.items():
        if rec["bond_slave_of"] != NULL_REF or rec["bond_master_of"]:
            raise ApiError("PIF_ALREADY_BONDED", ref)
        if rec["VLAN"] >= 0:
            raise ApiError("PIF_IS_VLAN", ref)
    store = ctx.store
    for other in net["PIFs"]:
        if store.get("PIF", other)["host"] == host:
            raise ApiError("NETWORK_ALREADY_CONNECTED", network, other)
    first = recs[members[0]]
    was_attached = [m for m in members if recs[m]["currently_attached"]]
    for m in was_attached:
        await P.detach(ctx, m)
    with store.transaction():
        master = P.create_virtual(ctx, {
            "device": _free_device(store, host), "network": network, "host": host,
            "MAC": (MAC or first["MAC"]).lower(), "MTU": net["MTU"], "VLAN": -1, "managed": True})
        bond = store.create("Bond", {"master": master, "mode": mode, "properties": dict(properties or {}),
                                     "primary_slave": members[0], "other_config": {},
                                     "links_up": 0, "auto_update_mac": not MAC})
        for m in members:
            store.update("PIF", m, bond_slave_of=bond)
    await P.mark(ctx, master, creating=True, members_were_attached=was_attached)
    try:
        await P.attach(ctx, master)
    except ApiError:
        await undo_create(ctx, bond)
        raise
    with store.transaction():
        store.set_private("PIF", master, creating=False, members_were_attached=[])
    return bond


async def undo_create(ctx, bond: str) -> None:
    """A bond whose creation failed (or was interrupted by a kill): the bonding device and
    its emptied bridge removed, the records forgotten, the members that were plugged plugged
    again."""
    master = ctx.store.get("Bond", bond)["master"]
    was_attached = []
    if ctx.store.exists("PIF", master):
        was_attached = list(ctx.store.private_of("PIF", master).get("members_were_attached") or [])
        await P.detach(ctx, master)
    _forget(ctx, bond)
    for m in was_attached:
        if ctx.store.exists("PIF", m):
            await P.attach(ctx, m)


@to_completion
async def destroy(ctx, self):
    rec = ctx.need("Bond", self)
    master = rec["master"]
    if ctx.store.exists("PIF", master):
        require_this_host(ctx, ctx.store.get("PIF", master)["host"], "Bond.destroy")
        if ctx.store.get("PIF", master)["VLAN_slave_of"]:
            raise ApiError("PIF_VLAN_STILL_EXISTS", master)
        await P.detach(ctx, master)
    _forget(ctx, self)
    return ""


def _forget(ctx, bond: str) -> None:
    store = ctx.store
    rec = store.get("Bond", bond)
    with store.transaction():
        for m in rec["slaves"]:
            store.update("PIF", m, bond_slave_of=NULL_REF)
        master = rec["master"]
        if store.exists("PIF", master):
            P.delete_record(store, master)
        store.delete("Bond", bond)


HANDLERS = {"Bond.create": create, "Bond.destroy": destroy}
