"""The VHD-file drivers on this machine: `file` in a temporary directory, `ext` on a loop
device (as root), `iso` on a directory of images, and vol_copy_to between SRs.

Contents are written through the attachment (the file with sm.vhd, or a chain's NBD
server with qemu-io), as a hypervisor would, and checked with libvhdi (pyvhdi), an
independent VHD reader.
"""

import json
import os
import shutil
import subprocess
import uuid as uuidlib

import pytest

from sm import vhd
from sm.driver import Attachment
from sm.drivers.filesr import ExtDriver, FileDriver
from sm.drivers.isosr import IsoDriver, iso_uuid
from sm.drivers.vhddir import host_id
from sm.errors import (BackendFailure, Cancelled, SRFull, SRNotEmpty, Unsupported,
                       VolumeExists, VolumeInUse, VolumeNotFound, VolumeReadOnly)
from sm.runner import Runner
from tests.contract.sm.libvhdi import libvhdi_read
from tests.support import attach_loop, detach_loop

MiB = 1 << 20


def new_uuid():
    return str(uuidlib.uuid4())


def write(attachment: Attachment, offset, data):
    """Write as a hypervisor would: into the VHD file of a parentless volume, through the
    attachment's NBD server (qemu-io) for a chain."""
    if attachment.kind == "nbd":
        assert attachment.format == "raw"
        source = attachment.path + ".data"
        with open(source, "wb") as f:
            f.write(data)
        subprocess.run(["qemu-io", "-f", "raw", attachment.uri, "-c",
                        f"write -s {source} {offset} {len(data)}", "-c", "flush"],
                       check=True, capture_output=True)
        os.unlink(source)
        return
    assert attachment.kind == "file" and attachment.format == "vpc"
    with vhd.open(attachment.path, writable=True) as image:
        image.write(offset, data)
        image.flush()


@pytest.fixture
def sr(tmp_path, nbdkit):  # chains attach through nbdkit
    location = tmp_path / "srs"
    location.mkdir()
    driver = FileDriver(new_uuid(), {"location": str(location)}, Runner(), str(tmp_path / "st"))
    driver.create(0)
    driver.attach()
    return driver


def test_volume_life_cycle_with_clones_and_a_three_deep_chain(sr):
    a = sr.vol_create(new_uuid(), 16 * MiB)
    assert (a.virtual_size, a.parent, a.read_only, a.format) == (16 * MiB, None, False, "vhd")
    assert a.location == a.uuid
    assert a.physical_utilisation < 1 * MiB  # thin: only metadata so far

    att = sr.vol_attach(a.uuid, writable=True)
    assert att.path == os.path.join(sr.sr_path(), a.uuid + ".vhd")
    write(att, 0, b"first" * 1000)
    write(att, 9 * MiB, b"X" * 4096)
    sr.vol_detach(a.uuid)
    # Thin: the allocated bytes of the file, which grow with what was written.
    assert sr.vol_stat(a.uuid).physical_utilisation >= a.physical_utilisation + 8192

    s1 = sr.vol_snapshot(a.uuid, new_uuid())
    base1 = sr.vol_stat(a.uuid).parent
    assert s1.parent == base1 and base1 is not None
    assert sr.vol_stat(base1).read_only

    write(sr.vol_attach(a.uuid, True), 0, b"second")
    sr.vol_detach(a.uuid)
    s2 = sr.vol_snapshot(a.uuid, new_uuid())
    base2 = sr.vol_stat(a.uuid).parent
    assert sr.vol_stat(base2).parent == base1  # a -> base2 -> base1

    c1 = sr.vol_clone(s1.uuid, new_uuid())
    assert not c1.read_only

    path = lambda v: sr.volumes.file(v)  # noqa: E731
    assert libvhdi_read(path(s1.uuid), 0, 5) == b"first"
    assert libvhdi_read(path(c1.uuid), 0, 10) == b"firstfirst"
    assert libvhdi_read(path(s2.uuid), 0, 11) == b"secondirstf"
    assert libvhdi_read(path(a.uuid), 0, 11) == b"secondirstf"
    assert libvhdi_read(path(a.uuid), 9 * MiB, 4096) == b"X" * 4096
    assert vhd.chain(path(a.uuid)) == [path(a.uuid), path(base2), path(base1)]

    volumes = {v.uuid: v for v in sr.scan()}
    bases = {u for u, v in volumes.items() if v.read_only}
    assert bases == {base1, base2, sr.vol_stat(s1.uuid).parent}
    assert {a.uuid, s1.uuid, s2.uuid, c1.uuid} <= volumes.keys()

    # Bases cannot go while something reads through them.
    with pytest.raises(VolumeInUse):
        sr.vol_destroy(base1)
    with pytest.raises(VolumeReadOnly):
        sr.vol_attach(base1, writable=True)

    for v in (a.uuid, s2.uuid, s1.uuid, c1.uuid):
        sr.vol_destroy(v)
    assert sr.scan() == []  # every base was collected with its last child
    assert os.listdir(sr.sr_path()) == []


def test_snapshot_of_a_base_adds_a_child_without_a_new_base(sr):
    a = sr.vol_create(new_uuid(), 4 * MiB)
    snap = sr.vol_snapshot(a.uuid, new_uuid())
    base = snap.parent
    again = sr.vol_clone(base, new_uuid())
    assert again.parent == base
    assert len([v for v in sr.scan() if v.read_only]) == 1


def test_resize_grows_keeps_data_and_refuses_to_shrink(sr):
    a = sr.vol_create(new_uuid(), 4 * MiB)
    write(sr.vol_attach(a.uuid, True), 0, b"keep")
    with pytest.raises(VolumeInUse):
        sr.vol_resize(a.uuid, 8 * MiB)  # offline resize only
    sr.vol_detach(a.uuid)
    grown = sr.vol_resize(a.uuid, 64 * MiB)
    assert grown.virtual_size == 64 * MiB == sr.vol_stat(a.uuid).virtual_size
    out = json.loads(subprocess.run(["qemu-img", "info", "--output=json", sr.volumes.file(a.uuid)],
                                    capture_output=True, text=True, check=True).stdout)
    assert out["virtual-size"] == 64 * MiB  # qemu's reader agrees
    with sr.open_reader(a.uuid) as reader:
        assert reader.read(0, 4) == b"keep"
        assert reader.read(60 * MiB, 16) == bytes(16)
    with pytest.raises(BackendFailure) as info:
        sr.vol_resize(a.uuid, 1 * MiB)
    assert info.value.code == "SR_BACKEND_FAILURE_79"

    # A child may outgrow its parent: the rest reads as zeros.
    snap = sr.vol_snapshot(a.uuid, new_uuid())
    sr.vol_resize(snap.uuid, 128 * MiB)
    with sr.open_reader(snap.uuid) as reader:
        assert reader.size == 128 * MiB
        assert reader.read(0, 4) == b"keep" and reader.read(100 * MiB, 8) == bytes(8)


def test_scan_follows_files_added_and_removed_behind_its_back(sr, tmp_path):
    a = sr.vol_create(new_uuid(), 4 * MiB)
    outsider = new_uuid()
    vhd.create_dynamic(str(tmp_path / "made-elsewhere.vhd"), 8 * MiB)
    shutil.copy(tmp_path / "made-elsewhere.vhd", sr.volumes.file(outsider))
    for junk in ("notes.txt", "not-a-uuid.vhd", "ABCDEF.vhd"):
        (tmp_path / "srs" / sr.sr_uuid / junk).write_text("junk")
    assert {v.uuid: v.virtual_size for v in sr.scan()} == {a.uuid: 4 * MiB, outsider: 8 * MiB}

    os.unlink(sr.volumes.file(a.uuid))
    assert [v.uuid for v in sr.scan()] == [outsider]

    # A damaged image does not make the SR unscannable: listed read-only, destroyable.
    damaged = new_uuid()
    with open(sr.volumes.file(damaged), "wb") as f:
        f.write(b"\xff" * 4096)
    listed = {v.uuid: v for v in sr.scan()}
    assert (listed[damaged].read_only, listed[damaged].virtual_size) == (True, 0)
    with pytest.raises(VolumeReadOnly):
        sr.vol_attach(damaged, writable=True)
    sr.vol_destroy(damaged)
    assert [v.uuid for v in sr.scan()] == [outsider]
    with pytest.raises(VolumeNotFound) as info:
        sr.vol_stat(a.uuid)
    assert info.value.code == "VDI_MISSING"
    assert info.value.params == (sr.sr_uuid, a.uuid)


def test_errors_for_existing_missing_and_attached_volumes(sr):
    a = sr.vol_create(new_uuid(), 4 * MiB)
    with pytest.raises(VolumeExists) as info:
        sr.vol_create(a.uuid, 4 * MiB)
    assert info.value.code == "SR_BACKEND_FAILURE_43"
    with pytest.raises(VolumeNotFound):
        sr.vol_destroy(new_uuid())
    sr.vol_attach(a.uuid, writable=True)
    with pytest.raises(VolumeInUse) as info:
        sr.vol_destroy(a.uuid)
    assert info.value.params == (a.uuid, "destroy")
    with pytest.raises(VolumeInUse):
        sr.vol_snapshot(a.uuid, new_uuid())
    with pytest.raises(VolumeInUse):
        sr.vol_attach(a.uuid, writable=False)  # one writer excludes readers
    with pytest.raises(BackendFailure) as info:
        sr.detach()
    assert info.value.code == "SR_BACKEND_FAILURE_16"
    sr.vol_detach(a.uuid)
    sr.vol_attach(a.uuid, writable=False)
    sr.vol_attach(a.uuid, writable=False)  # any number of readers
    sr.vol_detach(a.uuid)
    with pytest.raises(VolumeInUse):
        sr.vol_destroy(a.uuid)  # one reader left
    sr.vol_detach(a.uuid)
    sr.vol_destroy(a.uuid)


def test_stat_reports_filesystem_and_leaf_sizes(sr):
    a = sr.vol_create(new_uuid(), 10 * MiB)
    sr.vol_snapshot(a.uuid, new_uuid())
    stat = sr.stat()
    vfs = os.statvfs(sr.sr_path())
    assert stat.physical_size == vfs.f_blocks * vfs.f_frsize
    assert 0 < stat.physical_utilisation <= stat.physical_size
    assert stat.virtual_allocation == 20 * MiB  # two leaves; the base is not counted


def test_sr_destroy_refuses_while_volumes_remain(sr):
    a = sr.vol_create(new_uuid(), 4 * MiB)
    with pytest.raises(SRNotEmpty) as info:
        sr.destroy()
    assert info.value.code == "SR_BACKEND_FAILURE_39"
    sr.vol_destroy(a.uuid)
    sr.detach()
    sr.destroy()
    assert not os.path.exists(sr.sr_path())
    with pytest.raises(BackendFailure) as info:
        sr.attach()
    assert info.value.code == "SR_BACKEND_FAILURE_47"


def test_probe_lists_sr_directories(sr):
    assert sr.probe() == [{"uuid": sr.sr_uuid, "path": sr.sr_path()}]


def test_recover_rolls_back_an_interrupted_snapshot_of_this_host_only(sr):
    a = sr.vol_create(new_uuid(), 4 * MiB)
    write(sr.vol_attach(a.uuid, True), 0, b"data")
    sr.vol_detach(a.uuid)
    base, new = new_uuid(), new_uuid()
    # The state a crash leaves right after the rename, with a half-made second child.
    with open(os.path.join(sr.sr_path(), f".branch-{host_id()}-{a.uuid}.json"), "w") as f:
        json.dump({"leaf": a.uuid, "base": base, "new": new}, f)
    os.rename(sr.volumes.file(a.uuid), sr.volumes.file(base))
    with open(sr.volumes.file(new), "wb") as f:
        f.write(b"partial")
    foreign = os.path.join(sr.sr_path(), f".branch-otherhost-{new_uuid()}.json")
    open(foreign, "w").write("{}")
    open(os.path.join(sr.sr_path(), f".tmp-{host_id()}-{new_uuid()}.vhd"), "w").close()

    assert [v.uuid for v in sr.scan()] == [a.uuid]
    assert sorted(os.listdir(sr.sr_path())) == sorted([a.uuid + ".vhd",
                                                       os.path.basename(foreign)])
    with sr.open_reader(a.uuid) as reader:
        assert reader.read(0, 4) == b"data"


def test_vol_copy_to_another_sr_flattens_the_chain(sr, tmp_path):
    other = FileDriver(new_uuid(), {"location": str(tmp_path / "srs")}, Runner(),
                       str(tmp_path / "st"))
    other.create(0)
    other.attach()
    a = sr.vol_create(new_uuid(), 12 * MiB)
    write(sr.vol_attach(a.uuid, True), 0, b"base!")
    sr.vol_detach(a.uuid)
    sr.vol_snapshot(a.uuid, new_uuid())
    write(sr.vol_attach(a.uuid, True), 10 * MiB, b"leaf!")
    sr.vol_detach(a.uuid)

    seen = []
    copy = sr.vol_copy_to(a.uuid, other, new_uuid(), seen.append)
    assert copy.parent is None and copy.virtual_size == 12 * MiB
    assert seen[-1] == 1.0 and seen == sorted(seen)
    target = other.volumes.file(copy.uuid)
    assert libvhdi_read(target, 0, 5) == b"base!"
    assert libvhdi_read(target, 10 * MiB, 5) == b"leaf!"
    assert copy.physical_utilisation < 6 * MiB  # only the two written blocks

    doomed = new_uuid()
    with pytest.raises(Cancelled) as info:
        sr.vol_copy_to(a.uuid, other, doomed, lambda fraction: False)
    assert info.value.code == "TASK_CANCELLED"
    assert doomed not in {v.uuid for v in other.scan()}


# ---- iso ------------------------------------------------------------------------------------

@pytest.fixture
def iso_dir(tmp_path):
    d = tmp_path / "isos"
    d.mkdir()
    (d / "debian.iso").write_bytes(b"CD001" + bytes(4091))
    (d / "tools.ISO").write_bytes(b"tools")
    (d / "readme.txt").write_text("not an image")
    return d


def test_iso_volumes_are_stable_read_only_files(iso_dir, tmp_path):
    sr_uuid = new_uuid()
    iso = IsoDriver(sr_uuid, {"location": str(iso_dir)}, Runner(), str(tmp_path / "st"))
    iso.create(0)
    iso.attach()
    volumes = iso.scan()
    assert [(v.name, v.format, v.read_only, v.virtual_size) for v in volumes] == [
        ("debian.iso", "iso", True, 4096), ("tools.ISO", "iso", True, 5)]
    again = IsoDriver(sr_uuid, {"location": str(iso_dir)}, Runner(), str(tmp_path / "st"))
    assert [v.uuid for v in again.scan()] == [v.uuid for v in volumes]
    assert volumes[0].uuid == iso_uuid(sr_uuid, "debian.iso")
    assert iso_uuid(new_uuid(), "debian.iso") != volumes[0].uuid  # per SR

    deb = volumes[0].uuid
    att = iso.vol_attach(deb, writable=False)
    assert att == Attachment("file", str(iso_dir / "debian.iso"), "iso", sr=sr_uuid, vdi=deb)
    with pytest.raises(VolumeReadOnly):
        iso.vol_attach(deb, writable=True)
    iso.vol_detach(deb)
    with pytest.raises(Unsupported) as info:
        iso.vol_create(new_uuid(), MiB)
    assert info.value.code == "SR_BACKEND_FAILURE_38"
    with pytest.raises(Unsupported):
        iso.vol_destroy(deb)
    with pytest.raises(VolumeNotFound):
        iso.vol_stat(new_uuid())

    (iso_dir / "tools.ISO").unlink()
    (iso_dir / "new.iso").write_bytes(b"n")
    assert [v.name for v in iso.scan()] == ["debian.iso", "new.iso"]
    iso.destroy()
    assert (iso_dir / "debian.iso").exists()  # the user's files are never deleted


def test_iso_copies_into_a_vhd_sr(iso_dir, sr, tmp_path):
    iso = IsoDriver(new_uuid(), {"location": str(iso_dir)}, Runner(), str(tmp_path / "st"))
    source = iso.scan()[0]
    copy = iso.vol_copy_to(source.uuid, sr, new_uuid())
    assert copy.virtual_size == 4096
    assert libvhdi_read(sr.volumes.file(copy.uuid), 0, 5) == b"CD001"


def test_iso_location_errors(tmp_path):
    with pytest.raises(BackendFailure) as info:
        IsoDriver(new_uuid(), {"location": "relative"}, Runner(), str(tmp_path)).attach()
    assert info.value.code == "SR_BACKEND_FAILURE_226"
    with pytest.raises(BackendFailure) as info:
        IsoDriver(new_uuid(), {"location": str(tmp_path / "nx")}, Runner(), str(tmp_path)).scan()
    assert info.value.code == "SR_BACKEND_FAILURE_226"


# ---- ext on a loop device ----------------------------------------------------------------

@pytest.fixture
def loop_device(tmp_path):
    image = tmp_path / "ext.img"
    device = attach_loop(image)
    try:
        yield device
    finally:
        mounted = subprocess.run(["findmnt", "-n", "-o", "TARGET", "--source", device],
                                 capture_output=True, text=True).stdout.split()
        for target in mounted:
            subprocess.run(["umount", target])
        detach_loop(device, image)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for losetup, mkfs and mount")
@pytest.mark.skipif(not all(shutil.which(t) for t in ("losetup", "mkfs.ext4", "wipefs",
                                                      "findmnt", "blkid")),
                    reason="needs losetup, mkfs.ext4, wipefs, findmnt and blkid")
def test_ext_formats_mounts_and_serves_volumes(loop_device, tmp_path):
    sr_uuid = new_uuid()
    ext = ExtDriver(sr_uuid, {"device": loop_device}, Runner(), str(tmp_path / "st"))
    ext.create(0)
    assert ext.probe() == [{"uuid": sr_uuid, "type": "ext4"}]
    ext.attach()
    mountpoint = str(tmp_path / "st" / "sr-mount" / sr_uuid)
    assert subprocess.run(["findmnt", "-n", "-o", "SOURCE", mountpoint], capture_output=True,
                          text=True).stdout.strip() == loop_device
    a = ext.vol_create(new_uuid(), 32 * MiB)
    write(ext.vol_attach(a.uuid, True), 0, b"on ext4")
    ext.vol_detach(a.uuid)
    snap = ext.vol_snapshot(a.uuid, new_uuid())
    assert libvhdi_read(ext.volumes.file(snap.uuid), 0, 7) == b"on ext4"
    stat = ext.stat()
    assert 100 * MiB < stat.physical_size <= 128 * MiB

    # Thin provisioning over-commits: filling the filesystem is SR_FULL, not an OSError.
    big = ext.vol_create(new_uuid(), 256 * MiB)
    with pytest.raises(SRFull) as info:
        with ext.open_writer(big.uuid) as writer:
            for offset in range(0, 256 * MiB, 2 * MiB):
                writer.write(offset, b"\xff" * (2 * MiB))
    assert info.value.code == "SR_FULL" and int(info.value.params[1]) < 2 * MiB
    ext.vol_destroy(big.uuid)
    ext.detach()
    assert not os.path.ismount(mountpoint)

    ext.attach()  # the volumes are still there after a remount
    assert {v.uuid for v in ext.scan()} >= {a.uuid, snap.uuid}
    ext.detach()
    with pytest.raises(SRNotEmpty):
        ext.destroy()
    assert not os.path.ismount(mountpoint)  # destroy left it as it found it
    ext.attach()
    ext.vol_destroy(a.uuid)
    ext.vol_destroy(snap.uuid)
    ext.destroy()
    assert not os.path.ismount(mountpoint)
    assert ext.probe() == []  # wiped


def test_ext_rejects_a_device_that_is_not_a_block_device(tmp_path):
    ext = ExtDriver(new_uuid(), {"device": str(tmp_path)}, Runner(), str(tmp_path))
    with pytest.raises(BackendFailure) as info:
        ext.create(0)
    assert info.value.code == "SR_BACKEND_FAILURE_91"
