"""Live migration of a running domain to another host's libvirtd, errors translated here.

libvirt does the work peer to peer: this host's libvirtd opens the destination URI itself
(`qemu+ssh://host/system`, `xen+ssh://host/system`, or whatever the destination agent's
--libvirt-migrate-uri says), prepares the domain there and streams its memory while it
runs, then stops it here. The destination libvirtd must be another host (libvirt compares
their host uuids). Disks the destination reaches by other paths (its own NBD servers for the
same volumes) are put into the domain's migratable XML by target device.
"""

import xml.etree.ElementTree as ET

import libvirt

from .. import domxml
from ..domain import Disk
from .errors import MigrationFailed, NoSuchDomain, translate

FLAGS = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_ABORT_ON_ERROR


def migrate(conn, driver: str, uuid: str, destination_uri: str, disks: list[Disk]) -> None:
    """Move domain `uuid` to the libvirtd at `destination_uri` (MigrationFailed: it runs on
    here; NoSuchDomain: it is gone)."""
    if not destination_uri:
        raise MigrationFailed("the destination host takes no migrations: it has no libvirt migration URI "
                              "(--libvirt-migrate-uri)")
    try:
        dom = conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError as e:
        raise translate(e) from None
    params = {}
    try:
        if disks:
            live = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)
            params[libvirt.VIR_MIGRATE_PARAM_DEST_XML] = destination_xml(live, driver, disks)
        dom.migrateToURI3(destination_uri, params, FLAGS)
    except libvirt.libvirtError as e:
        error = translate(e)
        if isinstance(error, NoSuchDomain):
            raise error from None
        raise MigrationFailed(str(error), error.code) from None


def destination_xml(live_xml: str, driver: str, disks: list[Disk]) -> str:
    """The domain's migratable XML with each disk's source as the destination has it: a disk
    of `disks` replaces the type, driver and source of the live disk with the same target."""
    tree = ET.fromstring(live_xml)
    devices = tree.find("devices")
    wanted = {d.target: ET.fromstring(domxml.disk_xml(driver, d)) for d in disks if d.target}
    for disk in (devices.findall("disk") if devices is not None else []):
        target = disk.find("target")
        new = wanted.get(target.get("dev") if target is not None else None)
        if new is None:
            continue
        if new.get("type"):
            disk.set("type", new.get("type"))
        for tag in ("driver", "source"):
            old, replacement = disk.find(tag), new.find(tag)
            index = list(disk).index(old) if old is not None else 0
            if old is not None:
                disk.remove(old)
            if replacement is not None:
                disk.insert(index, replacement)
    return ET.tostring(tree, encoding="unicode")
