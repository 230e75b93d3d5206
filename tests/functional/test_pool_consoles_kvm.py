"""Consoles of a pool member's guest, reached through the master (docs/consoles.md, "In a pool").

The two-libvirtd KVM pool of test_pool_migrate_kvm.py (host a, the master, on the kit's
libvirtd; host b on a second libvirtd in its own mount namespace). The kit's busybox guest,
booted into a shell on its serial port, starts on the member. With the real XenAPI package
and a real VNC client (vncdotool) through the master's console location: the member runs
the guest's vncterm (its state dir, not the master's); a command typed into the vt100 console
shows its output; the rfb console is qemu's VNC on the member, non-blank. Refusals: no
session 401; a member that cannot be reached or is not live 503, its open relays closed.
Relays also close at logout and when the VM stops (the member's vncterm then stops).
"""

import json
import time
from pathlib import Path

import libvirt
import pytest

from tests.kvm.domain import qemu_workdir, stage_kit  # noqa: F401 - fixture
from tests.kvm.guestkit import guest_kit  # noqa: F401 - fixture
from tests.kvm.libvirtd import libvirtd  # noqa: F401 - fixture
from tests.support import wait_for

from .console_client import (
    ConnectRelay,
    closed_by_peer,
    find_text,
    ink,
    open_console,
    read_rest,
)
from .pool_support import live
from .test_consoles_kvm import capture, consoles_of, screen_text, text_ink, vm_record
from .test_pool_migrate_kvm import consoles, domain, kvm_pool, second  # noqa: F401 - fixtures

pytestmark = pytest.mark.kvm
vncapi = pytest.importorskip("vncdotool.api", reason="vncdotool is in the test extra")


def terminals(host):
    """VM uuids whose vncterm state file is in the host's state dir."""
    found = Path(host.agent.state_dir, "consoles").glob("vm-*.json")
    return {json.loads(f.read_text())["vm"] for f in found}


def type_and_read(client, tmp_path):
    """Busybox's prompt, a command typed, its output read back from vncterm's framebuffer."""
    deadline = time.monotonic() + 240  # TCG on a busy machine
    lines = []
    while not any(line.rstrip().endswith("#") for line in lines):
        assert time.monotonic() < deadline, "no shell prompt:\n" + "\n".join(lines)
        client.keyPress("enter")
        time.sleep(1.0)
        lines = screen_text(capture(client, tmp_path / "serial.png"))
    for ch in "echo member$((6*7))":
        client.keyPress("space" if ch == " " else ch)
    client.keyPress("enter")
    wait_for(lambda: "member42" in [line.strip() for line in screen_text(capture(client, tmp_path / "serial.png"))],
             60, "the command's output", pause=0.5)
    where = find_text(ink(capture(client, tmp_path / "serial.png")), text_ink("member42"), cell=(8, 16))
    assert where is not None and where[0] == 0, "the output is not drawn in vncterm's font on its own line"


def test_a_members_guest_console_through_the_master(kvm_pool, guest_kit, qemu_workdir, second, tmp_path):  # noqa: F811
    a, b, _ = kvm_pool
    try:
        members_console(a, b, guest_kit, qemu_workdir, second, tmp_path)
    except AssertionError as e:  # what the agents said is what explains a failure here
        raise AssertionError(f"{e}\n--- master's log:\n{a.agent.log_text()[-6000:]}\n--- member's log:\n"
                             f"{b.agent.log_text()[-6000:]}") from e


def members_console(a, b, guest_kit, qemu_workdir, second, tmp_path):  # noqa: F811
    x = a.session().xenapi
    kernel, initrd = stage_kit(guest_kit, qemu_workdir)
    vm = x.VM.create(vm_record((kernel, initrd, guest_kit.cmdline + " rdinit=/bin/sh"), "member's console guest"))
    x.VM.start_on(vm, b.ref, False, False)
    uuid = x.VM.get_uuid(vm)
    assert domain(libvirt.open(second.uri), uuid) is not None  # it runs on the member's libvirtd
    s = a.session()
    x = s.xenapi

    # the member runs the guest's vncterm; the console records name the master
    vt100 = wait_for(lambda: consoles_of(x, vm).get("vt100"), 60, "the member's guest's vt100 console")
    rfb = consoles_of(x, vm)["rfb"]
    for console in (vt100, rfb):
        assert x.console.get_location(console).startswith(f"https://{a.address}/console?uuid=")
    assert uuid in terminals(b) and uuid not in terminals(a)

    # vt100: a command typed, its output read, through the master
    relay = ConnectRelay(a.agent.port, f"ref={vt100}&session_id={s._session}")
    client = vncapi.connect(f"127.0.0.1::{relay.port}", timeout=60)
    try:
        type_and_read(client, tmp_path)
    except Exception as e:
        raise AssertionError(f"vt100 console: {e!r}") from e
    finally:
        client.disconnect()
        relay.close()

    # rfb: qemu's VNC on the member, by the VM's uuid, non-blank
    status, sock, head = open_console(a.agent.port, f"uuid={uuid}&session_id={s._session}")
    assert status == 200, head
    assert sock.recv(12).startswith(b"RFB 003.")
    sock.close()
    relay = ConnectRelay(a.agent.port, f"ref={rfb}&session_id={s._session}")
    client = vncapi.connect(f"127.0.0.1::{relay.port}", timeout=60)
    try:
        wait_for(lambda: len(capture(client, tmp_path / "vga.png").convert("RGB").getcolors(1 << 24)) > 1,
                 60, "a non-blank graphical console", pause=1.0)
    finally:
        client.disconnect()
        relay.close()

    # no session: 401, nothing relayed
    status, sock, head = open_console(a.agent.port, f"ref={vt100}")
    assert status == 401 and b"RFB" not in read_rest(sock), head
    sock.close()

    # the member's relay op takes the pool secret only: none, or a wrong one, is 401
    host, port = b.tls.rsplit(":", 1)
    for headers in ("", "X-Hostagent-Pool-Secret: guessed\r\n"):
        status, sock, head = open_console(int(port), f"uuid={uuid}&protocol=vt100", host=host, tls=True,
                                          headers=headers, path="/pool/v1/console")
        assert status == 401 and b"RFB" not in read_rest(sock), head
        sock.close()

    # a relay closes when its session ends
    other = a.session()
    status, sock, head = open_console(a.agent.port, f"ref={vt100}&session_id={other._session}")
    assert status == 200, head
    assert sock.recv(12).startswith(b"RFB 003.")
    other.xenapi.session.logout()
    assert closed_by_peer(sock, 10), "the relay outlived its session"
    sock.close()

    # the member's agent dies: its relays close; it cannot be reached, then is not live: 503
    status, sock, head = open_console(a.agent.port, f"ref={vt100}&session_id={s._session}")
    assert status == 200, head
    b.agent.kill()
    assert closed_by_peer(sock, 10), "the relay outlived the member's agent"
    sock.close()
    wait_for(lambda: not live(x, b.ref), 30, "host b not live")
    for query in (f"ref={vt100}", f"uuid={uuid}"):
        status, sock, head = open_console(a.agent.port, f"{query}&session_id={s._session}")
        assert status == 503 and b"RFB" not in read_rest(sock), head
        sock.close()

    # back: the member adopts its vncterm, and the console works again; the VM stops: closed
    b.start()
    wait_for(lambda: live(x, b.ref), 30, "host b live after its restart")
    status, sock, head = wait_for(lambda: _opened(a, f"ref={vt100}&session_id={s._session}"), 30,
                                  "the console again after the member's restart", pause=0.5)
    assert sock.recv(12).startswith(b"RFB 003.")
    x.VM.hard_shutdown(vm)
    assert closed_by_peer(sock, 15), "the relay outlived its VM"
    sock.close()
    wait_for(lambda: uuid not in terminals(b), 30, "the member's vncterm stopped")
    assert x.VM.get_consoles(vm) == []
    x.VM.destroy(vm)
    s.xenapi.session.logout()


def _opened(host, query):
    status, sock, head = open_console(host.agent.port, query)
    if status == 200:
        return status, sock, head
    sock.close()
    return None
