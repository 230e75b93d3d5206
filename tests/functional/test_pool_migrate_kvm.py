"""A real live migration between two hosts' libvirtds (docs/pools.md, "Migration").

Two qemu:///system daemons on this machine stand for two hosts: the kit's libvirtd
(tests/kvm/libvirtd.py) and a second one in a mount namespace of its own with another host
uuid (tests/kvm/second_libvirtd.py). One agent drives each, on its own loopback address with
TLS; the second joins the first's pool. The kit's diskless busybox guest starts on the
master, then with the real XenAPI package: VM.pool_migrate to the member (its domain then
runs in the second daemon and not the first, the guest ran on without a reboot, its records
say resident_on the member), back to the master (with `xe vm-migrate`), and once more to the member, from which
host.evacuate brings it home; last, the member's agent dies after its libvirtd moved the
guest back but before it answered, and the master finds the guest where it went.

"Ran on" is the guest's own uptime: a guest that kept running answers an uptime longer than
the wall time since its first answer (a rebooted one could not), and keeps answering on its
serial console in whichever daemon holds it.
"""

import os
import time

import libvirt
import pytest
import XenAPI

from tests.kvm.domain import qemu_workdir, stage_kit  # noqa: F401 - fixture
from tests.kvm.guestkit import guest_kit  # noqa: F401 - fixture
from tests.kvm.libvirtd import DaemonsUnavailable, libvirtd  # noqa: F401 - fixture
from tests.kvm.second_libvirtd import SecondLibvirtd
from tests.kvm.serial import Console
from tests.kvm.timing import terminal_log

from .events_support import event_from
from .pool_support import Host, failure, live, wait_for
from .test_vm_kvm import vm_record
from .test_xe_support import XeRunner

pytestmark = pytest.mark.kvm


@pytest.fixture
def consoles(qemu_workdir):  # noqa: F811 - pytest fixture by name
    """The guest's serial socket directory, as the kit's daemon and as the second one see it:
    each daemon binds the socket at the same path, and removes it there when the guest leaves."""
    seen = {"first": qemu_workdir / "console", "second": qemu_workdir / "console-second"}
    for path in seen.values():
        path.mkdir(mode=0o755)
    return seen


@pytest.fixture
def second(libvirtd, consoles, request):  # noqa: F811 - pytest fixture by name
    daemon = SecondLibvirtd(log=terminal_log(request.config), binds={consoles["first"]: consoles["second"]})
    try:
        daemon.start()
    except DaemonsUnavailable as exc:
        daemon.stop()
        pytest.skip(f"no second libvirtd for the migration test: {exc}")
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def kvm_pool(libvirtd, second, qemu_workdir):  # noqa: F811 - pytest fixtures by name
    """Host a (the master) on the kit's libvirtd, host b on the second, b joined to a."""
    a, b = (Host(str(qemu_workdir / name), address) for name, address in (("a", "127.0.0.1"), ("b", "127.0.0.2")))
    # each names the URI the *other* daemon migrates to it at: the second daemon reaches the
    # kit's socket at second.first_socket (its own /run/libvirt is private)
    a.agent.extra_args += ["--libvirt-uri", libvirtd, "--libvirt-migrate-uri", second.first_uri,
                           "--no-manage-network"]
    b.agent.extra_args += ["--libvirt-uri", second.uri, "--libvirt-migrate-uri", second.uri, "--no-manage-network"]
    try:
        for h in (a, b):
            (qemu_workdir / h.address).mkdir(mode=0o755)
            h.start()
        b.session().xenapi.pool.join(a.tls, "root", a.agent.password)
        x = a.session().xenapi
        refs = {x.host.get_address(h): h for h in x.host.get_all()}
        a.ref, b.ref = refs[a.address], refs[b.address]
        wait_for(lambda: live(x, b.ref), 10, "host b live")
        yield a, b, x
    finally:
        for h in (a, b):
            h.agent.cleanup()


def domain(conn, uuid):
    """The running domain of that uuid in this daemon, or None."""
    try:
        dom = conn.lookupByUUIDString(uuid)
        return dom if dom.isActive() else None
    except libvirt.libvirtError:  # none, or gone while we looked
        return None


class Guest:
    """The guest's uptime, read on whichever daemon runs it, checked to only ever move on."""

    def __init__(self, sockets):
        self.sockets = sockets  # libvirt connection -> the guest's serial socket when it runs there
        self.first = None  # (wall time before asking, the uptime answered)

    def uptime(self, conn, timeout=30.0):
        with Console.connect_unix(self.sockets[conn]) as console:
            asked = time.monotonic()
            up = console.uptime(timeout=timeout)
        if self.first is None:
            self.first = (asked, up)
        else:
            since = time.monotonic() - self.first[0]
            assert up > since, f"uptime {up} s after {since:.1f} s of wall time: the guest restarted"
            assert up > self.first[1]
        return up


def moved(x, vm, host, here, gone, guest):
    """The VM runs in `here` (a libvirt connection) and not in `gone`, recorded on `host`."""
    rec = x.VM.get_record(vm)
    dom = domain(here, rec["uuid"])
    assert dom is not None and domain(gone, rec["uuid"]) is None
    assert rec["power_state"] == "Running" and rec["resident_on"] == host.ref and rec["current_operations"] == {}
    assert int(rec["domid"]) == dom.ID()
    master = x.host.get_address(x.pool.get_master(x.pool.get_all()[0]))
    for console in rec["consoles"]:  # clients reach every console at the master (docs/consoles.md)
        assert x.console.get_location(console).startswith(f"https://{master}/console")
    guest.uptime(here)


def test_a_running_guest_migrates_between_two_libvirtds(kvm_pool, guest_kit, qemu_workdir, libvirtd,  # noqa: F811
                                                        second, consoles):
    a, b, x = kvm_pool
    kernel, initrd = stage_kit(guest_kit, qemu_workdir)
    socket = consoles["first"] / "serial.sock"
    vm = x.VM.create(vm_record((kernel, initrd, guest_kit.cmdline), socket, name="migrating guest"))
    x.VM.start_on(vm, a.ref, False, False)
    uuid = x.VM.get_uuid(vm)
    first, other = libvirt.open(libvirtd), libvirt.open(second.uri)
    with Console.connect_unix(socket) as console:  # READY may have gone by: BLOCK follows it
        console.wait_line(lambda line: line.startswith(("READY", "BLOCK")), 180, "the guest's first lines")
        console.ping(timeout=60)
    guest = Guest({first: socket, other: consoles["second"] / "serial.sock"})
    guest.uptime(first)
    assert "pool_migrate" in x.VM.get_allowed_operations(vm)  # both hosts' drivers migrate
    token = event_from(x, ["vm"], "", 0.0)["token"]

    # to the member, as an asynchronous call whose task ends at progress 1
    task = x.Async.VM.pool_migrate(vm, b.ref, {"live": "true"})
    wait_for(lambda: x.task.get_status(task) != "pending", 120, "the migration's task")
    assert x.task.get_status(task) == "success", x.task.get_error_info(task)
    assert x.task.get_progress(task) == 1.0
    moved(x, vm, b, other, first, guest)
    seen = [e for e in event_from(x, ["vm"], token, 5.0)["events"] if e["ref"] == vm]
    assert any(e["snapshot"]["resident_on"] == b.ref for e in seen)

    # back to the master, with xe on the master's Unix socket
    xe = XeRunner(a.agent, qemu_workdir / "xe-home")
    xe("vm-migrate", f"uuid={uuid}", f"host={x.host.get_uuid(a.ref)}")
    moved(x, vm, a, first, other, guest)

    # to the member again, and host.evacuate brings it home
    x.VM.pool_migrate(vm, b.ref, {})
    moved(x, vm, b, other, first, guest)
    assert x.host.get_vms_which_prevent_evacuation(b.ref) == {}
    x.host.evacuate(b.ref)
    moved(x, vm, a, first, other, guest)

    # the source's agent dies after its libvirtd moved the domain, before it answers (a test
    # hook holds its answer): the master finds the domain on the destination and records it so
    b.agent.stop()
    b.agent.env = {**os.environ, "HOSTAGENT_FAULT_DELAY_DOMAIN_MIGRATE": "30"}
    b.start()
    wait_for(lambda: live(x, b.ref), 10, "host b live after its restart")
    x.VM.pool_migrate(vm, b.ref, {})  # the master's connections kept to b's last run are stale
    moved(x, vm, b, other, first, guest)
    task = x.Async.VM.pool_migrate(vm, a.ref, {})
    wait_for(lambda: domain(other, uuid) is None, 60, "the domain gone from the second daemon")
    assert x.task.get_status(task) == "pending"  # b's agent holds its answer
    b.agent.kill()
    wait_for(lambda: x.task.get_status(task) != "pending", 30, "the migration's task")
    assert x.task.get_status(task) == "success", x.task.get_error_info(task)
    moved(x, vm, a, first, other, guest)

    # refused cleanly: to where it runs; the guest runs on
    assert failure(x.VM.pool_migrate, vm, a.ref, {})[:4] == ["VM_MIGRATE_FAILED", vm, a.ref, a.ref]
    moved(x, vm, a, first, other, guest)
    x.VM.hard_shutdown(vm)
    assert domain(first, uuid) is None and domain(other, uuid) is None
    assert x.VM.get_power_state(vm) == "Halted"
    with pytest.raises(XenAPI.Failure):
        x.VM.pool_migrate(vm, b.ref, {})
