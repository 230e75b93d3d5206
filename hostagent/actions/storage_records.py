"""What the storage actions share: finding an SR's driver on this host, keeping
VDI records in step with what a driver reports, and the SR's size fields.

Records follow storage, never the reverse: a VDI record is made from a volume
the driver returned, and `sync_vdis` makes an SR's records match a scan.
Volume uuids are VDI uuids (the file driver's `<uuid>.vhd`, the LVM driver's
`LV-<uuid>`); the volume's uuid is also kept in the record's private fields, so
a record whose uuid had to differ (the same file copied into two SRs behind
our back) still names its volume.
"""

import contextlib
import functools
import logging
import uuid as uuidlib

from ..backends.storage import StorageError
from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from ..rpc.coerce import now_text
from .storage_errors import translated

log = logging.getLogger("hostagent.storage")

BASE_NAME = "base copy"  # what xapi's VHD SRs call a hidden parent
VHD_PARENT = "vhd-parent"


# ------------------------------------------------------------------ hosts, PBDs, drivers
def require_this_host(ctx, host: str, work: str) -> None:
    """Work bound to `host` runs only on that host's agent. Until pools forward it, another
    host's work is refused: HOST_OFFLINE [host], as xapi answers when it cannot reach one."""
    if host != ctx.host:
        ctx.need("host", host)
        log.warning("refusing %s for host %s: this agent is host %s", work, host, ctx.host)
        raise ApiError("HOST_OFFLINE", host)


def local_pbd(ctx, sr: str):
    """(ref, record) of the SR's PBD for this host, or (None, None)."""
    host = ctx.host
    for ref in ctx.store.get("SR", sr)["PBDs"]:
        rec = ctx.store.all("PBD").get(ref)
        if rec is not None and rec["host"] == host:
            return ref, rec
    return None, None


def require_plugged(ctx, sr: str):
    """This host's PBD of the SR, which must be plugged (SR_HAS_NO_PBDS, as xapi)."""
    ctx.need("SR", sr)
    ref, pbd = local_pbd(ctx, sr)
    if pbd is None or not pbd["currently_attached"]:
        raise ApiError("SR_HAS_NO_PBDS", sr)
    return ref, pbd


def driver_for(ctx, sr: str, device_config: dict):
    rec = ctx.store.get("SR", sr)
    with translated(ctx):
        return ctx.ports.storage.driver(rec["type"], rec["uuid"], device_config)


def plugged_driver(ctx, sr: str):
    """The driver of an SR that is plugged on this host."""
    _, pbd = require_plugged(ctx, sr)
    return driver_for(ctx, sr, pbd["device_config"])


def check_device_config(device_config: dict) -> None:
    if "SRmaster" in device_config:  # as xapi: the key is the agent's own, never a client's
        raise ApiError("VALUE_NOT_SUPPORTED", "SRmaster", device_config["SRmaster"],
                       "This key is for internal use only")


def features(store, sr_type: str):
    """The capabilities of the SM record for sr_type, or None when there is none."""
    for sm in store.all("SM").values():
        if sm["type"] == sr_type:
            return set(sm["features"]) | set(sm["capabilities"])
    return None


def require_capability(ctx, sr: str, capability: str) -> None:
    caps = features(ctx.store, ctx.need("SR", sr)["type"])
    if caps is not None and capability not in caps:
        raise ApiError("SR_OPERATION_NOT_SUPPORTED", sr)


def thin(store, sr: str) -> bool:
    caps = features(store, store.get("SR", sr)["type"])
    return caps is not None and "THIN_PROVISIONING" in caps


def check_space(ctx, sr: str, stat, requested: int, current: int = 0) -> None:
    """SR_FULL [requested, maximum] when a disk of `requested` bytes (replacing one of
    `current`) cannot fit: thin SRs refuse a disk larger than their capacity, thick
    ones a growth beyond their free space."""
    if thin(ctx.store, sr):
        maximum = stat.physical_size
    else:
        maximum = current + max(0, stat.physical_size - stat.physical_utilisation)
    if requested > maximum:
        raise ApiError("SR_FULL", requested, maximum)


def to_completion(handler):
    """A storage handler run to its end even if the client hangs up mid-call: storage work
    that has started finishes with its records (or rolls back) instead of stopping between
    a volume and its record."""
    @functools.wraps(handler)
    async def run(ctx, *args, **kwargs):
        return await ctx.shielded(handler(ctx, *args, **kwargs))
    return run


def now(ctx) -> str:
    return now_text(ctx.clock())


# ------------------------------------------------------------------------------- VDIs
def volume_of(store, vdi: str) -> str:
    """The uuid of the volume a VDI record stands for."""
    return store.private_of("VDI", vdi).get("volume") or store.get("VDI", vdi)["uuid"]


def _vdi_attached(store, vdi: str) -> bool:
    vbds = store.all("VBD")
    return any(vbds[v]["currently_attached"] for v in store.get("VDI", vdi)["VBDs"] if v in vbds)


def delete_vdi(store, vdi: str) -> None:
    """Delete a VDI record with its VBDs (a disk that is gone cannot be plugged)."""
    for vbd in list(store.get("VDI", vdi)["VBDs"]):
        if store.exists("VBD", vbd):
            store.delete("VBD", vbd)
    store.delete("VDI", vdi)


def _storage_fields(vol, base: bool, sm_config: dict) -> dict:
    sm_config = {k: v for k, v in sm_config.items() if k != VHD_PARENT}
    if vol.parent:
        sm_config[VHD_PARENT] = vol.parent
    return {"virtual_size": vol.virtual_size, "physical_utilisation": vol.physical_utilisation,
            "location": vol.location, "managed": not base, "missing": False, "sm_config": sm_config}


def create_vdi(store, sr: str, vol, base: bool = False, **values) -> str:
    """A new VDI record for a volume (inside a transaction); `values` are the API's fields."""
    fields = {"name_label": BASE_NAME if base else (vol.name or ""), "name_description": "",
              "type": "user", "sharable": False, "read_only": vol.read_only, "other_config": {},
              "xenstore_data": {}, "sm_config": {}}
    fields.update(values)
    fields.update(_storage_fields(vol, base, fields["sm_config"]), SR=sr)
    uuid = fields.pop("uuid", None) or vol.uuid
    fields["uuid"] = str(uuidlib.uuid4()) if store.by_uuid("VDI", uuid) is not None else uuid
    return store.create("VDI", fields, private={"volume": vol.uuid})


def update_vdi(store, vdi: str, vol, base: bool = False) -> None:
    """Refresh a VDI record's storage facts from its volume (inside a transaction)."""
    rec = store.get("VDI", vdi)
    new = _storage_fields(vol, base, rec["sm_config"])
    if vol.read_only:
        new["read_only"] = True  # bases and ISO images; a user's read_only flag is kept
    for name, value in new.items():
        if rec[name] != value:
            store.set("VDI", vdi, name, value)


def sync_vdis(store, sr: str, volumes, skip=frozenset(), values=None) -> dict:
    """Make the SR's VDI records match `volumes` (a full scan), inside a transaction.

    New volumes get records; records of vanished volumes are forgotten with their
    VBDs, except while a VBD has them attached (then they are kept, missing=true).
    Volumes in `skip` (made by operations still running) are left to those operations;
    `values` maps a volume uuid to the API fields its new record gets.
    Returns volume uuid -> VDI ref."""
    records = {volume_of(store, r): r for r in store.get("SR", sr)["VDIs"] if store.exists("VDI", r)}
    parents = {v.parent for v in volumes if v.parent}
    out = {}
    for vol in volumes:
        if vol.uuid in skip:
            continue
        base = vol.uuid in parents
        ref = records.get(vol.uuid)
        if ref is None:
            ref = create_vdi(store, sr, vol, base, **(values or {}).get(vol.uuid, {}))
        else:
            update_vdi(store, ref, vol, base)
        out[vol.uuid] = ref
    found = {v.uuid for v in volumes}
    for uuid, ref in records.items():
        if uuid in found or uuid in skip:
            continue
        if _vdi_attached(store, ref):
            store.set("VDI", ref, "missing", True)
        else:
            delete_vdi(store, ref)
    return out


def set_sizes(store, sr: str, stat) -> None:
    """Copy a driver's stat into the SR record (inside a transaction)."""
    store.update("SR", sr, physical_size=stat.physical_size,
                 physical_utilisation=stat.physical_utilisation,
                 virtual_allocation=stat.virtual_allocation)


async def rescan(ctx, sr: str, drv, exclude_intent: str = None, values=None) -> dict:
    """Scan the SR and bring its records and sizes in step (one transaction); the
    volumes of operation `exclude_intent` are synced too, new ones getting `values`.
    Returns volume uuid -> VDI ref."""
    storage = ctx.ports.storage
    with translated(ctx):
        volumes = await storage.call(drv, "scan")
        stat = await storage.call(drv, "stat")
    if not ctx.store.exists("SR", sr):
        return {}
    skip = ctx.ports.intents.in_flight(drv.sr_uuid, exclude=exclude_intent)
    with ctx.store.transaction():
        out = sync_vdis(ctx.store, sr, volumes, skip, values)
        set_sizes(ctx.store, sr, stat)
    return out


@contextlib.asynccontextmanager
async def making_volume(ctx, op: str, drv, **intent):
    """The uuid for a volume about to be made, and its intent's key.

    The intent is durable before the driver runs, so a crash is rolled back at the next
    start; a failure here discards the volume at once, and the intent ends, unless the
    storage's host could not be reached to discard it (a pool member lost meanwhile): the
    intent then stays for the next start to settle."""
    new = str(uuidlib.uuid4())
    intents = ctx.ports.intents
    key = await intents.begin(op, drv.sr_uuid, [new], **intent)
    settled = True
    try:
        yield new, key
    except BaseException:
        settled = await discard(ctx, drv, [new])
        raise
    finally:
        if settled:
            await intents.end(key)
        # else it stays, durable and pending: scans leave its volume alone until it is settled


async def discard(ctx, drv, uuids) -> bool:
    """After a failed operation: destroy the volumes it was making that have no record
    (best effort; the driver has usually undone its own half-done work already). False when
    the storage's host could not be reached (HOST_OFFLINE, CANNOT_CONTACT_HOST)."""
    sr = ctx.store.by_uuid("SR", drv.sr_uuid)
    recorded = {volume_of(ctx.store, v) for v in ctx.store.get("SR", sr)["VDIs"]} if sr else set()
    for uuid in uuids:
        if uuid in recorded:
            continue
        try:
            await ctx.ports.storage.call(drv, "vol_destroy", uuid)
        except StorageError as e:
            if e.code != "VDI_MISSING":
                log.warning("cannot remove volume %s of a failed operation: %s", uuid, e)
        except ApiError as e:
            log.warning("cannot remove volume %s of a failed operation now (%s): kept for the next start",
                        uuid, " ".join(e.description))
            return False
    return True


async def update_sizes(ctx, sr: str, drv) -> None:
    with translated(ctx):
        stat = await ctx.ports.storage.call(drv, "stat")
    if ctx.store.exists("SR", sr):
        with ctx.store.transaction():
            set_sizes(ctx.store, sr, stat)


def vbds_attached_in_sr(store, sr: str) -> list:
    """VDIs of the SR that a VBD has attached (plugged into a VM) now."""
    vbds = store.all("VBD")
    out = []
    for vdi in store.get("SR", sr)["VDIs"]:
        rec = store.all("VDI").get(vdi)
        if rec and any(vbds[v]["currently_attached"] and not vbds[v]["empty"]
                       for v in rec["VBDs"] if v in vbds):
            out.append(vdi)
    return out


def is_null(ref: str) -> bool:
    return ref == NULL_REF
