"""The agent inside a real Xen dom0 (the lab, docs/lab.md): the host as Xen describes it.

Runs only under `lab/run.py` (make lab-test), which boots dom0 under QEMU, installs the agent
there with scripts/install-dom0 and names it in the environment:

    HOSTAGENT_LAB_URL        the agent's API through QEMU's forwarded loopback port
    HOSTAGENT_LAB_PASSWORD   root's password, read from dom0's /var/lib/hostagent/root-password
    HOSTAGENT_LAB_SSH        an ssh command line that runs a command in dom0 as root

Without them (`make test`) every test here is skipped with that reason.
"""

import os
import shlex
import subprocess
import time

import pytest

URL = os.environ.get("HOSTAGENT_LAB_URL")
PASSWORD = os.environ.get("HOSTAGENT_LAB_PASSWORD")
SSH = os.environ.get("HOSTAGENT_LAB_SSH")

pytestmark = [
    pytest.mark.xen,
    pytest.mark.skipif(not (URL and PASSWORD and SSH),
                       reason="needs the Xen lab: HOSTAGENT_LAB_URL, HOSTAGENT_LAB_PASSWORD and "
                              "HOSTAGENT_LAB_SSH are set by lab/run.py (make lab-test)"),
]


def ssh(command: str) -> subprocess.CompletedProcess:
    """ssh into dom0; a refused connection (255, sshd busy under TCG) is tried again."""
    for attempt in range(5):
        r = subprocess.run(shlex.split(SSH) + [command], capture_output=True, text=True, timeout=120,
                           check=False)
        if r.returncode != 255:
            break
        time.sleep(2)
    return r


def dom0(command: str) -> str:
    """Run a shell command in dom0 as root; its stdout."""
    r = ssh(command)
    assert r.returncode == 0, f"dom0: {command!r} failed ({r.returncode}): {r.stdout}{r.stderr}"
    return r.stdout


def xl_info() -> dict:
    info = {}
    for line in dom0("xl info").splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


@pytest.fixture(scope="module")
def host(api):
    hosts = api.host.get_all()
    assert len(hosts) == 1
    return hosts[0]


@pytest.fixture(scope="module")
def xen():
    return xl_info()


def test_software_version_names_xen_and_its_version(api, host, xen):
    version = api.host.get_software_version(host)
    assert "xen" in version, version
    # xl: "xen_major 4, xen_minor 17, xen_extra .5..." and xen_version "4.17.5..."
    major_minor = f"{xen['xen_major']}.{xen['xen_minor']}"
    assert version["xen"].startswith(major_minor), (version["xen"], xen["xen_version"])
    assert "libvirt" in version


def test_capabilities_are_xen_guest_types(api, host):
    capabilities = api.host.get_capabilities(host)
    assert "xen-3.0-x86_64" in capabilities, capabilities


def test_host_memory_is_xens_not_dom0s(api, host, xen):
    metrics = api.host_metrics.get_record(api.host.get_metrics(host))
    total = int(metrics["memory_total"])
    xen_total = int(xen["total_memory"]) << 20          # MiB in xl info
    assert abs(total - xen_total) <= max(xen_total // 50, 16 << 20), (total, xen_total)
    meminfo = dom0("grep MemTotal /proc/meminfo").split()
    dom0_total = int(meminfo[1]) << 10
    assert total > dom0_total * 3 // 2, f"host memory {total} looks like dom0's {dom0_total}"
    assert 0 < int(metrics["memory_free"]) <= total


def control_domain(api):
    controls = [(ref, rec) for ref, rec in api.VM.get_all_records().items()
                if rec["is_control_domain"]]
    assert len(controls) == 1, [rec["name_label"] for _, rec in controls]
    return controls[0]


def xl_dom0_mib() -> int:
    # dom0_mem=1024M,max:1024M on Xen's command line (lab/boot.py).
    return int(dom0("xl list 0 | awk 'NR == 2 {print $3}'"))


def test_dom0_is_the_control_domain_with_dom0s_memory(api, host):
    _ref, rec = control_domain(api)
    assert rec["power_state"] == "Running"
    assert rec["resident_on"] == host
    assert rec["domid"] == "0"
    memory = int(api.VM_metrics.get_memory_actual(rec["metrics"]))
    host_total = int(api.host_metrics.get_memory_total(api.host.get_metrics(host)))
    # dom0's (at most its Xen allocation), not the host's 2 GiB.
    assert 0 < memory <= xl_dom0_mib() << 20 < host_total, (memory, host_total)


def test_dom0_memory_actual_is_xens_allocation(api):
    _ref, rec = control_domain(api)
    memory = int(api.VM_metrics.get_memory_actual(rec["metrics"]))
    assert abs((memory >> 20) - xl_dom0_mib()) <= 16, (memory >> 20, xl_dom0_mib())


# The lab's PV guest (lab/guest.py: dom0's kernel, a busybox initramfs), copied into dom0 by
# lab/run.py; here it only needs to boot and stay up.
GUEST_KERNEL = os.environ.get("HOSTAGENT_LAB_GUEST_KERNEL")
GUEST_RAMDISK = os.environ.get("HOSTAGENT_LAB_GUEST_RAMDISK")
GUEST_MIB = 128
needs_guest = pytest.mark.skipif(not (GUEST_KERNEL and GUEST_RAMDISK),
                                 reason="HOSTAGENT_LAB_GUEST_KERNEL/_RAMDISK not set by lab/run.py")


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(1)
    return value


@pytest.fixture
def pv_vm(api):
    [template] = [ref for ref, rec in api.VM.get_all_records().items()
                  if rec["is_a_template"] and rec["name_label"] == "Debian Etch 4.0"]
    vm = api.VM.clone(template, f"lab-pv-{os.getpid()}")
    api.VM.set_is_a_template(vm, False)          # diskless: not provisioned
    api.VM.set_PV_bootloader(vm, "")
    api.VM.set_PV_kernel(vm, GUEST_KERNEL)
    api.VM.set_PV_ramdisk(vm, GUEST_RAMDISK)
    api.VM.set_PV_args(vm, "console=hvc0 quiet")
    size = str(GUEST_MIB << 20)
    api.VM.set_memory_limits(vm, size, size, size, size)
    api.VM.set_VCPUs_max(vm, "1")
    api.VM.set_VCPUs_at_startup(vm, "1")
    yield vm
    if api.VM.get_power_state(vm) != "Halted":
        api.VM.hard_shutdown(vm)
    api.VM.destroy(vm)


@needs_guest
def test_pv_guest_runs_in_xen_with_its_vm_data_in_xenstore(api, pv_vm):
    api.VM.set_xenstore_data(pv_vm, {"vm-data/lab": "hello", "other/ignored": "x"})
    started = time.monotonic()
    api.VM.start(pv_vm, False, False)
    print(f"VM.start: {time.monotonic() - started:.1f} s")
    rec = api.VM.get_record(pv_vm)
    assert rec["power_state"] == "Running"
    domid = int(rec["domid"])
    assert domid > 0
    line = dom0(f"xl list {domid} | tail -1").split()
    assert int(line[1]) == domid and abs(int(line[2]) - GUEST_MIB) <= 8, line
    assert dom0(f"xenstore-read /local/domain/{domid}/vm-data/lab").strip() == "hello"
    r = ssh(f"xenstore-read /local/domain/{domid}/other/ignored")
    assert r.returncode not in (0, 255), r.stdout


@needs_guest
def test_domain_destroyed_with_xl_shows_up_halted_with_an_event(api, pv_vm):
    api.VM.start(pv_vm, False, False)
    domid = int(api.VM.get_domid(pv_vm))
    event_from = getattr(api.event, "from")
    token = event_from(["VM"], "", 0.0)["token"]
    dom0(f"xl destroy {domid}")
    halted = []
    deadline = time.monotonic() + 60
    while not halted and time.monotonic() < deadline:
        batch = event_from(["VM"], token, 10.0)
        token = batch["token"]
        halted = [e for e in batch["events"] if e["ref"] == pv_vm and e["operation"] == "mod"
                  and e.get("snapshot", {}).get("power_state") == "Halted"]
    assert halted, "no VM event with power_state Halted after xl destroy"
    assert api.VM.get_power_state(pv_vm) == "Halted" and api.VM.get_domid(pv_vm) == "-1"



@needs_guest
def test_pvh_guest_runs_as_pvh(api, pv_vm):
    """domain_type pvh (given at VM.create, as xapi's field is): libxl builds a PVH domain (with
    the native TSC that TCG needs, xen-lab-notes.md) from the same kernel and initramfs, and
    the guest's init runs."""
    rec = api.VM.get_record(pv_vm)
    rec.update(name_label=f"lab-pvh-{os.getpid()}", domain_type="pvh")
    vm = api.VM.create(rec)
    try:
        assert api.VM.get_domain_type(vm) == "pvh"
        started = time.monotonic()
        api.VM.start(vm, False, False)
        print(f"VM.start (PVH): {time.monotonic() - started:.1f} s")
        domid = int(api.VM.get_domid(vm))
        config = dom0(f"xl list -l {domid}")
        assert '"type": "pvh"' in config, config[:2000]
        wait(lambda: dom0(f"xenstore-read /local/domain/{domid}/data/os_name 2>/dev/null || true").strip(),
             120, "the PVH guest's init to publish its keys")
        api.VM.hard_shutdown(vm)
        assert api.VM.get_power_state(vm) == "Halted"
    finally:
        if api.VM.get_power_state(vm) != "Halted":
            api.VM.hard_shutdown(vm)
        api.VM.destroy(vm)


def test_doctor_finds_what_the_agent_needs_in_this_dom0():
    r = ssh("hostagent doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert any(line.split()[:2] == ["ok", "Xen"] for line in lines), r.stdout
    assert any(line.split()[:2] == ["ok", "libvirt"] for line in lines), r.stdout
    assert lines[-1] == "doctor: this dom0 has what the agent needs", r.stdout
