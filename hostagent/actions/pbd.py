"""PBD: the connection of an SR to a host; plugging it attaches the storage.

PBD.plug attaches the SR with the PBD's device_config and scans it, so the
SR's records match its storage from then on; unplug detaches it, refused
(VDI_IN_USE) while a VBD has one of its VDIs attached. Both are no-ops when
the PBD is already in the wanted state, as in xapi.
"""

import logging

from ..datamodel.errors import ApiError
from ..rpc.implicit import check_refs
from . import pool_storage as on
from . import storage_records as R
from .storage_errors import translated

log = logging.getLogger("hostagent.pbd")


def create(ctx, args):
    check_refs(ctx.store, "PBD", args)
    host, sr = args.get("host"), args.get("SR")
    ctx.need("host", host)
    ctx.need("SR", sr)
    for pbd in ctx.store.get("SR", sr)["PBDs"]:
        if ctx.store.get("PBD", pbd)["host"] == host:
            raise ApiError("PBD_EXISTS", sr, host, pbd)
    device_config = dict(args.get("device_config", {}))
    R.check_device_config(device_config)
    with ctx.store.transaction():
        return ctx.store.create("PBD", {"host": host, "SR": sr, "device_config": device_config,
                                        "other_config": dict(args.get("other_config", {})),
                                        "currently_attached": False})


def destroy(ctx, self):
    rec = ctx.need("PBD", self)
    if rec["currently_attached"]:
        raise ApiError("OPERATION_NOT_ALLOWED", "PBD is currently attached")
    with ctx.store.transaction():
        ctx.store.delete("PBD", self)
    return ""


@on.pbd_host
@R.to_completion
async def plug(ctx, self):
    rec = ctx.need("PBD", self)
    R.require_this_host(ctx, rec["host"], "PBD.plug")
    if rec["currently_attached"]:
        return ""
    await attach(ctx, self)
    return ""


async def attach(ctx, pbd: str, scan: bool = True) -> None:
    """Attach the PBD's SR on this host, mark the PBD attached, then scan the SR."""
    rec = ctx.store.get("PBD", pbd)
    sr = rec["SR"]
    drv = R.driver_for(ctx, sr, rec["device_config"])
    with translated(ctx):
        await ctx.ports.storage.call(drv, "attach")
    if not ctx.store.exists("PBD", pbd):
        return
    with ctx.store.transaction():
        ctx.store.set("PBD", pbd, "currently_attached", True)
    if scan:
        try:
            await R.rescan(ctx, sr, drv)
        except ApiError as e:  # attached all the same; the next scan may do better
            log.warning("SR %s attached, but its scan failed: %s", drv.sr_uuid, e.description)


@on.pbd_host
@R.to_completion
async def unplug(ctx, self):
    rec = ctx.need("PBD", self)
    R.require_this_host(ctx, rec["host"], "PBD.unplug")
    if not rec["currently_attached"]:
        return ""
    sr = rec["SR"]
    in_use = R.vbds_attached_in_sr(ctx.store, sr)
    if in_use:
        raise ApiError("VDI_IN_USE", in_use[0], "unplug")
    drv = R.driver_for(ctx, sr, rec["device_config"])
    with translated(ctx):
        await ctx.ports.storage.call(drv, "detach")
    if ctx.store.exists("PBD", self):
        with ctx.store.transaction():
            ctx.store.set("PBD", self, "currently_attached", False)
    return ""


def set_device_config(ctx, self, value):
    ctx.need("PBD", self)
    R.check_device_config(value)
    with ctx.store.transaction():
        ctx.store.set("PBD", self, "device_config", value)
    return ""


HANDLERS = {
    "PBD.create": create,
    "PBD.destroy": destroy,
    "PBD.plug": plug,
    "PBD.unplug": unplug,
    "PBD.set_device_config": set_device_config,
}
