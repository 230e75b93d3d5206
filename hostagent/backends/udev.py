"""Device discovery (pyudev): the only module that asks udev about NICs.

`nic_facts(name)` says what udev and sysfs know of one network link: whether
it is a physical device (it has a parent bus device, as xapi decides), its
vendor and model (ids from sysfs, names from udev's hardware database when
udevd filled it in), its PCI address, and speed and duplex as the driver
reports them. Unknown values are empty strings, speed 0 and duplex False.
"""

import logging
from typing import Optional

import pyudev

log = logging.getLogger("hostagent.udev")

UNKNOWN = {"physical": False, "vendor_id": "", "vendor_name": "", "device_id": "", "device_name": "",
           "pci_bus_path": "", "speed": 0, "duplex": False}


def _attr(device, name: str) -> str:
    try:
        value = device.attributes.get(name)
    except (OSError, UnicodeDecodeError):
        return ""
    return value.decode(errors="replace").strip() if value else ""


def nic_facts(name: str, context: Optional[pyudev.Context] = None) -> dict:
    """udev's facts about network link `name` (see the module doc); UNKNOWN when it has none."""
    try:
        device = pyudev.Devices.from_name(context or pyudev.Context(), "net", name)
    except (pyudev.DeviceNotFoundError, OSError) as e:
        log.debug("udev knows no link %s: %s", name, e)
        return dict(UNKNOWN)
    out = dict(UNKNOWN)
    parent = device.parent
    out["physical"] = parent is not None and not device.device_path.startswith("/devices/virtual/")
    props = device.properties
    bus = parent
    while bus is not None and bus.subsystem != "pci":  # virtio and the like sit under a PCI function
        bus = bus.parent
    if bus is not None:
        out["pci_bus_path"] = bus.sys_name
        out["vendor_id"] = _attr(bus, "vendor").removeprefix("0x")
        out["device_id"] = _attr(bus, "device").removeprefix("0x")
    out["vendor_name"] = props.get("ID_VENDOR_FROM_DATABASE", "")
    out["device_name"] = props.get("ID_MODEL_FROM_DATABASE", "")
    speed = _attr(device, "speed")
    out["speed"] = int(speed) if speed.isdigit() else 0  # -1 (no link) and unreadable are 0
    out["duplex"] = _attr(device, "duplex") == "full"
    return out
