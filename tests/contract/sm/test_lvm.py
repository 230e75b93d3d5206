"""The lvm driver against real LVM on loop devices (as root).

Works whether or not this kernel has device-mapper: without it every command
runs with activation disabled, the LVs' data is read and written on the PVs at
their extents' offsets (sm.drivers.lvextents), and only attach (which needs an
activated LV) must say it cannot; with it everything works through activation.
Data written is checked independently by reading the loop devices' image files
at the offsets `pvs --segments` gives.
"""

import json
import os
import random
import shutil
import subprocess
import uuid as uuidlib

import pytest

from sm.drivers.filesr import FileDriver
from sm.drivers.lvmsr import LV_PREFIX, NEEDS_ACTIVATION, VG_PREFIX, LvmDriver, dm_available
from sm.errors import (BackendFailure, SRFull, SRNotEmpty, Unsupported, VolumeExists,
                       VolumeInUse, VolumeNotFound)
from sm.runner import Runner
from tests.support import attach_loop, detach_loop

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


def lvm_config():
    return [] if dm_available() else ["--config", "global{activation=0}"]


def lvm_json(*argv, key=None):
    """An LVM report through the plain tool, independent of the driver."""
    out = subprocess.run([argv[0], *lvm_config(), "--reportformat", "json", "--units", "b",
                          "--nosuffix", *argv[1:]], capture_output=True, text=True,
                         env={**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"})
    if out.returncode != 0:
        return []
    key = key or argv[0][:-1]
    return [row for part in json.loads(out.stdout)["report"] for row in part.get(key, [])]


def lvm_run(*argv):
    subprocess.run([argv[0], *lvm_config(), *argv[1:]], check=True, capture_output=True,
                   env={**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"})


@pytest.fixture
def loops(tmp_path):
    """loops(size, ...) -> loop devices on fresh sparse images; all removed afterwards."""
    made = []

    def make(*sizes):
        devices = []
        for size in sizes:
            image = tmp_path / f"pv{len(made)}.img"
            device = attach_loop(image, size)
            made.append((device, image))
            devices.append(device)
        return devices

    yield make
    # Whatever a failed test left: the VG (by device), the PV label, the loop device.
    for device, image in made:
        for row in lvm_json("pvs", "-o", "vg_name", device):
            if row.get("vg_name"):
                subprocess.run(["vgremove", *lvm_config(), "--force", row["vg_name"]],
                               capture_output=True)
        subprocess.run(["pvremove", *lvm_config(), "--yes", "--force", device],
                       capture_output=True)
        detach_loop(device, image)


@pytest.fixture
def loop_device(loops):
    return loops("256M")[0]


def make_sr(devices, tmp_path):
    driver = LvmDriver(new_uuid(), {"device": ",".join(devices)}, Runner(),
                       str(tmp_path / "st"))
    driver.create(0)
    driver.attach()
    return driver


@pytest.fixture
def sr(loop_device, tmp_path):
    return make_sr([loop_device], tmp_path)


def read_images(vg, lv, offset, length):
    """An LV's bytes read from its loop devices' image files, extent by extent, where
    `pvs --segments` places them (a computation of its own, not the driver's)."""
    extent = int(lvm_json("vgs", "-o", "vg_extent_size", vg)[0]["vg_extent_size"])
    segs = [r for r in lvm_json("pvs", "--segments", "-o", "vg_name,pv_name,pe_start,"
                                "pvseg_start,pvseg_size,lv_name,seg_start_pe", key="pvseg")
            if r["vg_name"] == vg and r["lv_name"] == lv]
    assert segs, f"pvs shows no extents of {vg}/{lv}"
    out = bytearray()
    for le in range(offset // extent, (offset + length - 1) // extent + 1):
        [seg] = [s for s in segs
                 if int(s["seg_start_pe"]) <= le < int(s["seg_start_pe"]) + int(s["pvseg_size"])]
        pe = int(seg["pvseg_start"]) + le - int(seg["seg_start_pe"])
        name = os.path.basename(seg["pv_name"])
        with open(f"/sys/block/{name}/loop/backing_file") as f:
            image = f.read().strip()
        with open(image, "rb") as f:
            f.seek(int(seg["pe_start"]) + pe * extent)
            out += f.read(extent)
    start = offset % extent
    return bytes(out[start:start + length])


def lv_devices(vg, lv):
    return {r["seg_pe_ranges"].rpartition(":")[0]
            for r in lvm_json("lvs", "--segments", "-o", "seg_pe_ranges", f"{vg}/{lv}",
                              key="seg")}


def read_all(sr, uuid, length):
    with sr.open_reader(uuid) as reader:
        return reader.read(0, length)


def noise(seed, n):
    return random.Random(seed).randbytes(n)


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
def test_attach_needs_activation(sr):
    a = sr.vol_create(new_uuid(), 8 * MiB)
    capabilities = set(LvmDriver.host_info(sr.runner).capabilities)
    assert {"VDI_CREATE", "VDI_CLONE", "VDI_SNAPSHOT", "VDI_RESIZE"} <= capabilities
    if not sr.activation:
        with pytest.raises(Unsupported) as info:
            sr.vol_attach(a.uuid, True)
        assert info.value.code == "SR_BACKEND_FAILURE_38"
        assert "device-mapper" in info.value.params[1]
        assert not set(NEEDS_ACTIVATION) & capabilities
        assert sr.book.get(a.uuid) is None
        return
    att = sr.vol_attach(a.uuid, writable=True)
    assert (att.kind, att.format) == ("block", "raw")
    assert att.path == f"/dev/{sr.vg}/{LV_PREFIX}{a.uuid}"
    with open(att.path, "r+b") as f:
        f.write(b"on the LV")
    with pytest.raises(VolumeInUse):
        sr.vol_destroy(a.uuid)
    with pytest.raises(VolumeInUse):
        sr.vol_clone(a.uuid, new_uuid())  # a copy of a disk being written is torn
    sr.vol_detach(a.uuid)
    clone = sr.vol_clone(a.uuid, new_uuid())
    with sr.open_reader(clone.uuid) as reader:
        assert reader.read(0, 9) == b"on the LV"
    sr.vol_destroy(clone.uuid)
    sr.vol_destroy(a.uuid)


@real_lvm
def test_writer_puts_data_in_the_lvs_extents(sr):
    a = sr.vol_create(new_uuid(), 10 * MiB + 512)  # three extents, the last partly used
    lv = LV_PREFIX + a.uuid
    model = bytearray(a.physical_utilisation)
    writes = [(0, b"first sector"), (EXTENT - 5, b"across extents"),
              (2 * EXTENT + 12345, noise(1, 3 * MiB)), (a.physical_utilisation - 3, b"end")]
    with sr.open_writer(a.uuid) as writer:
        assert writer.size == 10 * MiB + 512
        for offset, data in writes:
            writer.write(offset, data)
            model[offset:offset + len(data)] = data
        with pytest.raises(BackendFailure) as info:  # nothing outside the LV's extents
            writer.write(a.physical_utilisation - 2, b"past")
        assert info.value.code == "SR_BACKEND_FAILURE_54"
    with sr.open_reader(a.uuid) as reader:
        assert reader.size == 10 * MiB + 512
        assert reader.read(EXTENT - 5, 14) == b"across extents"
        assert reader.read(0, a.physical_utilisation) == bytes(model)
        assert reader.read(a.physical_utilisation - 3, 10) == b"end" + bytes(7)
    assert read_images(sr.vg, lv, 0, a.physical_utilisation) == bytes(model)
    assert read_images(sr.vg, lv, EXTENT - 5, 14) == b"across extents"


@real_lvm
def test_clone_and_snapshot_are_full_copies(sr):
    a = sr.vol_create(new_uuid(), 14 * MiB + 4096)
    size = a.physical_utilisation
    original = noise(2, size)
    with sr.open_writer(a.uuid) as writer:
        writer.write(0, original)
    clone = sr.vol_clone(a.uuid, new_uuid())
    snap = sr.vol_snapshot(a.uuid, new_uuid())
    for v in (clone, snap):
        assert (v.virtual_size, v.physical_utilisation, v.format, v.parent) == \
            (a.virtual_size, size, "raw", None)
        [row] = lvm_json("lvs", "-o", "lv_tags", f"{sr.vg}/{LV_PREFIX}{v.uuid}")
        assert row == {"lv_tags": f"vsize={a.virtual_size}"}
    assert {v.uuid for v in sr.scan()} == {a.uuid, clone.uuid, snap.uuid}
    for uuid in (a.uuid, clone.uuid, snap.uuid):
        assert read_all(sr, uuid, size) == original
        assert read_images(sr.vg, LV_PREFIX + uuid, 0, size) == original
    assert sr.vol_stat(a.uuid) == a  # the original keeps its uuid, sizes and contents

    # The copies share nothing: writing the original changes neither.
    with sr.open_writer(a.uuid) as writer:
        writer.write(EXTENT - 100, b"changed after the clone")
        writer.write(0, bytes(4096))
    changed = bytearray(original)
    changed[EXTENT - 100:EXTENT - 77] = b"changed after the clone"
    changed[:4096] = bytes(4096)
    assert read_all(sr, a.uuid, size) == bytes(changed)
    assert read_images(sr.vg, LV_PREFIX + a.uuid, 0, size) == bytes(changed)
    for v in (clone, snap):
        assert read_all(sr, v.uuid, size) == original
        assert read_images(sr.vg, LV_PREFIX + v.uuid, 0, size) == original

    with pytest.raises(VolumeExists):
        sr.vol_clone(a.uuid, snap.uuid)
    with pytest.raises(VolumeNotFound):
        sr.vol_snapshot(new_uuid(), new_uuid())
    for v in (clone, snap, a):
        sr.vol_destroy(v.uuid)
    assert sr.scan() == []


@real_lvm
def test_clone_needs_room_for_a_whole_copy(sr):
    free = sr.stat().physical_size
    a = sr.vol_create(new_uuid(), free // 2 + EXTENT)
    with pytest.raises(SRFull):
        sr.vol_clone(a.uuid, new_uuid())
    assert [v.uuid for v in sr.scan()] == [a.uuid]


def pv_extents(vg, lv):
    """[(pv, first physical extent, count)] of an LV, from pvs --segments."""
    return sorted((r["pv_name"], int(r["pvseg_start"]), int(r["pvseg_size"]))
                  for r in lvm_json("pvs", "--segments", "-o", "vg_name,pv_name,pvseg_start,"
                                    "pvseg_size,lv_name", key="pvseg")
                  if r["vg_name"] == vg and r["lv_name"] == lv)


@real_lvm
def test_a_new_vdi_on_a_destroyed_ones_extents_reads_zeros(sr):
    """No data leaks between VDIs: a VDI made of the very extents a destroyed one had,
    and a resize that grows onto freed extents, read as zeros (with or without
    device-mapper: both zero the whole range)."""
    size = 24 * MiB
    old = sr.vol_create(new_uuid(), size)
    pattern = (b"secret of the old VDI " * (size // 16))[:size]
    with sr.open_writer(old.uuid) as writer:
        writer.write(0, pattern)
    where = pv_extents(sr.vg, LV_PREFIX + old.uuid)
    assert read_images(sr.vg, LV_PREFIX + old.uuid, 0, size) == pattern
    sr.vol_destroy(old.uuid)
    new = sr.vol_create(new_uuid(), size)
    assert pv_extents(sr.vg, LV_PREFIX + new.uuid) == where  # the same place
    assert read_all(sr, new.uuid, size) == bytes(size)
    assert read_images(sr.vg, LV_PREFIX + new.uuid, 0, size) == bytes(size)

    # a resize onto extents a destroyed VDI wrote: small VDI first, a big one after it
    sr.vol_destroy(new.uuid)
    small = sr.vol_create(new_uuid(), 4 * MiB)
    after = sr.vol_create(new_uuid(), 16 * MiB)
    with sr.open_writer(after.uuid) as writer:
        writer.write(0, pattern[:16 * MiB])
    with sr.open_writer(small.uuid) as writer:
        writer.write(0, b"kept")
    freed = pv_extents(sr.vg, LV_PREFIX + after.uuid)
    sr.vol_destroy(after.uuid)
    grown = sr.vol_resize(small.uuid, 20 * MiB)
    assert grown.physical_utilisation == 20 * MiB
    [(pv, first, count)] = freed
    assert pv_extents(sr.vg, LV_PREFIX + small.uuid) == [(pv, first - 1, count + 1)]
    data = read_all(sr, small.uuid, 20 * MiB)
    assert data[:4] == b"kept" and data[4:] == bytes(20 * MiB - 4)
    assert read_images(sr.vg, LV_PREFIX + small.uuid, 0, 20 * MiB) == data


@real_lvm
def test_new_and_grown_space_reads_as_zeros_on_reused_extents(sr):
    old = sr.vol_create(new_uuid(), 20 * MiB)
    with sr.open_writer(old.uuid) as writer:
        writer.write(0, b"\xaa" * old.physical_utilisation)
    place = read_images(sr.vg, LV_PREFIX + old.uuid, 0, 16)
    assert place == b"\xaa" * 16
    sr.vol_destroy(old.uuid)
    new = sr.vol_create(new_uuid(), 10 * MiB - 512)  # takes the same, freed extents
    assert read_all(sr, new.uuid, new.physical_utilisation) == bytes(new.physical_utilisation)
    assert read_images(sr.vg, LV_PREFIX + new.uuid, 0, new.physical_utilisation) == \
        bytes(new.physical_utilisation)

    other = sr.vol_create(new_uuid(), 8 * MiB)  # the other half of the old LV's extents
    with sr.open_writer(new.uuid) as writer:  # data, and bytes past the virtual size
        writer.write(0, b"kept")
        writer.write(10 * MiB - 512, b"\xbb" * 512)
    sr.vol_destroy(other.uuid)  # frees extents that still hold 0xaa for the resize
    grown = sr.vol_resize(new.uuid, 20 * MiB)
    assert grown.physical_utilisation == 20 * MiB
    data = read_all(sr, new.uuid, 20 * MiB)
    assert data[:4] == b"kept" and data[4:] == bytes(20 * MiB - 4)
    assert read_images(sr.vg, LV_PREFIX + new.uuid, 0, 20 * MiB) == data


@real_lvm
def test_an_lv_over_two_pvs_copies_right(loops, tmp_path):
    small, big = loops("64M", "128M")  # 15 and 31 extents
    sr = make_sr([small, big], tmp_path)
    filler = "filler"  # not a volume: holds 20 extents of the big PV
    lvm_run("lvcreate", "--activate", "n", "--zero", "n", "-l", "20", "-n", filler, sr.vg, big)
    a = sr.vol_create(new_uuid(), 80 * MiB)  # 20 extents: fits on neither PV alone
    assert lv_devices(sr.vg, LV_PREFIX + a.uuid) == {small, big}
    lvm_run("lvremove", "--force", f"{sr.vg}/{filler}")
    size = a.physical_utilisation
    data = noise(3, size)
    with sr.open_writer(a.uuid) as writer:
        for offset in range(0, size, 3 * MiB):  # chunks that straddle extents and PVs
            writer.write(offset, data[offset:offset + 3 * MiB])
    assert read_images(sr.vg, LV_PREFIX + a.uuid, 0, size) == data

    clone = sr.vol_clone(a.uuid, new_uuid())
    assert read_all(sr, clone.uuid, size) == data
    assert read_images(sr.vg, LV_PREFIX + clone.uuid, 0, size) == data
    sr.vol_destroy(clone.uuid)

    # To a file SR and back again, through open_reader and open_writer.
    files = FileDriver(new_uuid(), {"location": str(tmp_path / "files")}, Runner(),
                       str(tmp_path / "st"))
    files.create(0)
    files.attach()
    there = sr.vol_copy_to(a.uuid, files, new_uuid())
    assert there.virtual_size == a.virtual_size
    with files.open_reader(there.uuid) as reader:
        assert reader.read(0, size) == data
    sr.vol_destroy(a.uuid)
    back = files.vol_copy_to(there.uuid, sr, new_uuid())
    assert (back.virtual_size, back.physical_utilisation) == (a.virtual_size, size)
    assert read_all(sr, back.uuid, size) == data
    assert read_images(sr.vg, LV_PREFIX + back.uuid, 0, size) == data


@real_lvm
@pytest.mark.skipif(dm_available(), reason="with device-mapper the LV is read through dm")
def test_segments_that_are_not_linear_are_refused(loops, tmp_path):
    sr = make_sr(loops("64M", "64M"), tmp_path)
    uuid = new_uuid()
    lvm_run("lvcreate", "--activate", "n", "--zero", "n", "-i", "2", "-L", "8M", "-n",
            LV_PREFIX + uuid, "--addtag", f"vsize={8 * MiB}", sr.vg)
    for call in (lambda: sr.vol_clone(uuid, new_uuid()),
                 lambda: sr.vol_snapshot(uuid, new_uuid()),
                 lambda: sr.open_reader(uuid), lambda: sr.open_writer(uuid)):
        with pytest.raises(Unsupported) as info:
            call()
        assert info.value.code == "SR_BACKEND_FAILURE_38"
        assert "striped with 2 stripe(s)" in info.value.params[1]
    assert [v.uuid for v in sr.scan()] == [uuid]  # no half-made copy
