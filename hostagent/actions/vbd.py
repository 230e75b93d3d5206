"""VBD: a VM's disk and CD drives, as records.

VBD.create checks what xapi checks, in its order (VDI type, CD rules, ISO-only
CDs, read-only VDIs, the device slot; `userdevice` "autodetect" takes the
lowest free slot). Insert and eject give CD drives their media, in a running VM
also live (vm_devices.change_media). Plug and unplug (hot-plug into a running VM)
are in vm_devices.py; for a halted VM a VBD is only a record, plugged when the VM
starts.
"""

import re
from typing import Iterable, Optional

from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from ..rpc.implicit import check_refs

# VDI types a VBD may carry (others are the host's own: HA statefiles, redo logs, ...)
ATTACHABLE_TYPES = ("system", "user", "ephemeral", "suspend", "crashdump", "metadata")
DEVICE_NAME = re.compile(r"^(?:xvd|hd|sd)([a-z]+)$")
HVM_SLOTS = range(0, 4)  # emulated IDE: hda..hdd
PV_SLOTS = range(0, 255)


# ------------------------------------------------------------------ device slots
def disk_number(device: str) -> Optional[int]:
    """The slot a userdevice names: "0", "1", ... or a disk name (xvdb, hdb, sdb -> 1)."""
    if device.isdigit():
        return int(device)
    m = DEVICE_NAME.match(device)
    if m is None:
        return None
    n = 0
    for ch in m.group(1):
        n = n * 26 + (ord(ch) - ord("a") + 1)
    return n - 1


def device_name(number: int) -> str:
    """xvd + letters for a slot (0 -> xvda, 26 -> xvdaa)."""
    letters = ""
    n = number + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(ord("a") + rem) + letters
    return "xvd" + letters


def is_hvm(vm: dict) -> bool:
    if vm["domain_type"] in ("hvm",):
        return True
    return vm["domain_type"] == "unspecified" and vm["HVM_boot_policy"] != ""


def allowed_slots(vm: dict) -> range:
    return HVM_SLOTS if is_hvm(vm) else PV_SLOTS


def used_slots(vbds: Iterable[dict]) -> set:
    used = set()
    for vbd in vbds:
        for name in (vbd["userdevice"], vbd["device"]):
            n = disk_number(name) if name else None
            if n is not None:
                used.add(n)
    return used


def choose_slot(userdevice: str, vm: dict, vbds: Iterable[dict]) -> str:
    """The userdevice a new VBD gets: INVALID_DEVICE for a name that is no slot (or
    "autodetect" with none free), DEVICE_ALREADY_EXISTS for a taken one."""
    used = used_slots(vbds)
    if userdevice == "autodetect":
        free = [n for n in allowed_slots(vm) if n not in used]
        if not free:
            raise ApiError("INVALID_DEVICE", userdevice)
        return str(free[0])
    n = disk_number(userdevice)
    if n is None:
        raise ApiError("INVALID_DEVICE", userdevice)
    if n in used:
        raise ApiError("DEVICE_ALREADY_EXISTS", userdevice)
    return userdevice


# ------------------------------------------------------------------------ records
def _assert_iso(ctx, vdi: str) -> None:
    sr = ctx.store.all("SR").get(ctx.need("VDI", vdi)["SR"])
    content_type = sr["content_type"] if sr else ""
    if content_type != "iso":
        raise ApiError("VDI_IS_NOT_ISO", vdi, content_type)


def create(ctx, args):
    check_refs(ctx.store, "VBD", args)
    vm = ctx.need("VM", args.get("VM", NULL_REF))
    vdi, empty = args.get("VDI", NULL_REF), args.get("empty", False)
    vbd_type, mode = args.get("type", "Disk"), args.get("mode", "RW")
    if not empty:
        vtype = ctx.need("VDI", vdi)["type"]
        if vtype not in ATTACHABLE_TYPES:
            raise ApiError("VDI_INCOMPATIBLE_TYPE", vdi, vtype)
    if vbd_type == "CD" and mode != "RO":
        raise ApiError("VBD_CDS_MUST_BE_READONLY")
    if vbd_type != "CD" and empty:
        raise ApiError("VBD_NOT_REMOVABLE_MEDIA", "in constructor")
    if vbd_type == "CD" and not empty:
        _assert_iso(ctx, vdi)
    if mode == "RW" and not empty and ctx.store.get("VDI", vdi)["read_only"]:
        raise ApiError("VDI_READONLY", vdi)
    vbds = [ctx.store.get("VBD", v) for v in vm["VBDs"] if ctx.store.exists("VBD", v)]
    values = dict(args)
    values.update(userdevice=choose_slot(args.get("userdevice", ""), vm, vbds), device="",
                  currently_attached=False)
    with ctx.store.transaction():
        return ctx.store.create("VBD", values)


def destroy(ctx, self):
    rec = ctx.need("VBD", self)
    if rec["currently_attached"]:
        vm = ctx.store.all("VM").get(rec["VM"])
        raise ApiError("OPERATION_NOT_ALLOWED", f"VBD '{rec['uuid']}' still attached to "
                                                f"'{vm['uuid'] if vm else rec['VM']}'")
    with ctx.store.transaction():
        ctx.store.delete("VBD", self)
    return ""


def _not_suspended(ctx, rec) -> None:
    vm = ctx.need("VM", rec["VM"])
    if vm["power_state"] == "Suspended":
        raise ApiError("VM_BAD_POWER_STATE", rec["VM"], "halted, running", "suspended")


def _live(ctx, rec) -> bool:
    """The drive belongs to a running (or paused) domain: its media change there too."""
    return rec["currently_attached"] and ctx.need("VM", rec["VM"])["power_state"] in ("Running", "Paused")


async def insert(ctx, vbd, vdi):
    rec = ctx.need("VBD", vbd)
    _not_suspended(ctx, rec)
    _assert_iso(ctx, vdi)
    if not ctx.store.get("VDI", vdi)["managed"]:
        raise ApiError("VDI_NOT_MANAGED", vdi)
    if _live(ctx, rec):
        from .vm_devices import change_media  # vm_devices builds on this module
        await change_media(ctx, vbd, vdi, "VBD.insert")
    with ctx.store.transaction():
        ctx.store.update("VBD", vbd, VDI=vdi, empty=False)
    return ""


async def eject(ctx, vbd):
    rec = ctx.need("VBD", vbd)
    _not_suspended(ctx, rec)
    if _live(ctx, rec):
        from .vm_devices import change_media
        await change_media(ctx, vbd, NULL_REF, "VBD.eject")
    with ctx.store.transaction():
        ctx.store.update("VBD", vbd, VDI=NULL_REF, empty=True)
    return ""


def set_mode(ctx, self, value):
    rec = ctx.need("VBD", self)
    vm = ctx.need("VM", rec["VM"])
    if vm["power_state"] != "Halted":
        raise ApiError("VM_BAD_POWER_STATE", rec["VM"], "halted", vm["power_state"].lower())
    with ctx.store.transaction():
        ctx.store.set("VBD", self, "mode", value)
    return ""


HANDLERS = {
    "VBD.create": create,
    "VBD.destroy": destroy,
    "VBD.insert": insert,
    "VBD.eject": eject,
    "VBD.set_mode": set_mode,
}
