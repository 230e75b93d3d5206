"""The storage API on `file` SRs, through the real XenAPI package against the agent.

The embedded default's "Local storage" is a file SR under the state dir, so the
VHD files a VDI stands for are at <state>/sr/<SR uuid>/<VDI uuid>.vhd: tests
write guest data into them with sm.vhd and read every level of a chain back
with libvhdi (pyvhdi), an independent reader.
"""

import os
import random
import time
import xml.etree.ElementTree as ET

import pytest

from sm import vhd

from .storage_util import (MiB, NULL, apply, failure, login, read_pyvhdi, records, task_ref_result,
                           vdi_record, vhd_path, vm_record, wait_task, write)

pyvhdi = pytest.importorskip("pyvhdi", reason="pyvhdi (libvhdi-python) is in setup.cfg's test extra")

PAGE = 4096
I18N = {"i18n-key": "local-storage", "i18n-original-value-name_label": "Local storage"}


@pytest.fixture(scope="module")
def x(agent):
    s = login(agent)
    yield s.xenapi
    s.xenapi.session.logout()


@pytest.fixture(scope="module")
def local(x):
    """The default SR: (ref, record)."""
    pool = x.pool.get_all()[0]
    sr = x.pool.get_default_SR(pool)
    return sr, x.SR.get_record(sr)


def path_of(agent, local, x, vdi):
    return vhd_path(agent.state_dir, local[1]["uuid"], x.VDI.get_uuid(vdi))


# ------------------------------------------------------------------ first start
def test_default_sr_is_local_storage(agent, x, local):
    sr, rec = local
    assert rec["name_label"] == "Local storage"
    assert rec["type"] == "file" and rec["content_type"] == "user" and rec["shared"] is False
    assert rec["other_config"] == I18N
    assert int(rec["physical_size"]) > 0 and int(rec["physical_utilisation"]) > 0
    assert os.path.isdir(os.path.join(agent.state_dir, "sr", rec["uuid"]))
    [pbd] = rec["PBDs"]
    pbd_rec = x.PBD.get_record(pbd)
    assert pbd_rec["currently_attached"] is True
    assert pbd_rec["device_config"] == {"location": os.path.join(agent.state_dir, "sr")}
    assert pbd_rec["host"] == x.host.get_all()[0]
    assert x.SR.get_by_name_label("Local storage") == [sr]
    # plugged: destroy, forget and plug are refused; scan, update, unplug and the VDI work
    # the file driver can do are allowed (GUIs show "add disk" from vdi_create)
    ops = set(rec["allowed_operations"])
    assert {"scan", "update", "unplug", "vdi_create", "vdi_destroy", "vdi_snapshot", "vdi_clone",
            "vdi_resize", "pbd_create", "pbd_destroy"} <= ops
    assert not ops & {"destroy", "forget", "plug"}


@pytest.mark.lab  # API only: lab/run.py runs it against the Xen lab's agent too (lab_agent.py)
def test_sm_records(x):
    sms = {r["type"]: r for r in x.SM.get_all_records().values()}
    assert set(sms) == {"file", "ext", "nfs", "lvm", "iso"}
    assert sorted(x.SR.get_supported_types()) == sorted(sms)
    assert set(sms["file"]["configuration"]) == {"location"}
    assert set(sms["ext"]["configuration"]) == {"device"}
    assert {"server", "serverpath"} <= set(sms["nfs"]["configuration"])
    assert set(sms["lvm"]["configuration"]) == {"device"}
    assert set(sms["iso"]["configuration"]) == {"location"}
    for kind in ("file", "nfs", "ext"):
        assert {"VDI_CREATE", "VDI_DELETE", "VDI_CLONE", "VDI_SNAPSHOT", "VDI_RESIZE",
                "THIN_PROVISIONING"} <= set(sms[kind]["capabilities"])
    assert "VDI_CREATE" not in sms["iso"]["capabilities"]
    for rec in sms.values():
        assert rec["features"] == {c: "1" for c in rec["capabilities"]}
        assert rec["vendor"] and rec["version"] and rec["name_label"]


# ------------------------------------------------------------------- life cycle
def test_vdi_life_cycle(agent, x, local):
    sr = local[0]
    before = int(x.SR.get_virtual_allocation(sr))
    vdi = x.VDI.create(vdi_record(sr, 64 * MiB, "life", other_config={"k": "v"}))
    rec = x.VDI.get_record(vdi)
    path = path_of(agent, local, x, vdi)
    assert os.path.isfile(path) and rec["location"] == rec["uuid"]
    assert rec["virtual_size"] == str(64 * MiB) and rec["SR"] == sr and rec["managed"] is True
    assert rec["name_label"] == "life" and rec["other_config"] == {"k": "v"}
    assert int(rec["physical_utilisation"]) == os.stat(path).st_blocks * 512
    assert vdi in x.SR.get_VDIs(sr)
    assert int(x.SR.get_virtual_allocation(sr)) == before + 64 * MiB
    assert sorted(rec["allowed_operations"]) == sorted(
        ["clone", "copy", "resize", "snapshot", "destroy", "forget", "update"])

    data = [(0, b"A" * 4096), (40 * MiB + 17, b"tail data")]
    write(path, data)
    model = bytearray(64 * MiB)
    apply(model, data)

    x.VDI.resize(vdi, str(96 * MiB))
    assert x.VDI.get_virtual_size(vdi) == str(96 * MiB)
    model.extend(bytes(32 * MiB))
    assert read_pyvhdi(path, 96 * MiB) == bytes(model)
    err = failure(x.VDI.resize, vdi, str(32 * MiB))  # VHDs do not shrink
    assert err[0] == "SR_BACKEND_FAILURE_79" and err[2].startswith("VDI Invalid size")
    assert x.VDI.get_virtual_size(vdi) == str(96 * MiB)

    clone = x.VDI.clone(vdi, {})
    crec = x.VDI.get_record(clone)
    assert crec["uuid"] != rec["uuid"] and x.VDI.get_uuid(vdi) == rec["uuid"]
    assert crec["name_label"] == "life" and crec["other_config"] == {"k": "v"}
    assert crec["is_a_snapshot"] is False and crec["snapshot_of"] == NULL
    assert crec["virtual_size"] == str(96 * MiB)
    clone_path = path_of(agent, local, x, clone)
    assert read_pyvhdi(clone_path, 96 * MiB) == bytes(model)
    # the original's data went to a hidden base both leaves read through
    parent = x.VDI.get_sm_config(vdi)["vhd-parent"]
    assert crec["sm_config"]["vhd-parent"] == parent
    base = x.VDI.get_by_uuid(parent)
    assert x.VDI.get_managed(base) is False and x.VDI.get_name_label(base) == "base copy"
    assert x.VDI.get_read_only(base) is True
    assert failure(x.VDI.destroy, base) == ["VDI_NOT_MANAGED", base]

    x.VDI.destroy(clone)
    assert not os.path.exists(clone_path)
    assert clone not in x.VDI.get_all()
    x.VDI.destroy(vdi)
    assert not os.path.exists(path)
    # the base had no reader left: gone from storage, so gone from the records
    assert not os.path.exists(vhd_path(agent.state_dir, local[1]["uuid"], parent))
    assert failure(x.VDI.get_record, base) == ["HANDLE_INVALID", "VDI", base]
    assert int(x.SR.get_virtual_allocation(sr)) == before


def test_snapshot_chain_three_deep_read_back_by_pyvhdi(agent, x, local):
    sr = local[0]
    size = 24 * MiB
    rng = random.Random(4)
    vdi = x.VDI.create(vdi_record(sr, size, "chain"))
    path = path_of(agent, local, x, vdi)
    model = bytearray(size)
    snaps, expected = [], []
    for level in range(4):
        # each level overwrites part of the last one's data and adds its own; whole 4 KiB
        # pages, as libvhdi misreads a bitmap byte (8 sectors) that is only partly set (see
        # tests/contract/test_vhd.py's xfail) while the VHD format allows it
        writes = [(rng.randrange(0, (size - 80 * 1024) // PAGE) * PAGE,
                   bytes([level + 1]) * (rng.randrange(1, 17) * PAGE)) for _ in range(12)]
        writes.append((level * 2 * MiB, f"level {level}:".encode().ljust(PAGE, b".") * 2))
        write(path, writes)
        apply(model, writes)
        if level < 3:
            snaps.append(x.VDI.snapshot(vdi, {}))
            expected.append(bytes(model))
    assert read_pyvhdi(path, size) == bytes(model)
    for snap, want in zip(snaps, expected):
        rec = x.VDI.get_record(snap)
        assert rec["is_a_snapshot"] is True and rec["snapshot_of"] == vdi
        assert rec["snapshot_time"].value != "19700101T00:00:00Z"
        assert rec["name_label"] == "chain" and rec["managed"] is True
        assert read_pyvhdi(path_of(agent, local, x, snap), size) == want
    assert sorted(x.VDI.get_snapshots(vdi)) == sorted(snaps)
    chain = vhd.chain(path)
    assert len(chain) == 4  # the leaf over three frozen bases
    for base_path in chain[1:]:
        base = x.VDI.get_by_uuid(os.path.basename(base_path)[:-4])
        assert x.VDI.get_managed(base) is False
    for snap in snaps:
        x.VDI.destroy(snap)
    x.VDI.destroy(vdi)
    assert [r for r in x.VDI.get_all_records().values() if r["SR"] == sr and not r["managed"]] == []


# ------------------------------------------------------------------ second SR, copy
@pytest.fixture
def second_sr(x, tmp_path):
    host = x.host.get_all()[0]
    location = str(tmp_path / "sr2")
    sr = x.SR.create(host, {"location": location}, "0", "second", "a second file SR", "file", "",
                     False, {})
    yield sr, location
    if sr in x.SR.get_all():
        for vdi in x.SR.get_VDIs(sr):
            if x.VDI.get_managed(vdi):
                x.VDI.destroy(vdi)
        for pbd in x.SR.get_PBDs(sr):
            x.PBD.unplug(pbd)
        x.SR.destroy(sr)


def test_sr_create_and_destroy(x, second_sr):
    sr, location = second_sr
    rec = x.SR.get_record(sr)
    assert rec["type"] == "file" and rec["content_type"] == "user"  # the driver's default
    assert rec["name_description"] == "a second file SR" and rec["VDIs"] == []
    assert os.path.isdir(os.path.join(location, rec["uuid"]))
    [pbd] = rec["PBDs"]
    assert x.PBD.get_currently_attached(pbd) is True
    assert failure(x.SR.destroy, sr) == ["SR_HAS_PBD", sr]
    assert failure(x.SR.forget, sr) == ["SR_HAS_PBD", sr]
    vdi = x.VDI.create(vdi_record(sr, 8 * MiB))
    x.PBD.unplug(pbd)
    assert x.PBD.get_currently_attached(pbd) is False
    assert failure(x.VDI.create, vdi_record(sr, 8 * MiB)) == ["SR_HAS_NO_PBDS", sr]
    assert failure(x.SR.destroy, sr) == ["SR_NOT_EMPTY"]
    x.PBD.plug(pbd)
    x.VDI.destroy(vdi)
    found = ET.fromstring(x.SR.probe(x.host.get_all()[0], {"location": location}, "file", {}))
    assert found.tag == "SRlist" and [e.findtext("UUID") for e in found] == [rec["uuid"]]
    x.PBD.unplug(pbd)
    x.SR.destroy(sr)
    assert sr not in x.SR.get_all() and pbd not in x.PBD.get_all()
    assert not os.path.exists(os.path.join(location, rec["uuid"]))


def test_forget_introduce_plug_finds_the_vdis_again(x, second_sr):
    sr, location = second_sr
    uuid = x.SR.get_uuid(sr)
    vdi = x.VDI.create(vdi_record(sr, 8 * MiB, "kept"))
    vdi_uuid = x.VDI.get_uuid(vdi)
    [pbd] = x.SR.get_PBDs(sr)
    x.PBD.unplug(pbd)
    x.SR.forget(sr)
    assert sr not in x.SR.get_all() and vdi not in x.VDI.get_all()
    assert os.path.isfile(os.path.join(location, uuid, vdi_uuid + ".vhd"))
    sr2 = x.SR.introduce(uuid, "again", "", "file", "user", False, {})
    assert x.SR.get_physical_size(sr2) == "-1" and x.SR.get_VDIs(sr2) == []
    assert failure(x.SR.introduce, uuid, "twice", "", "file", "user", False, {}) == \
        ["SR_UUID_EXISTS", uuid]
    # the uuid names the SR's directory and mount point: a path is no uuid
    assert failure(x.SR.introduce, "../../etc", "bad", "", "file", "user", False, {}) == \
        ["UUID_INVALID", "SR", "../../etc"]
    host = x.host.get_all()[0]
    pbd2 = x.PBD.create({"host": host, "SR": sr2, "device_config": {"location": location},
                         "other_config": {}})
    assert failure(x.PBD.create, {"host": host, "SR": sr2, "device_config": {},
                                  "other_config": {}}) == ["PBD_EXISTS", sr2, host, pbd2]
    x.PBD.plug(pbd2)
    [again] = x.SR.get_VDIs(sr2)
    assert x.VDI.get_uuid(again) == vdi_uuid and x.VDI.get_virtual_size(again) == str(8 * MiB)
    assert int(x.SR.get_physical_size(sr2)) > 0
    x.VDI.destroy(again)
    x.PBD.unplug(pbd2)
    x.SR.destroy(sr2)


def test_copy_into_another_sr_with_progress(agent, x, local, second_sr):
    sr2 = second_sr[0]
    size = 256 * MiB
    vdi = x.VDI.create(vdi_record(local[0], size, "copied", other_config={"o": "c"}))
    path = path_of(agent, local, x, vdi)
    block = bytes(range(256)) * 8192  # 2 MiB, every block written: a copy with work to do
    data = [(o, block) for o in range(0, size, 2 * MiB)]
    data.append((size - 3, b"end"))
    write(path, data)
    model = bytearray(size)
    apply(model, data)
    try:
        task = x.Async.VDI.copy(vdi, sr2, NULL, NULL)
        seen = []
        assert wait_task(x, task, seen=seen) == "success", x.task.get_error_info(task)
        assert any(0.0 < p < 1.0 for p in seen), seen  # progress reported while it ran
        assert x.task.get_progress(task) == 1.0
        copy = task_ref_result(x, task)
        rec = x.VDI.get_record(copy)
        assert rec["SR"] == sr2 and rec["name_label"] == "copied" and rec["other_config"] == {"o": "c"}
        assert rec["virtual_size"] == str(size) and rec["read_only"] is False
        location = second_sr[1]
        copy_path = vhd_path(agent.state_dir, x.SR.get_uuid(sr2), rec["uuid"], location)
        assert read_pyvhdi(copy_path, size) == bytes(model)
        assert int(x.SR.get_virtual_allocation(sr2)) == size
    finally:
        x.VDI.destroy(vdi)


def test_copy_can_be_cancelled(agent, x, local, second_sr):
    sr2, location = second_sr
    size = 512 * MiB
    vdi = x.VDI.create(vdi_record(local[0], size, "cancelled"))
    block = bytes(range(256)) * 8192
    write(path_of(agent, local, x, vdi), [(o, block) for o in range(0, size, 2 * MiB)])
    sr2_dir = os.path.join(location, x.SR.get_uuid(sr2))
    try:
        task = x.Async.VDI.copy(vdi, sr2, NULL, NULL)
        deadline = time.monotonic() + 30
        while "cancel" not in x.task.get_allowed_operations(task):
            assert x.task.get_status(task) == "pending" and time.monotonic() < deadline
            time.sleep(0.01)
        x.task.cancel(task)
        assert wait_task(x, task) == "cancelled"
        assert x.task.get_error_info(task) == ["TASK_CANCELLED", task]
        assert x.SR.get_VDIs(sr2) == [] and os.listdir(sr2_dir) == []
        assert x.VDI.get_current_operations(vdi) == {}
    finally:
        x.VDI.destroy(vdi)


# ------------------------------------------------------------------------ scan
def test_scan_finds_added_and_removed_files(agent, x, local):
    sr, rec = local
    sr_dir = os.path.join(agent.state_dir, "sr", rec["uuid"])
    gone = x.VDI.create(vdi_record(sr, 4 * MiB, "to vanish"))
    vm = x.VM.create(vm_record("scan-vm"))
    vbd = x.VBD.create({"VM": vm, "VDI": gone, "userdevice": "0", "bootable": False, "mode": "RW",
                        "type": "Disk", "empty": False, "other_config": {},
                        "qos_algorithm_type": "", "qos_algorithm_params": {}})
    new_uuid = "0f0e0d0c-0b0a-4908-8706-050403020100"
    try:
        os.unlink(os.path.join(sr_dir, x.VDI.get_uuid(gone) + ".vhd"))
        vhd.create_dynamic(os.path.join(sr_dir, new_uuid + ".vhd"), 6 * MiB)
        with open(os.path.join(sr_dir, "notes.txt"), "w") as f:
            f.write("not a disk")
        assert gone in x.SR.get_VDIs(sr)  # records tell the old story until a scan
        x.SR.scan(sr)
        assert gone not in x.VDI.get_all() and gone not in x.SR.get_VDIs(sr)
        assert vbd not in x.VBD.get_all()  # a detached VBD goes with its vanished disk
        new = x.VDI.get_by_uuid(new_uuid)
        nrec = x.VDI.get_record(new)
        assert nrec["SR"] == sr and nrec["location"] == new_uuid and nrec["managed"] is True
        assert nrec["virtual_size"] == str(6 * MiB) and nrec["read_only"] is False
        assert nrec["type"] == "user"
        x.SR.scan(sr)  # nothing changed: nothing moves
        assert x.VDI.get_by_uuid(new_uuid) == new
    finally:
        x.VM.destroy(vm)
        os.unlink(os.path.join(sr_dir, "notes.txt"))
    x.VDI.destroy(x.VDI.get_by_uuid(new_uuid))


# -------------------------------------------------------------------- VBDs, CDs
@pytest.fixture
def iso_sr(x, tmp_path):
    isos = tmp_path / "isos"
    isos.mkdir()
    (isos / "install.iso").write_bytes(b"\0" * 4096)
    sr = x.SR.create(x.host.get_all()[0], {"location": str(isos)}, "0", "ISOs", "", "iso", "",
                     False, {})
    yield sr
    for pbd in x.SR.get_PBDs(sr):
        x.PBD.unplug(pbd)
    x.SR.forget(sr)


def disk_vbd(vm, vdi, userdevice, **kw):
    rec = {"VM": vm, "VDI": vdi, "userdevice": userdevice, "bootable": False, "mode": "RW",
           "type": "Disk", "empty": False, "other_config": {}, "qos_algorithm_type": "",
           "qos_algorithm_params": {}}
    rec.update(kw)
    return rec


def test_vbds_and_cd_drives(x, local, iso_sr):
    assert x.SR.get_content_type(iso_sr) == "iso"
    [iso] = x.SR.get_VDIs(iso_sr)
    assert x.VDI.get_name_label(iso) == "install.iso" and x.VDI.get_read_only(iso) is True
    disk = x.VDI.create(vdi_record(local[0], 4 * MiB))
    vm = x.VM.create(vm_record("vbd-vm"))
    try:
        first = x.VBD.create(disk_vbd(vm, disk, "autodetect"))
        assert x.VBD.get_userdevice(first) == "0" and x.VBD.get_currently_attached(first) is False
        assert failure(x.VBD.create, disk_vbd(vm, disk, "0", mode="RO")) == \
            ["DEVICE_ALREADY_EXISTS", "0"]
        assert failure(x.VBD.create, disk_vbd(vm, disk, "xvda", mode="RO")) == \
            ["DEVICE_ALREADY_EXISTS", "xvda"]
        assert failure(x.VBD.create, disk_vbd(vm, disk, "nonsense")) == ["INVALID_DEVICE", "nonsense"]
        cd = x.VBD.create(disk_vbd(vm, NULL, "autodetect", type="CD", mode="RO", empty=True))
        assert x.VBD.get_userdevice(cd) == "1" and x.VBD.get_empty(cd) is True
        assert failure(x.VBD.create, disk_vbd(vm, NULL, "5", empty=True)) == \
            ["VBD_NOT_REMOVABLE_MEDIA", "in constructor"]
        assert failure(x.VBD.create, disk_vbd(vm, iso, "5", type="CD")) == ["VBD_CDS_MUST_BE_READONLY"]
        assert failure(x.VBD.create, disk_vbd(vm, iso, "5")) == ["VDI_READONLY", iso]
        assert failure(x.VBD.eject, cd) == ["VBD_IS_EMPTY", cd]
        assert failure(x.VBD.insert, first, iso) == ["VBD_NOT_REMOVABLE_MEDIA", first]
        x.VBD.insert(cd, iso)
        assert x.VBD.get_VDI(cd) == iso and x.VBD.get_empty(cd) is False
        assert failure(x.VBD.insert, cd, iso) == ["VBD_NOT_EMPTY", cd]
        x.VBD.eject(cd)
        assert x.VBD.get_VDI(cd) == NULL and x.VBD.get_empty(cd) is True
        # the VM is halted: plugging is for running VMs
        assert failure(x.VBD.plug, first) == ["VM_BAD_POWER_STATE", vm, "running", "halted"]
        x.VBD.set_mode(first, "RO")
        assert x.VBD.get_mode(first) == "RO"
        x.VBD.destroy(cd)
        assert x.VM.get_VBDs(vm) == [first] and x.VDI.get_VBDs(disk) == [first]
    finally:
        x.VM.destroy(vm)
        x.VDI.destroy(disk)


def test_attached_vdi_is_in_use(x, local):
    """dom0 runs: a VBD on it can be plugged (recorded), and then the disk is in use."""
    dom0 = next(r for r, rec in x.VM.get_all_records().items() if rec["is_control_domain"])
    sr = local[0]
    disk = x.VDI.create(vdi_record(sr, 4 * MiB))
    vbd = x.VBD.create(disk_vbd(dom0, disk, "autodetect"))
    x.VBD.plug(vbd)
    try:
        assert x.VBD.get_currently_attached(vbd) is True and x.VBD.get_device(vbd).startswith("xvd")
        assert failure(x.VBD.plug, vbd) == ["DEVICE_ALREADY_ATTACHED", vbd]
        assert failure(x.VDI.destroy, disk) == ["VDI_IN_USE", disk, "destroy"]
        assert failure(x.VDI.resize, disk, str(8 * MiB)) == ["VDI_IN_USE", disk, "resize"]
        assert "destroy" not in x.VDI.get_allowed_operations(disk)
        assert failure(x.VBD.destroy, vbd)[0] == "OPERATION_NOT_ALLOWED"
        [pbd] = x.SR.get_PBDs(sr)
        assert failure(x.PBD.unplug, pbd) == ["VDI_IN_USE", disk, "unplug"]
    finally:
        x.VBD.unplug(vbd)
    assert failure(x.VBD.unplug, vbd) == ["DEVICE_ALREADY_DETACHED", vbd]
    x.VBD.destroy(vbd)
    x.VDI.destroy(disk)


# ------------------------------------------------------------------- bad input
def test_bad_input_answers_the_documented_error_and_changes_nothing(x, local, iso_sr, tmp_path):
    sr, host = local[0], x.host.get_all()[0]
    disk = x.VDI.create(vdi_record(sr, 4 * MiB))
    vm = x.VM.create(vm_record("bad-input-vm"))
    cd = x.VBD.create(disk_vbd(vm, NULL, "3", type="CD", mode="RO", empty=True))
    size = int(x.SR.get_physical_size(sr))
    state = records(x)
    files = sorted(os.listdir(tmp_path))
    try:
        assert failure(x.SR.create, host, {"location": str(tmp_path)}, "0", "n", "", "nosuch", "",
                       False, {}) == ["SR_UNKNOWN_DRIVER", "nosuch"]
        assert failure(x.SR.probe, host, {}, "nosuch", {}) == ["SR_UNKNOWN_DRIVER", "nosuch"]
        # a missing device_config key: each driver's own declared error
        for kind, code, text in (
                ("file", 94, "The request is missing the location parameter"),
                ("nfs", 102, "The request is missing the server parameter"),
                ("lvm", 90, "The request is missing the device parameter"),
                ("ext", 90, "The request is missing the device parameter"),
                ("iso", 220, "'Location' parameter must be specified in Device Configuration")):
            assert failure(x.SR.create, host, {}, "0", "n", "", kind, "", False, {}) == \
                [f"SR_BACKEND_FAILURE_{code}", "", text, ""], kind
        assert failure(x.SR.create, host, {"server": "h"}, "0", "n", "", "nfs", "", False, {}) \
            == ["SR_BACKEND_FAILURE_101", "", "The request is missing the serverpath parameter", ""]
        # sizes: negative (the driver's VDI Invalid size), more than the SR holds, beyond int64
        err = failure(x.VDI.create, vdi_record(sr, -1))
        assert err[0] == "SR_BACKEND_FAILURE_79" and err[2].startswith("VDI Invalid size")
        assert failure(x.VDI.create, vdi_record(sr, 1 << 62)) == ["SR_FULL", str(1 << 62), str(size)]
        assert failure(x.VDI.create, vdi_record(sr, 1 << 64))[0] == "FIELD_TYPE_ERROR"
        err = failure(x.VDI.resize, disk, str(-1))
        assert err[0] == "SR_BACKEND_FAILURE_79"
        assert failure(x.VDI.resize, disk, str(1 << 62)) == ["SR_FULL", str(1 << 62), str(size)]
        assert failure(x.VDI.create, vdi_record(NULL, MiB)) == ["HANDLE_INVALID", "SR", NULL]
        assert failure(x.VDI.create, vdi_record(iso_sr, MiB)) == ["SR_OPERATION_NOT_SUPPORTED", iso_sr]
        # a VDI of another SR in a VBD: a CD drive takes only images of an ISO SR
        assert failure(x.VBD.insert, cd, disk) == ["VDI_IS_NOT_ISO", disk, "user"]
        assert failure(x.VBD.create, disk_vbd(vm, disk, "1", type="CD", mode="RO")) == \
            ["VDI_IS_NOT_ISO", disk, "user"]
        assert failure(x.VDI.copy, disk, NULL, NULL, NULL) == ["HANDLE_INVALID", "SR", NULL]
        assert failure(x.VDI.copy, disk, iso_sr, NULL, NULL) == ["SR_OPERATION_NOT_SUPPORTED", iso_sr]
        assert failure(x.PBD.create, {"host": host, "SR": sr, "device_config": {},
                                      "other_config": {}})[0] == "PBD_EXISTS"
        assert records(x) == state
        assert sorted(os.listdir(tmp_path)) == files
    finally:
        x.VM.destroy(vm)
        x.VDI.destroy(disk)
