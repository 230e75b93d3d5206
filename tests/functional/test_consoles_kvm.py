"""Consoles of a real KVM guest through the agent's `CONNECT /console`, reached by a real VNC
client (vncdotool): the guest's serial console served by our vncterm (the kit's kernel booted
into busybox's shell, `rdinit=/bin/sh`: a command typed, its output read back from the
framebuffer and compared with vncterm's own rendering of the text),
qemu's graphical console, the host's login console, refusals, privileges, the socket table,
vncterms restarted, adopted and stopped, and 1,000 CONNECTs opened and dropped.

One agent and one guest serve the module (a TCG boot takes ~10 s here); tests that kill or
restart the agent do so on that same state dir, in the order written.
"""

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

import libvirt
import pytest
import XenAPI

from tests.kvm.domain import stage_kit
from tests.kvm.guestkit import guest_kit  # noqa: F401 - fixture
from tests.kvm.libvirtd import libvirtd  # noqa: F401 - fixture
from tests.support import wait_for

from .agent import AgentProcess
from .console_client import (
    ConnectRelay,
    closed_by_peer,
    find_text,
    ink,
    open_console,
    read_rest,
)
from .tls_cert import make_self_signed

pytestmark = pytest.mark.kvm
vncapi = pytest.importorskip("vncdotool.api", reason="vncdotool is in the test extra")
render = pytest.importorskip("hostagent.vncterm.render", reason="vncterm's renderer")

MiB = 1 << 20


def vm_record(kit, name, other_config=None):
    kernel, initrd, cmdline = kit
    return {
        "name_label": name, "name_description": "", "user_version": "1", "is_a_template": False,
        "affinity": "OpaqueRef:NULL", "memory_static_max": str(96 * MiB), "memory_dynamic_max": str(96 * MiB),
        "memory_dynamic_min": str(96 * MiB), "memory_static_min": str(96 * MiB), "VCPUs_params": {},
        "VCPUs_max": "1", "VCPUs_at_startup": "1", "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart", "actions_after_crash": "destroy", "PV_bootloader": "",
        "PV_kernel": str(kernel), "PV_ramdisk": str(initrd), "PV_args": cmdline, "PV_bootloader_args": "",
        "PV_legacy_args": "", "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "c"},
        "platform": {"acpi": "1"}, "PCI_bus": "", "domain_type": "hvm", "recommendations": "",
        "other_config": dict(other_config or {})}


class Lab:
    def __init__(self, uri, kit_files, workdir):
        self.uri, self.kit, self.workdir = uri, kit_files, workdir
        self.state = workdir / "state"
        self.state.mkdir(mode=0o755)
        self.agent = None
        self.started = []

    def start(self, *args):
        self.agent = AgentProcess(str(self.state), extra_args=("--libvirt-uri", self.uri, *args))
        self.started.append(self.agent)
        return self.agent.start()

    def session(self):
        s = XenAPI.Session(self.agent.url)
        s.xenapi.login_with_password("root", self.agent.password, "1.0", "console-test")
        return s

    def terminals(self):
        """The vncterm state files of the state dir: key -> pid."""
        import json
        out = {}
        d = self.state / "consoles"
        for f in d.glob("*.json") if d.is_dir() else []:
            out[f.stem] = json.loads(f.read_text())
        return out


@pytest.fixture(scope="module")
def lab(libvirtd, guest_kit):  # noqa: F811 - pytest fixtures by name
    workdir = Path(tempfile.mkdtemp(prefix="hostagent-kvm-consoles-", dir="/var/tmp"))
    workdir.chmod(0o755)
    kernel, initrd = stage_kit(guest_kit, workdir)
    lab = Lab(libvirtd, (kernel, initrd, guest_kit.cmdline), workdir)
    lab.shell_kit = (kernel, initrd, guest_kit.cmdline + " rdinit=/bin/sh")  # a shell on ttyS0
    lab.start()
    x = lab.session().xenapi
    lab.vm = x.VM.create(vm_record(lab.shell_kit, "console guest"))
    x.VM.start(lab.vm, False, False)
    lab.uuid = x.VM.get_uuid(lab.vm)
    yield lab
    conn = libvirt.open(libvirtd)
    for uuid in [lab.uuid]:
        with contextlib.suppress(libvirt.libvirtError):
            conn.lookupByUUIDString(uuid).destroy()
    for a in lab.started:
        a.cleanup()
    for term in lab.terminals().values():  # a host console left by a killed agent
        with contextlib.suppress(ProcessLookupError):
            os.kill(term["pid"], signal.SIGKILL)
    shutil.rmtree(workdir, ignore_errors=True)


def consoles_of(x, vm):
    return {x.console.get_protocol(c): c for c in x.VM.get_consoles(vm)}


def vt100_query(lab, s):
    x = s.xenapi
    console = wait_for(lambda: consoles_of(x, lab.vm).get("vt100"), 30, "the guest's vt100 console")
    return f"ref={console}&session_id={s._session}", console


def capture(client, path):
    client.refreshScreen()
    client.captureScreen(str(path))
    from PIL import Image
    return Image.open(path)


def screen_text(image):
    rgb = image.convert("RGB")
    return render.read_text(rgb.tobytes(), rgb.size[0], rgb.size[1])


def text_ink(text):
    """vncterm's own rendering of `text` (default colours) as ink."""
    from PIL import Image
    width = len(text) * 8
    img = Image.frombytes("RGB", (width, 16), render.render_lines([text], cols=len(text), rows=1))
    return ink(img, background=img.getpixel((width - 1, 15)) if text.endswith(" ") else None)


def test_a_command_typed_into_the_serial_console_shows_its_output(lab, tmp_path):
    s = lab.session()
    query, _console = vt100_query(lab, s)
    relay = ConnectRelay(lab.agent.port, query)
    client = vncapi.connect(f"127.0.0.1::{relay.port}", timeout=60)
    try:
        # the guest boots straight into busybox's shell on its serial port (rdinit=/bin/sh)
        deadline = time.monotonic() + 240  # TCG on a busy machine
        lines = []
        while not any(line.rstrip().endswith("#") for line in lines):
            assert time.monotonic() < deadline, "no shell prompt:\n" + "\n".join(lines)
            client.keyPress("enter")
            time.sleep(1.0)
            lines = screen_text(capture(client, tmp_path / "serial.png"))
        for ch in "echo hostagent$((6*7))":
            client.keyPress("space" if ch == " " else ch)
        client.keyPress("enter")
        wait_for(lambda: "hostagent42" in [line.strip() for line in
                                           screen_text(capture(client, tmp_path / "serial.png"))],
                 60, "the command's output", pause=0.5)
        image = capture(client, tmp_path / "serial.png")
        where = find_text(ink(image), text_ink("hostagent42"), cell=(8, 16))
        assert where is not None, "the output is not drawn in vncterm's font"
        assert where[0] == 0  # at the start of its own line, below the command
    finally:
        client.disconnect()
        relay.close()
        s.xenapi.session.logout()


def test_the_graphical_console_is_qemus_vnc_through_the_same_handler(lab, tmp_path):
    s = lab.session()
    x = s.xenapi
    rfb = consoles_of(x, lab.vm)["rfb"]
    assert x.console.get_location(rfb).endswith(f"/console?uuid={x.console.get_uuid(rfb)}")
    # by the VM's uuid (a VM selects its rfb console), the session as a cookie
    relay = ConnectRelay(lab.agent.port, f"uuid={lab.uuid}")
    relay.query = f"uuid={lab.uuid}"
    status, sock, _ = open_console(lab.agent.port, f"uuid={lab.uuid}", headers=f"Cookie: session_id={s._session}\r\n")
    assert status == 200
    assert sock.recv(12).startswith(b"RFB 003.")  # qemu's greeting, relayed
    sock.close()
    relay.close()
    relay = ConnectRelay(lab.agent.port, f"ref={rfb}&session_id={s._session}")
    client = vncapi.connect(f"127.0.0.1::{relay.port}", timeout=60)
    try:
        def drawn():
            image = capture(client, tmp_path / "vga.png")
            return len(image.convert("RGB").getcolors(1 << 24)) > 1
        wait_for(drawn, 60, "a non-blank graphical console", pause=1.0)
    finally:
        client.disconnect()
        relay.close()
        s.xenapi.session.logout()


def test_refusals_relay_nothing(lab):
    s = lab.session()
    x = s.xenapi
    rfb = consoles_of(x, lab.vm)["rfb"]
    port = lab.agent.port
    # no session at all, a garbage session: 401 (xapi's Unauthorised)
    for query in (f"ref={rfb}", f"ref={rfb}&session_id=OpaqueRef:nonsense"):
        status, sock, head = open_console(port, query)
        assert status == 401, head
        assert b"RFB" not in read_rest(sock)
        sock.close()
    # a session that was logged out
    gone = lab.session()
    ref = gone._session
    gone.xenapi.session.logout()
    status, sock, head = open_console(port, f"ref={rfb}&session_id={ref}")
    assert status == 401 and b"RFB" not in read_rest(sock)
    # garbage refs and uuids, a halted VM, a template, a host: 404
    halted = x.VM.create(vm_record(lab.kit, "halted one"))
    template = x.VM.get_by_name_label("Debian Bookworm 12")
    others = [f"ref={halted}", f"uuid={x.VM.get_uuid(halted)}", "ref=OpaqueRef:garbage", "uuid=nope",
              f"ref={x.host.get_all()[0]}", ""]
    others += [f"ref={template[0]}"] if template else []
    for query in others:
        status, sock, head = open_console(port, f"{query}&session_id={s._session}")
        assert status == 404, (query, head)
        assert b"RFB" not in read_rest(sock)
        sock.close()
    # other methods than CONNECT
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", f"/console?ref={rfb}&session_id={s._session}")
    assert conn.getresponse().status == 405
    x.VM.destroy(halted)
    s.xenapi.session.logout()


def test_vnc_servers_listen_on_loopback_only(lab):
    s = lab.session()
    x = s.xenapi
    wait_for(lambda: "vt100" in consoles_of(x, lab.vm), 30, "the text console")
    dom = libvirt.open(lab.uri).lookupByUUIDString(lab.uuid)
    import xml.etree.ElementTree as ET
    vnc_port = int(ET.fromstring(dom.XMLDesc(0)).find("./devices/graphics").get("port"))
    term_ports = [t["port"] for t in lab.terminals().values()]
    assert term_ports
    listening = _listening()
    for p in [vnc_port, *term_ports]:
        assert listening.get(p) == {"127.0.0.1"}, (p, listening.get(p))
    s.xenapi.session.logout()


def _listening():
    """port -> set of addresses, from the kernel's socket tables (/proc/net/tcp, tcp6)."""
    out = {}
    for path, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(path).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state != "0A":  # LISTEN
                continue
            addr_hex, port_hex = local.split(":")
            raw = bytes.fromhex(addr_hex)  # 32-bit words in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            addr = socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, raw)
            out.setdefault(int(port_hex, 16), set()).add(addr)
    return out


def _qemu_pid(uuid):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"qemu-system" in argv[0] and uuid.encode() in b" ".join(argv):
            return int(pid)
    return None


def _uid(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(v) for v in line.split()[1:]]
    raise AssertionError(f"no Uid line for {pid}")


def test_qemu_runs_unprivileged_and_the_host_says_so(lab):
    x = lab.session().xenapi
    pid = _qemu_pid(lab.uuid)
    assert pid, "the guest's qemu process"
    assert 0 not in _uid(pid)
    other = x.host.get_other_config(x.host.get_all()[0])
    assert other["device-model-privileged"] == "false"
    import pwd
    assert pwd.getpwnam(other["device-model-user"]).pw_uid == _uid(pid)[0]
    assert "device models (qemu) run as" in lab.agent.log_text()


def test_vncterm_runs_unprivileged_in_an_empty_root(lab):
    x = lab.session().xenapi
    wait_for(lambda: "vt100" in consoles_of(x, lab.vm), 30, "the text console")
    term = lab.terminals()[f"vm-{lab.uuid}"]
    pid = term["pid"]
    assert 0 not in _uid(pid)
    root = os.readlink(f"/proc/{pid}/root")
    assert root != "/" and os.listdir(f"/proc/{pid}/root") == []
    assert os.readlink(f"/proc/{pid}/cwd") in (root, "/")
    assert term["pty"].startswith("/dev/pts/")
    # 10 steps below the agent's priority while its console floods (a flooding console never
    # starves the API); idle, at the agent's priority (ps's NI column), so typing stays prompt
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert argv[argv.index(b"--nice") + 1] == b"10"
    assert _nice(pid) == _nice(lab.agent.proc.pid)


def _nice(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])


def test_relays_close_at_logout(lab):
    s = lab.session()
    rfb = consoles_of(s.xenapi, lab.vm)["rfb"]
    status, sock, _ = open_console(lab.agent.port, f"ref={rfb}&session_id={s._session}")
    assert status == 200 and sock.recv(12).startswith(b"RFB ")
    assert not closed_by_peer(sock, 0.5)
    s.xenapi.session.logout()
    assert closed_by_peer(sock, 10.0)


def test_disable_pv_vnc_means_no_text_console_terminal(lab):
    s = lab.session()
    x = s.xenapi
    vm = x.VM.create(vm_record(lab.kit, "quiet guest", {"disable_pv_vnc": "1"}))
    x.VM.start(vm, False, False)
    try:
        uuid = x.VM.get_uuid(vm)
        time.sleep(4.0)  # more than a settling round
        assert f"vm-{uuid}" not in lab.terminals()
        assert "vt100" not in consoles_of(x, vm)
        status, sock, _ = open_console(lab.agent.port, f"ref={vm}&session_id={s._session}")
        assert status == 200 and sock.recv(12).startswith(b"RFB ")  # qemu's VNC is still there
        sock.close()
    finally:
        x.VM.hard_shutdown(vm)
        x.VM.destroy(vm)
        s.xenapi.session.logout()


def test_the_api_answers_while_1000_connects_come_and_go(lab):
    import threading
    s = lab.session()
    x = s.xenapi
    rfb = consoles_of(x, lab.vm)["rfb"]
    agent_pid = lab.agent.proc.pid
    fds_before = len(os.listdir(f"/proc/{agent_pid}/fd"))
    statuses = []

    def hammer(n):
        for i in range(n):
            query = f"ref={rfb}&session_id={s._session}" if i % 2 else f"ref={rfb}"
            sock = socket.create_connection(("127.0.0.1", lab.agent.port), timeout=30)
            sock.sendall(f"CONNECT /console?{query} HTTP/1.0\r\n\r\n".encode())
            if i % 3 == 0:
                statuses.append(sock.recv(12))  # wait for the answer, then drop
            sock.close()  # dropped, answered or not
    workers = [threading.Thread(target=hammer, args=(250,)) for _ in range(4)]
    for w in workers:
        w.start()
    calls, slowest, started = 0, 0.0, time.monotonic()
    while any(w.is_alive() for w in workers):
        t0 = time.monotonic()
        assert x.VM.get_power_state(lab.vm) == "Running"
        slowest = max(slowest, time.monotonic() - t0)
        calls += 1
    print(f"1000 CONNECTs in {time.monotonic() - started:.1f} s; {calls} API calls meanwhile, "
          f"the slowest {slowest * 1000:.0f} ms")
    for w in workers:
        w.join()
    assert calls > 0
    assert {st[9:12] for st in statuses} == {b"200", b"401"}, statuses[:5]
    # every relay and connection is gone again
    wait_for(lambda: len(os.listdir(f"/proc/{agent_pid}/fd")) <= fds_before + 2, 30, "the agent's fds back")
    s.xenapi.session.logout()


def _vncterms_of(state_dir):
    """pids of the vncterm processes whose port file lies in this state dir."""
    want = str(state_dir / "consoles").encode()
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(b"vncterm" in a for a in argv) and any(a.startswith(want) for a in argv):
            out.append(int(pid))
    return sorted(out)


def test_a_killed_vncterm_is_restarted(lab):
    x = lab.session().xenapi
    wait_for(lambda: "vt100" in consoles_of(x, lab.vm), 30, "the text console")
    key = f"vm-{lab.uuid}"
    old = lab.terminals()[key]["pid"]
    os.kill(old, signal.SIGKILL)
    new = wait_for(lambda: lab.terminals().get(key, {}).get("pid") not in (None, old)
                   and lab.terminals()[key]["pid"], 30, "a new vncterm")
    assert _vncterms_of(lab.state) == [new]
    assert "vncterm %d is gone" % old in lab.agent.log_text()


def test_an_agent_killed_and_started_again_adopts_its_vncterm(lab):
    key = f"vm-{lab.uuid}"
    before = lab.terminals()[key]
    assert _vncterms_of(lab.state) == [before["pid"]]
    lab.agent.kill()
    cert, pem_key = make_self_signed(str(lab.workdir / "tls"))
    lab.start("--tls-listen", "127.0.0.1:0", "--cert", cert, "--key", pem_key)
    x = lab.session().xenapi
    assert x.VM.get_power_state(lab.vm) == "Running"
    time.sleep(4.0)  # a settling round has passed
    assert lab.terminals()[key] == before  # the same process, port and pty
    assert _vncterms_of(lab.state) == [before["pid"]]
    assert "adopted vncterm %d" % before["pid"] in lab.agent.log_text()
    # and it still serves the console
    s = lab.session()
    status, sock, _ = open_console(lab.agent.port, f"ref={consoles_of(s.xenapi, lab.vm)['vt100']}"
                                                   f"&session_id={s._session}")
    assert status == 200 and sock.recv(12).startswith(b"RFB 003.")
    sock.close()


def test_every_listener_serves_consoles(lab):
    """TLS with HTTP Basic credentials (a session for this request only), the Unix socket as root."""
    import base64
    tls_port = next(int(line.rsplit(":", 1)[1].strip().strip("/")) for line in lab.agent.banner
                    if line.startswith("hostagent listening on https://"))
    basic = base64.b64encode(f"root:{lab.agent.password}".encode()).decode()
    s = lab.session()
    vt100 = consoles_of(s.xenapi, lab.vm)["vt100"]
    status, sock, _ = open_console(tls_port, f"ref={vt100}", tls=True, headers=f"Authorization: Basic {basic}\r\n")
    assert status == 200 and sock.recv(12).startswith(b"RFB 003.")
    sock.close()
    # a relay over TLS closes when its session ends, as over plain TCP
    other = lab.session()
    status, sock, _ = open_console(tls_port, f"ref={vt100}&session_id={other._session}", tls=True)
    assert status == 200 and sock.recv(12).startswith(b"RFB 003.")
    other.xenapi.session.logout()
    assert closed_by_peer(sock, 10.0), "a relay over TLS outlived its session"
    sock.close()
    status, sock, _ = open_console(tls_port, f"ref={vt100}", tls=True,
                                   headers="Authorization: Basic " + base64.b64encode(b"root:wrong").decode() + "\r\n")
    assert status == 401 and b"RFB" not in read_rest(sock)
    status, sock, _ = open_console(0, f"uuid={lab.uuid}", unix=lab.agent.socket)
    assert status == 200 and sock.recv(12).startswith(b"RFB 003.")
    sock.close()
    s.xenapi.session.logout()


def test_a_stopped_vm_takes_its_vncterm_and_its_relays_along(lab):
    s = lab.session()
    x = s.xenapi
    consoles = consoles_of(x, lab.vm)
    relays = []
    for protocol in ("vt100", "rfb"):
        status, sock, _ = open_console(lab.agent.port, f"ref={consoles[protocol]}&session_id={s._session}")
        assert status == 200 and sock.recv(12).startswith(b"RFB ")
        relays.append(sock)
    pid = lab.terminals()[f"vm-{lab.uuid}"]["pid"]
    x.VM.hard_shutdown(lab.vm)
    for sock in relays:
        assert closed_by_peer(sock, 10.0)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z",
             15, "the vncterm gone")
    wait_for(lambda: f"vm-{lab.uuid}" not in lab.terminals(), 15, "its state file gone")
    assert _vncterms_of(lab.state) == []
    status, sock, _ = open_console(lab.agent.port, f"ref={lab.vm}&session_id={s._session}")
    assert status == 404
    s.xenapi.session.logout()


def test_the_host_console_is_a_login_prompt(lab, tmp_path):
    lab.agent.stop()
    lab.start("--host-console", "yes")
    s = lab.session()
    x = s.xenapi
    dom0 = next(v for v in x.VM.get_all() if x.VM.get_is_control_domain(v))
    [console] = x.VM.get_consoles(dom0)
    assert x.console.get_protocol(console) == "vt100"
    assert f"/console?ref={console}" in x.console.get_location(console)
    wait_for(lambda: "host" in lab.terminals(), 30, "the host console's vncterm")
    relay = ConnectRelay(lab.agent.port, f"ref={console}&session_id={s._session}")
    client = vncapi.connect(f"127.0.0.1::{relay.port}", timeout=60)
    try:
        def prompt():
            return any(line.rstrip().endswith("login:") for line in screen_text(capture(client, tmp_path / "h.png")))
        wait_for(prompt, 30, "a login prompt", pause=0.5)
        for ch in "root":
            client.keyPress(ch)
        client.keyPress("enter")

        def password():
            return any("Password:" in line for line in screen_text(capture(client, tmp_path / "h.png")))
        wait_for(password, 30, "a password prompt", pause=0.5)
        client.keyPress("enter")  # an empty password: refused, no shell

        def refused():
            return any("Login incorrect" in line for line in screen_text(capture(client, tmp_path / "h.png")))
        wait_for(refused, 30, "the login refused", pause=0.5)
        lines = screen_text(capture(client, tmp_path / "h.png"))
        assert not any(line.rstrip().endswith(("#", "$")) for line in lines), lines
        assert find_text(ink(capture(client, tmp_path / "h.png")), text_ink("Password:"), cell=(8, 16))
    finally:
        client.disconnect()
        relay.close()
    # a clean stop takes the login prompt along
    pid = lab.terminals()["host"]["pid"]
    lab.agent.stop()
    assert not os.path.exists(f"/proc/{pid}")
