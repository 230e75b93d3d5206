"""ElementTree pieces every renderer shares: elements, sizes, buses, devices, stable text.

Each renderer decides which of these a driver takes; nothing here knows a driver.
"""

import xml.etree.ElementTree as ET
from typing import Dict, Optional

from .. import domain as D
from . import UnsupportedDomain

# The libvirt <disk type=...> for each kind of source; an empty CD drive is a file disk
# with no <source>.
DISK_TYPES = {D.FILE: "file", D.BLOCK: "block", D.NBD: "network", D.EMPTY: "file"}
LIFECYCLE = (D.DESTROY, D.RESTART, D.PRESERVE, D.RENAME_RESTART)
# xapi's HVM_boot_params:order letters (BIOS drive letters) and libvirt's <boot dev=...>.
BOOT_DEVICES = {"a": "fd", "c": "hd", "d": "cdrom", "n": "network"}


def element(tag: str, text: Optional[str] = None, **attrs) -> ET.Element:
    """An element with `text` and the attributes that are not None, in argument order."""
    el = ET.Element(tag, {k: str(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = str(text)
    return el


def sub(parent: ET.Element, tag: str, text: Optional[str] = None, **attrs) -> ET.Element:
    el = element(tag, text, **attrs)
    parent.append(el)
    return el


def to_string(root: ET.Element) -> str:
    """Indented by two spaces, attributes in insertion order: identical input, identical text."""
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def kib(size: int) -> int:
    """Bytes to libvirt's default unit, rounded up so a domain never gets less than asked."""
    return -(-size // 1024)


def bus(target: str, buses: Dict[str, str]) -> str:
    """The bus a target name implies (xvda -> xen, hdc -> ide), by its longest known prefix."""
    for prefix in sorted(buses, key=len, reverse=True):
        if target.startswith(prefix):
            return buses[prefix]
    raise UnsupportedDomain(f"disk target {target!r}: expected a name starting with one of "
                            + ", ".join(sorted(buses)))


def domain_head(kind: str, domain: D.Domain) -> ET.Element:
    """<domain> with name, uuid, memory (static max), currentMemory and the vCPU counts."""
    if not 1 <= domain.vcpus <= domain.vcpus_max:
        raise UnsupportedDomain(f"vcpus {domain.vcpus} not within 1..vcpus_max {domain.vcpus_max}")
    if not 0 < domain.memory <= domain.memory_max:
        raise UnsupportedDomain(f"memory {domain.memory} not within 1..memory_max {domain.memory_max}")
    root = element("domain", type=kind)
    sub(root, "name", domain.name)
    sub(root, "uuid", domain.uuid)
    sub(root, "memory", kib(domain.memory_max), unit="KiB")
    sub(root, "currentMemory", kib(domain.memory), unit="KiB")
    current = domain.vcpus if domain.vcpus != domain.vcpus_max else None
    sub(root, "vcpu", domain.vcpus_max, placement="static", current=current)
    return root


def lifecycle(root: ET.Element, domain: D.Domain) -> None:
    for tag, action in (("on_poweroff", domain.on_poweroff), ("on_reboot", domain.on_reboot),
                        ("on_crash", domain.on_crash)):
        if action not in LIFECYCLE:
            raise UnsupportedDomain(f"{tag}: unknown action {action!r}")
        sub(root, tag, action)


def device_list(root: ET.Element, domain: D.Domain, disk_element, nic_element) -> ET.Element:
    """<devices> with the domain's disks and NICs, each as the driver renders it."""
    devices = sub(root, "devices")
    for d in domain.disks:
        devices.append(disk_element(d))
    for nic in domain.nics:
        devices.append(nic_element(nic))
    return devices


def boot_order(os_el: ET.Element, order: str) -> None:
    """<boot dev=.../> per letter of `order`, first occurrence only (libvirt refuses repeats)."""
    seen = []
    for letter in order.lower():
        if letter not in BOOT_DEVICES:
            raise UnsupportedDomain(f"boot order {order!r}: unknown device {letter!r}")
        if letter not in seen:
            seen.append(letter)
            sub(os_el, "boot", dev=BOOT_DEVICES[letter])


def disk(d: D.Disk, target_bus: str, driver: Optional[Dict[str, str]] = None,
         serial: bool = False) -> ET.Element:
    """<disk> in libvirt's element order: driver, source, target, readonly, serial."""
    if d.source_type not in DISK_TYPES:
        raise UnsupportedDomain(f"disk {d.target}: unknown source type {d.source_type!r}")
    if d.source_type == D.EMPTY and d.kind != D.CDROM:
        raise UnsupportedDomain(f"disk {d.target}: only a CD drive can be empty")
    if d.source_type != D.EMPTY and not d.source:
        raise UnsupportedDomain(f"disk {d.target}: no source")
    el = element("disk", type=DISK_TYPES[d.source_type], device=d.kind)
    if driver:
        sub(el, "driver", **driver)
    if d.source_type == D.FILE:
        sub(el, "source", file=d.source)
    elif d.source_type == D.BLOCK:
        sub(el, "source", dev=d.source)
    elif d.source_type == D.NBD:
        source = sub(el, "source", protocol="nbd")
        sub(source, "host", transport="unix", socket=d.source)
    sub(el, "target", dev=d.target, bus=target_bus)
    if d.read_only or d.kind == D.CDROM:
        sub(el, "readonly")
    if serial and d.serial:
        sub(el, "serial", d.serial)
    return el


def interface(nic: D.Nic, script: bool = False, model: Optional[str] = None,
              mtu: bool = False) -> ET.Element:
    """<interface type='bridge'> in libvirt's element order: mac, source, script, target,
    model, mtu. The target only when the description names one; MTU only when not 1500."""
    el = element("interface", type="bridge")
    sub(el, "mac", address=nic.mac)
    sub(el, "source", bridge=nic.bridge)
    if script and nic.script:
        sub(el, "script", path=nic.script)
    if nic.target:
        sub(el, "target", dev=nic.target)
    if model:
        sub(el, "model", type=model)
    if mtu and nic.mtu != 1500:
        sub(el, "mtu", size=nic.mtu)
    return el


def vnc(devices: ET.Element, domain: D.Domain) -> None:
    if domain.vnc:
        sub(devices, "graphics", type="vnc", port="-1", autoport="yes", listen=domain.vnc_listen)


def serial_console(devices: ET.Element, domain: D.Domain) -> None:
    """An emulated first serial port, on a pty or bound to `serial_socket`, and the console
    on it (libvirt's own pairing)."""
    if not domain.serial_console:
        return
    chr_type = "unix" if domain.serial_socket else "pty"
    for tag, target in (("serial", {"port": "0"}), ("console", {"type": "serial", "port": "0"})):
        el = sub(devices, tag, type=chr_type)
        if domain.serial_socket:
            sub(el, "source", mode="bind", path=domain.serial_socket)
        sub(el, "target", **target)
