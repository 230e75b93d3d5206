"""The storage API on an `lvm` SR built by SR.create on a loop device (as root).

Works with or without device-mapper in the kernel: without it the driver runs
LVM with activation disabled and reads and writes the LVs' data on the physical
volume at the extents' offsets, so clone, snapshot (full copies) and VDI.copy to
and from the SR work either way; only VDI_ATTACH needs device-mapper. Data is
written into an LV and read back with the sm driver from the test process.
"""

import json
import os
import shutil
import subprocess
import uuid as uuidlib

import pytest

from sm.drivers.lvmsr import LvmDriver, dm_available
from sm.runner import Runner

from .storage_util import MiB, NULL, failure, login, read_pyvhdi, vdi_record, vhd_path
from tests.support import attach_loop, detach_loop

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup and LVM"),
    pytest.mark.skipif(not all(shutil.which(t) for t in ("losetup", "truncate", "lvm", "dmsetup")),
                       reason="needs losetup, truncate and lvm2"),
]

EXTENT = 4 * MiB  # vgcreate's default extent size
ENV = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"}


def lvm(*argv, check=True):
    config = [] if dm_available() else ["--config", "global{activation=0}"]
    return subprocess.run([argv[0], *config, *argv[1:]], capture_output=True, text=True, env=ENV,
                          check=check)


def report(tool, *argv):
    out = lvm(tool, "--reportformat", "json", "--units", "b", "--nosuffix", *argv, check=False)
    if out.returncode != 0:
        return []
    key = tool[:-1]
    return [row for part in json.loads(out.stdout)["report"] for row in part.get(key, [])]


@pytest.fixture
def loop_device(tmp_path):
    image = tmp_path / "pv.img"
    device = attach_loop(image)
    try:
        yield device
    finally:
        for row in report("pvs", "-o", "vg_name", device):
            if row.get("vg_name"):
                lvm("vgremove", "--force", row["vg_name"], check=False)
        lvm("pvremove", "--yes", "--force", device, check=False)
        detach_loop(device, image)


@pytest.fixture(scope="module")
def x(agent):
    s = login(agent)
    yield s.xenapi
    s.xenapi.session.logout()


def test_lvm_sr_life_cycle(x, loop_device):
    host = x.host.get_all()[0]
    sr = x.SR.create(host, {"device": loop_device}, "0", "lvm-sr", "on a loop device", "lvm", "",
                     False, {})
    rec = x.SR.get_record(sr)
    vg = "VG_XenStorage-" + rec["uuid"]
    [vg_row] = report("vgs", "-o", "vg_name,vg_size,vg_free", vg)
    assert rec["type"] == "lvm" and rec["content_type"] == "user"
    assert int(rec["physical_size"]) == int(vg_row["vg_size"])
    assert int(rec["physical_utilisation"]) == 0 and rec["VDIs"] == []
    [pbd] = rec["PBDs"]
    assert x.PBD.get_currently_attached(pbd) is True

    # create: one LV per VDI, whole extents
    vdi = x.VDI.create(vdi_record(sr, 10 * MiB, "lv disk"))
    vrec = x.VDI.get_record(vdi)
    lv = "LV-" + vrec["uuid"]
    assert [r["lv_name"] for r in report("lvs", "-o", "lv_name", vg)] == [lv]
    assert vrec["virtual_size"] == str(10 * MiB) and vrec["physical_utilisation"] == str(12 * MiB)
    assert vrec["location"] == vrec["uuid"] and vrec["managed"] is True
    assert x.SR.get_physical_utilisation(sr) == str(12 * MiB)
    assert x.SR.get_virtual_allocation(sr) == str(10 * MiB)

    # thick: more than the free space is SR_FULL [requested, free]
    free = int(rec["physical_size"]) - 12 * MiB
    assert failure(x.VDI.create, vdi_record(sr, free + EXTENT)) == \
        ["SR_FULL", str(free + EXTENT), str(free)]
    assert failure(x.VDI.resize, vdi, str(12 * MiB + free + EXTENT)) == \
        ["SR_FULL", str(12 * MiB + free + EXTENT), str(10 * MiB + free)]

    x.VDI.resize(vdi, str(20 * MiB))
    assert x.VDI.get_virtual_size(vdi) == str(20 * MiB)
    [row] = report("lvs", "-o", "lv_size,lv_tags", f"{vg}/{lv}")
    assert row == {"lv_size": str(20 * MiB), "lv_tags": f"vsize={20 * MiB}"}
    assert x.SR.get_physical_utilisation(sr) == str(20 * MiB)

    # clone and snapshot: full copies, with or without device-mapper
    sm = next(r for r in x.SM.get_all_records().values() if r["type"] == "lvm")
    assert {"VDI_CLONE", "VDI_SNAPSHOT"} <= set(sm["capabilities"])
    assert ("VDI_ATTACH" in sm["capabilities"]) == dm_available()
    allowed = x.VDI.get_allowed_operations(vdi)
    assert {"clone", "snapshot", "copy", "resize"} <= set(allowed)
    clone = x.VDI.clone(vdi, {})
    assert x.VDI.get_virtual_size(clone) == str(20 * MiB)
    assert x.VDI.get_is_a_snapshot(clone) is False and x.VDI.get_SR(clone) == sr
    snap = x.VDI.snapshot(vdi, {})
    assert x.VDI.get_is_a_snapshot(snap) is True and x.VDI.get_snapshot_of(snap) == vdi
    assert x.VDI.get_snapshots(vdi) == [snap]
    copies = {"LV-" + x.VDI.get_uuid(v) for v in (clone, snap)}
    assert {r["lv_name"] for r in report("lvs", "-o", "lv_name", vg)} == {lv} | copies
    assert x.SR.get_physical_utilisation(sr) == str(60 * MiB)
    x.VDI.destroy(clone)
    x.VDI.destroy(snap)
    assert [r["lv_name"] for r in report("lvs", "-o", "lv_name", vg)] == [lv]

    # scan: an LV made and one removed behind the agent's back
    extra = str(uuidlib.uuid4())
    lvm("lvcreate", "--activate", "n", "--zero", "n", "--size", f"{8 * MiB}B", "--name",
        "LV-" + extra, "--addtag", f"vsize={6 * MiB}", vg)
    lvm("lvremove", "--force", f"{vg}/{lv}")
    x.SR.scan(sr)
    assert vdi not in x.VDI.get_all()
    new = x.VDI.get_by_uuid(extra)
    assert x.VDI.get_virtual_size(new) == str(6 * MiB) and x.VDI.get_SR(new) == sr
    assert x.SR.get_VDIs(sr) == [new]
    assert x.SR.get_physical_utilisation(sr) == str(8 * MiB)

    x.VDI.destroy(new)
    assert report("lvs", "-o", "lv_name", vg) == []
    assert x.SR.get_VDIs(sr) == []
    assert failure(x.SR.destroy, sr) == ["SR_HAS_PBD", sr]
    x.PBD.unplug(pbd)
    x.SR.destroy(sr)
    assert report("vgs", "-o", "vg_name", vg) == []
    assert sr not in x.SR.get_all() and pbd not in x.PBD.get_all()


def test_lvm_bad_device(x, tmp_path):
    host = x.host.get_all()[0]
    before = x.SR.get_all_records()
    not_block = tmp_path / "plain-file"
    not_block.write_bytes(b"")
    err = failure(x.SR.create, host, {"device": str(not_block)}, "0", "bad", "", "lvm", "", False,
                  {})
    assert err[0] == "SR_BACKEND_FAILURE_91" and "not a block device" in err[2]
    assert failure(x.SR.create, host, {}, "0", "bad", "", "lvm", "", False, {})[0] == \
        "SR_BACKEND_FAILURE_90"
    assert x.SR.get_all_records() == before
    assert NULL not in before


def test_lvm_data_survives_clone_snapshot_and_copies(x, agent, loop_device, tmp_path):
    """Data written into an LV (by the sm driver, from here) is in the clone, the
    snapshot, a copy on the file SR "Local storage" and a copy back on the lvm SR."""
    host = x.host.get_all()[0]
    sr = x.SR.create(host, {"device": loop_device}, "0", "lvm-data", "", "lvm", "", False, {})
    sr_uuid = x.SR.get_uuid(sr)
    size = 9 * MiB + 512
    vdi = x.VDI.create(vdi_record(sr, size, "data"))
    lvm_sr = LvmDriver(sr_uuid, {"device": loop_device}, Runner(), str(tmp_path / "st"))
    model = bytearray(size)
    writes = [(0, b"boot sector"), (4 * MiB - 3, b"across extents"),
              (5 * MiB, os.urandom(MiB)), (size - 4, b"tail")]
    with lvm_sr.open_writer(x.VDI.get_uuid(vdi)) as writer:
        for offset, data in writes:
            writer.write(offset, data)
            model[offset:offset + len(data)] = data

    def lv_data(ref):
        with lvm_sr.open_reader(x.VDI.get_uuid(ref)) as reader:
            assert reader.size == size
            return reader.read(0, size)

    clone = x.VDI.clone(vdi, {})
    snap = x.VDI.snapshot(vdi, {})
    assert x.VDI.get_is_a_snapshot(snap) is True and x.VDI.get_snapshot_of(snap) == vdi
    assert lv_data(clone) == lv_data(snap) == lv_data(vdi) == bytes(model)
    with lvm_sr.open_writer(x.VDI.get_uuid(vdi)) as writer:  # the copies keep their data
        writer.write(0, b"BOOT SECTOR")
    assert lv_data(clone) == lv_data(snap) == bytes(model)
    assert lv_data(vdi)[:11] == b"BOOT SECTOR"

    [local] = x.SR.get_by_name_label("Local storage")
    there = x.VDI.copy(snap, local, NULL, NULL)
    assert x.VDI.get_SR(there) == local and x.VDI.get_virtual_size(there) == str(size)
    path = vhd_path(agent.state_dir, x.SR.get_uuid(local), x.VDI.get_uuid(there))
    assert read_pyvhdi(path, size) == bytes(model)
    back = x.VDI.copy(there, sr, NULL, NULL)
    assert x.VDI.get_SR(back) == sr and x.VDI.get_virtual_size(back) == str(size)
    assert lv_data(back) == bytes(model)

    for ref in (back, there, clone, snap, vdi):
        x.VDI.destroy(ref)
    [pbd] = x.SR.get_PBDs(sr)
    x.PBD.unplug(pbd)
    x.SR.destroy(sr)
