"""A domain as the hypervisor port takes it: a neutral, typed description.

The policy (actions/domain_policy.py) fills one from a VM's records; one
renderer per libvirt driver (backends/domxml/) turns it into that driver's
domain XML. Nothing here knows XenAPI records or libvirt's XML: sizes are
bytes, devices are plain values, and a driver's quirks live in its renderer.
"""

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

PV, PVH, HVM = "pv", "pvh", "hvm"
DISK, CDROM = "disk", "cdrom"
FILE, BLOCK, NBD, EMPTY = "file", "block", "nbd", "empty"
DESTROY, RESTART, PRESERVE, RENAME_RESTART = "destroy", "restart", "preserve", "rename-restart"


@dataclass(frozen=True)
class Boot:
    """How the domain boots.

    PV: a bootloader inside dom0 (pygrub, with its arguments) or a kernel, ramdisk
    and command line; PVH: a kernel, ramdisk and command line; HVM: firmware and a
    boot order over disks (c), CD-ROMs (d) and the network (n)."""

    kind: str = HVM
    bootloader: str = ""
    bootloader_args: str = ""
    kernel: str = ""
    ramdisk: str = ""
    cmdline: str = ""
    order: str = "cd"  # HVM: BIOS order, xapi's HVM_boot_params:order
    firmware: str = "bios"  # bios | uefi
    loader: str = ""  # UEFI: the firmware image; empty: the driver's configured default


@dataclass(frozen=True)
class Disk:
    """One block device of the guest."""

    userdevice: int  # the slot: 0, 1, ... (xapi's VBD.userdevice)
    target: str  # the guest's name for it: xvda, vda, hda
    kind: str = DISK  # DISK | CDROM
    source_type: str = FILE  # FILE | BLOCK | NBD | EMPTY (a CD drive with no disc)
    source: str = ""  # a path, a block device, or an NBD server's Unix socket
    format: str = "raw"  # raw | vpc (a parentless VHD) | qcow2
    read_only: bool = False
    bootable: bool = False
    serial: str = ""  # a stable identifier the guest sees (the VDI's uuid)


@dataclass(frozen=True)
class Nic:
    """One network interface of the guest, bridged to a dom0 bridge."""

    device: int  # xapi's VIF.device: 0, 1, ...
    mac: str
    bridge: str
    mtu: int = 1500
    script: str = ""  # Xen's vif hotplug script; empty: the driver's default
    target: str = ""  # the backend interface name (vif<domid>.<device>); empty: the driver's


@dataclass(frozen=True)
class Domain:
    uuid: str
    name: str
    memory_max: int  # bytes: the most the domain may ever have (static max)
    memory: int  # bytes: what it starts with (dynamic max / target)
    vcpus_max: int
    vcpus: int  # at start-up
    boot: Boot = Boot()
    disks: Tuple[Disk, ...] = ()
    nics: Tuple[Nic, ...] = ()
    vcpu_weight: Optional[int] = None  # Xen's credit scheduler weight (VCPUs_params:weight)
    vcpu_cap: Optional[int] = None  # percent of one CPU (VCPUs_params:cap); 0 means none
    vnc: bool = True
    vnc_listen: str = "127.0.0.1"
    serial_console: bool = True
    serial_socket: str = ""  # emulated serial (Xen HVM, KVM): bind a Unix socket instead of a pty
    on_poweroff: str = DESTROY
    on_reboot: str = RESTART
    on_crash: str = DESTROY
    acpi: bool = True
    apic: bool = True
    pae: bool = True
    viridian: bool = False
    nested_hvm: bool = False
    accel: str = "kvm"  # qemu driver: kvm (hardware) or qemu (TCG, software emulation)
    extra: Dict[str, str] = field(default_factory=dict)  # platform keys no renderer knows yet
