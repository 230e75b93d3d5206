"""Hot-plug: VBD.plug / unplug / unplug_force, CD media change (VBD.insert / eject)
and VIF.plug / unplug on running VMs.

The operation locking table has checked what xapi checks (the VM runs,
DEVICE_ALREADY_ATTACHED, DEVICE_ALREADY_DETACHED, VBD_NOT_UNPLUGGABLE).
Where the hypervisor cannot hot-plug (libvirt's test driver) the call is
refused with OPERATION_NOT_ALLOWED saying so, and nothing changes. A disk for
the control domain is attached on the host by the storage alone.
"""

import dataclasses
import logging

from ..backends.storage import StorageError
from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from . import domain_policy as policy
from . import storage_records as R
from . import vif_links
from . import vm_runtime as run
from .hypervisor_errors import translated
from .pool_forward import on_resident_of_device, resident_host
from .storage_errors import translated as storage_translated
from .vbd import device_name, disk_number

log = logging.getLogger("hostagent.vm")


async def _capable(ctx, what: str, flag: str):
    caps = await ctx.ports.domains.capabilities()
    if not getattr(caps, flag):
        raise ApiError("OPERATION_NOT_ALLOWED", f"the {caps.driver} hypervisor cannot hot-plug {what}")
    return caps


async def _disk(ctx, vbd: str, caps, attach: bool):
    """The VBD's disk description; with `attach`, its volume attached first."""
    store = ctx.store
    rec = store.get("VBD", vbd)
    vm_rec = store.get("VM", rec["VM"])
    kind = policy.boot_kind(vm_rec)
    if rec["empty"] or rec["VDI"] == NULL_REF:
        return policy.disk(caps.driver, kind, rec, None, None), None
    vdi_rec = ctx.need("VDI", rec["VDI"])
    drv = R.plugged_driver(ctx, vdi_rec["SR"])
    volume = R.volume_of(store, rec["VDI"])
    attachment = None
    if attach:
        with storage_translated(ctx):
            attachment = await ctx.ports.storage.attach(drv, volume, rec["mode"] == "RW" and not vdi_rec["read_only"],
                                                        rec["uuid"])
    return policy.disk(caps.driver, kind, rec, vdi_rec, attachment), (vdi_rec["SR"], volume, drv)


async def _dom0_plug(ctx, vbd: str, rec: dict) -> str:
    """A disk for the control domain: the volume attached on this host, where dom0's tools
    find it (VBD.runtime_properties: kind and path); no hypervisor is involved."""
    if rec["empty"] or rec["VDI"] == NULL_REF:
        raise ApiError("VBD_IS_EMPTY", vbd)
    vdi_rec = ctx.need("VDI", rec["VDI"])
    drv = R.plugged_driver(ctx, vdi_rec["SR"])
    with storage_translated(ctx):
        attachment = await ctx.ports.storage.attach(drv, R.volume_of(ctx.store, rec["VDI"]),
                                                    rec["mode"] == "RW" and not vdi_rec["read_only"], rec["uuid"])
    slot = disk_number(rec["userdevice"])
    with ctx.store.transaction():
        ctx.store.update("VBD", vbd, currently_attached=True,
                         device=device_name(slot) if slot is not None else rec["userdevice"],
                         runtime_properties={"kind": attachment.kind, "path": attachment.path,
                                             "format": attachment.format})
    return ""


async def vbd_plug(ctx, self):
    rec = ctx.need("VBD", self)
    if ctx.store.get("VM", rec["VM"])["is_control_domain"]:
        return await _dom0_plug(ctx, self, rec)
    caps = await _capable(ctx, "disks", "hotplug_disk")
    vm = rec["VM"]
    disk, volume = await _disk(ctx, self, caps, attach=True)
    attached = list(ctx.store.private_of("VM", vm).get("attached") or [])
    if volume is not None:
        await run.remember_attached(ctx, vm, attached + [[volume[0], volume[1], rec["uuid"]]])
    try:
        with translated(vm, "VBD.plug"):
            await ctx.ports.domains.call("attach_disk", ctx.store.get("VM", vm)["uuid"], disk)
    except BaseException:
        if volume is not None:
            await ctx.ports.storage.detach(volume[2], volume[1], rec["uuid"])
            await run.remember_attached(ctx, vm, attached)
        raise
    with ctx.store.transaction():
        ctx.store.update("VBD", self, currently_attached=True, device=disk.target)
    return ""


async def change_media(ctx, vbd: str, vdi: str, operation: str) -> None:
    """A running VM's CD drive gets the ISO `vdi` (VBD.insert) or, with NULL_REF, none
    (VBD.eject): the new volume attached first, the drive changed live, the old volume
    detached last; a refusal leaves the drive and the attachments as they were. On the
    host the VM runs on."""
    rec = ctx.need("VBD", vbd)
    ctx = ctx.on_host(resident_host(ctx, rec["VM"]))
    vm = rec["VM"]
    caps = await ctx.ports.domains.capabilities()
    if not caps.live_media:
        raise ApiError("OPERATION_NOT_ALLOWED",
                       f"the {caps.driver} hypervisor cannot change the media of a running VM's CD drive")
    vm_rec = ctx.store.get("VM", vm)
    attached = list(ctx.store.private_of("VM", vm).get("attached") or [])
    old = [a for a in attached if a[2:3] == [rec["uuid"]]]
    kept = [a for a in attached if a not in old]
    vdi_rec = attachment = new = None
    if vdi != NULL_REF:
        vdi_rec = ctx.need("VDI", vdi)
        drv = R.plugged_driver(ctx, vdi_rec["SR"])
        new = [vdi_rec["SR"], R.volume_of(ctx.store, vdi), rec["uuid"]]
        await run.remember_attached(ctx, vm, attached + [new])
        with storage_translated(ctx):
            attachment = await ctx.ports.storage.attach(drv, new[1], False, rec["uuid"])
    drive = {**rec, "VDI": vdi, "empty": vdi == NULL_REF}
    disk = policy.disk(caps.driver, policy.boot_kind(vm_rec), drive, vdi_rec, attachment)
    disk = dataclasses.replace(disk, target=rec["device"] or disk.target)
    try:
        with translated(vm, operation):
            await ctx.ports.domains.call("change_media", vm_rec["uuid"], disk)
    except BaseException:
        if new is not None:
            await ctx.ports.storage.detach(drv, new[1], rec["uuid"])
            await run.remember_attached(ctx, vm, attached)
        raise
    for sr, volume, owner in old:
        try:
            await ctx.ports.storage.detach(R.plugged_driver(ctx, sr), volume, owner)
        except (ApiError, StorageError) as e:
            log.warning("detaching the ejected volume %s of SR %s: %s", volume, sr, e)
    await run.remember_attached(ctx, vm, kept + ([new] if new else []))


async def _vbd_unplug(ctx, vbd: str) -> str:
    rec = ctx.need("VBD", vbd)
    vm = rec["VM"]
    if ctx.store.get("VM", vm)["is_control_domain"]:
        vdi_rec = ctx.need("VDI", rec["VDI"])
        await ctx.ports.storage.detach(R.plugged_driver(ctx, vdi_rec["SR"]), R.volume_of(ctx.store, rec["VDI"]),
                                       rec["uuid"])
        with ctx.store.transaction():
            ctx.store.update("VBD", vbd, currently_attached=False, runtime_properties={})
        return ""
    caps = await _capable(ctx, "disks", "hotplug_disk")
    # attaching again for the same VBD gives its attachment back: the device as plugged
    disk, volume = await _disk(ctx, vbd, caps, attach=True)
    disk = dataclasses.replace(disk, target=rec["device"] or disk.target)
    with translated(vm, "VBD.unplug"):
        await ctx.ports.domains.call("detach_disk", ctx.store.get("VM", vm)["uuid"], disk)
    if volume is not None:
        await ctx.ports.storage.detach(volume[2], volume[1], rec["uuid"])
        attached = [a for a in ctx.store.private_of("VM", vm).get("attached") or [] if a[1] != volume[1]]
        await run.remember_attached(ctx, vm, attached)
    with ctx.store.transaction():
        ctx.store.set("VBD", vbd, "currently_attached", False)
    return ""


async def vbd_unplug(ctx, self):
    return await _vbd_unplug(ctx, self)


async def vbd_unplug_force(ctx, self):
    return await _vbd_unplug(ctx, self)


async def _vif(ctx, vif: str, plug: bool) -> str:
    await _capable(ctx, "network interfaces", "hotplug_nic")
    rec = ctx.need("VIF", vif)
    nic = policy.nic(rec, ctx.need("network", rec["network"]))
    domid = ctx.store.get("VM", rec["VM"])["domid"]
    if plug and domid >= 0:  # the backend named as xapi names it, for the agent to find
        nic = dataclasses.replace(nic, target=vif_links.backend_name(domid, rec["device"]))
    op = "attach_nic" if plug else "detach_nic"
    backend = vif_links.backend_of(ctx, vif)
    if plug:
        await vif_links.ensure_network_bridge(ctx, rec["network"])
    with translated(rec["VM"], "VIF.plug" if plug else "VIF.unplug"):
        await ctx.ports.domains.call(op, ctx.store.get("VM", rec["VM"])["uuid"], nic)
    with ctx.store.transaction():
        ctx.store.set("VIF", vif, "currently_attached", plug)
    if plug:
        await vif_links.attach_backend(ctx, vif)  # its backend on the bridge, configured
    elif backend is not None and ctx.ports.links is not None:
        await vif_links.release_backend(ctx, backend)  # a backend slow to go leaves the bridge now
    return ""


async def vif_plug(ctx, self):
    return await _vif(ctx, self, True)


async def vif_unplug(ctx, self):
    return await _vif(ctx, self, False)


# done on the host the VM runs on (a pool member's through its agent: actions/pool_forward.py)
HANDLERS = {name: on_resident_of_device(name.split(".")[0])(fn) for name, fn in (
    ("VBD.plug", vbd_plug), ("VBD.unplug", vbd_unplug), ("VBD.unplug_force", vbd_unplug_force),
    ("VIF.plug", vif_plug), ("VIF.unplug", vif_unplug))}
