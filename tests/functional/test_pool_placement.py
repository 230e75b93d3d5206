"""Placement, host.enable/disable, and suspend/resume of a member's VM (docs/pools.md,
"Placement" and "Suspending a member's VM").

Three agents (pool_support: libvirt's test driver each, in its own process, so a domain on
one is invisible to the others) form a pool; the real XenAPI package talks to the master.
b brings a disk on its local SR when it joins. A member's hypervisor is asked directly on
its internal endpoint, as the master asks it. The tests run in order.
"""

import os

import pytest

from hostagent.pool import client, wire
from hostagent.pool.identity import CERT_FILE

from .pool_support import failure, form_pool, live, template, three_hosts, wait_for

NULL = "OpaqueRef:NULL"


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    with three_hosts(tmp_path_factory.mktemp("placement")) as hosts:
        b = hosts[1]
        xb = b.session().xenapi  # a disk on b's local SR, made before it joins (it joins with it)
        [sr] = [r for r, rec in xb.SR.get_all_records().items() if rec["type"] == "file"]
        b.disk = xb.VDI.get_uuid(xb.VDI.create({
            "name_label": "b's disk", "name_description": "", "SR": sr, "virtual_size": str(4 << 20),
            "type": "user", "sharable": False, "read_only": False, "other_config": {}, "xenstore_data": {},
            "sm_config": {}, "tags": []}))
        b.sr_uuid = xb.SR.get_uuid(sr)
        form_pool(hosts)
        yield hosts


def ask(host, op, *args):
    """The member's own hypervisor, asked on its internal endpoint as the master asks it."""
    answer = client.call(host.tls, "port", wire.request("domains", op, args), secret=host.read("pool-secret"),
                         pinned=host.read(CERT_FILE))
    return wire.decode(answer.value["result"])


def running_on(pool, uuid):
    """The members whose hypervisors run domain `uuid`, and whether the master's lists it."""
    x = pool[0].session().xenapi
    here = any(x.VM.get_uuid(v) == uuid for v in x.VM.get_all() if x.VM.get_domid(v) != "-1"
               and x.VM.get_resident_on(v) == pool[0].ref)
    return [h for h in pool[1:] if ask(h, "state", uuid) is not None], here


def new_vm(x, name, memory=None):
    vm = x.VM.clone(template(x), name)  # not provisioned: no disks on the master's SR
    x.VM.set_is_a_template(vm, False)
    if memory is not None:
        x.VM.set_memory_limits(vm, str(memory), str(memory), str(memory), str(memory))
    return vm


def with_disk(x, vm, vdi_uuid):
    return x.VBD.create({"VM": vm, "VDI": x.VDI.get_by_uuid(vdi_uuid), "userdevice": "0", "bootable": True,
                         "mode": "RW", "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
                         "qos_algorithm_type": "", "qos_algorithm_params": {}})


def test_start_picks_the_affinity_host(pool):
    a, b, c = pool
    x = a.session().xenapi
    for h in (c, b):  # not the master: the one named
        vm = new_vm(x, f"likes {h.address}")
        x.VM.set_affinity(vm, h.ref)
        x.VM.start(vm, False, False)
        assert x.VM.get_resident_on(vm) == h.ref
        assert ask(h, "state", x.VM.get_uuid(vm)).state == "running"
        x.VM.hard_shutdown(vm)
        assert ask(h, "state", x.VM.get_uuid(vm)) is None


def test_a_disabled_host_takes_no_new_vms(pool):
    a, b, c = pool
    x = a.session().xenapi
    assert x.host.get_enabled(c.ref) is True and "enable" in x.host.get_allowed_operations(c.ref)
    x.host.disable(c.ref)  # on the master, for a member: the record is the master's
    assert x.host.get_enabled(c.ref) is False
    vm = new_vm(x, "likes a disabled host")
    x.VM.set_affinity(vm, c.ref)
    assert failure(x.VM.start_on, vm, c.ref, False, False) == ["HOST_DISABLED", c.ref]
    assert failure(x.VM.assert_can_boot_here, vm, c.ref) == ["HOST_DISABLED", c.ref]
    assert c.ref not in x.VM.get_possible_hosts(vm) and a.ref in x.VM.get_possible_hosts(vm)
    x.VM.start(vm, False, False)  # its affinity host is disabled: another one runs it
    assert x.VM.get_resident_on(vm) in (a.ref, b.ref)
    assert ask(c, "state", x.VM.get_uuid(vm)) is None
    x.VM.hard_shutdown(vm)
    # kept across a restart of the master (a record field)
    assert a.agent.stop() == 0
    a.start()
    x = a.session().xenapi
    wait_for(lambda: live(x, c.ref), 10, "c live again at the restarted master")
    assert x.host.get_enabled(c.ref) is False
    assert failure(x.VM.start_on, vm, c.ref, False, False) == ["HOST_DISABLED", c.ref]
    x.host.enable(c.ref)
    assert x.host.get_enabled(c.ref) is True
    x.VM.start_on(vm, c.ref, False, False)
    assert ask(c, "state", x.VM.get_uuid(vm)).state == "running"
    x.VM.hard_shutdown(vm)


def test_a_vm_whose_sr_is_on_one_member_starts_there(pool):
    a, b, c = pool
    x = a.session().xenapi
    vm = new_vm(x, "on b's disk")
    with_disk(x, vm, b.disk)
    sr = x.SR.get_by_uuid(b.sr_uuid)
    assert failure(x.VM.start_on, vm, c.ref, False, False) == ["VM_REQUIRES_SR", vm, sr]
    assert failure(x.VM.start_on, vm, a.ref, False, False) == ["VM_REQUIRES_SR", vm, sr]
    assert x.VM.get_possible_hosts(vm) == [b.ref]
    x.VM.set_affinity(vm, c.ref)  # an affinity host that cannot see the SR is passed over
    x.VM.start(vm, False, False)
    assert x.VM.get_resident_on(vm) == b.ref and ask(b, "state", x.VM.get_uuid(vm)).state == "running"
    x.VM.hard_shutdown(vm)
    b.disk_vm = vm


def test_no_host_can_take_it(pool):
    a, b, _ = pool
    x = a.session().xenapi
    # larger than any host: as xapi, a host is chosen without the memory check, and the start
    # fails there; nothing is made on any host
    big = new_vm(x, "too big", memory=1 << 40)
    err = failure(x.VM.start, big, False, False)
    assert err[0] == "HOST_NOT_ENOUGH_FREE_MEMORY" and err[1] == str(1 << 40) and int(err[2]) < (1 << 40)
    for h in pool:
        err = failure(x.VM.start_on, big, h.ref, False, False)
        assert err[0] == "HOST_NOT_ENOUGH_FREE_MEMORY"
    assert x.VM.get_possible_hosts(big) == []
    assert running_on(pool, x.VM.get_uuid(big)) == ([], False)
    assert x.VM.get_power_state(big) == "Halted" and x.VM.get_resident_on(big) == NULL
    assert x.VM.get_scheduled_to_be_resident_on(big) == NULL  # no memory held for it anywhere
    # the only host that sees its disk is disabled: no host at all
    vm = b.disk_vm
    x.host.disable(b.ref)
    try:
        assert failure(x.VM.start, vm, False, False) == ["NO_HOSTS_AVAILABLE"]
        assert failure(x.VM.start_on, vm, b.ref, False, False) == ["HOST_DISABLED", b.ref]
    finally:
        x.host.enable(b.ref)
    assert running_on(pool, x.VM.get_uuid(vm)) == ([], False)
    assert x.VM.get_power_state(vm) == "Halted" and x.VBD.get_currently_attached(x.VM.get_VBDs(vm)[0]) is False


def test_suspend_and_resume_on_a_member(pool):
    a, b, c = pool
    x = a.session().xenapi
    vm = b.disk_vm  # with a disk on b's local SR
    uuid = x.VM.get_uuid(vm)
    x.VM.start_on(vm, b.ref, False, False)
    for resume in ("resume_on", "resume"):
        x.VM.suspend(vm)
        assert ask(b, "state", uuid) is None  # gone from b's hypervisor
        rec = x.VM.get_record(vm)
        assert rec["power_state"] == "Suspended"
        image = rec["suspend_VDI"]
        assert x.VDI.get_type(image) == "suspend" and x.SR.get_uuid(x.VDI.get_SR(image)) == b.sr_uuid
        assert x.VDI.get_virtual_size(image) != "0"
        # its image is on b's local SR, which c has not plugged
        assert failure(x.VM.resume_on, vm, c.ref, False, False) == ["VM_REQUIRES_SR", vm, x.VDI.get_SR(image)]
        assert x.VM.get_power_state(vm) == "Suspended" and ask(c, "state", uuid) is None
        if resume == "resume_on":
            x.VM.resume_on(vm, b.ref, False, False)
        else:
            x.VM.resume(vm, False, False)  # placed where its image is
        state = ask(b, "state", uuid)
        assert state is not None and state.state == "running"  # back on b
        rec = x.VM.get_record(vm)
        assert rec["power_state"] == "Running" and rec["resident_on"] == b.ref
        assert rec["suspend_VDI"] == NULL and image not in x.VDI.get_all()
        assert int(rec["domid"]) == state.domid
    assert os.listdir(b.file("suspend")) == []  # no image left behind in b's scratch dir
    x.VM.hard_shutdown(vm)
    assert ask(b, "state", uuid) is None


def test_an_internal_network_is_where_its_running_vms_are(pool):
    a, b, c = pool
    x = a.session().xenapi
    net = x.network.create({"name_label": "private", "name_description": "", "MTU": "1500",
                            "other_config": {}, "tags": []})
    assert x.network.get_PIFs(net) == []  # internal: no PIF on any host
    first, second = new_vm(x, "private 1"), new_vm(x, "private 2")
    for vm in (first, second):
        x.VIF.create({"VM": vm, "network": net, "device": "0", "MAC": "", "MTU": "1500", "other_config": {},
                      "qos_algorithm_type": "", "qos_algorithm_params": {}, "locking_mode": "network_default",
                      "ipv4_allowed": [], "ipv6_allowed": []})
    assert set(x.VM.get_possible_hosts(second)) == {a.ref, b.ref, c.ref}  # none runs yet: anywhere
    x.VM.start_on(first, c.ref, False, False)
    # as xapi: the other VM on that network must run beside it
    assert failure(x.VM.start_on, second, b.ref, False, False) == ["VM_REQUIRES_NETWORK", second, net]
    assert x.VM.get_possible_hosts(second) == [c.ref]
    x.VM.start(second, False, False)
    assert x.VM.get_resident_on(second) == c.ref and ask(c, "state", x.VM.get_uuid(second)).state == "running"
    for vm in (first, second):
        x.VM.hard_shutdown(vm)
