"""Device discovery (pyudev): the only module that asks udev about NICs.

`nic_facts(name)` says what udev and sysfs know of one network link: whether
it is a physical device (it has a parent bus device, as xapi decides), its
vendor and model (ids from sysfs, names from udev's hardware database when
udevd filled it in), its PCI address, and speed and duplex as the driver
reports them. Unknown values are empty strings, speed 0 and duplex False.
`NetDeviceEvents` reports links that appear, go or are renamed.
"""

import logging
import os

import pyudev

from .netlink.errors import in_netns

log = logging.getLogger("hostagent.udev")

UDEVD_CONTROL = "/run/udev/control"  # udevd's socket: where it exists, udevd runs


class UdevError(Exception):
    """udev cannot be asked or listened to."""


UNKNOWN = {"physical": False, "vendor_id": "", "vendor_name": "", "device_id": "", "device_name": "",
           "pci_bus_path": "", "speed": 0, "duplex": False}


def _attr(device, name: str) -> str:
    try:
        value = device.attributes.get(name)
    except (OSError, UnicodeDecodeError):
        return ""
    return value.decode(errors="replace").strip() if value else ""


def nic_facts(name: str, context: pyudev.Context | None = None) -> dict:
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


class NetDeviceEvents:
    """Network links that appear, go or are renamed, from pyudev's monitor on the `net` subsystem.

    `fileno()` is a socket that becomes readable when events wait (the server watches it on
    its reactor); `read()` takes what is waiting without blocking, as plain dicts
    `{"action": "add"|"remove"|"move", "name", "devtype", "virtual", "old_name"}` ("old_name"
    only for a rename; "devtype" the kernel's kind where it names one, "bridge", "vlan",
    "bond", else ""; "virtual" for a link no hardware stands behind).

    The source: udevd's events (names final once its rules have renamed a NIC) when udevd
    runs in the host's namespace, else the kernel's own uevents. Inside a network namespace
    (`netns`) it is always the kernel's: the kernel sends a namespace's link uevents only to
    sockets made in that namespace, which no udevd listens on, so the socket is made there.
    Neither carries carrier, speed or duplex changes: the kernel emits no uevent for them
    (the link monitor and ethtool give those)."""

    def __init__(self, netns: str | None = None, context: pyudev.Context | None = None):
        context = context or pyudev.Context()
        self.source = "kernel" if netns or not os.path.exists(UDEVD_CONTROL) else "udev"

        def make():
            monitor = pyudev.Monitor.from_netlink(context, source=self.source)
            monitor.filter_by("net")
            monitor.start()
            return monitor
        try:
            self._monitor = in_netns(netns, make)
        except (OSError, ValueError) as e:
            raise UdevError(f"cannot listen to udev events of the net subsystem: {e}") from None

    def fileno(self) -> int:
        return self._monitor.fileno()

    def read(self) -> list:
        out = []
        while True:
            try:
                device = self._monitor.poll(timeout=0)
            except (OSError, ValueError) as e:  # a message it cannot parse is dropped, not fatal
                log.warning("udev monitor: %s", e)
                continue
            if device is None:
                return out
            if device.action not in ("add", "remove", "move"):
                continue
            event = {"action": device.action, "name": device.sys_name, "devtype": device.device_type or "",
                     "virtual": device.device_path.startswith("/devices/virtual/")}
            if device.action == "move":
                event["old_name"] = os.path.basename(device.properties.get("DEVPATH_OLD", ""))
            out.append(event)

    def close(self) -> None:
        """The socket closed (libudev's monitor freed with its last reference)."""
        self._monitor = None
