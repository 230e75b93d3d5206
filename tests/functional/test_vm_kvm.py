"""Real guests under libvirtd (`--libvirt-uri qemu:///system`), driven through the agent with
the real XenAPI package: start, a disk read through the datapath, suspend and resume through
the suspend VDI, a disk hot-plugged and seen in the guest, the agent restarted with the guest
running, clean shutdown through ACPI, and a domain destroyed behind the agent's back.

The guest is tests/kvm's kit (a Debian kernel and a busybox initramfs, booted directly)
whose serial console answers commands. On machines whose /dev/kvm has no VMX/SVM the
agent runs it under TCG (software emulation) in the same daemon.
"""

import hashlib
import os

import libvirt
import pytest
import XenAPI

from tests.kvm.domain import qemu_workdir, stage_kit  # noqa: F401 - fixture
from tests.kvm.guestkit import guest_kit  # noqa: F401 - fixture
from tests.kvm.libvirtd import libvirtd  # noqa: F401 - fixture
from tests.kvm.serial import Console
from tests.support import wait_for

from .agent import AgentProcess
from .storage_util import MiB, failure, read_pyvhdi, vdi_record, write

pytestmark = pytest.mark.kvm

PATTERN = bytes(range(256)) * 16  # 4 KiB the base holds before the clone is made


def vm_record(kit_files, socket, name="kvm guest"):
    kernel, initrd = kit_files[:2]
    return {
        "name_label": name, "name_description": "", "user_version": "1", "is_a_template": False,
        "affinity": "OpaqueRef:NULL", "memory_static_max": str(96 * MiB), "memory_dynamic_max": str(96 * MiB),
        "memory_dynamic_min": str(96 * MiB), "memory_static_min": str(96 * MiB), "VCPUs_params": {},
        "VCPUs_max": "1", "VCPUs_at_startup": "1", "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart", "actions_after_crash": "destroy", "PV_bootloader": "",
        "PV_kernel": str(kernel), "PV_ramdisk": str(initrd), "PV_args": kit_files[2], "PV_bootloader_args": "",
        "PV_legacy_args": "", "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "c"},
        "platform": {"acpi": "1"}, "PCI_bus": "", "domain_type": "hvm", "recommendations": "",
        "other_config": {"hostagent-serial-socket": str(socket)}}


def vbd_record(vm, vdi, userdevice):
    return {"VM": vm, "VDI": vdi, "userdevice": userdevice, "bootable": userdevice == "0", "mode": "RW",
            "type": "Disk", "empty": False, "other_config": {}, "qos_algorithm_type": "",
            "qos_algorithm_params": {}}


@pytest.fixture
def lab(libvirtd, guest_kit, qemu_workdir):  # noqa: F811 - pytest fixtures by name
    state = qemu_workdir / "state"
    state.mkdir(mode=0o755)  # qemu (libvirt-qemu) reaches the datapath's sockets below it
    started = []

    def start():
        a = AgentProcess(str(state), extra_args=("--libvirt-uri", libvirtd))
        started.append(a)
        return a.start()
    kernel, initrd = stage_kit(guest_kit, qemu_workdir)
    yield {"start": start, "workdir": qemu_workdir, "kit": (kernel, initrd, guest_kit.cmdline),
           "uri": libvirtd}
    for a in started:
        a.cleanup()


def login(agent):
    s = XenAPI.Session(agent.url)
    s.xenapi.login_with_password("root", agent.password, "1.0", "kvm-test")
    return s


def test_a_real_guest_through_its_whole_lifecycle(lab):
    agent = lab["start"]()
    x = login(agent).xenapi
    host = x.host.get_all()[0]
    assert x.host.get_software_version(host).get("qemu")
    sr_dir = lab["workdir"] / "sr"
    sr = x.SR.create(host, {"location": str(sr_dir)}, "0", "kvm disks", "", "file", "user", False, {})
    sr_uuid = x.SR.get_uuid(sr)
    # a base disk with data, then a clone of it: the guest's disk is a VHD chain
    base = x.VDI.create(vdi_record(sr, 64 * MiB, "base"))
    write(str(sr_dir / sr_uuid / (x.VDI.get_uuid(base) + ".vhd")), [(0, PATTERN)])
    disk = x.VDI.clone(base, {})
    socket = lab["workdir"] / "console.sock"
    vm = x.VM.create(vm_record(lab["kit"], socket))
    x.VBD.create(vbd_record(vm, disk, "0"))

    x.VM.start(vm, False, False)
    rec = x.VM.get_record(vm)
    assert rec["power_state"] == "Running" and int(rec["domid"]) > 0
    conn = libvirt.open(lab["uri"])
    dom = conn.lookupByUUIDString(rec["uuid"])
    with Console.of_domain(dom) as console:  # connected while the guest boots
        console.wait_ready(timeout=180)
        console.wait_blocks(["vda"])
        # the datapath: the guest reads the base's bytes through the clone's chain
        assert console.sha256("vda", len(PATTERN)) == hashlib.sha256(PATTERN).hexdigest()
        console.write("vda", 8192, 4096, "ab")
        console.sync()
    # what the guest wrote is in the leaf only; the base still holds what it held
    leaf = sr_dir / sr_uuid / (x.VDI.get_uuid(disk) + ".vhd")
    parent = x.VDI.get_sm_config(disk)["vhd-parent"]
    base_file = sr_dir / sr_uuid / (parent + ".vhd")

    # suspend and resume through the suspend VDI
    x.VM.suspend(vm)
    assert x.VM.get_power_state(vm) == "Suspended"
    image = x.VM.get_suspend_VDI(vm)
    assert x.VDI.get_type(image) == "suspend" and int(x.VDI.get_virtual_size(image)) > 0
    assert not _exists(conn, rec["uuid"])  # a suspended VM has no domain
    x.VM.resume(vm, False, False)
    assert x.VM.get_power_state(vm) == "Running" and image not in x.VDI.get_all()
    dom = conn.lookupByUUIDString(rec["uuid"])
    with Console.of_domain(dom) as console:
        console.ping(timeout=60)
        # a disk hot-plugged into the running guest appears in its /sys/block
        extra = x.VDI.create(vdi_record(sr, 16 * MiB, "hot"))
        vbd = x.VBD.create(vbd_record(vm, extra, "1"))
        x.VBD.plug(vbd)
        assert x.VBD.get_currently_attached(vbd) is True and x.VBD.get_device(vbd) == "vdb"
        console.wait_blocks(["vda", "vdb"])
        x.VBD.unplug(vbd)
        console.wait_blocks(["vda"])
        assert x.VBD.get_currently_attached(vbd) is False

    # the agent restarts; the guest runs on and the records find it again
    domid = x.VM.get_domid(vm)
    agent.stop()
    agent = lab["start"]()
    x = login(agent).xenapi
    assert x.VM.get_power_state(vm) == "Running" and x.VM.get_domid(vm) == domid
    with Console.of_domain(conn.lookupByUUIDString(rec["uuid"])) as console:
        console.ping(timeout=60)
        # clean shutdown through the ACPI power button
        x.VM.clean_shutdown(vm)
        console.wait_for("POWEROFF", timeout=60)
    assert x.VM.get_power_state(vm) == "Halted"
    assert not _exists(conn, rec["uuid"])
    base_now = read_pyvhdi(str(base_file), 64 * MiB)
    assert base_now[:len(PATTERN)] == PATTERN and base_now[8192:8192 + 4096] == bytes(4096)
    leaf_now = read_pyvhdi(str(leaf), 64 * MiB)
    assert leaf_now[:len(PATTERN)] == PATTERN and leaf_now[8192:8192 + 4096] == b"ab" * 2048

    # a domain destroyed through a second libvirt connection: Halted, with an event
    x.VM.start(vm, False, False)
    token = x.event_from(["vm"], "", 0.0)["token"]
    conn.lookupByUUIDString(rec["uuid"]).destroy()
    seen = []

    def halted_event():
        nonlocal token
        batch = x.event_from(["vm"], token, 5.0)
        token = batch["token"]
        seen.extend(e for e in batch["events"] if e["ref"] == vm and e["operation"] == "mod"
                    and e["snapshot"]["power_state"] == "Halted")
        return seen
    wait_for(halted_event, 30.0, what="a Halted event for the VM")
    assert x.VM.get_power_state(vm) == "Halted" and x.VM.get_domid(vm) == "-1"
    assert failure(x.VM.suspend, vm)[0] == "VM_BAD_POWER_STATE"


def _exists(conn, uuid) -> bool:
    try:
        conn.lookupByUUIDString(uuid)
        return True
    except libvirt.libvirtError:
        return False


def _cdrom_sources(conn, uuid) -> list:
    """The source files of the running domain's CD drives, as libvirt has them live."""
    import xml.etree.ElementTree as ET
    tree = ET.fromstring(conn.lookupByUUIDString(uuid).XMLDesc(0))
    return [(d.find("source").get("file") if d.find("source") is not None else None)
            for d in tree.iter("disk") if d.get("device") == "cdrom"]


def test_cd_media_changes_in_a_running_guest(lab, tmp_path):
    agent = lab["start"]()
    x = login(agent).xenapi
    isos = lab["workdir"] / "isos"
    isos.mkdir()
    (isos / "tools.iso").write_bytes(b"\0" * 2048 * 16)
    iso_sr = x.SR.create(x.host.get_all()[0], {"location": str(isos)}, "0", "ISOs", "", "iso", "", False, {})
    [iso] = x.SR.get_VDIs(iso_sr)
    vm = x.VM.create(vm_record(lab["kit"], lab["workdir"] / "cd.sock", name="cd guest"))
    cd = x.VBD.create({**vbd_record(vm, "OpaqueRef:NULL", "3"), "type": "CD", "mode": "RO", "empty": True,
                       "bootable": False})
    x.VM.start(vm, False, False)
    uuid = x.VM.get_uuid(vm)
    conn = libvirt.open(lab["uri"])
    assert x.VBD.get_currently_attached(cd) is True and _cdrom_sources(conn, uuid) == [None]
    x.VBD.insert(cd, iso)
    assert x.VBD.get_VDI(cd) == iso and x.VBD.get_empty(cd) is False
    [source] = _cdrom_sources(conn, uuid)
    assert source is not None and os.path.realpath(source) == os.path.realpath(isos / "tools.iso")
    assert failure(x.VBD.insert, cd, iso) == ["VBD_NOT_EMPTY", cd]
    x.VBD.eject(cd)
    assert x.VBD.get_empty(cd) is True and _cdrom_sources(conn, uuid) == [None]
    x.VM.hard_shutdown(vm)
    assert x.VM.get_power_state(vm) == "Halted"
