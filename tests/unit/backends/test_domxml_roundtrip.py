"""The test driver's XML goes through libvirt and back: defineXML on `test:///default`
takes it for every kind of description, and XMLDesc reports the disks (targets, kinds,
sources, read-only) and interfaces (MACs, bridges, tap names) that were written."""

import dataclasses
import xml.etree.ElementTree as ET

import libvirt
import pytest

from hostagent.backends import domain as D
from hostagent.backends import domxml

from .test_domxml_golden import CASES, XEN_PYGRUB

# Every description the golden cases hold, each once, plus the pygrub one.
DESCRIPTIONS = {dom.uuid: dom for _, dom in CASES.values()}
DESCRIPTIONS[XEN_PYGRUB.uuid] = XEN_PYGRUB


@pytest.fixture
def conn():
    c = libvirt.open("test:///default")
    yield c
    c.close()


def _disks_written(dom: D.Domain):
    out = {}
    for d in dom.disks:
        source = None if d.source_type == D.EMPTY else d.source
        out[d.target] = (d.kind, source, d.read_only or d.kind == D.CDROM)
    return out


def _disks_read(root: ET.Element):
    out = {}
    for el in root.iterfind("devices/disk"):
        src = el.find("source")
        source = None
        if src is not None:
            host = src.find("host")
            source = src.get("file") or src.get("dev") or (host.get("socket") if host is not None else None)
        out[el.find("target").get("dev")] = (el.get("device"), source, el.find("readonly") is not None)
    return out


def _nics_read(root: ET.Element):
    return {el.find("mac").get("address"): (el.find("source").get("bridge"),
                                            el.find("target").get("dev") if el.find("target") is not None else "")
            for el in root.iterfind("devices/interface")}


@pytest.mark.parametrize("uuid", sorted(DESCRIPTIONS), ids=lambda u: u[:8])
def test_defined_domain_reads_back(conn, uuid):
    description = DESCRIPTIONS[uuid]
    dom = conn.defineXML(domxml.render("TEST", description))
    try:
        root = ET.fromstring(dom.XMLDesc())
    finally:
        dom.undefine()
    assert root.findtext("uuid") == description.uuid
    assert root.findtext("os/type") == ("hvm" if description.boot.kind == D.HVM else "xen")
    assert int(root.findtext("memory")) * 1024 == description.memory_max
    assert int(root.findtext("currentMemory")) * 1024 == description.memory
    assert _disks_read(root) == _disks_written(description)
    nics = _nics_read(root)
    assert {mac: bridge for mac, (bridge, _) in nics.items()} == {n.mac: n.bridge for n in description.nics}
    for n in description.nics:
        if n.target:
            assert nics[n.mac][1] == n.target


def test_device_xml_is_the_element_of_the_domain():
    """disk_xml and nic_xml, used for hotplug, say exactly what the whole domain says."""
    for driver, dom in CASES.values():
        root = ET.fromstring(domxml.render(driver, dom))
        disks = {el.find("target").get("dev"): el for el in root.iterfind("devices/disk")}
        for d in dom.disks:
            assert _c14n(domxml.disk_xml(driver, d)) == _c14n(ET.tostring(disks[d.target], "unicode"))
        nics = {el.find("mac").get("address"): el for el in root.iterfind("devices/interface")}
        for n in dom.nics:
            assert _c14n(domxml.nic_xml(driver, n)) == _c14n(ET.tostring(nics[n.mac], "unicode"))


def _c14n(xml: str) -> str:
    return ET.canonicalize(xml, strip_text=True)


def test_changed_description_reads_back_changed(conn):
    """The comparison above sees a difference: a moved disk and a new MAC read back as such."""
    _, base = CASES["test-pv"]
    moved = dataclasses.replace(base, disks=(dataclasses.replace(base.disks[0], target="xvdc"),),
                                nics=(dataclasses.replace(base.nics[0], mac="00:16:3e:4a:1b:ff"),))
    dom = conn.defineXML(domxml.render("TEST", moved))
    try:
        root = ET.fromstring(dom.XMLDesc())
    finally:
        dom.undefine()
    assert _disks_read(root) != _disks_written(base)
    assert set(_nics_read(root)) == {"00:16:3e:4a:1b:ff"}
