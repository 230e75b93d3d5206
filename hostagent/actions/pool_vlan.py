"""pool.create_VLAN_from_PIF and pool.create_VLAN: one VLAN per host, all or none.

`pool.create_VLAN_from_PIF(pif, network, VLAN)` takes the network `pif` is on,
and for each PIF on that network whose host is live (host_metrics.live) makes
the VLAN with VLAN.create (vlan.py: the same checks, records and links). The
deprecated `pool.create_VLAN(device, network, VLAN)` does the same over every
host's untagged PIF of that device; a host with no such PIF is INVALID_VALUE
[device, <device>], as xapi answers. Both check the tag first (VLAN_TAG_INVALID
[tag]), and when one host's VLAN cannot be made the VLANs made before it are
destroyed again and the error is the one that host's VLAN.create gave. They
return the new VLAN PIFs (the untagged PIFs, plugged by VLAN.create).

Each VLAN's links are made by its host's agent: a pool member's through the master's
call to it (pool_network.py); a member that is not live is left out by create_VLAN_from_PIF,
and is HOST_OFFLINE for create_VLAN (nothing is kept of the VLANs made before it).
"""

import logging

from ..datamodel.errors import ApiError
from . import vlan
from .storage_records import to_completion

log = logging.getLogger("hostagent.network")


def _check_tag(tag) -> int:
    tag = int(tag)
    if not 0 <= tag <= 4094:
        raise ApiError("VLAN_TAG_INVALID", tag)
    return tag


def _live(ctx, host: str) -> bool:
    if host == ctx.host:
        return True
    metrics = ctx.store.get("host", host)["metrics"]
    return ctx.store.exists("host_metrics", metrics) and ctx.store.get("host_metrics", metrics)["live"]


async def _create_all(ctx, tagged_pifs: list, tag: int, network: str) -> list:
    made = []  # each by its PIF's own host (VLAN.create runs there: pool_network.py)
    try:
        for tagged in tagged_pifs:
            made.append(await vlan.create(ctx, tagged, tag, network))
    except ApiError:
        for done in reversed(made):
            try:
                await vlan.destroy(ctx, done)
            except ApiError as e:  # best effort, as xapi: the first error is the answer
                log.warning("cannot undo VLAN %s: %s", done, e.description)
        raise
    return [ctx.store.get("VLAN", v)["untagged_PIF"] for v in made]


@to_completion
async def create_VLAN_from_PIF(ctx, pif, network, VLAN):
    rec = ctx.need("PIF", pif)
    ctx.need("network", network)
    tag = _check_tag(VLAN)
    on_network = ctx.store.get("network", rec["network"])["PIFs"] if ctx.store.exists(
        "network", rec["network"]) else [pif]
    tagged = sorted((p for p in on_network if _live(ctx, ctx.store.get("PIF", p)["host"])),
                    key=lambda p: ctx.store.get("PIF", p)["host"] != ctx.host)  # this host first
    return await _create_all(ctx, tagged, tag, network)


@to_completion
async def create_VLAN(ctx, device, network, VLAN):
    ctx.need("network", network)
    tag = _check_tag(VLAN)
    tagged = []
    for host in sorted(ctx.store.all("host"), key=lambda h: h != ctx.host):
        found = [p for p in ctx.store.get("host", host)["PIFs"]
                 if ctx.store.get("PIF", p)["device"] == device and ctx.store.get("PIF", p)["VLAN"] < 0]
        if not found:
            raise ApiError("INVALID_VALUE", "device", device)
        tagged.append(found[0])
    return await _create_all(ctx, tagged, tag, network)


HANDLERS = {"pool.create_VLAN_from_PIF": create_VLAN_from_PIF, "pool.create_VLAN": create_VLAN}
