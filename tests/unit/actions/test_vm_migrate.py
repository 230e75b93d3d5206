"""The pure parts of VM.pool_migrate: which disks keep a VM from moving, the destination's
memory with an evacuation's plan, and when pool_migrate is offered in allowed_operations."""

from hostagent.actions import oprules, vm_migrate
from hostagent.datamodel.api import build_api
from hostagent.db.store import Store
from hostagent.rpc.oplocks import OpLocks

GiB = 1 << 30


def store_with(driver="qemu"):
    s = Store(build_api())
    with s.transaction():
        metrics = s.create("host_metrics", {"live": True, "memory_total": 4 * GiB, "memory_free": 3 * GiB})
        host = s.create("host", {"name_label": "h", "metrics": metrics, "enabled": True,
                                 "software_version": {driver: "1"}})
        sr = s.create("SR", {"name_label": "sr"})
        vm = s.create("VM", {"name_label": "g", "power_state": "Running", "resident_on": host,
                             "memory_static_max": GiB, "memory_dynamic_max": GiB, "memory_dynamic_min": GiB,
                             "memory_static_min": GiB})
    return s, host, sr, vm


def disk(s, vm, sr, mode="RW", read_only=False, empty=False):
    with s.transaction():
        vdi = s.create("VDI", {"SR": sr, "name_label": "d", "read_only": read_only})
        s.create("VBD", {"VM": vm, "VDI": vdi, "mode": mode, "type": "Disk", "empty": empty})
    return vdi


def test_only_disks_the_vm_writes_keep_it_from_moving():
    s, _, sr, vm = store_with()
    assert vm_migrate.writable_disk(s, vm) is None  # diskless
    disk(s, vm, sr, mode="RO")
    disk(s, vm, sr, read_only=True)
    assert vm_migrate.writable_disk(s, vm) is None
    written = disk(s, vm, sr)
    assert vm_migrate.writable_disk(s, vm) == written


def test_memory_counts_what_the_plan_already_sends():
    s, host, _, vm = store_with()
    assert vm_migrate.memory_problem(s, vm, host) is None
    assert vm_migrate.memory_problem(s, vm, host, planned=2 * GiB) is None
    problem = vm_migrate.memory_problem(s, vm, host, planned=2 * GiB + 1)
    assert problem.description == ["HOST_NOT_ENOUGH_FREE_MEMORY", str(GiB), str(GiB - 1)]


def test_pool_migrate_is_offered_only_where_the_driver_migrates():
    for driver, offered in (("qemu", True), ("xen", True), ("test", False)):
        s, _, _, vm = store_with(driver)
        locks = OpLocks(s, oprules.TABLES, lambda message: True)
        allowed = locks.allowed("VM", vm)
        assert ("pool_migrate" in allowed) is offered and "clean_shutdown" in allowed
        table, op = locks.by_message["VM.pool_migrate"]
        assert locks.problem(table, op, vm, s.get("VM", vm)) is None  # a call goes through either way
