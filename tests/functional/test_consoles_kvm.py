"""Consoles of a real KVM guest through the agent's `CONNECT /console`, reached by a real VNC
client (vncdotool): the guest's serial console served by our vncterm (a command typed, its
output read back from the framebuffer and compared with vncterm's own rendering of the text),
qemu's graphical console, the host's login console, refusals, privileges, the socket table,
vncterms restarted, adopted and stopped, and 1,000 CONNECTs opened and dropped.

One agent and one guest serve the module (a TCG boot takes ~10 s here); tests that kill or
restart the agent do so on that same state dir, in the order written.
"""

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
from .console_client import ConnectRelay, closed_by_peer, find_text, ink, open_console, read_rest

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
    lab.start()
    x = lab.session().xenapi
    lab.vm = x.VM.create(vm_record(lab.kit, "console guest"))
    x.VM.start(lab.vm, False, False)
    lab.uuid = x.VM.get_uuid(lab.vm)
    yield lab
    conn = libvirt.open(libvirtd)
    for uuid in [lab.uuid]:
        try:
            conn.lookupByUUIDString(uuid).destroy()
        except libvirt.libvirtError:
            pass
    for a in lab.started:
        a.cleanup()
    for term in lab.terminals().values():  # a host console left by a killed agent
        try:
            os.kill(term["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
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
        # the guest's command loop answers "<id> ping" with "OK <id> pong <kernel>"; its tty is
        # raw, so the line ends with Ctrl-J (a newline), not Return (a carriage return)
        deadline = time.monotonic() + 180
        found = None
        attempt = 0
        while found is None and time.monotonic() < deadline:
            attempt += 1
            ident = f"7{attempt}"
            for ch in f"{ident} ping":
                client.keyPress("space" if ch == " " else ch)
            client.keyPress("ctrl-j")
            time.sleep(1.0)
            image = capture(client, tmp_path / "serial.png")
            lines = screen_text(image)
            if any(f"OK {ident} pong" in line for line in lines):
                found = ident, image
        assert found, "the guest never answered on the screen:\n" + "\n".join(lines)
        ident, image = found
        expected = f"OK {ident} pong"
        where = find_text(ink(image), text_ink(expected), cell=(8, 16))
        assert where is not None, f"{expected!r} is not drawn in vncterm's font"
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
