"""The lvm driver against real LVM on a loop device (as root).

Works whether or not this kernel has device-mapper: without it every command
runs with activation disabled, and the operations that need an activated LV
(attach, clone, snapshot) must say so; with it they must work.
"""

import json
import os
import shutil
import subprocess
import uuid as uuidlib

import pytest

from sm.drivers.lvmsr import LV_PREFIX, NEEDS_ACTIVATION, VG_PREFIX, LvmDriver, dm_available
from sm.errors import (BackendFailure, SRFull, SRNotEmpty, Unsupported, VolumeExists,
                       VolumeInUse, VolumeNotFound)
from sm.runner import RecordingRunner, Runner

REAL_LVM = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup and LVM"),
    pytest.mark.skipif(not all(shutil.which(t) for t in ("losetup", "truncate", "lvm",
                                                          "pvcreate", "dmsetup")),
                       reason="needs losetup, truncate and lvm2 (pvcreate, dmsetup)"),
]


def real_lvm(test):
    """Marks a test that runs real LVM on a loop device."""
    for mark in REAL_LVM:
        test = mark(test)
    return test

MiB = 1 << 20
EXTENT = 4 * MiB  # vgcreate's default extent size


def new_uuid():
    return str(uuidlib.uuid4())


def lvm_json(*argv):
    """An LVM report through the plain tool, independent of the driver."""
    config = [] if dm_available() else ["--config", "global{activation=0}"]
    out = subprocess.run([argv[0], *config, "--reportformat", "json", "--units", "b",
                          "--nosuffix", *argv[1:]], capture_output=True, text=True,
                         env={**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"})
    if out.returncode != 0:
        return []
    key = argv[0][:-1]
    return [row for part in json.loads(out.stdout)["report"] for row in part.get(key, [])]


@pytest.fixture
def loop_device(tmp_path):
    image = tmp_path / "pv.img"
    subprocess.run(["truncate", "-s", "256M", str(image)], check=True)
    try:
        device = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True,
                                text=True, check=True).stdout.strip()
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"no loop device available: {exc.stderr.strip()}")
    try:
        yield device
    finally:
        # Whatever a failed test left: the VG (by device), the PV label, the loop device.
        config = [] if dm_available() else ["--config", "global{activation=0}"]
        for row in lvm_json("pvs", "-o", "vg_name", device):
            if row.get("vg_name"):
                subprocess.run(["vgremove", *config, "--force", row["vg_name"]],
                               capture_output=True)
        subprocess.run(["pvremove", *config, "--yes", "--force", device], capture_output=True)
        subprocess.run(["losetup", "-d", device], capture_output=True)
        image.unlink(missing_ok=True)


@pytest.fixture
def sr(loop_device, tmp_path):
    driver = LvmDriver(new_uuid(), {"device": loop_device}, Runner(), str(tmp_path / "st"))
    driver.create(0)
    driver.attach()
    return driver


@real_lvm
def test_create_makes_the_pv_and_vg(sr, loop_device):
    rows = lvm_json("pvs", "-o", "pv_name,vg_name", loop_device)
    assert rows == [{"pv_name": loop_device, "vg_name": VG_PREFIX + sr.sr_uuid}]
    assert sr.probe() == [{"uuid": sr.sr_uuid, "vg": VG_PREFIX + sr.sr_uuid,
                           "devices": loop_device}]
    with pytest.raises(BackendFailure) as info:
        sr.create(0)
    assert info.value.code == "SR_BACKEND_FAILURE_42"  # SRExists


@real_lvm
def test_volume_create_resize_scan_destroy(sr):
    a = sr.vol_create(new_uuid(), 10 * MiB)  # not a whole number of extents
    assert (a.virtual_size, a.physical_utilisation, a.format, a.parent) == \
        (10 * MiB, 12 * MiB, "raw", None)
    lvs = lvm_json("lvs", "-o", "lv_name,lv_size,lv_tags", sr.vg)
    assert lvs == [{"lv_name": LV_PREFIX + a.uuid, "lv_size": str(12 * MiB),
                    "lv_tags": f"vsize={10 * MiB}"}]
    b = sr.vol_create(new_uuid(), 4 * MiB)
    assert {v.uuid for v in sr.scan()} == {a.uuid, b.uuid}

    same = sr.vol_resize(a.uuid, 11 * MiB)  # fits in the extents already there
    assert (same.virtual_size, same.physical_utilisation) == (11 * MiB, 12 * MiB)
    grown = sr.vol_resize(a.uuid, 20 * MiB + 512)
    assert (grown.virtual_size, grown.physical_utilisation) == (20 * MiB + 512, 24 * MiB)
    with pytest.raises(BackendFailure) as info:
        sr.vol_resize(a.uuid, 4 * MiB)
    assert info.value.code == "SR_BACKEND_FAILURE_79"

    with pytest.raises(VolumeExists):
        sr.vol_create(a.uuid, MiB)
    sr.vol_destroy(a.uuid)
    assert [v.uuid for v in sr.scan()] == [b.uuid]
    with pytest.raises(VolumeNotFound) as info:
        sr.vol_destroy(a.uuid)
    assert info.value.params == (sr.sr_uuid, a.uuid)
    sr.vol_destroy(b.uuid)
    assert sr.scan() == []


@real_lvm
def test_tags_survive_a_rescan_by_a_new_driver(sr, loop_device, tmp_path):
    a = sr.vol_create(new_uuid(), 5 * MiB + 4096)
    sr.vol_resize(a.uuid, 9 * MiB)
    fresh = LvmDriver(sr.sr_uuid, {"device": loop_device}, Runner(), str(tmp_path / "other"))
    fresh.attach()
    assert fresh.scan() == [sr.vol_stat(a.uuid)]
    assert fresh.vol_stat(a.uuid).virtual_size == 9 * MiB
    tags = lvm_json("lvs", "-o", "lv_tags", f"{sr.vg}/{LV_PREFIX}{a.uuid}")[0]["lv_tags"]
    assert tags == f"vsize={9 * MiB}"  # the old size tag went


@real_lvm
def test_foreign_lvs_are_not_volumes(sr):
    config = [] if sr.activation else ["--config", "global{activation=0}"]
    create = ["--activate", "n", "--zero", "n"] if not sr.activation else ["--yes"]
    subprocess.run(["lvcreate", *config, *create, "-L", "4M", "-n", "MGT", sr.vg],
                   check=True, capture_output=True)
    assert sr.scan() == []
    subprocess.run(["lvremove", *config, "--force", f"{sr.vg}/MGT"], check=True,
                   capture_output=True)


@real_lvm
def test_stat_sizes(sr):
    vg = lvm_json("vgs", "-o", "vg_size,vg_free", sr.vg)[0]
    empty = sr.stat()
    assert empty.physical_size == int(vg["vg_size"])
    assert 240 * MiB <= empty.physical_size <= 256 * MiB
    assert (empty.physical_utilisation, empty.virtual_allocation) == (0, 0)
    sr.vol_create(new_uuid(), 10 * MiB)
    sr.vol_create(new_uuid(), 8 * MiB)
    stat = sr.stat()
    assert stat.physical_size == empty.physical_size
    assert stat.physical_utilisation == 12 * MiB + 8 * MiB
    assert stat.virtual_allocation == 18 * MiB


@real_lvm
def test_sr_full(sr):
    free = sr.stat().physical_size
    with pytest.raises(SRFull) as info:
        sr.vol_create(new_uuid(), free + EXTENT)
    assert info.value.code == "SR_FULL"
    assert info.value.params == (str(free + EXTENT), str(free))
    a = sr.vol_create(new_uuid(), free - EXTENT)
    with pytest.raises(SRFull):
        sr.vol_resize(a.uuid, free + EXTENT)
    assert sr.vol_stat(a.uuid).virtual_size == free - EXTENT


@real_lvm
def test_destroy_refuses_while_volumes_remain_then_removes_vg_and_pv(sr, loop_device):
    a = sr.vol_create(new_uuid(), 4 * MiB)
    with pytest.raises(SRNotEmpty):
        sr.destroy()
    sr.vol_destroy(a.uuid)
    sr.detach()
    sr.destroy()
    assert lvm_json("vgs", "-o", "vg_name", sr.vg) == []
    assert lvm_json("pvs", "-o", "pv_name", loop_device) == []  # the label is gone too
    with pytest.raises(BackendFailure) as info:
        sr.attach()
    assert info.value.code == "SR_BACKEND_FAILURE_47"


@real_lvm
def test_datapath_needs_activation(sr):
    a = sr.vol_create(new_uuid(), 8 * MiB)
    if not sr.activation:
        for call in (lambda: sr.vol_attach(a.uuid, True),
                     lambda: sr.vol_clone(a.uuid, new_uuid()),
                     lambda: sr.vol_snapshot(a.uuid, new_uuid()),
                     lambda: sr.open_reader(a.uuid)):
            with pytest.raises(Unsupported) as info:
                call()
            assert info.value.code == "SR_BACKEND_FAILURE_38"
            assert "device-mapper" in info.value.params[1]
        assert not set(NEEDS_ACTIVATION) & set(LvmDriver.host_info(sr.runner).capabilities)
        assert [v.uuid for v in sr.scan()] == [a.uuid]  # nothing half-made was left
        return
    att = sr.vol_attach(a.uuid, writable=True)
    assert (att.kind, att.format) == ("block", "raw")
    assert att.path == f"/dev/{sr.vg}/{LV_PREFIX}{a.uuid}"
    with open(att.path, "r+b") as f:
        f.write(b"on the LV")
    with pytest.raises(VolumeInUse):
        sr.vol_destroy(a.uuid)
    sr.vol_detach(a.uuid)
    clone = sr.vol_clone(a.uuid, new_uuid())
    with sr.open_reader(clone.uuid) as reader:
        assert reader.read(0, 9) == b"on the LV"
    sr.vol_destroy(clone.uuid)
    sr.vol_destroy(a.uuid)


# ---- command construction, both with and without device-mapper (no root needed) ------------

SR_UUID = "0f6e1d2c-3b4a-4958-8776-a5b4c3d2e1f0"
VOL = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
VG = VG_PREFIX + SR_UUID
NO_DM = ["--config", "global{activation=0}"]
REPORT = ["--reportformat", "json", "--units", "b", "--nosuffix"]


class _Lvm(LvmDriver):
    dm_control = "/"  # exists everywhere: the recorded dmsetup answer decides

    def devices(self):
        return ["/dev/fake0"]


def recorded(dm: bool) -> RecordingRunner:
    runner = RecordingRunner()
    runner.when(["dmsetup", "version"], rc=0 if dm else 1)
    vgs = {"report": [{"vg": [{"vg_name": VG, "vg_size": str(256 * MiB),
                               "vg_free": str(200 * MiB), "vg_extent_size": str(EXTENT)}]}]}
    lvs_before = {"report": [{"lv": []}]}
    lvs_after = {"report": [{"lv": [{"lv_name": LV_PREFIX + VOL, "lv_size": str(8 * MiB),
                                     "lv_tags": f"vsize={6 * MiB}"}]}]}
    runner.when_json(["vgs"], vgs)
    runner.when_json(["lvs"], lvs_after)
    runner.when_json(["lvs"], lvs_before, times=1)  # the existence check sees nothing
    return runner


def test_without_device_mapper_every_command_disables_activation(tmp_path):
    runner = recorded(dm=False)
    driver = _Lvm(SR_UUID, {"device": "/dev/fake0"}, runner, str(tmp_path))
    volume = driver.vol_create(VOL, 6 * MiB)
    assert (volume.virtual_size, volume.physical_utilisation) == (6 * MiB, 8 * MiB)
    lvm_calls = [c for c in runner.calls if c[0] != "dmsetup"]
    assert all(c[1:3] == NO_DM for c in lvm_calls)
    assert ["lvcreate", *NO_DM, "--activate", "n", "--zero", "n", "--size", f"{6 * MiB}B",
            "--name", LV_PREFIX + VOL, "--addtag", f"vsize={6 * MiB}", VG] in runner.calls
    assert runner.commands("lvchange") == []
    assert ["lvs", *NO_DM, *REPORT, "-o", "lv_name,lv_size,lv_tags", VG] in runner.calls


def test_with_device_mapper_lvs_are_active_only_while_attached(tmp_path):
    runner = recorded(dm=True)
    driver = _Lvm(SR_UUID, {"device": "/dev/fake0"}, runner, str(tmp_path))
    driver.vol_create(VOL, 6 * MiB)
    assert ["lvcreate", "--activate", "y", "--zero", "y", "--wipesignatures", "y", "--yes",
            "--size", f"{6 * MiB}B", "--name", LV_PREFIX + VOL, "--addtag", f"vsize={6 * MiB}",
            VG] in runner.calls
    assert runner.commands("lvchange")[-1] == ["lvchange", "--activate", "n", f"{VG}/LV-{VOL}"]
    attachment = driver.vol_attach(VOL, writable=True)
    assert (attachment.kind, attachment.path) == ("block", f"/dev/{VG}/LV-{VOL}")
    assert runner.commands("lvchange")[-1] == ["lvchange", "--activate", "y", f"{VG}/LV-{VOL}"]
    with pytest.raises(VolumeInUse):
        driver.vol_resize(VOL, 10 * MiB)
    driver.vol_detach(VOL)
    assert runner.commands("lvchange")[-1] == ["lvchange", "--activate", "n", f"{VG}/LV-{VOL}"]
    driver.detach()
    assert runner.calls[-1] == ["vgchange", "--activate", "n", VG]


def test_lvm_failures_name_their_table_entries(tmp_path):
    runner = recorded(dm=False).when(["lvcreate"], rc=5, stderr="  Insufficient free space\n")
    driver = _Lvm(SR_UUID, {"device": "/dev/fake0"}, runner, str(tmp_path))
    with pytest.raises(BackendFailure) as info:
        driver.vol_create(VOL, 6 * MiB)
    assert info.value.code == "SR_BACKEND_FAILURE_50"  # LVMCreate
    assert "Insufficient free space" in info.value.params[1]
