"""Domain XML for libvirt's qemu driver on KVM (`qemu:///system`): HVM guests only."""

import xml.etree.ElementTree as ET

from .. import domain as D
from . import UnsupportedDomain
from .tree import boot_order, disk as disk_element, domain_head, element, interface, sub
from .tree import bus as target_bus, device_list, serial_console, to_string, vnc

# - Machine `pc` (i440fx): its root PCI bus hot-plugs through ACPI, so virtio disks and
#   NICs attach and detach with no controller planning; q35 would need a pcie-root-port
#   set aside for every device that may ever be hot-plugged. ACPI is always on, whatever
#   the description says: hotplug and clean shutdown both go through it.
# - Disks are virtio (vdX), CD drives SATA (sdX: libvirt adds the AHCI controller), an NBD
#   export a libvirt network disk on the datapath's Unix socket.
# - A PV or PVH description runs only with a kernel of its own, booted directly as HVM.
# - Xen's weight becomes `<shares>` times 4 (Xen's default 256 meets cgroups' 1024); a cap,
#   a share of one CPU for the whole domain, becomes a global quota per 100 ms period.
# - Taps are named by `Nic.target` (the agent's vif<domid>.<n>) when given.

ARCH, MACHINE = "x86_64", "pc"
BUSES = {"vd": "virtio", "sd": "sata", "hd": "ide"}
FORMATS = ("raw", "vpc", "qcow2")
PERIOD_US = 100_000
# libvirt's qemu driver keeps no `preserve` and restarts no renamed domain.
LIFECYCLE = (D.DESTROY, D.RESTART)


def render(domain: D.Domain) -> str:
    if domain.accel not in ("kvm", "qemu"):
        raise UnsupportedDomain(f"accel {domain.accel!r}: the qemu driver runs kvm or qemu (TCG) domains")
    root = domain_head(domain.accel, domain)
    _cputune(root, domain)
    root.append(_os(domain.boot))
    features = sub(root, "features")
    sub(features, "acpi")
    sub(features, "apic")
    if domain.pae:
        sub(features, "pae")
    if domain.viridian:
        hyperv = sub(features, "hyperv", mode="custom")
        sub(hyperv, "relaxed", state="on")
        sub(hyperv, "vapic", state="on")
        sub(hyperv, "spinlocks", state="on", retries="8191")
    if domain.nested_hvm:
        sub(root, "cpu", mode="host-passthrough")
    sub(root, "clock", offset="utc")
    for tag, action in (("on_poweroff", domain.on_poweroff), ("on_reboot", domain.on_reboot),
                        ("on_crash", domain.on_crash)):
        if action not in LIFECYCLE:
            raise UnsupportedDomain(f"{tag}: the qemu driver cannot {action!r}")
        sub(root, tag, action)
    devices = device_list(root, domain, _disk, _nic)
    serial_console(devices, domain)
    vnc(devices, domain)
    return to_string(root)


def disk_xml(disk: D.Disk) -> str:
    """One `<disk>` as in the full domain, for attachDeviceFlags and detachDeviceFlags."""
    return to_string(_disk(disk))


def nic_xml(nic: D.Nic) -> str:
    return to_string(_nic(nic))


def _cputune(root: ET.Element, domain: D.Domain) -> None:
    if domain.vcpu_weight is None and not domain.vcpu_cap:
        return
    cputune = sub(root, "cputune")
    if domain.vcpu_weight is not None:
        sub(cputune, "shares", max(2, domain.vcpu_weight * 4))
    if domain.vcpu_cap:
        sub(cputune, "global_period", PERIOD_US)
        sub(cputune, "global_quota", max(1000, PERIOD_US * domain.vcpu_cap // 100))


def _os(boot: D.Boot) -> ET.Element:
    if boot.kind not in (D.PV, D.PVH, D.HVM):
        raise UnsupportedDomain(f"boot kind {boot.kind!r}: unknown")
    if boot.kind != D.HVM and not boot.kernel:
        raise UnsupportedDomain(f"a {boot.kind.upper()} guest without a kernel of its own cannot run "
                                "on KVM (it needs Xen's PV boot); give it a kernel or make it HVM")
    if boot.firmware not in ("bios", "uefi"):
        raise UnsupportedDomain(f"firmware {boot.firmware!r}: expected bios or uefi")
    uefi = boot.firmware == "uefi"
    # firmware='efi' lets libvirt pick OVMF from QEMU's firmware descriptors, with an
    # NVRAM store per domain; a named image is the older explicit form.
    os_el = element("os", firmware="efi" if uefi and not boot.loader else None)
    sub(os_el, "type", "hvm", arch=ARCH, machine=MACHINE)
    if uefi and boot.loader:
        sub(os_el, "loader", boot.loader, readonly="yes", type="pflash")
    if boot.kernel:
        sub(os_el, "kernel", boot.kernel)
        if boot.ramdisk:
            sub(os_el, "initrd", boot.ramdisk)
        if boot.cmdline:
            sub(os_el, "cmdline", boot.cmdline)
    else:
        boot_order(os_el, boot.order)
    return os_el


def _disk(d: D.Disk) -> ET.Element:
    fmt = "raw" if d.source_type in (D.NBD, D.EMPTY) else d.format  # nbdkit serves raw blocks
    if fmt not in FORMATS:
        raise UnsupportedDomain(f"disk {d.target}: format {fmt!r} is not one QEMU is given here")
    return disk_element(d, target_bus(d.target, BUSES), {"name": "qemu", "type": fmt}, serial=d.kind == D.DISK)


def _nic(nic: D.Nic) -> ET.Element:
    return interface(nic, script=False, model="virtio", mtu=True)
