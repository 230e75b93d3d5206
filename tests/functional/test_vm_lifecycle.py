"""The VM lifecycle on the embedded default (libvirt's test driver), with the real XenAPI
package: the seed guide's §3.1 walkthrough, §3.3's disk, power cycles in parallel,
templates, copies, suspend images, and errors as xapi gives them."""

import concurrent.futures
import os

import pytest

from tests.support import wait_for

from .agent import AgentProcess
from .storage_util import MiB, failure, login, vdi_record, wait_task

SEED_TEMPLATES = ["Debian Etch 4.0", "Red Hat Enterprise Linux 4.1", "Red Hat Enterprise Linux 4.4",
                  "Red Hat Enterprise Linux 4.5", "Red Hat Enterprise Linux 5.0",
                  "SUSE Linux Enterprise Server 10 SP1", "CentOS 4.5", "CentOS 5.0"]


@pytest.fixture(scope="module")
def x(agent):
    return login(agent).xenapi


def template(x, name):
    [t] = [ref for ref, rec in x.VM.get_all_records().items()
           if rec["is_a_template"] and rec["name_label"] == name]
    return t


def new_vm(x, name, source="Debian Etch 4.0"):
    vm = x.VM.clone(template(x, source), name)
    x.VM.provision(vm)
    return vm


def test_seed_walkthrough_install_and_start(x):
    """§3.1: templates by is_a_template and name_label, clone, provision, start, suspend,
    resume, clean_shutdown; then §3.3: a new disk hot-plugged (here: the documented
    refusal, since the test driver cannot hot-plug)."""
    records = x.VM.get_all_records()
    names = {rec["name_label"] for rec in records.values() if rec["is_a_template"]}
    assert set(SEED_TEMPLATES) <= names and {"Debian Bookworm 12", "Other install media"} <= names
    t = template(x, "Debian Etch 4.0")
    vm = x.VM.clone(t, "my first VM")
    assert x.VM.get_is_a_template(vm) is True and x.VM.get_is_default_template(vm) is False
    x.VM.provision(vm)
    assert x.VM.get_is_a_template(vm) is False
    [vbd] = x.VM.get_VBDs(vm)
    vdi = x.VBD.get_VDI(vbd)
    assert x.VDI.get_virtual_size(vdi) == str(4 << 30)
    assert x.VDI.get_SR(vdi) == x.pool.get_default_SR(x.pool.get_all()[0])
    assert "start" in x.VM.get_allowed_operations(vm)
    x.VM.start(vm, False, False)
    rec = x.VM.get_record(vm)
    assert rec["power_state"] == "Running" and int(rec["domid"]) > 0
    assert rec["resident_on"] == x.host.get_all()[0]
    assert {"suspend", "clean_shutdown", "pause", "hard_shutdown"} <= set(rec["allowed_operations"])
    assert x.VBD.get_currently_attached(vbd) is True and x.VBD.get_device(vbd) == "hda"
    consoles = [x.console.get_record(c) for c in rec["consoles"]]
    assert sorted(c["protocol"] for c in consoles) == ["rfb", "vt100"]
    address = x.host.get_address(x.host.get_all()[0])
    assert all(c["location"] == f"https://{address}/console?uuid={c['uuid']}" for c in consoles)
    metrics = x.VM_metrics.get_record(rec["metrics"])
    assert metrics["memory_actual"] == str(256 * MiB) and metrics["VCPUs_number"] == "1"
    x.VM.suspend(vm)
    rec = x.VM.get_record(vm)
    assert rec["power_state"] == "Suspended" and rec["domid"] == "-1" and rec["consoles"] == []
    image = rec["suspend_VDI"]
    assert x.VDI.get_type(image) == "suspend"
    x.VM.resume(vm, False, False)
    assert x.VM.get_power_state(vm) == "Running"
    assert x.VM.get_suspend_VDI(vm) == "OpaqueRef:NULL" and image not in x.VDI.get_all()
    # §3.3: a new disk on the running VM
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    disk = x.VDI.create(vdi_record(sr, 16 * MiB, "data"))
    new = x.VBD.create({"VM": vm, "VDI": disk, "userdevice": "1", "bootable": False, "mode": "RW", "type": "Disk",
                        "empty": False, "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
    assert x.VBD.get_currently_attached(new) is False
    err = failure(x.VBD.plug, new)
    assert err == ["OPERATION_NOT_ALLOWED", "the TEST hypervisor cannot hot-plug disks"]
    assert x.VBD.get_currently_attached(new) is False
    x.VM.clean_shutdown(vm)
    rec = x.VM.get_record(vm)
    assert rec["power_state"] == "Halted" and rec["domid"] == "-1" and rec["consoles"] == []
    assert x.VBD.get_currently_attached(vbd) is False
    assert "start" in rec["allowed_operations"]


def test_errors_as_xapi_gives_them(x):
    vm = new_vm(x, "errors")
    t = template(x, "CentOS 5.0")
    assert failure(x.VM.start, t, False, False) == ["VM_IS_TEMPLATE", t, "start"]
    assert failure(x.VM.suspend, vm) == ["VM_BAD_POWER_STATE", vm, "running", "halted"]
    assert failure(x.VM.resume, vm, False, False) == ["VM_BAD_POWER_STATE", vm, "suspended", "halted"]
    assert failure(x.VM.destroy, t) == ["VM_CANNOT_DELETE_DEFAULT_TEMPLATE", t]
    assert failure(x.VM.provision, vm) == ["PROVISION_ONLY_ALLOWED_ON_TEMPLATE"]
    x.VM.set_memory_limits(vm, str(64 * MiB), str(256 * MiB), str(128 * MiB), str(128 * MiB))
    assert failure(x.VM.set_memory_dynamic_range, vm, str(512 * MiB), str(512 * MiB))[0] == \
        "MEMORY_CONSTRAINT_VIOLATION"
    big = new_vm(x, "too big")
    x.VM.set_memory_limits(big, str(1 << 30), str(64 << 30), str(64 << 30), str(64 << 30))
    err = failure(x.VM.start, big, False, False)
    assert err[0] == "HOST_NOT_ENOUGH_FREE_MEMORY" and err[1] == str(64 << 30) and int(err[2]) < (64 << 30)
    x.VM.set_PV_bootloader(vm, "/bin/sh")  # a program dom0 would run as root: never started
    assert failure(x.VM.start, vm, False, False) == ["UNKNOWN_BOOTLOADER", vm, "/bin/sh"]
    assert x.VM.get_power_state(vm) == "Halted"
    x.VM.set_PV_bootloader(vm, "pygrub")
    x.VM.start(vm, False, False)
    assert failure(x.VM.start, vm, False, False) == ["VM_BAD_POWER_STATE", vm, "halted", "running"]
    assert failure(x.VM.destroy, vm) == ["VM_BAD_POWER_STATE", vm, "halted, suspended", "running"]
    x.VM.pause(vm)
    assert x.VM.get_power_state(vm) == "Paused"
    assert failure(x.VM.clean_shutdown, vm) == ["VM_BAD_POWER_STATE", vm, "running", "paused"]
    x.VM.unpause(vm)
    x.VM.hard_shutdown(vm)
    for v in (vm, big):
        x.VM.destroy(v)


def test_ten_power_cycles_of_three_vms_in_parallel(agent):
    x = login(agent).xenapi
    vms = [new_vm(x, f"cycler {i}") for i in range(3)]

    def cycle(vm):
        s = login(agent)
        try:
            for _ in range(10):
                for op, args in (("start", (False, False)), ("suspend", ()), ("resume", (False, False)),
                                 ("clean_shutdown", ())):
                    task = getattr(s.xenapi.Async.VM, op)(vm, *args)
                    wait_task(s.xenapi, task)
                    assert s.xenapi.task.get_status(task) == "success", s.xenapi.task.get_error_info(task)
                    s.xenapi.task.destroy(task)
        finally:
            s.xenapi.session.logout()
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        for f in [pool.submit(cycle, vm) for vm in vms]:
            f.result()
    for vm in vms:
        rec = x.VM.get_record(vm)
        assert rec["power_state"] == "Halted" and rec["current_operations"] == {}
        assert "start" in rec["allowed_operations"] and "suspend" not in rec["allowed_operations"]
        assert [v for v in x.VDI.get_all_records().values()
                if v["other_config"].get("suspend-image-of") == rec["uuid"]] == []


def test_clone_copy_snapshot_revert(x):
    vm = new_vm(x, "original")
    [vbd] = x.VM.get_VBDs(vm)
    net = x.network.create({"name_label": "copies", "name_description": "", "MTU": "1500", "other_config": {},
                            "bridge": "xenbr7"})
    vif = x.VIF.create({"device": "0", "network": net, "VM": vm, "MAC": "", "MTU": "0", "other_config": {},
                        "qos_algorithm_type": "", "qos_algorithm_params": {}})
    clone = x.VM.clone(vm, "clone")
    [cvbd] = x.VM.get_VBDs(clone)
    assert x.VBD.get_VDI(cvbd) != x.VBD.get_VDI(vbd)
    [cvif] = x.VM.get_VIFs(clone)
    assert x.VIF.get_MAC(cvif) != x.VIF.get_MAC(vif) and x.VIF.get_network(cvif) == net
    assert x.VM.get_other_config(clone)["mac_seed"] != x.VM.get_other_config(vm)["mac_seed"]
    copy = x.VM.copy(vm, "copy", "OpaqueRef:NULL")
    [copy_vbd] = x.VM.get_VBDs(copy)
    assert x.VDI.get_sm_config(x.VBD.get_VDI(copy_vbd)).get("vhd-parent") is None  # a full copy
    snap = x.VM.snapshot(vm, "before")
    rec = x.VM.get_record(snap)
    assert rec["is_a_snapshot"] is True and rec["snapshot_of"] == vm and rec["is_a_template"] is True
    assert snap in x.VM.get_snapshots(vm)
    x.VM.set_VCPUs_max(vm, "4")
    old_disk = x.VBD.get_VDI(vbd)
    x.VM.revert(snap)
    assert x.VM.get_VCPUs_max(vm) == "1"
    [reverted] = x.VM.get_VBDs(vm)
    assert x.VBD.get_VDI(reverted) != old_disk and old_disk not in x.VDI.get_all()
    for v in (clone, copy, snap, vm):
        for b in x.VM.get_VBDs(v):
            d = x.VBD.get_VDI(b)
            x.VBD.destroy(b)
            if d != "OpaqueRef:NULL" and not x.VDI.get_VBDs(d):
                x.VDI.destroy(d)
        x.VM.destroy(v)


def test_devices_and_checks(x):
    vm = new_vm(x, "devices")
    assert x.VM.get_allowed_VBD_devices(vm)[:3] == ["1", "2", "3"]
    assert x.VM.get_allowed_VIF_devices(vm) == [str(i) for i in range(7)]
    host = x.host.get_all()[0]
    x.VM.assert_can_boot_here(vm, host)
    assert x.VM.get_possible_hosts(vm) == [host]
    x.VM.assert_operation_valid(vm, "start")
    assert failure(x.VM.assert_operation_valid, vm, "suspend") == ["VM_BAD_POWER_STATE", vm, "running",
                                                                   "halted"]
    assert x.VM.get_boot_record(vm)["uuid"] == x.VM.get_uuid(vm)
    x.VM.set_xenstore_data(vm, {"vm-data/foo": "bar", "other/ignored": "x"})
    x.VM.start(vm, False, False)
    x.VM.set_VCPUs_number_live(vm, "1")
    x.VM.hard_shutdown(vm)


def test_guest_metrics_from_the_test_guest_agent(x):
    vm = new_vm(x, "guest", "Debian Bookworm 12")
    net = x.network.create({"name_label": "guest net", "name_description": "", "MTU": "1500", "other_config": {},
                            "bridge": "xenbr8"})
    x.VIF.create({"device": "0", "network": net, "VM": vm, "MAC": "", "MTU": "0", "other_config": {},
                  "qos_algorithm_type": "", "qos_algorithm_params": {}})
    x.VM.start(vm, False, False)
    gm = x.VM_guest_metrics.get_record(x.VM.get_guest_metrics(vm))
    assert gm["os_version"]["name"] == "Debian Bookworm 12"
    assert gm["networks"]["0/ip"].startswith("192.0.2.")
    x.VM.clean_shutdown(vm)
    assert x.VM.get_guest_metrics(vm) == "OpaqueRef:NULL"


def test_restart_with_running_vms_reconciles(agents):
    """The test driver's domains live in the agent's process: after a restart none runs,
    so VMs recorded as running become Halted, their storage detached; a suspended VM
    keeps its image."""
    agent = agents()
    x = login(agent).xenapi
    running, suspended = new_vm(x, "running"), new_vm(x, "suspended")
    x.VM.start(running, False, False)
    x.VM.start(suspended, False, False)
    x.VM.suspend(suspended)
    agent.kill()
    agent = agents()
    x = login(agent).xenapi
    assert x.VM.get_power_state(running) == "Halted" and x.VM.get_domid(running) == "-1"
    assert x.VM.get_power_state(suspended) == "Suspended"
    x.VM.resume(suspended, False, False)
    assert x.VM.get_power_state(suspended) == "Running"
    assert "was recorded Running but has no domain" in agent.log_text()


def test_templates_survive_and_are_not_duplicated(agents):
    """Built-in templates are known by reference_label: one renamed by a user is not made again."""
    agent = agents()
    x = login(agent).xenapi
    x.VM.set_name_label(template(x, "CentOS 4.5"), "my CentOS")
    before = sorted(r["name_label"] for r in x.VM.get_all_records().values() if r["is_default_template"])
    assert "my CentOS" in before and "CentOS 4.5" not in before
    agent.stop()
    agent = agents()
    x = login(agent).xenapi
    after = sorted(r["name_label"] for r in x.VM.get_all_records().values() if r["is_default_template"])
    assert before == after and len(after) == 11


@pytest.mark.parametrize("hook", ["HOSTAGENT_FAULT_DELAY_DOMAIN_START", "HOSTAGENT_FAULT_DELAY_DOMAIN_SAVE",
                                  "HOSTAGENT_FAULT_DELAY_VOL_FILL_FROM"])
def test_sigkill_during_start_or_suspend(agents, hook):
    """Killed while a domain starts, while it is being saved, or while its image goes into
    the suspend VDI: after the restart the VM's records match the hypervisor (the test
    driver's domains died with the agent: Halted), its disks are detached, and no suspend
    image (VDI or file) is left."""
    agent = agents(**{hook: "30"})
    x = login(agent).xenapi
    vm = new_vm(x, "killed")
    op = "start" if hook.endswith("START") else "suspend"
    if op == "suspend":
        x.VM.start(vm, False, False)
    task = getattr(x.Async.VM, op)(vm, *((False, False) if op == "start" else ()))
    uuid = x.VM.get_uuid(vm)

    def in_the_window():
        if hook.endswith("FILL_FROM"):
            return any(r["other_config"].get("suspend-image-of") == uuid for r in x.VDI.get_all_records().values())
        return f"holding domain {hook.rsplit('_', 1)[1].lower()} for" in agent.log_text()
    wait_for(in_the_window, 20.0, what="the held operation")
    agent.kill()
    agent = agents()
    x = login(agent).xenapi
    rec = x.VM.get_record(vm)
    assert rec["power_state"] == "Halted" and rec["domid"] == "-1" and rec["current_operations"] == {}
    assert all(not x.VBD.get_currently_attached(v) for v in rec["VBDs"])
    assert [v for v in x.VDI.get_all_records().values() if v["type"] == "suspend"] == []
    scratch = os.path.join(agent.state_dir, "suspend")
    assert not os.path.isdir(scratch) or os.listdir(scratch) == []
    x.VM.start(vm, False, False)  # and it starts again
    assert x.VM.get_power_state(vm) == "Running"


def test_a_suspend_whose_image_cannot_be_kept_leaves_the_guest_running(agent, tmp_path):
    """The suspend SR cannot take the image (here: it is unplugged): the call fails with
    the storage's error, the guest runs on from its image, and no suspend VDI is left."""
    x = login(agent).xenapi
    host = x.host.get_all()[0]
    sr = x.SR.create(host, {"location": str(tmp_path / "suspend-sr")}, "0", "unplugged", "", "file", "user",
                     False, {})
    [pbd] = x.SR.get_PBDs(sr)
    x.PBD.unplug(pbd)
    vm = new_vm(x, "cannot suspend")
    x.VM.set_suspend_SR(vm, sr)
    x.VM.start(vm, False, False)
    assert failure(x.VM.suspend, vm) == ["SR_HAS_NO_PBDS", sr]
    rec = x.VM.get_record(vm)
    assert rec["power_state"] == "Running" and int(rec["domid"]) > 0 and rec["current_operations"] == {}
    assert [v for v in x.VDI.get_all_records().values() if v["type"] == "suspend"] == []
    x.VM.pause(vm)  # the domain is really there again
    x.VM.unpause(vm)
    x.VM.hard_shutdown(vm)


def test_cd_media_of_a_running_vm_on_the_test_driver_is_refused(x, tmp_path):
    """The test driver cannot change a running domain's media: the documented refusal, and
    the drive keeps what it had; halted, insert and eject are record changes."""
    isos = tmp_path / "isos"
    isos.mkdir()
    (isos / "tools.iso").write_bytes(b"\0" * 4096)
    iso_sr = x.SR.create(x.host.get_all()[0], {"location": str(isos)}, "0", "ISOs", "", "iso", "", False, {})
    [iso] = x.SR.get_VDIs(iso_sr)
    vm = new_vm(x, "cd vm")
    cd = x.VBD.create({"VM": vm, "VDI": "OpaqueRef:NULL", "userdevice": "3", "bootable": False, "mode": "RO",
                       "type": "CD", "empty": True, "other_config": {}, "qos_algorithm_type": "",
                       "qos_algorithm_params": {}})
    x.VM.start(vm, False, False)
    assert x.VBD.get_currently_attached(cd) is True
    assert failure(x.VBD.insert, cd, iso) == [
        "OPERATION_NOT_ALLOWED", "the TEST hypervisor cannot change the media of a running VM's CD drive"]
    assert x.VBD.get_empty(cd) is True and x.VBD.get_VDI(cd) == "OpaqueRef:NULL"
    x.VM.hard_shutdown(vm)
    x.VBD.insert(cd, iso)
    assert x.VBD.get_VDI(cd) == iso
    x.VBD.eject(cd)
    assert x.VBD.get_empty(cd) is True
    x.VM.destroy(vm)
    for pbd in x.SR.get_PBDs(iso_sr):
        x.PBD.unplug(pbd)
    x.SR.forget(iso_sr)
