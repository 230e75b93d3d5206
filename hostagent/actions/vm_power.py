"""VM power: start, pause, suspend, resume, shutdown, reboot, power_state_reset.

The operation locking table (oprules.VM) has already checked the power state,
templates, snapshots and concurrency when these run. Each action changes the
domain through the domains port first and the records after, so a killed
agent finds records the start-up reconciliation can put right (domains.py).
"""

import logging

from ..backends.hypervisor import NeedsHVM
from ..backends.storage import StorageError
from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from . import domain_policy as policy
from . import eliloader, placement, vif_links
from . import pool_forward as forward
from . import storage_records as R
from . import suspend_images as images
from . import vdi as vdi_actions
from . import vm_runtime as run
from .hypervisor_errors import translated

log = logging.getLogger("hostagent.vm")

POLL = 0.2  # seconds between looks at a domain that is shutting down
CLEAN_TIMEOUT = 1200.0  # how long a clean shutdown or reboot may take, as xapi
IMAGE_ALIGN = 2 << 20  # suspend VDIs are whole VHD blocks


# ------------------------------------------------------------------ checks
def check_memory(ctx, vm: str, rec: dict) -> None:
    problem = policy.memory_problem(rec)
    if problem:
        raise ApiError("MEMORY_CONSTRAINT_VIOLATION", problem)
    needed, available = rec["memory_static_max"], free_memory(ctx, vm)
    if needed > available:
        raise ApiError("HOST_NOT_ENOUGH_FREE_MEMORY", needed, available)


def free_memory(ctx, vm: str) -> int:
    """What ctx's host can still give a VM (placement.free_memory)."""
    return placement.free_memory(ctx.store, ctx.host, vm)


# ------------------------------------------------------------------ start
async def _boot(ctx, vm: str, paused: bool, restore_from: str = "") -> None:
    """Attach the disks, make the domain (fresh or from a saved image), write the records."""
    store = ctx.store
    domains = ctx.ports.domains
    caps = await domains.capabilities()
    await vif_links.ensure_vm_bridges(ctx, vm)
    installing = None if restore_from else await eliloader.prepare(ctx, vm, caps.driver)
    try:
        disks = await run.attach_disks(ctx, vm, caps.driver)
    except BaseException:
        await eliloader.abandon(ctx, vm, installing)
        raise
    description = policy.describe(store.get("VM", vm), disks, run.nics(ctx, vm))
    if installing is not None:  # eliloader's round (or, on KVM, the kernel pygrub would boot)
        description = installing.apply(description)
    try:
        with translated(vm, "VM.start"):
            try:
                if restore_from:
                    state = await domains.call("restore", description.uuid, restore_from, description)
                    if paused:
                        await domains.call("pause", description.uuid)
                else:
                    state = await domains.call("start", description, paused)
            except NeedsHVM:
                raise ApiError("VM_HVM_REQUIRED", vm) from None
    except BaseException:
        await run.detach_disks(ctx, vm)
        await eliloader.abandon(ctx, vm, installing)
        raise
    await eliloader.started(ctx, vm, installing)
    await run.write_vm_data(ctx, vm, state.domid)
    guest = await run.guest_facts(ctx, vm, state.domid)
    if store.exists("VM", vm):
        run.mark_running(ctx, vm, state, disks, paused=paused, guest=guest)
    log.info("VM %s started (domid %d%s)", store.get("VM", vm)["name_label"], state.domid,
             ", paused" if paused else "")


async def _start(ctx, vm, start_paused):
    rec = ctx.need("VM", vm)
    loader = policy.bootloader_problem(rec)
    if loader is not None:
        raise ApiError("UNKNOWN_BOOTLOADER", vm, loader)
    check_memory(ctx, vm, rec)
    await _boot(ctx, vm, start_paused)
    return ""


async def start(ctx, vm, start_paused, force):
    ctx.need("VM", vm)
    host = placement.choose(ctx.store, vm, ctx.host)  # affinity, SRs, networks, memory
    with placement.reserved(ctx.store, vm, host):
        return await _start(ctx.on_host(host), vm, start_paused)


async def start_on(ctx, vm, host, start_paused, force):
    ctx.need("VM", vm)
    ctx.need("host", host)
    placement.check(ctx.store, vm, host, ctx.host)  # live, enabled, SRs, networks, memory
    with placement.reserved(ctx.store, vm, host):
        return await _start(ctx.on_host(host), vm, start_paused)  # a member's: on its agent


# ------------------------------------------------------------------ stop
async def _gone(ctx, vm: str) -> None:
    """The domain has stopped: detach its storage and record the VM Halted."""
    await run.detach_disks(ctx, vm)
    if ctx.store.exists("VM", vm):
        run.mark_halted(ctx, vm)


async def _wait_gone(ctx, vm: str, uuid: str, timeout: float) -> bool:
    waited = 0.0
    while waited < timeout:
        state = await ctx.ports.domains.call("state", uuid)
        if state is None or state.state in ("shutoff", "crashed"):
            if state is not None:
                await ctx.ports.domains.call("destroy", uuid)
            return True
        await ctx.sleep(POLL)
        waited += POLL
        ctx.checkpoint()
    return False


async def need_pv_drivers(ctx, vm: str, rec: dict, feature: str) -> None:
    """On Xen an HVM guest shuts down, reboots or suspends cleanly only through its PV
    drivers, which announce `feature` (feature-shutdown, feature-suspend) in xenstore, as
    the guest metrics' `other` shows: VM_MISSING_PV_DRIVERS otherwise, as xapi. PV guests
    always have the protocol; KVM uses ACPI and saves without the guest's help."""
    caps = await ctx.ports.domains.capabilities()
    if caps.driver != "Xen" or policy.boot_kind(rec) != "hvm":
        return
    metrics = ctx.store.all("VM_guest_metrics").get(rec["guest_metrics"])
    if metrics is None or metrics["other"].get(feature) != "1":
        raise ApiError("VM_MISSING_PV_DRIVERS", vm)


async def _clean_request(ctx, vm: str, rec: dict, reboot: bool) -> None:
    await need_pv_drivers(ctx, vm, rec, "feature-shutdown")
    caps = await ctx.ports.domains.capabilities()
    acpi = caps.acpi_shutdown and policy.boot_kind(rec) == "hvm"
    with translated(vm, "VM.clean_reboot" if reboot else "VM.clean_shutdown"):
        await ctx.ports.domains.call("reboot" if reboot else "shutdown", rec["uuid"], acpi)


async def clean_shutdown(ctx, vm):
    rec = ctx.need("VM", vm)
    ctx.cancellable()
    await _clean_request(ctx, vm, rec, reboot=False)
    with translated(vm, "VM.clean_shutdown"):
        if not await _wait_gone(ctx, vm, rec["uuid"], CLEAN_TIMEOUT):
            raise ApiError("VM_SHUTDOWN_TIMEOUT", vm, str(CLEAN_TIMEOUT))
    await _gone(ctx, vm)
    return ""


async def hard_shutdown(ctx, vm):
    rec = ctx.need("VM", vm)
    if rec["power_state"] == "Suspended":
        await _drop_suspend_image(ctx, vm)
        return ""
    with translated(vm, "VM.hard_shutdown"):
        await ctx.ports.domains.call("destroy", rec["uuid"])
    await _gone(ctx, vm)
    return ""


async def shutdown(ctx, vm):
    """Clean if the guest can, else (or on a timeout) hard, as xapi's VM.shutdown."""
    rec = ctx.need("VM", vm)
    if rec["power_state"] == "Running":
        try:
            await _clean_request(ctx, vm, rec, reboot=False)
            with translated(vm, "VM.shutdown"):
                if await _wait_gone(ctx, vm, rec["uuid"], CLEAN_TIMEOUT):
                    await _gone(ctx, vm)
                    return ""
        except ApiError as e:
            log.info("clean shutdown of %s failed (%s); stopping it hard", vm, e.description)
    return await hard_shutdown(ctx, vm)


async def clean_reboot(ctx, vm):
    rec = ctx.need("VM", vm)
    await _clean_request(ctx, vm, rec, reboot=True)
    return ""


async def hard_reboot(ctx, vm):
    rec = ctx.need("VM", vm)
    with translated(vm, "VM.hard_reboot"):
        await ctx.ports.domains.call("destroy", rec["uuid"])
    await run.detach_disks(ctx, vm)
    try:
        await _boot(ctx, vm, False)
    except BaseException:
        if ctx.store.exists("VM", vm):
            run.mark_halted(ctx, vm)  # it stopped and did not come back
        raise
    return ""


def power_state_reset(ctx, vm):
    """Records only: the VM is Halted, whatever its host said (recovery after a host died).
    Storage it held is detached by the next start's reconciliation."""
    rec = ctx.need("VM", vm)
    if rec["is_control_domain"]:
        raise ApiError("OPERATION_NOT_ALLOWED", "the control domain cannot be reset")
    run.mark_halted(ctx, vm)
    return ""


# ------------------------------------------------------------------ pause
async def _pause(ctx, vm: str, pause: bool) -> str:
    rec = ctx.need("VM", vm)
    with translated(vm, "VM.pause" if pause else "VM.unpause"):
        await ctx.ports.domains.call("pause" if pause else "unpause", rec["uuid"])
    with ctx.store.transaction():
        ctx.store.set("VM", vm, "power_state", "Paused" if pause else "Running")
    return ""


async def pause(ctx, vm):
    return await _pause(ctx, vm, True)


async def unpause(ctx, vm):
    return await _pause(ctx, vm, False)


# ------------------------------------------------------------------ suspend
def suspend_sr(ctx, vm: str, rec: dict) -> str:
    """As xapi: the VM's suspend_SR, else the pool's suspend_image_SR, else the host's
    suspend_image_sr, each only if it has a PBD on the VM's host; then the pool's default SR
    on the same terms."""
    store = ctx.store
    pool = next(iter(store.all("pool").values()))
    host = store.get("host", ctx.host)
    pbds = store.all("PBD")
    here = {pbds[p]["SR"] for p in host["PBDs"] if p in pbds}  # as xapi: a PBD there, plugged or not
    for sr in (rec["suspend_SR"], pool["suspend_image_SR"], host["suspend_image_sr"], pool["default_SR"]):
        if sr != NULL_REF and store.exists("SR", sr) and sr in here:
            return sr
    raise ApiError("VM_NO_SUSPEND_SR", vm)


async def suspend(ctx, vm):
    rec = ctx.need("VM", vm)
    await need_pv_drivers(ctx, vm, rec, "feature-suspend")
    caps = await ctx.ports.domains.capabilities()
    if not caps.save_restore:
        raise ApiError("OPERATION_NOT_ALLOWED", f"the {caps.driver} hypervisor cannot suspend VMs")
    sr = suspend_sr(ctx, vm, rec)
    image = images.image(ctx, rec)
    with translated(vm, "VM.suspend"):
        await ctx.ports.domains.call("save", rec["uuid"], image)
    vdi, keep_image = None, False
    try:
        size = await images.size(ctx, image)
        vdi = await vdi_actions.create(ctx, {
            "name_label": f"Suspend image of {rec['name_label']}", "name_description": "", "SR": sr,
            "virtual_size": (size + IMAGE_ALIGN - 1) // IMAGE_ALIGN * IMAGE_ALIGN, "type": "suspend",
            "sharable": False, "read_only": False, "other_config": {"suspend-image-of": rec["uuid"]},
            "xenstore_data": {}, "sm_config": {}, "tags": []})
        drv = R.plugged_driver(ctx, sr)
        await ctx.ports.storage.call(drv, "vol_fill_from", R.volume_of(ctx.store, vdi), image)
        with ctx.store.transaction():
            ctx.store.set_private("VDI", vdi, image_size=size)
    except BaseException:
        keep_image = await _unsuspend(ctx, vm, rec, image, vdi)
        raise
    finally:
        if not keep_image:
            await images.remove(ctx, image)
    await run.detach_disks(ctx, vm)
    run.mark_halted(ctx, vm, "Suspended", vdi)
    log.info("VM %s suspended into VDI %s (%d bytes)", rec["name_label"], vdi, size)
    return ""


async def _unsuspend(ctx, vm: str, rec: dict, image: str, vdi) -> bool:
    """The image could not be kept (an SR full, say): the guest runs on from it, or, if even
    that fails, the VM is Halted; no half-made suspend VDI stays. True when the image must be
    kept: its host could not be reached to restore from it (a pool member lost meanwhile), and
    it is the only copy of the guest's memory."""
    if vdi is not None and ctx.store.exists("VDI", vdi):
        try:
            await vdi_actions.destroy(ctx, vdi)
        except (ApiError, StorageError) as e:  # the restore matters more: try it all the same
            log.error("suspend of VM %s failed; its half-made suspend VDI stays: %s", rec["name_label"], e)
    try:
        await ctx.ports.domains.call("restore", rec["uuid"], image, None)
        log.warning("suspend of VM %s failed; the guest runs on from its image", rec["name_label"])
        return False
    except ApiError as e:  # its host is not reachable: the image stays where it is
        log.error("suspend of VM %s failed and its host cannot restore it now (%s); image %s kept",
                  rec["name_label"], " ".join(e.description), image)
        return True
    except Exception as e:  # noqa: BLE001 - the domain is gone either way: record that
        log.error("suspend of VM %s failed and the guest could not run on (%s): Halted", rec["name_label"], e)
        await _gone(ctx, vm)
        return False


async def resume(ctx, vm, start_paused, force):
    ctx.need("VM", vm)
    host = placement.choose(ctx.store, vm, ctx.host)  # where its suspend image's SR is plugged
    with placement.reserved(ctx.store, vm, host):
        return await _resume(ctx.on_host(host), vm, start_paused)


async def _resume(ctx, vm, start_paused):
    rec = ctx.need("VM", vm)
    check_memory(ctx, vm, rec)
    vdi = rec["suspend_VDI"]
    vdi_rec = ctx.need("VDI", vdi)
    image = images.image(ctx, rec)
    drv = R.plugged_driver(ctx, vdi_rec["SR"])
    size = ctx.store.private_of("VDI", vdi).get("image_size", vdi_rec["virtual_size"])
    await ctx.ports.storage.call(drv, "vol_dump_to", R.volume_of(ctx.store, vdi), image, size)
    try:
        await _boot(ctx, vm, start_paused, restore_from=image)
    finally:
        await images.remove(ctx, image)
    await vdi_actions.destroy(ctx, vdi)
    return ""


async def resume_on(ctx, vm, host, start_paused, force):
    ctx.need("VM", vm)
    ctx.need("host", host)
    placement.check(ctx.store, vm, host, ctx.host)  # its suspend image's SR plugged there, ...
    with placement.reserved(ctx.store, vm, host):
        return await _resume(ctx.on_host(host), vm, start_paused)


async def _drop_suspend_image(ctx, vm: str) -> None:
    vdi = ctx.store.get("VM", vm)["suspend_VDI"]
    run.mark_halted(ctx, vm)
    if ctx.store.exists("VDI", vdi):
        await vdi_actions.destroy(ctx, vdi)


HANDLERS = {f"VM.{f.__name__}": f for f in (start, start_on, resume, resume_on, power_state_reset)}
# done on the host the VM runs on (a pool member's through its agent: actions/pool_forward.py)
HANDLERS.update({f"VM.{f.__name__}": forward.on_resident(f) for f in (
    pause, unpause, clean_shutdown, hard_shutdown, shutdown, clean_reboot, hard_reboot)})
HANDLERS["VM.suspend"] = forward.on_resident(suspend)
