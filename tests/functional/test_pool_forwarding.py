"""Host-bound work on pool members, forwarded by the master (docs/pools.md, "Forwarding").

Three agents (pool_support: libvirt's test driver each, in its own process, so a domain on
one is invisible to the others) form a pool; the real XenAPI package talks to the master.
A member's hypervisor is asked directly on its internal endpoint (POST /pool/v1/port with
the pool secret, its certificate pinned), as the master asks it. The tests run in order.
"""

import http.client
import os
import shutil
import ssl

import pytest

from hostagent.pool import client, wire
from hostagent.pool.identity import CERT_FILE, KEY_FILE, ensure_identity

from .events_support import event_from
from .pool_support import (
    HEARTBEAT,
    TIMEOUT,
    failure,
    form_pool,
    live,
    template,
    three_hosts,
    wait_for,
)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    with three_hosts(tmp_path_factory.mktemp("forward")) as hosts:
        a, b, c = hosts
        xb = b.session().xenapi  # a disk on b's local SR, made before it joins (it joins with it)
        [sr] = [r for r, rec in xb.SR.get_all_records().items() if rec["type"] == "file"]
        b.disk = xb.VDI.get_uuid(xb.VDI.create({
            "name_label": "b's disk", "name_description": "", "SR": sr, "virtual_size": str(4 << 20),
            "type": "user", "sharable": False, "read_only": False, "other_config": {}, "xenstore_data": {},
            "sm_config": {}, "tags": []}))
        form_pool(hosts)
        yield hosts


def ask(host, op, *args, pinned=None):
    """The member's own hypervisor, asked on its internal endpoint as the master asks it."""
    answer = client.call(host.tls, "port", wire.request("domains", op, args), secret=host.read("pool-secret"),
                         pinned=pinned if pinned is not None else host.read(CERT_FILE))
    return wire.decode(answer.value["result"])


def new_vm(x, name):
    t = template(x)
    vm = x.VM.clone(t, name)  # not provisioned, so without disks: the master's SR is not on members
    x.VM.set_is_a_template(vm, False)
    return vm


def test_start_on_each_member_runs_the_domain_there(pool):
    x = pool[0].session().xenapi
    for h in pool:
        vm = new_vm(x, f"on {h.address}")
        if h is pool[1]:  # with a disk on b's SR: attached by b's storage for b's domain
            h.disk_vbd = x.VBD.create({
                "VM": vm, "VDI": x.VDI.get_by_uuid(h.disk), "userdevice": "0", "bootable": True, "mode": "RW",
                "type": "Disk", "unpluggable": True, "empty": False, "other_config": {},
                "qos_algorithm_type": "", "qos_algorithm_params": {}})
        x.VM.start_on(vm, h.ref, False, False)
        rec = x.VM.get_record(vm)
        assert rec["power_state"] == "Running" and rec["resident_on"] == h.ref
        if h is not pool[0]:  # a member's hypervisor runs it (the master's takes no port calls)
            state = ask(h, "state", rec["uuid"])
            assert state is not None and state.state == "running" and state.domid == int(rec["domid"])
        others = [o for o in pool[1:] if o is not h]
        assert all(ask(o, "state", rec["uuid"]) is None for o in others)  # only there
        h.vm = vm
    vbd = pool[1].disk_vbd
    assert x.VBD.get_currently_attached(vbd) is True and x.VBD.get_device(vbd)
    c = pool[2]
    placed = new_vm(x, "placed by affinity")
    x.VM.set_affinity(placed, c.ref)
    x.VM.start(placed, False, False)  # VM.start: on its affinity host when that can take it
    assert x.VM.get_resident_on(placed) == c.ref and ask(c, "state", x.VM.get_uuid(placed)).state == "running"
    x.VM.hard_shutdown(placed)
    assert ask(c, "state", x.VM.get_uuid(placed)) is None
    b = pool[1]
    x.VM.pause(b.vm)  # goes to b, and back
    assert ask(b, "state", x.VM.get_uuid(b.vm)).state == "paused" and x.VM.get_power_state(b.vm) == "Paused"
    x.VM.unpause(b.vm)
    assert ask(b, "state", x.VM.get_uuid(b.vm)).state == "running"


def test_a_members_guest_gets_its_vm_data_keys_and_guest_metrics(pool):
    x = pool[0].session().xenapi
    c = pool[2]
    vm = new_vm(x, "guest keys on c")
    x.VM.set_xenstore_data(vm, {"vm-data/greeting": "hello", "vm-data/a/b": "deep", "elsewhere": "no"})
    x.VM.start_on(vm, c.ref, False, False)
    domid = int(x.VM.get_domid(vm))
    # c's own xenstore (the test driver's fake one, in c's agent), asked as the master asks it
    answer = client.call(c.tls, "port", wire.request("guest", "read_tree", (domid, "vm-data")),
                         secret=c.read("pool-secret"), pinned=c.read(CERT_FILE))
    assert wire.decode(answer.value["result"]) == {"greeting": "hello", "a/b": "deep"}
    metrics = x.VM.get_guest_metrics(vm)
    assert metrics != "OpaqueRef:NULL"  # read by c's guest agent (the test driver's stand-in)
    assert x.VM_guest_metrics.get_os_version(metrics)["name"] == "Debian Etch 4.0"
    x.VM.hard_shutdown(vm)
    x.VM.destroy(vm)


def test_clean_shutdown_goes_back_to_the_member(pool):
    x = pool[0].session().xenapi
    b = pool[1]
    uuid = x.VM.get_uuid(b.vm)
    task = x.Async.VM.clean_shutdown(b.vm)
    wait_for(lambda: x.task.get_status(task) != "pending", 20, "the shutdown's task ends")
    assert x.task.get_status(task) == "success" and x.task.get_progress(task) == 1.0
    assert ask(b, "state", uuid) is None  # its domain is gone from b's hypervisor
    rec = x.VM.get_record(b.vm)
    assert rec["power_state"] == "Halted" and rec["resident_on"] == "OpaqueRef:NULL"
    assert x.VBD.get_currently_attached(b.disk_vbd) is False
    x.VM.start_on(b.vm, b.ref, False, False)  # and again, for the tests below
    assert ask(b, "state", uuid).state == "running"


def test_a_vbd_plug_on_a_slaves_vm_reaches_the_slaves_hypervisor(pool):
    a, b, _ = pool
    x = a.session().xenapi
    vbd = x.VBD.create({"VM": b.vm, "VDI": "OpaqueRef:NULL", "userdevice": "3", "bootable": False, "mode": "RO",
                        "type": "CD", "unpluggable": True, "empty": True, "other_config": {},
                        "qos_algorithm_type": "", "qos_algorithm_params": {}})
    # the capability is b's hypervisor's (libvirt's test driver cannot hot-plug): asked there
    assert failure(x.VBD.plug, vbd) == ["OPERATION_NOT_ALLOWED", "the TEST hypervisor cannot hot-plug disks"]
    assert x.VBD.get_currently_attached(vbd) is False
    b.vbd = vbd


def test_a_domain_destroyed_behind_a_members_back_is_halted_on_the_master(pool):
    a, _, c = pool
    x = a.session().xenapi
    token = event_from(x, ["VM"], "", 0.1)["token"]
    uuid = x.VM.get_uuid(c.vm)
    ask(c, "destroy", uuid)  # behind the agents' backs, in c's own hypervisor
    wait_for(lambda: x.VM.get_power_state(c.vm) == "Halted", 10, "the master records it Halted")
    assert x.VM.get_resident_on(c.vm) == "OpaqueRef:NULL"
    seen = event_from(x, ["VM"], token, 5)["events"]
    assert any(e["ref"] == c.vm and e["snapshot"]["power_state"] == "Halted" for e in seen)
    x.VM.start_on(c.vm, c.ref, False, False)


def test_forged_internal_calls_run_nothing(pool):
    _, b, _ = pool
    uuid = pool[0].session().xenapi.VM.get_uuid(b.vm)
    body = wire.request("domains", "destroy", [uuid])
    for headers in ({}, {client.SECRET_HEADER: "guess"}):
        host, port = b.tls.rsplit(":", 1)
        conn = http.client.HTTPSConnection(host, int(port), context=ssl._create_unverified_context(), timeout=10)
        conn.request("POST", "/pool/v1/port", body=str(body).encode(), headers=headers)
        assert conn.getresponse().status == 401
        conn.close()
    # the pool secret with a call outside the allow-list: refused, nothing runs
    with pytest.raises(client.Refused) as e:
        client.call(b.tls, "port", {"port": "domains", "op": "save", "args": [uuid, "/tmp/x"]},
                    secret=b.read("pool-secret"), pinned=b.read(CERT_FILE))
    assert e.value.description[0] == "OPERATION_NOT_ALLOWED"
    assert ask(b, "state", uuid).state == "running"


def test_a_killed_member_is_offline_then_reconciled(pool):
    a, _, c = pool
    x = a.session().xenapi
    c.agent.kill()
    # still live for the master a moment: its calls cannot reach c
    assert failure(x.VM.pause, c.vm) == ["CANNOT_CONTACT_HOST", c.ref]
    wait_for(lambda: not live(x, c.ref), TIMEOUT + 4 * HEARTBEAT + 3, "c not live")
    assert failure(x.VM.hard_shutdown, c.vm) == ["HOST_OFFLINE", c.ref]
    other = new_vm(x, "for a dead host")
    assert failure(x.VM.start_on, other, c.ref, False, False) == ["HOST_OFFLINE", c.ref]
    assert failure(x.VM.assert_can_boot_here, other, c.ref) == ["HOST_OFFLINE", c.ref]
    x.VM.set_affinity(other, c.ref)
    x.VM.start(other, False, False)  # its affinity host is offline: the master runs it
    assert x.VM.get_resident_on(other) == a.session().xenapi.pool.get_master(x.pool.get_all()[0])
    x.VM.hard_shutdown(other)
    assert x.VM.get_power_state(c.vm) == "Running"  # as last known, until c says otherwise
    c.start()  # its test driver starts empty: the VM's domain is gone
    wait_for(lambda: live(x, c.ref), 10, "c live again")
    wait_for(lambda: x.VM.get_power_state(c.vm) == "Halted", 10, "c's VM reconciled")
    assert x.VM.get_resident_on(c.vm) == "OpaqueRef:NULL"
    x.VM.start_on(c.vm, c.ref, False, False)
    assert ask(c, "state", x.VM.get_uuid(c.vm)).state == "running"


def test_a_member_with_a_swapped_certificate_runs_nothing(pool, tmp_path):
    a, _, c = pool
    x = a.session().xenapi
    uuid = x.VM.get_uuid(c.vm)
    assert c.agent.stop() == 0
    keep = tmp_path / "kept"
    keep.mkdir()
    for name in (CERT_FILE, KEY_FILE):
        shutil.move(c.file(name), keep / name)
    ensure_identity(str(tmp_path), x.host.get_uuid(c.ref), [c.address])  # same names, another key
    for name in (CERT_FILE, KEY_FILE):
        shutil.copy(os.path.join(tmp_path, name), c.file(name))
    c.start()
    try:
        wait_for(lambda: live(x, c.ref), 10, "c live (its heartbeats reach the master)")
        vm = new_vm(x, "not on an impostor")
        assert failure(x.VM.start_on, vm, c.ref, False, False) == ["CANNOT_CONTACT_HOST", c.ref]
        assert x.VM.get_power_state(vm) == "Halted"
        listed = ask(c, "list", pinned=c.read(CERT_FILE))
        assert x.VM.get_uuid(vm) not in {d.uuid for d in listed}  # nothing ran there
        assert x.VM.get_power_state(c.vm) == "Running"  # not reconciled through an impostor
    finally:
        c.agent.stop()
        for name in (CERT_FILE, KEY_FILE):
            shutil.copy(keep / name, c.file(name))
        c.start()
    wait_for(lambda: x.VM.get_power_state(c.vm) == "Halted", 10, "c's VM reconciled")
    assert ask(c, "state", uuid) is None
