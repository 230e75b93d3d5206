"""The destination's domain XML for a migration: each disk's source as the destination has it."""

import xml.etree.ElementTree as ET

from hostagent.backends import domain as D
from hostagent.backends.hypervisor.migration import destination_xml

LIVE = """<domain type='kvm'><name>g</name><devices>
<disk type='network' device='disk'><driver name='qemu' type='raw'/>
<source protocol='nbd'><host transport='unix' socket='/src/vda.sock'/></source>
<target dev='vda' bus='virtio'/><address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></disk>
<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='hdc' bus='ide'/><readonly/></disk>
<serial type='pty'><target port='0'/></serial></devices></domain>"""


def test_a_disk_gets_the_destinations_source_and_keeps_its_address():
    there = D.Disk(0, "vda", source_type=D.NBD, source="/dst/vda.sock", serial="x")
    out = ET.fromstring(destination_xml(LIVE, "QEMU", [there]))
    vda, cd = out.findall("./devices/disk")
    assert vda.find("source/host").get("socket") == "/dst/vda.sock"
    assert vda.find("address").get("slot") == "0x04"  # the guest's hardware stays as it is
    assert [c.tag for c in vda].index("driver") < [c.tag for c in vda].index("source")
    assert cd.find("source") is None and cd.find("target").get("dev") == "hdc"  # not named: untouched
    assert out.find("./devices/serial").get("type") == "pty"


def test_no_disks_changes_nothing_but_formatting():
    assert ET.tostring(ET.fromstring(destination_xml(LIVE, "QEMU", []))) == ET.tostring(ET.fromstring(LIVE))
