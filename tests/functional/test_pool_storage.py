"""Storage work on the member whose storage it is (docs/pools.md, "Storage on members").

Two agents (pool_support: libvirt's test driver each, their own state dirs) form a pool; the
real XenAPI package talks to the master only. A member's local SR is plugged on that member
alone, so the master has its driver calls (VDI create, snapshot, clone, resize, destroy; SR
create, scan, destroy; PBD plug and unplug) run by the member's agent: the files appear and
go in the member's directories and never in the master's. The tests run in order.
"""

import os
import signal

import pytest

from .pool_support import (
    HEARTBEAT,
    TIMEOUT,
    failure,
    live,
    template,
    two_host_pool,
    wait_for,
)
from .storage_util import vdi_record, vhd_path

MiB = 1 << 20


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    base = tmp_path_factory.mktemp("pool-storage")
    with two_host_pool(base) as (a, b, x):
        yield a, b, x, base


def local_sr(x, host):
    """The file SR whose PBD belongs to `host` (its "Local storage", merged at join)."""
    [sr] = [r for r, rec in x.SR.get_all_records().items() if rec["type"] == "file"
            and any(x.PBD.get_host(p) == host.ref for p in rec["PBDs"])]
    return sr


def location(x, sr):
    [pbd] = x.SR.get_PBDs(sr)
    return x.PBD.get_device_config(pbd)["location"]


def test_a_disk_made_on_a_members_sr_is_a_file_of_the_member(pool):
    a, b, x, _ = pool
    sr = local_sr(x, b)
    assert location(x, sr).startswith(b.agent.state_dir)
    vdi = x.VDI.create(vdi_record(sr, 8 * MiB, name="on b"))
    uuid = x.VDI.get_uuid(vdi)
    path = vhd_path(b.agent.state_dir, x.SR.get_uuid(sr), uuid, location(x, sr))
    assert os.path.exists(path)
    assert not any(uuid in names for _, _, names in os.walk(a.agent.state_dir))
    assert x.VDI.get_virtual_size(vdi) == str(8 * MiB)
    x.VDI.resize(vdi, str(16 * MiB))
    assert x.VDI.get_virtual_size(vdi) == str(16 * MiB)
    snap = x.VDI.snapshot(vdi, {})
    clone = x.VDI.clone(vdi, {})
    assert x.VDI.get_snapshot_of(snap) == vdi and x.VDI.get_SR(clone) == sr
    for made in (snap, clone):
        assert os.path.exists(vhd_path(b.agent.state_dir, x.SR.get_uuid(sr), x.VDI.get_uuid(made),
                                       location(x, sr)))
    for gone in (clone, snap, vdi):
        x.VDI.destroy(gone)
    x.SR.scan(sr)
    assert not os.path.exists(path)
    assert uuid not in [x.VDI.get_uuid(v) for v in x.SR.get_VDIs(sr)]


def test_an_sr_created_on_a_member_lives_there(pool):
    _, b, x, base = pool
    where = str(base / "b-extra")
    os.makedirs(where)
    sr = x.SR.create(b.ref, {"location": where}, "0", "b extra", "", "file", "user", False, {})
    [pbd] = x.SR.get_PBDs(sr)
    assert x.PBD.get_host(pbd) == b.ref and x.PBD.get_currently_attached(pbd)
    assert os.path.isdir(os.path.join(where, x.SR.get_uuid(sr)))
    vdi = x.VDI.create(vdi_record(sr, 4 * MiB))
    x.PBD.unplug(pbd)
    assert not x.PBD.get_currently_attached(pbd)
    assert failure(x.VDI.create, vdi_record(sr, 4 * MiB))[0] == "SR_HAS_NO_PBDS"
    x.PBD.plug(pbd)
    assert x.PBD.get_currently_attached(pbd)
    x.VDI.destroy(vdi)
    x.PBD.unplug(pbd)
    uuid = x.SR.get_uuid(sr)
    x.SR.destroy(sr)
    assert not os.path.exists(os.path.join(where, uuid))
    assert sr not in x.SR.get_all()


def test_a_bad_sr_create_on_a_member_leaves_nothing(pool):
    _, b, x, _ = pool
    before = set(x.SR.get_all())
    details = failure(x.SR.create, b.ref, {"location": "relative/path"}, "0", "bad", "", "file", "user",
                      False, {})
    assert details[0] == "SR_BACKEND_FAILURE_1" and "must be an absolute path" in details[2], details
    assert set(x.SR.get_all()) == before


def test_a_vm_with_a_disk_on_a_members_sr_runs_there(pool):
    _, b, x, _ = pool
    sr = local_sr(x, b)
    vm = x.VM.clone(template(x), "disk on b")
    x.VM.set_is_a_template(vm, False)
    vdi = x.VDI.create(vdi_record(sr, 4 * MiB))
    x.VBD.create({"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW", "type": "Disk",
                  "empty": False, "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
    x.VM.start_on(vm, b.ref, False, False)
    assert x.VM.get_resident_on(vm) == b.ref
    x.VM.hard_shutdown(vm)
    snap = x.VM.snapshot(vm, "snapshot of b's VM")  # its disk's snapshot, made on b
    [snap_vdi] = [x.VBD.get_VDI(v) for v in x.VM.get_VBDs(snap) if x.VBD.get_type(v) == "Disk"]
    assert x.VDI.get_SR(snap_vdi) == sr and x.VDI.get_snapshot_of(snap_vdi) == vdi
    assert os.path.exists(vhd_path(b.agent.state_dir, x.SR.get_uuid(sr), x.VDI.get_uuid(snap_vdi),
                                   location(x, sr)))
    for v in (snap, vm):
        x.VM.destroy(v)
    for d in (snap_vdi, vdi):
        x.VDI.destroy(d)


def test_copying_between_members_srs_is_refused_clearly(pool):
    a, b, x, _ = pool
    vdi = x.VDI.create(vdi_record(local_sr(x, b), 4 * MiB))
    before = set(x.SR.get_VDIs(local_sr(x, a)))
    details = failure(x.VDI.copy, vdi, local_sr(x, a))
    assert details[0] == "OPERATION_NOT_ALLOWED" and "not forwarded" in details[1]
    assert set(x.SR.get_VDIs(local_sr(x, a))) == before
    x.VDI.destroy(vdi)


def test_a_members_sr_is_offline_with_its_member(pool):
    _, b, x, _ = pool
    sr = local_sr(x, b)
    before = set(x.SR.get_VDIs(sr))
    os.kill(b.agent.proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: not live(x, b.ref), TIMEOUT + 5 * HEARTBEAT + 5, "b not live")
        assert failure(x.VDI.create, vdi_record(sr, 4 * MiB)) == ["HOST_OFFLINE", b.ref]
        assert set(x.SR.get_VDIs(sr)) == before
    finally:
        os.kill(b.agent.proc.pid, signal.SIGCONT)
    wait_for(lambda: live(x, b.ref), TIMEOUT + 10, "b live again")
