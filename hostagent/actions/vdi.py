"""VDI: virtual disks made, changed and removed through the SR's driver.

Every operation that changes storage records an intent first (actions/intents.py)
and writes its records only from what the driver returned, so an answer that
says "done" is true on storage, and an agent killed half-way is settled at the
next start (storage_boot). Clone and snapshot rescan the SR afterwards: a VHD
branch turns the original into a hidden base ("base copy", managed=false) with
the original's uuid kept by the new leaf, and the scan records all of that.
Refusals that depend only on state (VDI_IN_USE while attached, the driver's
capabilities) are in the operation-locking table, oprules.VDI.
"""

import logging
import re

from ..backends.storage import Progress
from ..datamodel.errors import ApiError
from ..rpc.implicit import check_refs
from . import pool_storage as on
from . import storage_records as R
from .storage_errors import translated

log = logging.getLogger("hostagent.vdi")

POLL = 0.2  # seconds between progress reports of a copy
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
API_FIELDS = ("name_label", "name_description", "type", "sharable", "read_only", "other_config",
              "xenstore_data", "sm_config", "tags")
# what a clone, snapshot or copy takes over from its original (as xapi)
INHERITED = ("name_label", "name_description", "type", "sharable", "other_config", "xenstore_data",
             "on_boot", "allow_caching")


def _managed(ctx, vdi: str) -> dict:
    rec = ctx.need("VDI", vdi)
    if not rec["managed"]:
        raise ApiError("VDI_NOT_MANAGED", vdi)
    return rec


async def _stat(ctx, drv):
    with translated(ctx):
        return await ctx.ports.storage.call(drv, "stat")


# ---------------------------------------------------------------------------- create
@on.sr_in_record
@R.to_completion
async def create(ctx, args):
    check_refs(ctx.store, "VDI", args)
    sr = args.get("SR")
    ctx.need("SR", sr)
    R.require_capability(ctx, sr, "VDI_CREATE")
    drv = R.plugged_driver(ctx, sr)
    size = args.get("virtual_size", 0)
    R.check_space(ctx, sr, await _stat(ctx, drv), size)
    storage = ctx.ports.storage
    async with R.making_volume(ctx, "vdi_create", drv) as (new, _):
        with translated(ctx):
            vol = await storage.call(drv, "vol_create", new, size)
            stat = await storage.call(drv, "stat")
        ctx.need("SR", sr)
        with ctx.store.transaction():
            ref = R.create_vdi(ctx.store, sr, vol, **{k: args[k] for k in API_FIELDS if k in args})
            R.set_sizes(ctx.store, sr, stat)
        await ctx.durable()
    return ref


@on.sr_of_vdi
@R.to_completion
async def destroy(ctx, self):
    rec = _managed(ctx, self)
    sr = rec["SR"]
    drv = R.plugged_driver(ctx, sr)
    with translated(ctx):
        await ctx.ports.storage.call(drv, "vol_destroy", R.volume_of(ctx.store, self))
    if ctx.store.exists("VDI", self):
        with ctx.store.transaction():
            R.delete_vdi(ctx.store, self)
    # a VHD base nothing reads through any more went with it: records follow storage
    try:
        await R.rescan(ctx, sr, drv)
    except ApiError as e:  # the disk is gone all the same; the next scan tidies up
        log.warning("VDI destroyed, but the scan of its SR failed: %s", e.description)
    return ""


# ---------------------------------------------------------------------------- resize
@on.sr_of_vdi
@R.to_completion
async def resize(ctx, vdi, size):
    rec = _managed(ctx, vdi)
    sr = rec["SR"]
    drv = R.plugged_driver(ctx, sr)
    R.check_space(ctx, sr, await _stat(ctx, drv), size, current=rec["virtual_size"])
    storage, intents = ctx.ports.storage, ctx.ports.intents
    key = await intents.begin("vdi_resize", drv.sr_uuid, [], vdi=rec["uuid"])
    try:
        with translated(ctx):
            vol = await storage.call(drv, "vol_resize", R.volume_of(ctx.store, vdi), size)
            stat = await storage.call(drv, "stat")
        with ctx.store.transaction():
            if ctx.store.exists("VDI", vdi):
                R.update_vdi(ctx.store, vdi, vol, base=False)
            if ctx.store.exists("SR", sr):
                R.set_sizes(ctx.store, sr, stat)
        await ctx.durable()
    finally:
        await intents.end(key)
    return ""


# ------------------------------------------------------------------- clone, snapshot
def _inherited(rec: dict) -> dict:
    return {k: rec[k] for k in INHERITED}


@R.to_completion
async def _branch(ctx, vdi: str, op: str, snapshot: bool) -> str:
    rec = _managed(ctx, vdi)
    sr = rec["SR"]
    drv = R.plugged_driver(ctx, sr)
    storage = ctx.ports.storage
    values = _inherited(rec)
    if snapshot:
        values.update(is_a_snapshot=True, snapshot_of=vdi, snapshot_time=R.now(ctx))
    async with R.making_volume(ctx, f"vdi_{op}", drv, of=rec["uuid"]) as (new, key):
        with translated(ctx):
            vol = await storage.call(drv, f"vol_{op}", R.volume_of(ctx.store, vdi), new)
        if not ctx.store.exists("VDI", vdi):
            values.pop("snapshot_of", None)
        try:
            refs = await R.rescan(ctx, sr, drv, exclude_intent=key, values={vol.uuid: values})
        except ApiError as e:
            log.warning("VDI.%s made volume %s, but the scan of its SR failed: %s; recording the "
                        "volume from what the driver said", op, vol.uuid, e.description)
            refs = {}
        ref = refs.get(vol.uuid)
        if ref is None:  # the scan failed: record the new volume from what the driver said
            with ctx.store.transaction():
                ref = R.create_vdi(ctx.store, sr, vol, **values)
        await ctx.durable()
    return ref


@on.sr_of_vdi
async def clone(ctx, vdi, driver_params):
    return await _branch(ctx, vdi, "clone", snapshot=False)


@on.sr_of_vdi
async def snapshot(ctx, vdi, driver_params):
    return await _branch(ctx, vdi, "snapshot", snapshot=True)


# ------------------------------------------------------------------------------ copy
@R.to_completion
async def copy(ctx, vdi, sr, base_vdi, into_vdi):
    rec = _managed(ctx, vdi)
    ctx.need("SR", sr)
    on.same_host(ctx, rec["SR"], sr, "VDI.copy")
    ctx = on.sr_host_ctx(ctx, sr)
    for name, ref in (("base_vdi", base_vdi), ("into_vdi", into_vdi)):
        if not R.is_null(ref):
            ctx.need("VDI", ref)
            raise ApiError("VALUE_NOT_SUPPORTED", name, ref,
                           "copying onto an existing VDI is not supported; give OpaqueRef:NULL")
    source = R.plugged_driver(ctx, rec["SR"])
    R.require_capability(ctx, sr, "VDI_CREATE")
    dest = R.plugged_driver(ctx, sr)
    R.check_space(ctx, sr, await _stat(ctx, dest), rec["virtual_size"])
    storage = ctx.ports.storage
    async with R.making_volume(ctx, "vdi_copy", dest, of=rec["uuid"]) as (new, _):
        vol = await _copy_volume(ctx, source, R.volume_of(ctx.store, vdi), dest, new)
        with translated(ctx):
            stat = await storage.call(dest, "stat")
        ctx.need("SR", sr)
        with ctx.store.transaction():
            ref = R.create_vdi(ctx.store, sr, vol, **_inherited(rec), read_only=False)
            R.set_sizes(ctx.store, sr, stat)
        await ctx.durable()
    return ref


async def _copy_volume(ctx, source, volume: str, dest, new: str):
    """vol_copy_to in a worker, its progress reported on the task while it runs; a
    cancelled task stops the copy (the driver removes the half-made volume)."""
    watch = Progress()
    ctx.cancellable(True)
    try:
        job = ctx.ports.storage.begin(source, "vol_copy_to", volume, dest, new, watch)
        reported = 0.0
        while not job.done:
            await ctx.sleep(POLL)
            if watch.fraction - reported >= 0.01:
                reported = watch.fraction
                ctx.progress(min(reported, 0.99))
            try:
                ctx.checkpoint()
            except ApiError:
                watch.cancel = True
        with translated(ctx):
            return await job.wait()
    finally:
        ctx.cancellable(False)


# ---------------------------------------------------------------- records and setters
async def introduce(ctx, uuid, name_label, name_description, sr, vdi_type, sharable, read_only,
                    other_config, location, xenstore_data, sm_config, managed, virtual_size,
                    physical_utilisation, metadata_of_pool, is_a_snapshot, snapshot_time,
                    snapshot_of):
    """Record a volume that exists in the SR; the sizes come from storage, not the caller."""
    if uuid and not UUID_RE.match(uuid):
        raise ApiError("UUID_INVALID", "VDI", uuid)
    check_refs(ctx.store, "VDI", {"SR": sr, "snapshot_of": snapshot_of,
                                  "metadata_of_pool": metadata_of_pool})
    ctx = on.sr_host_ctx(ctx, sr)
    drv = R.plugged_driver(ctx, sr)
    with translated(ctx):
        volumes = await ctx.ports.storage.call(drv, "scan")
    vol = next((v for v in volumes if v.location == location or (not location and v.uuid == uuid)),
               None)
    if vol is None:
        raise ApiError("VDI_LOCATION_MISSING", sr, location)
    ctx.need("SR", sr)
    if any(R.volume_of(ctx.store, r) == vol.uuid for r in ctx.store.get("SR", sr)["VDIs"]):
        raise ApiError("LOCATION_NOT_UNIQUE", sr, location)
    values = dict(uuid=uuid, type=vdi_type, sharable=sharable, read_only=read_only or vol.read_only,
                  other_config=other_config, xenstore_data=xenstore_data, sm_config=sm_config,
                  metadata_of_pool=metadata_of_pool, is_a_snapshot=is_a_snapshot,
                  snapshot_time=snapshot_time, snapshot_of=snapshot_of,
                  name_description=name_description)
    if name_label or managed:
        values["name_label"] = name_label
    with ctx.store.transaction():
        return R.create_vdi(ctx.store, sr, vol, base=not managed, **values)


def forget(ctx, vdi):
    ctx.need("VDI", vdi)
    with ctx.store.transaction():
        R.delete_vdi(ctx.store, vdi)
    return ""


@on.sr_of_vdi
async def update(ctx, vdi):
    rec = ctx.need("VDI", vdi)
    drv = R.plugged_driver(ctx, rec["SR"])
    with translated(ctx):
        vol = await ctx.ports.storage.call(drv, "vol_stat", R.volume_of(ctx.store, vdi))
    if ctx.store.exists("VDI", vdi):
        with ctx.store.transaction():
            R.update_vdi(ctx.store, vdi, vol, base=not rec["managed"])
    return ""


def set_on_boot(ctx, self, value):
    """Needs a driver with VDI_RESET_ON_BOOT (as xapi); none of ours has it yet."""
    rec = ctx.need("VDI", self)
    R.require_capability(ctx, rec["SR"], "VDI_RESET_ON_BOOT")
    R.require_plugged(on.sr_host_ctx(ctx, rec["SR"]), rec["SR"])
    with ctx.store.transaction():
        ctx.store.set("VDI", self, "on_boot", value)
    return ""


HANDLERS = {
    "VDI.create": create,
    "VDI.destroy": destroy,
    "VDI.resize": resize,
    "VDI.clone": clone,
    "VDI.snapshot": snapshot,
    "VDI.copy": copy,
    "VDI.introduce": introduce,
    "VDI.forget": forget,
    "VDI.update": update,
    "VDI.set_on_boot": set_on_boot,
}
