"""xe as an administrator meets it: connecting (Unix socket, -s -p -u -pw, -pwf, --nossl, TLS,
~/.xe and XE_EXTRA_ARGS), its errors, help, and the hand-written commands beyond the
seed's procedures, each checked through the API.
"""

import os
import re
import uuid

import pytest

from .agent import AgentProcess
from .events_support import login, logout
from .test_xe_support import XeRunner, install_vm
from .tls_cert import make_self_signed

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def xe(agent, tmp_path_factory):
    return XeRunner(agent, tmp_path_factory.mktemp("xe-home"))


@pytest.fixture(scope="module")
def x(agent):
    s = login(agent, "xe-cli-test")
    yield s.xenapi
    logout(s)


# ------------------------------------------------------------------------------- connecting

def test_tcp_with_flags_and_a_password_file(agent, xe, tmp_path):
    tcp = ["-s", "127.0.0.1", "-p", str(agent.port), "--nossl"]
    nosock = {"HOSTAGENT_CONFIG": str(tmp_path / "none.conf")}
    host = xe("host-list", "--minimal")
    assert xe(*tcp, "-u", "root", "-pw", agent.password, "host-list", "--minimal", env=nosock) == host
    p = xe.fails(*tcp, "-u", "root", "-pw", "wrong", "host-list", env=nosock)
    assert "SESSION_AUTHENTICATION_FAILED" in p.stderr and "Authentication failed" in p.stderr
    pwf = tmp_path / "pwfile"
    pwf.write_text(f"root\n{agent.password}\n")
    assert xe(*tcp, "-pwf", str(pwf), "host-list", "--minimal", env=nosock) == host
    # key=value forms of the same options
    assert xe("server=127.0.0.1", f"port={agent.port}", "nossl=true", "username=root",
              f"password={agent.password}", "host-list", "--minimal", env=nosock) == host
    p = xe.fails("-s", "127.0.0.1", "-p", "1", "--nossl", "host-list", env=nosock)
    assert "cannot talk to" in p.stderr


def test_rc_file_and_extra_args_with_their_precedence(agent, xe, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    runner = XeRunner(agent, home)
    runner.env["HOSTAGENT_CONFIG"] = str(tmp_path / "none.conf")  # TCP only
    (home / ".xe").write_text(f"server=127.0.0.1\nport={agent.port}\nnossl=true\nusername=root\n"
                              "password=wrong\n")
    p = runner.fails("host-list")
    assert "SESSION_AUTHENTICATION_FAILED" in p.stderr  # ~/.xe was read
    good = {"XE_EXTRA_ARGS": f"password={agent.password}"}
    assert UUID.fullmatch(runner("host-list", "--minimal", env=good))  # XE_EXTRA_ARGS beats ~/.xe
    p = runner.fails("-pw", "wrong", "host-list", env=good)  # the command line beats both
    assert "SESSION_AUTHENTICATION_FAILED" in p.stderr
    # a comma inside a value is written \,
    from hostagent.xe.options import split_extra_args
    assert split_extra_args(r"password=a\,b,port=1") == ["password=a,b", "port=1"]


def test_tls(tmp_path):
    cert, key = make_self_signed(str(tmp_path / "tls"))
    a = AgentProcess(str(tmp_path / "state"), extra_args=["--tls-listen", "127.0.0.1:0", "--cert", cert,
                                                          "--key", key])
    try:
        a.start()
        url = next(line.split()[-1] for line in a.banner if "https://" in line)
        port = url.rstrip("/").rsplit(":", 1)[1]
        runner = XeRunner(a, tmp_path / "home")
        runner.env["HOSTAGENT_CONFIG"] = str(tmp_path / "none.conf")
        # -s names the server by the name in its certificate; 127.0.0.1 would mean "local, no TLS"
        out = runner("-s", "localhost", "-p", port, "-pw", a.password, "host-list", "--minimal")
        assert UUID.fullmatch(out)
        p = runner.fails("-s", "localhost", "-p", port, "-pw", a.password, "--verify-certificate", "host-list")
        assert "CERTIFICATE_VERIFY_FAILED" in p.stderr or "certificate" in p.stderr.lower()
    finally:
        a.cleanup()


# ------------------------------------------------------------------------------- errors, help

def test_usage_errors_name_the_parameter(xe):
    p = xe.fails("no-such-command")
    assert p.stderr.splitlines() == ["Unknown command: no-such-command", "For usage run: 'xe help'"]
    p = xe.fails("vm-param-get", "param-name=uuid")
    assert "Required parameter not found: uuid" in p.stderr
    p = xe.fails("vm-param-list", "uuid=x", "bogus=1")
    assert "Unknown parameter: bogus" in p.stderr
    p = xe.fails("vm-list", "bogus-field=1")
    assert "Unknown parameter: bogus-field" in p.stderr
    p = xe.fails("vm-list", "params=uuid,bogus")
    assert "Unknown field: bogus" in p.stderr
    p = xe.fails("vm-start", "--bogus")
    assert "Unknown option: --bogus" in p.stderr


def test_api_errors_print_code_sentence_and_parameters(xe):
    vm = install_vm(xe, "err-vm")
    p = xe.fails("vm-suspend", f"uuid={vm}")
    lines = p.stderr.splitlines()
    assert lines[0] == "The VM is not in the power state this operation needs."
    assert "code: VM_BAD_POWER_STATE" in lines
    assert f"vm: {vm} (err-vm)" in lines and "expected: running" in lines and "actual: halted" in lines
    p = xe.fails("vm-param-list", f"uuid={uuid.uuid4()}")
    assert "code: UUID_INVALID" in p.stderr
    p = xe.fails("vm-param-set", f"uuid={vm}", "power-state=running")
    assert "read-only" in p.stderr
    p = xe.fails("vm-param-set", f"uuid={vm}", "VCPUs-max=many")
    assert "VCPUs-max must be a whole number" in p.stderr


def test_quiet_when_the_reader_goes_away_and_a_hint_when_no_agent_is_there(xe, tmp_path):
    import subprocess
    p = subprocess.run(["bash", "-c", f"{xe.binary} template-list | head -1"], env=xe.env,
                       capture_output=True, text=True, timeout=120, check=True)
    assert p.stdout.startswith("uuid ( RO)") and p.stderr == ""
    lonely = {"HOSTAGENT_CONFIG": str(tmp_path / "none.conf"), "XDG_STATE_HOME": str(tmp_path)}
    if not os.path.exists("/var/lib/xcp/xapi") and not os.path.exists("/var/lib/hostagent/xapi.sock"):
        import socket
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        p = xe.fails("-p", str(port), "vm-list", env=lonely)
        assert "Connection refused" in p.stderr and "is hostagent running?" in p.stderr


def test_debug_names_the_calls(xe):
    p = xe.run("--debug", "host-list", "--minimal")
    assert "xe: calling session.login_with_password on the agent on " in p.stderr
    assert "xe: calling host.get_all_records" in p.stderr and UUID.fullmatch(p.stdout.strip())
    assert xe.run("host-list", "--minimal").stderr == ""


def test_help(xe):
    out = xe("help")
    assert "vm-start" in out and "xe help --all" in out
    everything = xe("help", "--all")
    for command in ("vm-list", "pool-param-set", "vdi-create", "event-wait", "task-cancel", "vm-export"):
        assert command in everything
    out = xe("help", "vm-param-get")
    assert "command name            : vm-param-get" in out
    assert "reqd params     : uuid, param-name" in out
    assert xe.fails("help", "nope").stderr.startswith("Unknown command: nope")


# ------------------------------------------------------------------------------- commands

def test_lifecycle_and_selection(xe, x):
    a, b = install_vm(xe, "sel-a"), install_vm(xe, "sel-b")
    for vm in (a, b):
        xe("vm-param-set", f"uuid={vm}", "other-config:group=sel")
    p = xe.fails("vm-start", "other-config:group=sel")
    assert "--multiple" in p.stderr
    assert x.VM.get_power_state(x.VM.get_by_uuid(a)) == "Halted"
    xe("vm-start", "other-config:group=sel", "--multiple")
    assert {x.VM.get_power_state(x.VM.get_by_uuid(v)) for v in (a, b)} == {"Running"}
    xe("vm-suspend", "vm=sel-a")
    assert x.VM.get_power_state(x.VM.get_by_uuid(a)) == "Suspended"
    xe("vm-resume", "vm=sel-a")
    xe("vm-reboot", f"uuid={a}", "--force")
    assert x.VM.get_power_state(x.VM.get_by_uuid(a)) == "Running"
    xe("vm-shutdown", "power-state=running", "other-config:group=sel", "--multiple", "--force")
    assert {x.VM.get_power_state(x.VM.get_by_uuid(v)) for v in (a, b)} == {"Halted"}
    assert xe.fails("vm-start", "vm=no-such-vm").stderr.startswith("No matching VMs found")

    snap = xe("vm-snapshot", f"uuid={a}", "new-name-label=sel-a-snap")
    assert x.VM.get_is_a_snapshot(x.VM.get_by_uuid(snap))
    assert snap in xe("snapshot-list", "--minimal").split(",")
    assert snap not in xe("vm-list", "--minimal").split(",")
    sr = xe("sr-list", "--minimal")
    copy = xe("vm-copy", f"uuid={a}", "new-name-label=sel-a-copy", f"sr-uuid={sr}")
    assert x.VM.get_name_label(x.VM.get_by_uuid(copy)) == "sel-a-copy"

    disks = [x.VBD.get_VDI(v) for v in x.VM.get_VBDs(x.VM.get_by_uuid(copy))]
    assert xe.fails("vm-uninstall", f"uuid={copy}", input="no\n").stderr.strip() == "Aborted"
    xe("vm-uninstall", f"uuid={copy}", "--force")
    assert copy not in xe("vm-list", "--minimal").split(",")
    assert not [d for d in disks if d in x.VDI.get_all()]


def test_event_wait(xe, x):
    vm = install_vm(xe, "waiter")
    xe("event-wait", "class=vm", f"uuid={vm}", "power-state=halted")  # already so: returns at once
    import subprocess
    waiter = subprocess.Popen([xe.binary, "event-wait", "class=vm", "name-label=waiter",
                               "power-state=/=halted"], env=xe.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            waiter.wait(2)
        xe("vm-start", f"uuid={vm}")
        assert waiter.wait(60) == 0
    finally:
        waiter.kill()
    p = xe.fails("event-wait", "class=nonsense")
    assert "Unknown class: nonsense" in p.stderr


def test_disks_vifs_and_vdis(xe, x):
    vm = install_vm(xe, "disky")
    sr = xe("sr-list", "--minimal")
    xe("vm-disk-add", f"uuid={vm}", "disk-size=16MiB", "device=3")
    out = xe("vm-disk-list", f"uuid={vm}")
    assert out.count("Disk 0 VBD:") == 1 and out.count("Disk 3 VDI:") == 1
    assert xe("vm-disk-list", f"uuid={vm}", "vbd-params=userdevice", "vdi-params=virtual-size",
              "--minimal").endswith("3,16777216")
    vdis = len(x.VDI.get_all())
    p = xe.fails("vm-disk-add", f"uuid={vm}", "disk-size=1048576", "device=3")  # device 3 is taken
    assert "code: " in p.stderr and len(x.VDI.get_all()) == vdis
    vdi = xe("vdi-create", f"sr-uuid={sr}", "name-label=extra", "virtual-size=8MiB")
    ref = x.VDI.get_by_uuid(vdi)
    assert x.VDI.get_virtual_size(ref) == str(8 << 20) and x.VDI.get_name_label(ref) == "extra"
    assert xe("vdi-list", "name-label=extra", "params=virtual-size", "--minimal") == str(8 << 20)
    vbd = xe("vbd-create", f"vm-uuid={vm}", f"vdi-uuid={vdi}", "userdevice=4", "type=Disk", "mode=RW",
             "bootable=false")
    assert x.VBD.get_VDI(x.VBD.get_by_uuid(vbd)) == ref
    net = xe("network-create", "name-label=disky-net")
    vif = xe("vif-create", f"vm-uuid={vm}", f"network-uuid={net}", "device=2")
    assert xe("vm-vif-list", f"uuid={vm}", "params=uuid", "--minimal") == vif
    xe("vif-destroy", f"uuid={vif}")
    assert vif not in xe("vif-list", "--minimal")
    xe("sr-scan", f"uuid={sr}")


def test_param_add_remove_clear_and_pool(xe, x):
    vm = install_vm(xe, "params")
    xe("vm-param-add", f"uuid={vm}", "param-name=tags", "param-key=red")
    xe("vm-param-add", f"uuid={vm}", "param-name=other-config", "a=1", "b=2")
    ref = x.VM.get_by_uuid(vm)
    assert "red" in x.VM.get_tags(ref) and x.VM.get_other_config(ref)["b"] == "2"
    xe("vm-param-remove", f"uuid={vm}", "param-name=other-config", "param-key=a")
    xe("vm-param-remove", f"uuid={vm}", "param-name=tags", "param-key=red")
    assert "a" not in x.VM.get_other_config(ref) and x.VM.get_tags(ref) == []
    xe("vm-param-clear", f"uuid={vm}", "param-name=other-config")
    assert x.VM.get_other_config(ref) == {}
    assert xe("vm-list", f"uuid={vm}", "tags:contains=red", "--minimal") == ""

    pool = xe("pool-list", "--minimal")
    xe("pool-param-set", f"uuid={pool}", "name-label=xe pool", "other-config:site=lab")
    assert xe("pool-param-get", f"uuid={pool}", "param-name=name-label") == "xe pool"
    assert x.pool.get_other_config(x.pool.get_all()[0])["site"] == "lab"
    assert "name-label ( RW): xe pool" in xe("pool-param-list", f"uuid={pool}")


def test_tasks(xe, x, tmp_path):
    """task-list shows a running export; task-cancel stops it and xe reports the cancellation."""
    import subprocess
    vm = install_vm(xe, "exported")
    vdi = xe("vm-disk-list", f"uuid={vm}", "vbd-params=vdi-uuid", "vdi-params=uuid", "--minimal").split(",")[-1]
    data = tmp_path / "data"
    data.write_bytes(os.urandom(32 << 20))
    xe("vdi-import", f"uuid={vdi}", f"filename={data}")
    # xe writes the XVA to a pipe nobody reads: the transfer stalls with its task pending
    export = subprocess.Popen([xe.binary, "vm-export", f"uuid={vm}", "filename=-"], env=xe.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        task = ""
        for _ in range(100):
            task = xe("task-list", "status=pending", "allowed-operations:contains=cancel", "--minimal")
            if task and float(xe("task-param-get", f"uuid={task}", "param-name=progress")) > 0:
                break  # the export is under way
            import time
            time.sleep(0.2)
        assert task and "," not in task
        assert "status ( RO): pending" in xe("task-list", f"uuid={task}")
        xe("task-cancel", f"uuid={task}")
        _, err = export.communicate(timeout=60)  # read what was sent; xe then reports the task
        assert export.returncode == 1, err
        assert b"code: TASK_CANCELLED" in err, err
    finally:
        export.kill()
    # a task nobody runs cannot be cancelled: the API's answer, exit 1
    idle = x.task.create("xe-task", "a task to cancel")
    p = xe.fails("task-cancel", f"uuid={x.task.get_uuid(idle)}")
    assert "code: OPERATION_NOT_ALLOWED" in p.stderr


def test_sr_create_scan_and_destroy(xe, x, tmp_path):
    location = tmp_path / "sr"
    location.mkdir()
    sr = xe("sr-create", "name-label=xe sr", "type=file", f"device-config:location={location}")
    ref = x.SR.get_by_uuid(sr)
    assert x.SR.get_type(ref) == "file" and x.SR.get_name_label(ref) == "xe sr"
    pbd = xe("pbd-list", f"sr-uuid={sr}", "--minimal")
    assert xe("pbd-param-get", f"uuid={pbd}", "param-name=device-config", "param-key=location") == str(location)
    vdi = xe("vdi-create", f"sr-uuid={sr}", "name-label=on xe sr", "virtual-size=1MiB")
    xe("sr-scan", f"uuid={sr}")
    assert vdi in xe("sr-param-get", f"uuid={sr}", "param-name=VDIs")
    p = xe.fails("sr-create", "name-label=bad", "type=file")
    assert "code: SR_BACKEND_FAILURE_94" in p.stderr
    xe("vdi-destroy", f"uuid={vdi}")
    xe("pbd-unplug", f"uuid={pbd}")
    xe("pbd-destroy", f"uuid={pbd}")
    xe("sr-forget", f"uuid={sr}")
    assert sr not in xe("sr-list", "--minimal").split(",")


def test_vm_install_onto_a_chosen_sr(xe, x, tmp_path):
    location = tmp_path / "install-sr"
    location.mkdir()
    sr = xe("sr-create", "name-label=install sr", "type=file", f"device-config:location={location}")
    vm = xe("vm-install", "template=Debian Etch 4.0", "new-name-label=on-chosen-sr", f"sr-uuid={sr}")
    ref = x.VM.get_by_uuid(vm)
    assert not x.VM.get_is_a_template(ref)
    srs = {x.SR.get_uuid(x.VDI.get_SR(x.VBD.get_VDI(v))) for v in x.VM.get_VBDs(ref)
           if x.VBD.get_type(v) == "Disk"}
    assert srs == {sr}
    by_name = xe("vm-install", "template=Debian Etch 4.0", "new-name-label=by-sr-name",
                 "sr-name-label=install sr")
    assert xe("vm-disk-list", f"uuid={by_name}", "vbd-params=userdevice", "vdi-params=sr-name-label",
              "--minimal") == "0,install sr"
    p = xe.fails("vm-install", "template=No Such Template", "new-name-label=x")
    assert "No template named No Such Template" in p.stderr
    p = xe.fails("vm-install", "template=Debian Etch 4.0", "new-name-label=x", f"sr-uuid={uuid.uuid4()}")
    assert "code: UUID_INVALID" in p.stderr
    assert xe("vm-list", "name-label=x", "--minimal") == xe("template-list", "name-label=x", "--minimal") == ""


def test_export_to_a_reader_that_leaves(xe, x):
    """`xe vm-export filename=- | head`: xe stops, says so, and leaves no transfer running."""
    import subprocess
    vm = install_vm(xe, "left-behind")
    p = subprocess.run(["bash", "-c", f"set -o pipefail; {xe.binary} vm-export uuid={vm} filename=- | head -c 100 | wc -c"],
                       env=xe.env, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 1 and p.stdout.strip() == "100", p
    assert "The transfer failed" in p.stderr
    assert not [t for t in x.task.get_all_records().values()
                if t["name_label"] == "export" and t["status"] in ("pending", "cancelling")]


def test_importing_what_is_no_export(xe, tmp_path):
    junk = tmp_path / "junk.xva"
    junk.write_bytes(os.urandom(1 << 20))
    before = xe("vm-list", "--minimal")
    p = xe.fails("vm-import", f"filename={junk}")
    assert p.stderr.startswith("The file is not an export the agent can import.\ncode: IMPORT_ERROR\n")
    assert xe("vm-list", "--minimal") == before
    p = xe.fails("vm-import", f"filename={tmp_path / 'absent.xva'}")
    assert p.stderr.startswith("Cannot read ")
