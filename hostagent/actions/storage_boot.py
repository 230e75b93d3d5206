"""Storage at start-up: SM records, re-attaching SRs, settling interrupted work,
and the embedded default's "Local storage".

`start()` runs once per start, after the journal is running and before any
listener opens, in this order:

1. SM records are made to match this host's drivers.
2. Every PBD of this host recorded as attached is attached again (the driver's
   attach also finishes or undoes its own half-done steps, such as a VHD branch
   interrupted mid-rename); one that cannot be is marked detached.
3. Intents left by a killed agent are settled: work whose answer never reached
   the client is rolled back. A volume an interrupted create, clone, snapshot
   or copy made is destroyed unless a record for it was committed (then the
   operation had finished and only the intent's removal was lost); an SR whose
   create was interrupted loses its new storage unless its record exists. A
   resize cannot be undone (storage only grows), so it is finished: the scan
   below records the size the volume has. An intent whose SR cannot be
   attached stays for the next start.
4. Every attached SR is scanned, so records match storage: no record without a
   volume, no volume without a record.
5. On the first start, a `file` SR "Local storage" is made under the state
   dir and becomes the pool's default SR.
"""

import logging
import os

from ..backends.storage import StorageError
from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from . import pool_storage
from . import sr as sr_actions
from . import storage_records as R
from .sm import sync_sm_records

log = logging.getLogger("hostagent.storage")

LOCAL_SR_NAME = "Local storage"
LOCAL_SR_DIR = "sr"
LOCAL_SR_KEYS = {"i18n-key": "local-storage", "i18n-original-value-name_label": LOCAL_SR_NAME}
VOLUME_INTENTS = ("vdi_create", "vdi_clone", "vdi_snapshot", "vdi_copy")


async def start(ctx, state_dir: str) -> None:
    """`ctx` is the runtime's internal context (no call, no task)."""
    sync_sm_records(ctx.store, ctx.ports.storage.sm_records())
    attached = await _reattach(ctx)
    await settle_intents(ctx)
    for sr, drv in attached:
        try:
            await R.rescan(ctx, sr, drv)
        except ApiError as e:
            log.error("cannot scan SR %s at start-up: %s", drv.sr_uuid, e.description)
    await ensure_local_storage(ctx, state_dir)


async def _reattach(ctx):
    """[(SR ref, driver)] of this host's PBDs recorded as attached, attached again."""
    store, host = ctx.store, ctx.host
    out = []
    for pbd, rec in list(store.all("PBD").items()):
        if rec["host"] != host or not rec["currently_attached"]:
            continue
        try:
            drv = R.driver_for(ctx, rec["SR"], rec["device_config"])
            await ctx.ports.storage.call(drv, "attach")
        except (ApiError, StorageError) as e:
            log.error("cannot re-attach SR %s: %s", store.get("SR", rec["SR"])["uuid"], e)
            with store.transaction():
                store.set("PBD", pbd, "currently_attached", False)
            continue
        out.append((rec["SR"], drv))
    return out


async def settle_intents(ctx) -> None:
    intents = ctx.ports.intents
    for key, intent in intents.recorded():
        try:
            done = await _settle(ctx, intent)
        except (ApiError, StorageError) as e:
            log.error("cannot settle interrupted %s: %s (kept for the next start)", intent, e)
            continue
        if done:
            await intents.forget(key)


async def _settle(ctx, intent: dict) -> bool:
    """Roll back (or finish) one interrupted operation; False to keep it for later."""
    op, storage = intent.get("op"), ctx.ports.storage
    if op == "sr_create":
        if ctx.store.by_uuid("SR", intent["sr"]) is None:
            # the host it was made on (intents written before they named one: this host's)
            host = ctx.store.by_uuid("host", intent.get("host") or ctx.store.get("host", ctx.host)["uuid"])
            if host is None:
                log.warning("interrupted creation of SR %s on a host no longer in the pool: dropped", intent["sr"])
                return True
            log.warning("rolling back the interrupted creation of SR %s", intent["sr"])
            storage = ctx.on_host(host).ports.storage  # a member's: on its agent (HOST_OFFLINE: kept)
            drv = storage.driver(intent["type"], intent["sr"], intent["device_config"])
            await sr_actions.undo_create(storage, drv)
        return True
    if op == "vdi_resize":
        log.warning("finishing the interrupted resize of VDI %s: the scan records its size",
                    intent.get("vdi"))
        return True
    if op not in VOLUME_INTENTS:
        log.error("dropping an intent of unknown kind: %s", intent)
        return True
    sr = ctx.store.by_uuid("SR", intent["sr"])
    if sr is None:
        return True  # the SR was forgotten: its storage is no longer ours to clean
    ctx = pool_storage.sr_host_ctx(ctx, sr)  # a member's SR: on its agent (HOST_OFFLINE: kept)
    storage = ctx.ports.storage
    _, pbd = R.local_pbd(ctx, sr)
    if pbd is None or not pbd["currently_attached"]:
        log.warning("SR %s is not attached: interrupted %s kept for later", intent["sr"], op)
        return False
    drv = R.driver_for(ctx, sr, pbd["device_config"])
    recorded = {R.volume_of(ctx.store, v) for v in ctx.store.get("SR", sr)["VDIs"]}
    for uuid in intent["new"]:
        if uuid in recorded:
            continue  # finished and recorded: only the intent's removal was lost
        log.warning("rolling back interrupted %s: destroying volume %s in SR %s", op, uuid,
                    intent["sr"])
        try:
            await storage.call(drv, "vol_destroy", uuid)
        except StorageError as e:
            if e.code != "VDI_MISSING":  # never made, or undone by the driver's own recovery
                raise
    return True


async def ensure_local_storage(ctx, state_dir: str) -> None:
    """On the first start: a file SR "Local storage" under the state dir, the default SR and
    the host's suspend_image_sr."""
    store = ctx.store
    pool_ref, pool = next(iter(store.all("pool").items()))
    if store.private_of("pool", pool_ref).get("local_storage"):
        return
    sr = next((r for r, rec in store.all("SR").items()
               if rec["other_config"].get("i18n-key") == "local-storage"), None)
    if sr is None and pool["default_SR"] == NULL_REF:
        location = os.path.join(state_dir, LOCAL_SR_DIR)
        os.makedirs(location, mode=0o700, exist_ok=True)
        sr = await sr_actions.create(ctx, ctx.host, {"location": location}, 0,
                                     LOCAL_SR_NAME, "", "file", "user", False, {})
        log.info("created the local storage SR at %s", location)
    with store.transaction():
        if sr is not None:
            store.set("SR", sr, "other_config", {**store.get("SR", sr)["other_config"],
                                                 **LOCAL_SR_KEYS})
            if pool["default_SR"] == NULL_REF:
                store.set("pool", pool_ref, "default_SR", sr)
            if store.get("host", ctx.host)["suspend_image_sr"] == NULL_REF:  # as xapi's installer
                store.set("host", ctx.host, "suspend_image_sr", sr)
        store.set_private("pool", pool_ref, local_storage=True)
    await ctx.durable()
