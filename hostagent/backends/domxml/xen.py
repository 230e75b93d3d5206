"""Domain XML for libvirt's xen driver (libxl, `xen:///system`): PV, PVH and HVM guests."""

import dataclasses
import xml.etree.ElementTree as ET
from typing import Dict

from .. import domain as D
from . import UnsupportedDomain
from .tree import boot_order, disk as disk_element, domain_head, element, interface, lifecycle, sub
from .tree import bus as target_bus, device_list, serial_console, to_string, vnc

# Checked against libvirt 9.0 (Debian 12) and its libxl_conf.c; what libxl cannot take
# is left out here and said so, never written for show:
# - PV is os type `linux` on machine `xenpv`: libvirt's documented spelling, which it also
#   writes back (it reads `xen`, the lab's spelling, as the same). PVH is `xenpvh` on
#   `xenpvh`, HVM `hvm` on `xenfv`.
# - The credit scheduler's weight is `<cputune><shares>`; its cap has no element. libvirt
#   sets a cap only on a running domain: see `scheduler_parameters`.
# - libxl takes no NBD disk (network disks are RBD only): the storage port hands Xen an NBD
#   export as the dom0 block device `nbd-client -unix` made of it (/dev/nbdN), rendered phy.
# - libxl ignores `<mtu>` and a disk's `<serial>`: neither is written; the network port
#   sets a vif's MTU itself.
# - Viridian is `<hyperv mode='custom'>`, which libvirt releases after 9.0 hand to libxl as
#   its viridian groups; libvirt 9.0 ignores it (and `<viridian/>`).
# - UEFI is `<os firmware='efi'>`: libvirt gives libxl the OVMF image it is configured
#   with; `Boot.loader` names one instead (`<loader type='pflash'>`).
# - Nested HVM is `<cpu mode='host-passthrough'>`; libvirt enables it only where libxl.conf
#   says `nested_hvm = 1` and the host CPU has VMX or SVM.

ARCH = "x86_64"
OS_TYPES = {D.PV: ("xenpv", "linux"), D.PVH: ("xenpvh", "xenpvh"), D.HVM: ("xenfv", "hvm")}
BUSES = {"xvd": "xen", "hd": "ide", "sd": "scsi"}
QDISK_FORMATS = ("raw", "vpc", "qcow2")


def render(domain: D.Domain) -> str:
    kind = domain.boot.kind
    if kind not in OS_TYPES:
        raise UnsupportedDomain(f"boot kind {kind!r}: the xen driver runs pv, pvh and hvm")
    root = domain_head("xen", domain)
    if domain.vcpu_weight is not None:
        cputune = sub(root, "cputune")
        sub(cputune, "shares", domain.vcpu_weight)
    if kind == D.PV and domain.boot.bootloader:
        sub(root, "bootloader", domain.boot.bootloader)
        if domain.boot.bootloader_args:
            sub(root, "bootloader_args", domain.boot.bootloader_args)
    root.append(_os(domain))
    if kind == D.HVM:
        _features(root, domain)
    if domain.nested_hvm and kind != D.PV:
        sub(root, "cpu", mode="host-passthrough")
    clock = sub(root, "clock", offset="utc")
    if kind == D.PVH:
        # The lab's PVH guests crashed under TCG without a native TSC.
        sub(clock, "timer", name="tsc", mode="native")
    lifecycle(root, domain)
    devices = device_list(root, domain, _disk, _nic)
    _consoles(devices, domain)
    vnc(devices, domain)
    return to_string(root)


def disk_xml(disk: D.Disk) -> str:
    """One `<disk>` as in the full domain, for attachDeviceFlags and detachDeviceFlags."""
    return to_string(_disk(disk))


def nic_xml(nic: D.Nic) -> str:
    return to_string(_nic(nic))


def scheduler_parameters(domain: D.Domain) -> Dict[str, int]:
    """What libvirt's domain XML cannot carry for libxl, to be applied once the domain runs
    with `virDomainSetSchedulerParameters` (libxl's credit scheduler takes `cap`)."""
    return {"cap": domain.vcpu_cap} if domain.vcpu_cap else {}


def _os(domain: D.Domain) -> ET.Element:
    boot = domain.boot
    machine, os_type = OS_TYPES[boot.kind]
    if boot.kind == D.PVH and not boot.kernel:
        raise UnsupportedDomain("a PVH guest needs a kernel: libxl boots PVH guests directly")
    if boot.kind == D.PV and bool(boot.kernel) == bool(boot.bootloader):
        # With neither, libvirt would quietly pick pygrub; with both, one would be ignored.
        raise UnsupportedDomain("a PV guest boots by a bootloader or by a kernel: exactly one")
    uefi = boot.kind == D.HVM and _uefi(boot)
    os_el = element("os", firmware="efi" if uefi and not boot.loader else None)
    sub(os_el, "type", os_type, arch=ARCH, machine=machine)
    if uefi and boot.loader:
        sub(os_el, "loader", boot.loader, readonly="yes", type="pflash")
    if boot.kernel:
        sub(os_el, "kernel", boot.kernel)
        if boot.ramdisk:
            sub(os_el, "initrd", boot.ramdisk)
        if boot.cmdline:
            sub(os_el, "cmdline", boot.cmdline)
    elif boot.kind == D.HVM:
        boot_order(os_el, boot.order)
    return os_el


def _uefi(boot: D.Boot) -> bool:
    if boot.firmware not in ("bios", "uefi"):
        raise UnsupportedDomain(f"firmware {boot.firmware!r}: expected bios or uefi")
    return boot.firmware == "uefi"


def _features(root: ET.Element, domain: D.Domain) -> None:
    # libxl turns off whatever is absent here (ACPI too), so each flag is written when on.
    features = sub(root, "features")
    for name, on in (("pae", domain.pae), ("acpi", domain.acpi), ("apic", domain.apic)):
        if on:
            sub(features, name)
    if domain.viridian:
        # base and crash_ctl come with the mode; vapic and frequencies add apic_assist and
        # freq: xl's viridian=1 set, less time_ref_count (which libvirt ties to stimer).
        hyperv = sub(features, "hyperv", mode="custom")
        for name in ("relaxed", "vapic", "frequencies"):
            sub(hyperv, name, state="on")


def _disk(d: D.Disk) -> ET.Element:
    source_type, fmt = d.source_type, d.format
    if source_type == D.NBD:
        if not d.source.startswith("/dev/"):
            raise UnsupportedDomain(
                f"disk {d.target}: libxl takes no NBD disk; attach {d.source} with nbd-client "
                "and describe the /dev/nbdN it makes")
        source_type, fmt = D.BLOCK, "raw"  # nbdkit serves the chain as a raw device
    if source_type == D.BLOCK and fmt == "raw":
        driver = {"name": "phy"}
    elif source_type == D.EMPTY:
        driver = {"name": "qemu", "type": "raw"}
    elif fmt in QDISK_FORMATS:
        # qdisk: the domain's QEMU serves the image. libvirt's libxl driver spells a VHD `vhd`
        # and refuses `vpc` ("libxenlight does not support disk format vpc"), seen in the lab.
        driver = {"name": "qemu", "type": "vhd" if fmt == "vpc" else fmt}
    else:
        raise UnsupportedDomain(f"disk {d.target}: format {fmt!r} is not one qdisk reads")
    d = dataclasses.replace(d, source_type=source_type, format=fmt)
    return disk_element(d, target_bus(d.target, BUSES), driver, serial=False)


def _nic(nic: D.Nic) -> ET.Element:
    # No <model>: libxl gives HVM guests an emulated NIC beside the PV one and PV(H)
    # guests the PV one, and picks the PV one alone for hotplug.
    return interface(nic, script=True, mtu=False)


def _consoles(devices: ET.Element, domain: D.Domain) -> None:
    if not domain.serial_console:
        return
    if domain.boot.kind != D.HVM:
        if domain.serial_socket:
            raise UnsupportedDomain("a PV or PVH console is a pty under libxl; serial_socket is HVM only")
        console = sub(devices, "console", type="pty")
        sub(console, "target", type="xen", port="0")
        return
    serial_console(devices, domain)
