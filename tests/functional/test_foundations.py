"""Seams the host-bound work stands on, through the real XenAPI package: tasks across a
restart, locks that follow the work, host identity, the hypervisor URI, VIF and network
integrity, SR allowed operations."""

import http.client
import os
import textwrap
import xmlrpc.client

import pytest

from tests.support import wait_for

from .agent import AgentProcess
from .storage_util import MiB, failure, login, vdi_record, wait_task


def default_sr(x):
    return x.pool.get_default_SR(x.pool.get_all()[0])


# ------------------------------------------------------------------ tasks and locks
def test_a_task_pending_when_the_agent_died_fails_after_restart(agents):
    """SIGKILL during Async.VDI.create: after the restart the task is `failure` with an
    error saying the agent restarted, and no operation lock is left behind."""
    agent = agents(HOSTAGENT_FAULT_DELAY_VOL_CREATE="30")
    x = login(agent).xenapi
    sr = default_sr(x)
    task = x.Async.VDI.create(vdi_record(sr, 4 * MiB, "interrupted"))
    wait_for(lambda: x.SR.get_current_operations(sr) or x.task.get_progress(task) is not None, 10.0)
    assert x.task.get_status(task) == "pending"
    agent.kill()
    agent = agents()
    x = login(agent).xenapi
    rec = x.task.get_record(task)
    assert rec["status"] == "failure"
    assert rec["error_info"][0] == "INTERNAL_ERROR" and "restarted" in rec["error_info"][1]
    assert x.SR.get_current_operations(sr) == {}
    for v in x.VDI.get_all_records().values():
        assert v["current_operations"] == {}
    assert [v for v in x.VDI.get_all_records().values() if v["name_label"] == "interrupted"] == []


def test_a_lock_outlives_a_client_that_hung_up(agents):
    """A synchronous VDI.clone whose client hangs up runs on; until it ends the VDI's
    current_operations keeps it (keyed by a task ref), allowed_operations leaves out what
    would conflict, and a conflicting call is refused."""
    agent = agents(HOSTAGENT_FAULT_DELAY_VOL_CLONE="3")
    session = login(agent)
    x = session.xenapi
    vdi = x.VDI.create(vdi_record(default_sr(x), 4 * MiB, "source"))
    body = xmlrpc.client.dumps((session._session, vdi, {}), "VDI.clone").encode()
    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=10)
    conn.request("POST", "/", body, {"Content-Type": "text/xml"})
    wait_for(lambda: x.VDI.get_current_operations(vdi), 10.0, what="the clone's lock")
    conn.close()  # hang up while the driver call is held by the hook
    current = x.VDI.get_current_operations(vdi)
    [(key, op)] = current.items()
    assert op == "clone" and key.startswith("OpaqueRef:")
    assert x.task.get_name_label(key) == "VDI.clone"  # the lock's key is the call's task
    import time
    time.sleep(0.5)  # well after the hang-up, still inside the held driver call
    assert x.VDI.get_current_operations(vdi) == {key: "clone"}
    assert "destroy" not in x.VDI.get_allowed_operations(vdi)
    assert failure(x.VDI.destroy, vdi)[:3] == ["OTHER_OPERATION_IN_PROGRESS", "VDI", vdi]
    wait_for(lambda: not x.VDI.get_current_operations(vdi), 20.0, what="the clone to end")
    assert "destroy" in x.VDI.get_allowed_operations(vdi)
    assert key not in x.task.get_all()  # the call's task went with it


# ------------------------------------------------------------------ host identity
def test_this_host_is_named_by_the_state_dir(agents):
    agent = agents()
    x = login(agent).xenapi
    [host] = x.host.get_all()
    with open(os.path.join(agent.state_dir, "host-uuid")) as f:
        assert f.read().strip() == x.host.get_uuid(host)
    agent.stop()
    agent = agents()
    x = login(agent).xenapi
    assert x.host.get_all() == [host]
    again = login(agent)
    assert again.xenapi.session.get_this_host(again._session) == host


def default_route_address():
    """The address of the interface that carries the default route, as iproute2 tells it."""
    import json
    import subprocess
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "default"], capture_output=True,
                                       text=True, check=True).stdout or "[]")
    if not routes:
        return None
    if routes[0].get("prefsrc"):
        return routes[0]["prefsrc"]
    links = json.loads(subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", routes[0]["dev"]],
                                      capture_output=True, text=True, check=True).stdout)
    return links[0]["addr_info"][0]["local"]


def test_host_address_is_the_management_interfaces(agents):
    """host.address comes from the interface of the default route, not from resolving the
    host name (127.0.1.1 on Debian, 127.0.0.1 on many containers)."""
    expected = default_route_address()
    if expected is None:
        pytest.skip("this machine has no default route")
    agent = agents()
    x = login(agent).xenapi
    [host] = x.host.get_all()
    assert x.host.get_address(host) == expected


TEST_NODE = textwrap.dedent("""\
    <node>
      <cpu>
        <mhz>2600</mhz>
        <model>x86_64</model>
        <active>6</active>
        <nodes>1</nodes>
        <sockets>1</sockets>
        <cores>6</cores>
        <threads>1</threads>
      </cpu>
      <memory>12582912</memory>
    </node>
    """)


def test_libvirt_uri_decides_the_host_facts(agents, tmp_path):
    """--libvirt-uri is used: a test driver node of 6 CPUs at 2600 MHz and 12 GiB becomes
    the host's CPUs and memory."""
    node = tmp_path / "node.xml"
    node.write_text(TEST_NODE)
    agent = agents("--libvirt-uri", f"test://{node}")
    x = login(agent).xenapi
    [host] = x.host.get_all()
    cpus = x.host_cpu.get_all_records()
    assert len(cpus) == 6 and {c["speed"] for c in cpus.values()} == {"2600"}
    metrics = x.host_metrics.get_record(x.host.get_metrics(host))
    assert metrics["memory_total"] == str(12 << 30)
    assert "hostagent ready" in agent.log_text() and f"libvirt test://{node}" in agent.log_text()


def test_an_unreachable_hypervisor_does_not_stop_the_agent(agents):
    agent = agents("--libvirt-uri", "qemu+unix:///system?socket=/nonexistent/libvirt-sock")
    x = login(agent).xenapi
    [host] = x.host.get_all()
    assert int(x.host_metrics.get_memory_total(x.host.get_metrics(host))) > 0
    assert "hypervisor facts unavailable" in agent.log_text()


# ------------------------------------------------------------------ VIFs and networks
def vm_record(name):
    return {
        "name_label": name, "name_description": "", "user_version": "1", "is_a_template": False,
        "affinity": "OpaqueRef:NULL", "memory_static_max": str(256 * MiB),
        "memory_dynamic_max": str(256 * MiB), "memory_dynamic_min": str(256 * MiB),
        "memory_static_min": str(256 * MiB), "VCPUs_params": {}, "VCPUs_max": "1",
        "VCPUs_at_startup": "1", "actions_after_shutdown": "destroy", "actions_after_reboot": "restart",
        "actions_after_crash": "restart", "PV_bootloader": "", "PV_kernel": "", "PV_ramdisk": "",
        "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "", "HVM_boot_policy": "",
        "HVM_boot_params": {}, "platform": {}, "PCI_bus": "", "other_config": {}, "recommendations": ""}


def vif_record(vm, network, device, mac="", **extra):
    return {"device": device, "network": network, "VM": vm, "MAC": mac, "MTU": "0", "other_config": {},
            "qos_algorithm_type": "", "qos_algorithm_params": {}, **extra}


def test_vifs_get_seeded_macs_and_unique_devices(agent):
    x = login(agent).xenapi
    net = x.network.create({"name_label": "vif test", "name_description": "", "MTU": "9000",
                            "other_config": {}, "bridge": "xenbr9"})
    vm = x.VM.create(vm_record("vif test"))
    seed = x.VM.get_other_config(vm)["mac_seed"]
    vif = x.VIF.create(vif_record(vm, net, "0", currently_attached=True))
    rec = x.VIF.get_record(vif)
    mac = rec["MAC"]
    first = int(mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01  # locally administered, unicast
    assert rec["MAC_autogenerated"] is True and rec["MTU"] == "9000"
    assert rec["currently_attached"] is False  # the agent's to set, not the client's
    # the same seed and device give the same MAC again
    x.VIF.destroy(vif)
    again = x.VIF.create(vif_record(vm, net, "0"))
    assert x.VIF.get_MAC(again) == mac and seed == x.VM.get_other_config(vm)["mac_seed"]
    assert failure(x.VIF.create, vif_record(vm, net, "0")) == ["DEVICE_ALREADY_EXISTS", "0"]
    assert failure(x.VIF.create, vif_record(vm, net, "eth1")) == ["INVALID_DEVICE", "eth1"]
    assert failure(x.VIF.create, vif_record(vm, net, "1", mac="zz:00")) == ["MAC_INVALID", "zz:00"]
    given = x.VIF.create(vif_record(vm, net, "1", mac="02:AB:cd:00:00:01"))
    assert x.VIF.get_MAC(given) == "02:ab:cd:00:00:01" and x.VIF.get_MAC_autogenerated(given) is False
    assert sorted(x.VM.get_VIFs(vm)) == sorted([again, given])
    # a network with VIFs on it stays, and so do the VIFs' references
    assert failure(x.network.destroy, net)[0] == "NETWORK_CONTAINS_VIF"
    assert sorted(failure(x.network.destroy, net)[1:]) == sorted([again, given])
    assert x.VIF.get_network(again) == net and x.network.get_name_label(net) == "vif test"
    x.VM.destroy(vm)
    x.network.destroy(net)
    assert net not in x.network.get_all()


# ------------------------------------------------------------------ SR allowed operations
def test_sr_allowed_operations_follow_its_pbds(agent):
    x = login(agent).xenapi
    sr = x.SR.create(x.host.get_all()[0], {"location": os.path.join(agent.state_dir, "ops-sr")}, "0",
                     "ops", "", "file", "user", False, {})
    plugged = set(x.SR.get_allowed_operations(sr))
    assert {"vdi_create", "vdi_destroy", "vdi_snapshot", "vdi_clone", "vdi_resize", "scan", "update",
            "unplug"} <= plugged
    assert "plug" not in plugged
    [pbd] = x.SR.get_PBDs(sr)
    x.PBD.unplug(pbd)
    unplugged = set(x.SR.get_allowed_operations(sr))
    assert "plug" in unplugged and "destroy" in unplugged and "forget" in unplugged
    assert not unplugged & {"vdi_create", "scan", "update", "unplug"}
    assert failure(x.SR.scan, sr) == ["SR_HAS_NO_PBDS", sr]
    x.PBD.plug(pbd)
    task = x.Async.VDI.create(vdi_record(sr, 4 * MiB, "after replug"))
    wait_task(x, task)
    assert x.task.get_status(task) == "success"
