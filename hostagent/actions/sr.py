"""SR: making, finding, scanning and removing storage repositories.

SR.create makes the storage, then records the SR with a plugged PBD for the
host and the VDIs its scan found, in one transaction: a failure anywhere
before that leaves no record (and the new storage is removed again). The
operation-locking table (oprules.SR) refuses destroy and forget while a PBD is
plugged, and destroy while managed VDIs remain, as xapi does.
"""

import logging
import re
import uuid as uuidlib
import xml.etree.ElementTree as ET

from ..backends.storage import StorageError
from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from . import pool_storage as on
from . import storage_records as R
from .storage_errors import translated

log = logging.getLogger("hostagent.sr")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@on.given_host
@R.to_completion
async def create(ctx, host, device_config, physical_size, name_label, name_description, sr_type,
                 content_type, shared, sm_config):
    ctx.need("host", host)
    R.require_this_host(ctx, host, "SR.create")
    R.check_device_config(device_config)
    storage, intents = ctx.ports.storage, ctx.ports.intents
    sr_uuid = str(uuidlib.uuid4())
    with translated(ctx):
        drv = storage.driver(sr_type, sr_uuid, device_config)
        content_type = content_type or storage.content_type(sr_type)
        await storage.validate(drv)
    key = await intents.begin("sr_create", sr_uuid, type=sr_type, device_config=device_config,
                              host=ctx.store.get("host", host)["uuid"])  # rolled back on that host only
    try:
        with translated(ctx):
            await storage.call(drv, "create", physical_size)
            try:
                await storage.call(drv, "attach")
                volumes = await storage.call(drv, "scan")
                stat = await storage.call(drv, "stat")
            except StorageError:
                await undo_create(storage, drv)
                raise
        with ctx.store.transaction():
            sr = ctx.store.create("SR", {
                "uuid": sr_uuid, "name_label": name_label, "name_description": name_description,
                "type": sr_type, "content_type": content_type, "shared": shared,
                "sm_config": sm_config, "other_config": {}})
            ctx.store.create("PBD", {"host": host, "SR": sr, "device_config": device_config,
                                     "currently_attached": True, "other_config": {}})
            R.sync_vdis(ctx.store, sr, volumes)
            R.set_sizes(ctx.store, sr, stat)
        await ctx.durable()
    finally:
        await intents.end(key)
    log.info("SR %s (%s) created: %s", sr_uuid, sr_type, name_label)
    return sr


async def undo_create(storage, drv) -> None:
    """Best effort: detach and remove storage whose SR.create failed half-way."""
    for op in ("detach", "destroy"):
        try:
            await storage.call(drv, op)
        except StorageError as e:
            log.warning("cannot %s the storage of failed SR %s: %s", op, drv.sr_uuid, e)


def introduce(ctx, uuid, name_label, name_description, sr_type, content_type, shared, sm_config):
    if uuid and not UUID_RE.fullmatch(uuid):  # it names the SR's directories and mount point
        raise ApiError("UUID_INVALID", "SR", uuid)
    uuid = uuid or str(uuidlib.uuid4())
    if ctx.store.by_uuid("SR", uuid) is not None:
        raise ApiError("SR_UUID_EXISTS", uuid)
    with ctx.store.transaction():
        # as xapi: sizes are unknown (-1) until the SR is plugged and scanned
        return ctx.store.create("SR", {
            "uuid": uuid, "name_label": name_label, "name_description": name_description,
            "type": sr_type.lower(), "content_type": content_type, "shared": shared,
            "sm_config": sm_config, "other_config": {}, "physical_size": -1,
            "physical_utilisation": -1, "virtual_allocation": 0})


def _drop_records(store, sr) -> None:
    """Delete the SR's records: PBDs, VDIs (with their VBDs), the SR (in a transaction)."""
    rec = store.get("SR", sr)
    for pbd in list(rec["PBDs"]):
        if store.exists("PBD", pbd):
            store.delete("PBD", pbd)
    for vdi in list(rec["VDIs"]):
        if store.exists("VDI", vdi):
            R.delete_vdi(store, vdi)
    for pool, prec in store.all("pool").items():
        if prec["default_SR"] == sr:
            store.set("pool", pool, "default_SR", NULL_REF)
    store.delete("SR", sr)


def forget(ctx, sr):
    ctx.need("SR", sr)
    with ctx.store.transaction():
        _drop_records(ctx.store, sr)
    return ""


@on.sr
@R.to_completion
async def destroy(ctx, sr):
    rec = ctx.need("SR", sr)
    if rec["other_config"].get("indestructible") == "true":
        raise ApiError("SR_INDESTRUCTIBLE", sr)
    _, pbd = R.local_pbd(ctx, sr)
    if pbd is None:
        raise ApiError("SR_HAS_NO_PBDS", sr)
    drv = R.driver_for(ctx, sr, pbd["device_config"])
    with translated(ctx):
        await ctx.ports.storage.call(drv, "destroy")
    if ctx.store.exists("SR", sr):
        with ctx.store.transaction():
            _drop_records(ctx.store, sr)
    log.info("SR %s destroyed", rec["uuid"])
    return ""


@on.sr
@R.to_completion
async def scan(ctx, sr):
    drv = R.plugged_driver(ctx, sr)
    await R.rescan(ctx, sr, drv)
    rec = ctx.store.all("SR").get(sr)
    if rec is not None and "dirty" in rec["other_config"]:
        with ctx.store.transaction():
            ctx.store.set("SR", sr, "other_config",
                          {k: v for k, v in rec["other_config"].items() if k != "dirty"})
    return ""


@on.sr
async def update(ctx, sr):
    await R.update_sizes(ctx, sr, R.plugged_driver(ctx, sr))
    return ""


@on.given_host
async def probe(ctx, host, device_config, sr_type, sm_config):
    ctx.need("host", host)
    R.require_this_host(ctx, host, "SR.probe")
    storage = ctx.ports.storage
    with translated(ctx):
        drv = storage.driver(sr_type, str(uuidlib.uuid4()), device_config)
        found = await storage.call(drv, "probe")
    return probe_xml(found)


def probe_xml(found) -> str:
    """What probe found as xapi's SRlist document: one <SR> per item, one element per key
    (`uuid` spelled UUID, as xapi's drivers do)."""
    root = ET.Element("SRlist")
    for item in found:
        node = ET.SubElement(root, "SR")
        for key, value in item.items():
            name = "UUID" if key == "uuid" else key
            ET.SubElement(node, name).text = str(value)
    ET.indent(root, "\t")
    return '<?xml version="1.0" ?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def get_supported_types(ctx):
    return ctx.ports.storage.types()


def set_shared(ctx, sr, value):
    rec = ctx.need("SR", sr)
    if not value and len(rec["PBDs"]) > 1:
        raise ApiError("SR_HAS_MULTIPLE_PBDS", rec["PBDs"][0])
    with ctx.store.transaction():
        ctx.store.set("SR", sr, "shared", value)
    return ""


HANDLERS = {
    "SR.create": create,
    "SR.introduce": introduce,
    "SR.forget": forget,
    "SR.destroy": destroy,
    "SR.scan": scan,
    "SR.update": update,
    "SR.probe": probe,
    "SR.get_supported_types": get_supported_types,
    "SR.set_shared": set_shared,
}
