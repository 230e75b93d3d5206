"""VM.pool_migrate and host.evacuate where the hypervisors cannot migrate (docs/pools.md,
"Migration"): three agents on libvirt's test driver (pool_support), which has no migration.

Every refusal leaves the VM running where it was, in that host's hypervisor, with no
operation left on it, and pool_migrate is not offered in its allowed_operations. The real
migration between two libvirtds is test_pool_migrate_kvm.py.
"""

import time

import pytest

from .pool_support import HEARTBEAT, failure, form_pool, three_hosts, wait_for
from .test_pool_forwarding import ask, new_vm
from .test_xe_support import XeRunner


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    with three_hosts(tmp_path_factory.mktemp("migrate")) as hosts:
        b = hosts[1]
        xb = b.session().xenapi  # a disk on b's local SR, which only b has plugged
        [sr] = [r for r, rec in xb.SR.get_all_records().items() if rec["type"] == "file"]
        b.disk = xb.VDI.get_uuid(xb.VDI.create({
            "name_label": "b's disk", "name_description": "", "SR": sr, "virtual_size": str(4 << 20),
            "type": "user", "sharable": False, "read_only": False, "other_config": {}, "xenstore_data": {},
            "sm_config": {}, "tags": []}))
        x = form_pool(hosts)
        for h in hosts:
            h.vm = new_vm(x, f"on {h.address}")
            if h is b:
                x.VBD.create({"VM": h.vm, "VDI": x.VDI.get_by_uuid(b.disk), "userdevice": "0", "bootable": True,
                              "mode": "RW", "type": "Disk", "unpluggable": True, "empty": False,
                              "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
            x.VM.start_on(h.vm, h.ref, False, False)
        yield hosts


def runs_on(x, host, vm):
    """The VM's records say it runs on `host`, no operation on it; a member's hypervisor has it."""
    rec = x.VM.get_record(vm)
    assert rec["power_state"] == "Running" and rec["resident_on"] == host.ref and rec["current_operations"] == {}
    if host.address != "127.0.0.1":  # the master takes no port calls: its VMs are checked by records
        state = ask(host, "state", rec["uuid"])
        assert state is not None and state.state == "running" and state.domid == int(rec["domid"])


def test_the_test_driver_cannot_migrate_and_the_vm_runs_on(pool):
    a, b, c = pool
    x = a.session().xenapi
    for h in pool:
        assert "pool_migrate" not in x.VM.get_allowed_operations(h.vm)  # the capability, as clients see it
        assert "clean_shutdown" in x.VM.get_allowed_operations(h.vm)
    # from the master to a member, and from a member to the master
    for source, dest in ((a, c), (c, a)):
        details = failure(x.VM.pool_migrate, source.vm, dest.ref, {"live": "true"})
        assert details[:4] == ["VM_MIGRATE_FAILED", source.vm, source.ref, dest.ref], details
        assert "TEST hypervisor" in details[4] and "cannot migrate" in details[4]
        runs_on(x, source, source.vm)
        if dest is not a:
            assert ask(dest, "state", x.VM.get_uuid(source.vm)) is None
    # the same host; a host without the VM's SR; a halted VM
    assert failure(x.VM.pool_migrate, a.vm, a.ref, {})[:4] == ["VM_MIGRATE_FAILED", a.vm, a.ref, a.ref]
    sr = x.VDI.get_SR(x.VDI.get_by_uuid(b.disk))
    assert failure(x.VM.pool_migrate, b.vm, c.ref, {}) == ["VM_REQUIRES_SR", b.vm, sr]
    runs_on(x, b, b.vm)
    halted = new_vm(x, "halted")
    assert failure(x.VM.pool_migrate, halted, b.ref, {})[0] == "VM_BAD_POWER_STATE"
    # an asynchronous call: the task fails with the same error
    task = x.Async.VM.pool_migrate(c.vm, b.ref, {})
    wait_for(lambda: x.task.get_status(task) != "pending", 30, "the task's end")
    assert x.task.get_status(task) == "failure"
    assert x.task.get_error_info(task)[:4] == ["VM_MIGRATE_FAILED", c.vm, c.ref, b.ref]
    runs_on(x, c, c.vm)
    # xe vm-migrate says the same
    xe = XeRunner(a.agent, a.file("xe-home"))
    p = xe.fails("vm-migrate", f"uuid={x.VM.get_uuid(c.vm)}", f"host={x.host.get_uuid(b.ref)}")
    assert "VM_MIGRATE_FAILED" in p.stderr + p.stdout
    assert "host=" in xe.fails("vm-migrate", f"uuid={x.VM.get_uuid(c.vm)}").stderr
    # a disabled destination; with every other host disabled, an evacuation has nowhere to go
    x.host.disable(b.ref)
    assert failure(x.VM.pool_migrate, c.vm, b.ref, {}) == ["HOST_DISABLED", b.ref]
    x.host.disable(a.ref)
    assert x.host.get_vms_which_prevent_evacuation(c.ref) == {c.vm: ["NO_HOSTS_AVAILABLE"]}
    assert failure(x.host.evacuate, c.ref) == ["NO_HOSTS_AVAILABLE"]
    for h in (a, b):
        x.host.enable(h.ref)
    runs_on(x, c, c.vm)


def test_evacuate_refuses_before_anything_moves(pool):
    a, b, c = pool
    x = a.session().xenapi
    prevent = x.host.get_vms_which_prevent_evacuation(c.ref)
    assert list(prevent) == [c.vm] and prevent[c.vm][:3] == ["VM_MIGRATE_FAILED", c.vm, c.ref]
    prevent = x.host.get_vms_which_prevent_evacuation(b.ref)
    assert prevent[b.vm][0] == "VM_REQUIRES_SR"  # no host has b's SR: the first host's answer stands
    details = failure(x.host.evacuate, c.ref)
    assert details[:3] == ["VM_MIGRATE_FAILED", c.vm, c.ref]
    runs_on(x, c, c.vm)
    assert x.host.get_current_operations(c.ref) == {}
    details = failure(x.host.assert_can_evacuate, c.ref)
    assert details[0] == "CANNOT_EVACUATE_HOST" and details[1].startswith(f"{c.vm},VM_MIGRATE_FAILED,")
    # a host with nothing running is evacuated at once
    x.VM.hard_shutdown(c.vm)
    assert x.host.get_vms_which_prevent_evacuation(c.ref) == {}
    x.host.assert_can_evacuate(c.ref)
    assert x.host.evacuate(c.ref) == ""
    runs_on(x, a, a.vm)
    runs_on(x, b, b.vm)


def test_a_master_restart_leaves_a_members_vm_running(pool):
    """The master's start-up finds no domain of a member's VM in its own hypervisor: the VM
    stays as recorded (the member's heartbeat reconciles it), never Halted in between (which
    would have dropped its consoles and restarted its metrics' clock)."""
    a, b, _ = pool
    x = a.session().xenapi
    before = x.VM.get_record(b.vm)
    started = x.VM_metrics.get_start_time(before["metrics"])
    assert a.agent.stop() == 0
    a.start()
    x = a.session().xenapi
    runs_on(x, b, b.vm)
    wait_for(lambda: x.host_metrics.get_live(x.host.get_metrics(b.ref)), 10, "host b live again")
    time.sleep(2 * HEARTBEAT)  # its heartbeat after the restart has been reconciled
    runs_on(x, b, b.vm)
    after = x.VM.get_record(b.vm)
    assert after["consoles"] == before["consoles"] and after["domid"] == before["domid"]
    assert x.VM_metrics.get_start_time(after["metrics"]) == started
