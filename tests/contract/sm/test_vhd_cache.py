"""The VHD drivers keep what they parsed of each file (sm.drivers.vhdcache): a call on
a big SR parses only new or changed files, and what it answers is never stale, whether
the change came from the driver itself or from behind its back."""

import os
import shutil
import time
import uuid as uuidlib

import pytest

from sm import vhd
from sm.drivers.filesr import FileDriver
from sm.runner import Runner

MiB = 1 << 20


def new_uuid():
    return str(uuidlib.uuid4())


@pytest.fixture
def sr(tmp_path):
    driver = FileDriver(new_uuid(), {"location": str(tmp_path / "srs")}, Runner(),
                        str(tmp_path / "st"))
    driver.create(0)
    driver.attach()
    return driver


def parses(sr):
    return sr._cache.parses


def test_create_and_scan_parse_only_what_is_new(sr):
    made = [sr.vol_create(new_uuid(), MiB).uuid for _ in range(30)]
    sr.vol_snapshot(made[0], new_uuid())
    assert len(sr.scan()) == 32                 # 30, a base and the snapshot
    before = parses(sr)
    sr.scan()
    sr.stat()
    assert parses(sr) == before                 # nothing changed: nothing parsed
    new = sr.vol_create(new_uuid(), 2 * MiB)
    stat = sr.stat()
    assert parses(sr) == before + 1             # the new file only
    assert stat.virtual_allocation == 30 * MiB + MiB + 2 * MiB  # leaves, snapshot, new
    assert sr.vol_stat(new.uuid).virtual_size == 2 * MiB


def test_the_drivers_own_changes_are_never_answered_stale(sr):
    a = sr.vol_create(new_uuid(), 4 * MiB)
    assert sr.vol_stat(a.uuid).virtual_size == 4 * MiB
    assert sr.vol_resize(a.uuid, 6 * MiB).virtual_size == 6 * MiB
    assert {v.uuid: v.virtual_size for v in sr.scan()} == {a.uuid: 6 * MiB}
    snap = sr.vol_snapshot(a.uuid, new_uuid())
    listed = {v.uuid: v for v in sr.scan()}
    [base] = [v for v in listed.values() if v.read_only]
    assert listed[a.uuid].parent == base.uuid == listed[snap.uuid].parent
    sr.vol_destroy(snap.uuid)
    sr.vol_destroy(a.uuid)                      # the base goes with its last child
    assert sr.scan() == []
    assert len(sr._cache) == 0                  # nothing kept of files that went


def test_changes_behind_the_drivers_back_are_seen(sr, tmp_path):
    a = sr.vol_create(new_uuid(), 4 * MiB)
    b = sr.vol_create(new_uuid(), 4 * MiB)
    assert {v.uuid: v.virtual_size for v in sr.scan()} == {a.uuid: 4 * MiB, b.uuid: 4 * MiB}
    time.sleep(0.01)  # past a coarse timestamp tick, on kernels without fine-grained ones
    # a grows in place (same file, same inode), b is replaced by another file
    vhd.resize(sr.volumes.file(a.uuid), 5 * MiB)
    vhd.create_dynamic(str(tmp_path / "other.vhd"), 9 * MiB)
    shutil.copy(tmp_path / "other.vhd", str(tmp_path / "other-copy.vhd"))
    os.replace(tmp_path / "other-copy.vhd", sr.volumes.file(b.uuid))
    assert {v.uuid: v.virtual_size for v in sr.scan()} == {a.uuid: 5 * MiB, b.uuid: 9 * MiB}
    assert sr.stat().virtual_allocation == 14 * MiB

    # a child made elsewhere of a: a turns into a base (read-only) at once
    child = new_uuid()
    vhd.make_child(sr.volumes.file(a.uuid), sr.volumes.file(child))
    listed = {v.uuid: v for v in sr.scan()}
    assert listed[a.uuid].read_only and listed[child].parent == a.uuid


def test_a_fresh_driver_object_agrees_with_a_long_lived_one(sr, tmp_path):
    a = sr.vol_create(new_uuid(), 4 * MiB)
    sr.vol_clone(a.uuid, new_uuid())
    sr.vol_resize(a.uuid, 8 * MiB)
    fresh = FileDriver(sr.sr_uuid, sr.device_config, Runner(), str(tmp_path / "st"))
    assert fresh.scan() == sr.scan()
    assert fresh.stat().virtual_allocation == sr.stat().virtual_allocation
