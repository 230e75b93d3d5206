"""The decisions the renderers make per driver, one at a time, on parsed XML."""

import dataclasses
import xml.etree.ElementTree as ET

import pytest

from hostagent.backends import domain as D
from hostagent.backends import domxml
from hostagent.backends.domxml import UnsupportedDomain, qemu, xen

from .test_domxml_golden import QEMU_HVM, XEN_HVM, XEN_PV, XEN_PVH, XEN_PYGRUB


def parsed(driver: str, dom: D.Domain) -> ET.Element:
    return ET.fromstring(domxml.render(driver, dom))


def test_driver_is_chosen_by_libvirt_type_name():
    assert parsed("Xen", XEN_PV).get("type") == "xen"
    assert parsed("QEMU", QEMU_HVM).get("type") == "kvm"
    assert parsed("TEST", XEN_PV).get("type") == "test"
    with pytest.raises(UnsupportedDomain, match="LXC"):
        domxml.render("LXC", XEN_PV)


@pytest.mark.parametrize("dom,machine,os_type", [(XEN_PV, "xenpv", "linux"), (XEN_PVH, "xenpvh", "xenpvh"),
                                                 (XEN_HVM, "xenfv", "hvm")])
def test_xen_os_types(dom, machine, os_type):
    t = parsed("Xen", dom).find("os/type")
    assert (t.get("arch"), t.get("machine"), t.text) == ("x86_64", machine, os_type)


def test_xen_pvh_gets_a_native_tsc_and_needs_a_kernel():
    assert parsed("Xen", XEN_PVH).find("clock/timer").attrib == {"name": "tsc", "mode": "native"}
    assert parsed("Xen", XEN_PV).find("clock/timer") is None
    with pytest.raises(UnsupportedDomain, match="PVH guest needs a kernel"):
        domxml.render("Xen", dataclasses.replace(XEN_PVH, boot=D.Boot(kind=D.PVH)))


def test_xen_pygrub_is_a_bootloader_without_kernel():
    root = parsed("Xen", XEN_PYGRUB)
    assert root.findtext("bootloader") == "pygrub"
    assert root.findtext("bootloader_args") == "--kernel=/vmlinuz --ramdisk=/initrd.img"
    assert root.find("os/kernel") is None
    assert root.find("devices/graphics") is None  # disable_pv_vnc
    for boot in (D.Boot(kind=D.PV), dataclasses.replace(XEN_PYGRUB.boot, kernel="/boot/vmlinuz")):
        with pytest.raises(UnsupportedDomain, match="exactly one"):
            domxml.render("Xen", dataclasses.replace(XEN_PV, boot=boot))


def test_weight_and_cap():
    root = parsed("Xen", XEN_PV)
    assert [el.tag for el in root.find("cputune")] == ["shares"]
    assert root.findtext("cputune/shares") == "512"
    assert xen.scheduler_parameters(XEN_PV) == {"cap": 50}  # no XML element: set once running
    assert xen.scheduler_parameters(dataclasses.replace(XEN_PV, vcpu_cap=0)) == {}
    assert parsed("Xen", XEN_PVH).find("cputune") is None
    kvm = parsed("QEMU", QEMU_HVM)
    assert kvm.findtext("cputune/shares") == "1024"  # Xen's 256 is cgroups' 1024
    assert (kvm.findtext("cputune/global_period"), kvm.findtext("cputune/global_quota")) == ("100000", "150000")


def test_vcpus_and_memory():
    root = parsed("Xen", XEN_PV)
    assert (root.findtext("vcpu"), root.find("vcpu").get("current")) == ("4", "2")
    assert root.findtext("memory") == str(1 << 20) and root.find("memory").get("unit") == "KiB"
    assert root.findtext("currentMemory") == str(512 << 10)
    assert parsed("Xen", XEN_PVH).find("vcpu").get("current") is None
    with pytest.raises(UnsupportedDomain, match="vcpus 3"):
        domxml.render("QEMU", dataclasses.replace(QEMU_HVM, vcpus=3))
    with pytest.raises(UnsupportedDomain, match="memory"):
        domxml.render("TEST", dataclasses.replace(XEN_PV, memory=2 << 30))


def test_xen_disks_phy_qdisk_and_cdroms():
    disks = {el.find("target").get("dev"): el for el in parsed("Xen", XEN_PV).iterfind("devices/disk")}
    assert disks["xvda"].find("driver").attrib == {"name": "phy"}
    assert disks["xvda"].find("target").get("bus") == "xen"
    assert disks["xvdb"].find("driver").attrib == {"name": "qemu", "type": "vhd"}  # libxl spells a VHD vhd
    assert disks["xvdb"].find("serial") is None  # libxl has no use for it
    cds = {el.find("target").get("dev"): el for el in parsed("Xen", XEN_HVM).iterfind("devices/disk")}
    assert cds["hdc"].get("device") == "cdrom" and cds["hdc"].find("source") is None
    assert cds["hdd"].find("readonly") is not None and cds["hdd"].find("target").get("bus") == "ide"
    writable_cd = dataclasses.replace(XEN_HVM.disks[2], read_only=False)
    assert ET.fromstring(xen.disk_xml(writable_cd)).find("readonly") is not None  # a CD is never written
    assert ET.fromstring(xen.disk_xml(XEN_HVM.disks[0])).find("readonly") is None


def test_xen_nbd_is_the_block_device_nbd_client_made():
    root = parsed("Xen", XEN_PYGRUB)
    disk = root.find("devices/disk")
    assert (disk.get("type"), disk.find("driver").get("name"), disk.find("source").get("dev")) == \
        ("block", "phy", "/dev/nbd0")
    socket = dataclasses.replace(XEN_PYGRUB.disks[0], source="/run/hostagent/nbd/x.sock")
    with pytest.raises(UnsupportedDomain, match="nbd-client"):
        xen.disk_xml(socket)


def test_qemu_disks_nbd_network_and_cdrom_on_sata():
    disks = {el.find("target").get("dev"): el for el in parsed("QEMU", QEMU_HVM).iterfind("devices/disk")}
    nbd = disks["vdb"]
    assert nbd.get("type") == "network" and nbd.find("source").get("protocol") == "nbd"
    assert nbd.find("source/host").attrib == {"transport": "unix", "socket": "/run/hostagent/nbd/b16edf84.sock"}
    assert nbd.find("driver").get("type") == "raw" and nbd.find("target").get("bus") == "virtio"
    assert disks["vda"].findtext("serial") == "a05dce73-5e94-4b2f-8"
    assert disks["sdd"].find("target").get("bus") == "sata" and disks["sdd"].get("device") == "cdrom"
    with pytest.raises(UnsupportedDomain, match="xvda"):
        qemu.disk_xml(XEN_PV.disks[0])


def test_nics():
    xen_nics = list(parsed("Xen", XEN_PV).iterfind("devices/interface"))
    assert xen_nics[0].find("target").get("dev") == "vif7.0" and xen_nics[1].find("target") is None
    assert xen_nics[0].find("script").get("path") == "/etc/xen/scripts/vif-bridge"
    assert xen_nics[1].find("mtu") is None  # libxl ignores it; the network port sets it
    assert all(el.find("model") is None for el in xen_nics)
    kvm = list(parsed("QEMU", QEMU_HVM).iterfind("devices/interface"))
    assert [el.find("target").get("dev") for el in kvm] == ["vif3.0", "vif3.1"]
    assert [el.find("model").get("type") for el in kvm] == ["virtio", "virtio"]
    assert kvm[0].find("mtu") is None and kvm[1].find("mtu").get("size") == "9000"


def test_qemu_machine_acpi_and_direct_kernel_boot():
    root = parsed("QEMU", dataclasses.replace(QEMU_HVM, acpi=False))
    assert root.find("os/type").get("machine") == "pc"
    assert root.find("features/acpi") is not None  # hotplug and clean shutdown need it
    assert root.findtext("os/kernel").endswith("vmlinuz-6.1.0-18-amd64")
    assert root.find("os/boot") is None
    bios = parsed("QEMU", dataclasses.replace(QEMU_HVM, boot=D.Boot(kind=D.HVM, order="ncd")))
    assert [b.get("dev") for b in bios.iterfind("os/boot")] == ["network", "hd", "cdrom"]


@pytest.mark.parametrize("boot", [D.Boot(kind=D.PV, bootloader="pygrub"), D.Boot(kind=D.PVH), D.Boot(kind=D.PV)])
def test_a_pv_description_without_kernel_cannot_run_on_kvm(boot):
    with pytest.raises(UnsupportedDomain, match="KVM") as e:
        domxml.render("QEMU", dataclasses.replace(QEMU_HVM, boot=boot))
    assert e.value.reason == str(e.value)


def test_a_pv_kernel_runs_on_kvm_as_hvm():
    root = parsed("QEMU", dataclasses.replace(QEMU_HVM, boot=XEN_PV.boot))
    assert root.findtext("os/type") == "hvm"
    assert root.findtext("os/cmdline") == "root=/dev/xvda ro console=hvc0"


def test_uefi():
    xen_os = parsed("Xen", XEN_HVM).find("os")
    assert xen_os.get("firmware") == "efi" and xen_os.find("loader") is None
    named = dataclasses.replace(XEN_HVM, boot=D.Boot(kind=D.HVM, firmware="uefi", loader="/usr/lib/xen/boot/ovmf.bin"))
    for driver in ("Xen", "QEMU"):
        dom = named if driver == "Xen" else dataclasses.replace(QEMU_HVM, boot=named.boot)
        os_el = parsed(driver, dom).find("os")
        assert os_el.get("firmware") is None
        assert os_el.find("loader").attrib == {"readonly": "yes", "type": "pflash"}
        assert os_el.findtext("loader") == "/usr/lib/xen/boot/ovmf.bin"
    assert parsed("Xen", dataclasses.replace(XEN_HVM, boot=D.Boot(kind=D.HVM))).find("os").get("firmware") is None
    with pytest.raises(UnsupportedDomain, match="firmware"):
        domxml.render("Xen", dataclasses.replace(XEN_HVM, boot=D.Boot(kind=D.HVM, firmware="coreboot")))


def test_features():
    xen_features = parsed("Xen", XEN_HVM).find("features")
    assert [el.tag for el in xen_features] == ["pae", "acpi", "apic", "hyperv"]
    assert xen_features.find("hyperv").get("mode") == "custom"
    plain = parsed("Xen", dataclasses.replace(XEN_HVM, acpi=False, viridian=False)).find("features")
    assert [el.tag for el in plain] == ["pae", "apic"]
    assert parsed("Xen", XEN_PV).find("features") is None
    assert parsed("Xen", dataclasses.replace(XEN_HVM, nested_hvm=True)).find("cpu").get("mode") == "host-passthrough"
    assert parsed("Xen", dataclasses.replace(XEN_PV, nested_hvm=True)).find("cpu") is None


def test_consoles():
    pv = parsed("Xen", XEN_PV).find("devices")
    assert pv.find("console/target").attrib == {"type": "xen", "port": "0"} and pv.find("serial") is None
    hvm = parsed("Xen", XEN_HVM).find("devices")
    assert hvm.find("serial").get("type") == "pty" and hvm.find("console/target").get("type") == "serial"
    kvm = parsed("QEMU", QEMU_HVM).find("devices")
    assert kvm.find("serial").get("type") == "unix"
    assert kvm.find("serial/source").attrib == {"mode": "bind", "path": "/var/lib/hostagent/consoles/4fa17e96.serial"}
    with pytest.raises(UnsupportedDomain, match="serial_socket"):
        domxml.render("Xen", dataclasses.replace(XEN_PV, serial_socket="/tmp/s"))
    quiet = parsed("QEMU", dataclasses.replace(QEMU_HVM, serial_console=False, vnc=False)).find("devices")
    assert quiet.find("serial") is None and quiet.find("console") is None and quiet.find("graphics") is None


def test_lifecycle():
    root = parsed("Xen", XEN_HVM)
    assert [root.findtext(t) for t in ("on_poweroff", "on_reboot", "on_crash")] == ["destroy", "restart", "preserve"]
    with pytest.raises(UnsupportedDomain, match="on_crash"):
        domxml.render("QEMU", dataclasses.replace(QEMU_HVM, on_crash=D.PRESERVE))
    with pytest.raises(UnsupportedDomain, match="on_reboot"):
        domxml.render("Xen", dataclasses.replace(XEN_PV, on_reboot="explode"))


def test_boot_order():
    assert [b.get("dev") for b in parsed("Xen", XEN_HVM).iterfind("os/boot")] == ["cdrom", "hd"]
    repeated = dataclasses.replace(XEN_HVM, boot=D.Boot(kind=D.HVM, order="cdc"))
    assert [b.get("dev") for b in parsed("TEST", repeated).iterfind("os/boot")] == ["hd", "cdrom"]
    with pytest.raises(UnsupportedDomain, match="'z'"):
        domxml.render("Xen", dataclasses.replace(XEN_HVM, boot=D.Boot(kind=D.HVM, order="cz")))


def test_vnc_listens_where_told():
    graphics = parsed("Xen", XEN_PV).find("devices/graphics")
    assert graphics.attrib == {"type": "vnc", "port": "-1", "autoport": "yes", "listen": "127.0.0.1"}
