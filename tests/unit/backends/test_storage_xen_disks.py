"""On Xen every VHD reaches the guest as a dom0 block device, never as a file for qdisk.

A guest's device model on Xen runs deprivileged (xen-qemuuser-range-base + domid) and cannot
open the state dir's files, so the storage port hands a parentless VHD, like a chain, to
backends/nbd_block.py, which makes /dev/nbdN of it for blkback. The SR is a real file SR (sm's
VHD files in tmp_path); /dev/nbdN needs a dom0's kernel, so the devices are a recording fake
behind NbdBlockDevices' interface (the real ones run in the lab: tests/lab/test_xen_guest.py).
"""

import pytest
from twisted.internet import defer
from twisted.internet.defer import Deferred

from hostagent.backends.nbd_block import NbdBlockError, qemu_nbd_argv
from hostagent.backends.storage import Storage
from sm.drivers.filesr import FileDriver
from sm.runner import Runner

SR = "cccccccc-0000-4000-8000-000000000000"
VOL = "dddddddd-0000-4000-8000-000000000000"
MiB = 1 << 20


class FreeLock:
    """No other caller in these tests: every acquire succeeds at once."""

    def acquire(self, exclusive, timeout):
        return defer.succeed(True)

    def release(self, exclusive):
        """Nothing was held."""


class FakeNbdBlockDevices:
    """Records what it was asked to connect; `fail` makes the next connect fail."""

    def __init__(self):
        self.calls = []
        self.fail = False

    def connect(self, socket, owner):
        return self._device("connect", socket, owner)

    def connect_image(self, path, fmt, writable, owner):
        return self._device("connect_image", path, fmt, writable, owner)

    def _device(self, *call):
        self.calls.append(call)
        if self.fail:
            raise NbdBlockError("no free /dev/nbdN")
        return f"/dev/nbd{len(self.calls) - 1}"

    def disconnect(self, owner):
        self.calls.append(("disconnect", owner))


def resolved(d):
    out = []
    d.addBoth(out.append)
    assert out, "the storage call did not finish synchronously"
    if isinstance(out[0], Exception) or hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


@pytest.fixture
def storage(tmp_path):
    port = Storage(str(tmp_path / "state"), lambda fn, *a: defer.maybeDeferred(fn, *a),
                   make_lock=FreeLock, start=Deferred.fromCoroutine, environ={})
    drv = FileDriver(SR, {"location": str(tmp_path / "sr")}, Runner(), str(tmp_path / "state"))
    drv.create(0)
    drv.vol_create(VOL, 8 * MiB)
    return port, drv


def attach(port, drv, writable=True, owner="vbd-1"):
    return resolved(Deferred.fromCoroutine(port.attach(drv, VOL, writable, owner)))


def test_without_xen_a_parentless_vhd_stays_a_file(storage):
    port, drv = storage
    a = attach(port, drv)
    assert (a.kind, a.format) == ("file", "vpc") and a.path.endswith(f"{VOL}.vhd")


@pytest.mark.parametrize("writable", [True, False])
def test_on_xen_a_parentless_vhd_becomes_a_block_device(storage, writable):
    port, drv = storage
    port.nbd_devices = FakeNbdBlockDevices()
    a = attach(port, drv, writable)
    assert (a.kind, a.path, a.format) == ("block", "/dev/nbd0", "raw")
    [(op, path, fmt, rw, owner)] = port.nbd_devices.calls
    assert (op, fmt, rw, owner) == ("connect_image", "vpc", writable, "vbd-1")
    assert path == drv.volumes.file(VOL)


def test_on_xen_a_vhd_chain_goes_through_nbdkit_and_nbd_client(storage, monkeypatch):
    port, drv = storage
    port.nbd_devices = FakeNbdBlockDevices()
    socket = "/run/x.sock"
    from sm.driver import Attachment
    monkeypatch.setattr(drv, "vol_attach", lambda uuid, writable, owner: Attachment(
        kind="nbd", path=socket, format="raw", sr=SR, vdi=uuid, owner=owner, writable=writable))
    a = attach(port, drv)
    assert (a.kind, a.path) == ("block", "/dev/nbd0")
    assert port.nbd_devices.calls == [("connect", socket, "vbd-1")]


def test_a_failed_connect_detaches_the_volume_again(storage):
    port, drv = storage
    port.nbd_devices = FakeNbdBlockDevices()
    port.nbd_devices.fail = True
    with pytest.raises(Exception, match="no free /dev/nbdN"):
        attach(port, drv)
    assert drv.vol_attachments() == []  # no booking left behind


def test_qemu_nbd_is_read_only_unless_writable():
    rw = qemu_nbd_argv("/sr/a.vhd", "vpc", True, "/dev/nbd2")
    ro = qemu_nbd_argv("/sr/a.vhd", "vpc", False, "/dev/nbd2")
    assert rw[0] == "qemu-nbd" and "--connect=/dev/nbd2" in rw and "--format=vpc" in rw
    assert rw[-1] == ro[-1] == "/sr/a.vhd"
    assert "--read-only" in ro and "--read-only" not in rw
