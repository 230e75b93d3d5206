"""Where a running domain's consoles are, read from its live XML: the pty of its text console
and the port of its VNC server (libvirt fills both in once the domain runs)."""

import xml.etree.ElementTree as ET
from dataclasses import dataclass


@dataclass(frozen=True)
class DomainConsoles:
    text_pty: str = ""  # the text console's pty (PV console, else the first serial port); "" if none
    vnc_port: int = 0  # the graphical console's VNC port on 127.0.0.1; 0 if none


def from_xml(xml: str) -> DomainConsoles:
    devices = ET.fromstring(xml).find("devices")
    if devices is None:
        return DomainConsoles()
    ptys = []
    for el in list(devices.findall("console")) + list(devices.findall("serial")):
        if el.get("type") != "pty":
            continue
        source = el.find("source")
        path = (source.get("path") if source is not None else None) or el.get("tty") or ""
        target = el.find("target")
        pv = el.tag == "console" and target is not None and target.get("type") == "xen"
        if path:
            ptys.append((0 if pv else 1, path))
    port = 0
    for g in devices.findall("graphics"):
        if g.get("type") == "vnc":
            try:
                port = int(g.get("port", "0"))
            except ValueError:
                port = 0
            port = port if port > 0 else 0
            break
    return DomainConsoles(min(ptys)[1] if ptys else "", port)
