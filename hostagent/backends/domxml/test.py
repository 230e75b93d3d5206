"""Domain XML for libvirt's test driver (`test:///default`), the embedded default: the
description in the terms the driver keeps, so devices read back from XMLDesc as written."""

# The test driver runs nothing; it stores and reports. Its capabilities offer os types
# `hvm` and `xen` (PV; it knows no `xenpvh`, so PVH is stored as `xen`) on i686 only,
# its default arch, so no arch or machine is written.

import xml.etree.ElementTree as ET

from .. import domain as D
from . import UnsupportedDomain
from .tree import boot_order, disk as disk_element, domain_head, interface, lifecycle, sub
from .tree import bus as target_bus, device_list, to_string

BUSES = {"xvd": "xen", "hd": "ide", "sd": "sata", "vd": "virtio"}


def render(domain: D.Domain) -> str:
    root = domain_head("test", domain)
    os_el = sub(root, "os")
    if domain.boot.kind == D.HVM:
        sub(os_el, "type", "hvm")
        boot_order(os_el, domain.boot.order)
    elif domain.boot.kind in (D.PV, D.PVH):
        sub(os_el, "type", "xen")
    else:
        raise UnsupportedDomain(f"boot kind {domain.boot.kind!r}: unknown")
    lifecycle(root, domain)
    device_list(root, domain, _disk, _nic)
    return to_string(root)


def disk_xml(disk: D.Disk) -> str:
    return to_string(_disk(disk))


def nic_xml(nic: D.Nic) -> str:
    return to_string(_nic(nic))


def _disk(d: D.Disk) -> ET.Element:
    driver = {"name": "qemu", "type": "raw" if d.source_type in (D.NBD, D.EMPTY) else d.format}
    return disk_element(d, target_bus(d.target, BUSES), driver)


def _nic(nic: D.Nic) -> ET.Element:
    return interface(nic)
