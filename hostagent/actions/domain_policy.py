"""From a VM's records to the neutral domain description the hypervisor port renders.

Pure functions: the lifecycle actions gather the records and the storage
attachments, this module decides what the domain is. Driver differences
that are policy, not XML (disk names, what boots how), are decided here by
the driver's libvirt type name ("Xen", "QEMU", "TEST").
"""

from typing import Iterable, List, Optional

from ..backends import domain as D
from .vbd import is_hvm

MiB = 1 << 20
# other_config key: a Unix socket path for the guest's first serial port (emulated serial:
# Xen HVM and KVM), for automation that talks to the guest's console
SERIAL_SOCKET_KEY = "hostagent-serial-socket"
ON_EXIT = {"destroy": D.DESTROY, "restart": D.RESTART, "preserve": D.PRESERVE,
           "rename_restart": D.RENAME_RESTART, "coredump_and_destroy": D.DESTROY,
           "coredump_and_restart": D.RESTART}


def boot_kind(vm: dict) -> str:
    if vm["domain_type"] == "pvh":
        return D.PVH
    return D.HVM if is_hvm(vm) else D.PV


# PV_bootloader names a program dom0 runs as root on the guest's disk: only these, as xenopsd
# knows only its own (pygrub, eliloader); never a path a client chose
BOOTLOADERS = ("", "eliloader", "pygrub")


def bootloader_problem(vm: dict):
    """The UNKNOWN_BOOTLOADER parameters' bootloader, or None when the VM's is known."""
    loader = vm["PV_bootloader"]
    return None if loader in BOOTLOADERS or boot_kind(vm) == D.HVM else loader


def boot(vm: dict) -> D.Boot:
    kind = boot_kind(vm)
    params = vm["HVM_boot_params"]
    if kind == D.HVM:
        return D.Boot(kind, order=params.get("order", "cd") or "cd", firmware=params.get("firmware", "bios"),
                      kernel=vm["PV_kernel"], ramdisk=vm["PV_ramdisk"], cmdline=vm["PV_args"])
    loader = vm["PV_bootloader"]
    if loader in ("", "eliloader") or vm["PV_kernel"]:
        loader = ""  # a kernel of its own: booted directly (eliloader's installs set it)
    return D.Boot(kind, bootloader=loader, bootloader_args=vm["PV_bootloader_args"], kernel=vm["PV_kernel"],
                  ramdisk=vm["PV_ramdisk"], cmdline=" ".join(a for a in (vm["PV_legacy_args"], vm["PV_args"]) if a))


def disk_target(driver: str, kind: str, slot: int, cdrom: bool) -> str:
    """The guest's name for the disk in `slot`: xvdX for Xen PV and PVH, hdX for Xen HVM
    (emulated IDE), vdX for KVM disks (virtio) and sdX for its CD drives, hdX on the test driver."""
    if driver == "QEMU":
        prefix = "sd" if cdrom else "vd"
    elif driver == "Xen":
        prefix = "hd" if kind == D.HVM else "xvd"
    else:
        prefix = "hd"
    return prefix + _letters(slot)


def _letters(n: int) -> str:
    out, n = "", n + 1
    while n:
        n, rem = divmod(n - 1, 26)
        out = chr(ord("a") + rem) + out
    return out


def disk(driver: str, kind: str, vbd: dict, vdi: Optional[dict], attachment) -> D.Disk:
    """`attachment` is the storage port's answer (kind file|block|nbd, path, format), or None
    for an empty CD drive."""
    slot = int(vbd["userdevice"])
    cdrom = vbd["type"] == "CD"
    target = disk_target(driver, kind, slot, cdrom)
    common = dict(userdevice=slot, target=target, kind=D.CDROM if cdrom else D.DISK,
                  read_only=cdrom or vbd["mode"] == "RO", bootable=vbd["bootable"],
                  serial=(vdi or {}).get("uuid", "")[:20])
    if attachment is None:
        return D.Disk(source_type=D.EMPTY, **common)
    fmt = {"vhd": "vpc", "iso": "raw"}.get(attachment.format, attachment.format)
    source_type = {"file": D.FILE, "block": D.BLOCK, "nbd": D.NBD}[attachment.kind]
    return D.Disk(source_type=source_type, source=attachment.path, format=fmt, **common)


def nic(vif: dict, network: dict) -> D.Nic:
    mtu = int(vif["other_config"].get("mtu") or vif["MTU"] or network["MTU"] or 1500)
    return D.Nic(device=int(vif["device"]), mac=vif["MAC"], bridge=network["bridge"], mtu=mtu)


def describe(vm: dict, disks: Iterable[D.Disk], nics: Iterable[D.Nic]) -> D.Domain:
    platform = vm["platform"]
    params = vm["VCPUs_params"]
    on = lambda name, default: ON_EXIT.get(vm[name], default)  # noqa: E731
    return D.Domain(
        uuid=vm["uuid"], name=domain_name(vm),
        memory_max=vm["memory_static_max"], memory=vm["memory_dynamic_max"],
        vcpus_max=max(1, vm["VCPUs_max"]), vcpus=max(1, min(vm["VCPUs_at_startup"], vm["VCPUs_max"])),
        boot=boot(vm), disks=tuple(sorted(disks, key=lambda d: d.userdevice)),
        nics=tuple(sorted(nics, key=lambda n: n.device)),
        vcpu_weight=_int(params.get("weight")), vcpu_cap=_int(params.get("cap")),
        vnc=vm["other_config"].get("disable_pv_vnc") != "1" or boot_kind(vm) == D.HVM,
        serial_socket=vm["other_config"].get(SERIAL_SOCKET_KEY, ""),
        on_poweroff=on("actions_after_shutdown", D.DESTROY), on_reboot=on("actions_after_reboot", D.RESTART),
        on_crash=on("actions_after_crash", D.DESTROY),
        acpi=_flag(platform, "acpi", True), apic=_flag(platform, "apic", True), pae=_flag(platform, "pae", True),
        viridian=_flag(platform, "viridian", False), nested_hvm=_flag(platform, "nested-virt", False),
        extra={k: v for k, v in platform.items() if k not in ("acpi", "apic", "pae", "viridian", "nested-virt")},
    )


def domain_name(vm: dict) -> str:
    """libvirt names must be unique per host: the uuid is, the label need not be."""
    return vm["uuid"]


def memory_problem(vm: dict) -> Optional[str]:
    """The constraint a VM's memory settings break, as xapi words it, or None."""
    smin, dmin, dmax, smax = (vm[k] for k in ("memory_static_min", "memory_dynamic_min",
                                               "memory_dynamic_max", "memory_static_max"))
    if not smin <= dmin <= dmax <= smax:
        return "memory_static_min <= memory_dynamic_min <= memory_dynamic_max <= memory_static_max"
    if smax <= 0:
        return "memory_static_max > 0"
    return None


def free_slots(used: Iterable[str], slots: range) -> List[str]:
    taken = {u for u in used}
    return [str(n) for n in slots if str(n) not in taken]


def _flag(platform: dict, key: str, default: bool) -> bool:
    value = platform.get(key)
    if value is None:
        return default
    return value.lower() in ("1", "true", "yes", "on")


def _int(value) -> Optional[int]:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None
