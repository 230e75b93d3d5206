"""The datapath against the real nbdkit, with qemu-io and qemu-img as independent NBD clients
and libvhdi (pyvhdi) as the independent reader of what lands in the VHD files.

The SR is a `file` SR whose volumes are made into chains by the driver's own snapshots;
contents are prepared with sm.vhd while nothing is attached.
"""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid as uuidlib

import pytest

from sm import vhd
from sm.datapath.server import NbdServers
from sm.drivers.filesr import FileDriver
from sm.errors import BackendFailure, VolumeInUse
from sm.runner import Runner
from tests.contract.sm.libvhdi import libvhdi_read
from tests.contract.sm.nbdclient import gone, qemu_io
from tests.support import wait_for

MiB = 1 << 20
SIZE = 64 * MiB


def new_uuid():
    return str(uuidlib.uuid4())


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def pid_of(sr, attachment):
    return sr.datapath.servers.serving(os.path.basename(attachment.path)[:-len(".sock")])


@pytest.fixture
def sr(tmp_path, state, nbdkit):
    location = tmp_path / "srs"
    location.mkdir()
    driver = FileDriver(new_uuid(), {"location": str(location)}, Runner(), state)
    driver.create(0)
    driver.attach()
    return driver


def fill(sr, uuid, offset, length, byte):
    with vhd.open(sr.volumes.file(uuid), writable=True) as image:
        image.write(offset, bytes([byte]) * length)
        image.flush()


def three_deep(sr):
    """A leaf over two bases: 0xab in [0, 4M) of the bottom one, 0x22 in [20M, 21M) of the
    middle one, an empty leaf; returns (leaf, middle, bottom, the first snapshot)."""
    leaf = sr.vol_create(new_uuid(), SIZE).uuid
    fill(sr, leaf, 0, 4 * MiB, 0xAB)
    first = sr.vol_snapshot(leaf, new_uuid()).uuid
    fill(sr, leaf, 20 * MiB, MiB, 0x22)
    sr.vol_snapshot(leaf, new_uuid())
    middle = sr.vol_stat(leaf).parent
    bottom = sr.vol_stat(middle).parent
    assert vhd.chain(sr.volumes.file(leaf))[1:] == [sr.volumes.file(middle),
                                                    sr.volumes.file(bottom)]
    return leaf, middle, bottom, first


def test_a_parentless_vhd_is_its_file_for_qemus_vpc_driver(sr):
    a = sr.vol_create(new_uuid(), SIZE).uuid
    fill(sr, a, 0, MiB, 0x5A)
    att = sr.vol_attach(a, True, "vbd-1")
    assert (att.kind, att.path, att.format) == ("file", sr.volumes.file(a), "vpc")
    done = subprocess.run(["qemu-io", "-f", "vpc", "-r", att.path, "-c", "read -P 0x5a 0 1M"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "failed" not in done.stdout, done.stdout
    sr.vol_detach(a, "vbd-1")


def test_reads_fall_through_a_three_deep_chain(sr, tmp_path):
    leaf, _, bottom, _ = three_deep(sr)
    att = sr.vol_attach(leaf, True, "vbd-1")
    assert (att.kind, att.format) == ("nbd", "raw")
    assert att.uri == f"nbd+unix:///?socket={att.path}"
    qemu_io(att.uri, "read -P 0xab 0 4M", "read -P 0 4M 16M", "read -P 0x22 20M 1M",
            "read -P 0 21M 43M")
    # qemu-img, another client: the whole disk equals what libvhdi reads through the chain
    flat = tmp_path / "flat.raw"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "raw", att.uri, str(flat)],
                   check=True, capture_output=True)
    assert flat.read_bytes() == libvhdi_read(sr.volumes.file(leaf), 0, SIZE)
    # qemu's own VHD reader agrees up to the middle base's data for the bottom base, which
    # has no parent; the leaf it reads as if it had none (why the datapath exists)
    for image, first_difference in ((bottom, 20 * MiB), (leaf, 0)):
        done = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "vpc", att.uri,
                               sr.volumes.file(image)], capture_output=True, text=True)
        assert done.stdout == f"Content mismatch at offset {first_difference}!\n"
    sr.vol_detach(leaf, "vbd-1")


def test_writes_land_in_the_leaf_only_and_flush(sr):
    leaf, middle, bottom, first = three_deep(sr)
    bases = {p: sha256(p) for p in (sr.volumes.file(middle), sr.volumes.file(bottom))}
    att = sr.vol_attach(leaf, True, "vbd-1")
    info = json.loads(subprocess.run(["nbdinfo", "--json", att.uri], capture_output=True,
                                     text=True, check=True).stdout)["exports"][0]
    assert (info["is_read_only"], info["can_flush"], info["can_fua"], info["can_multi_conn"],
            info["can_zero"], info["can_trim"]) == (False, True, True, True, True, False)
    assert info["export-size"] == SIZE
    qemu_io(att.uri, "write -P 0xcd 1M 1M", "write -P 0xee 30M 4k", "write -f -P 0x77 40M 512",
            "flush", "read -P 0xab 0 1M", "read -P 0xcd 1M 1M", "read -P 0xab 2M 2M")
    qemu_io(att.uri, "read -P 0xcd 1M 1M", "read -P 0xee 30M 4k")  # a new connection sees it
    sr.vol_detach(leaf, "vbd-1")

    assert {p: sha256(p) for p in bases} == bases  # the bases are untouched
    path = sr.volumes.file(leaf)
    assert libvhdi_read(path, MiB, MiB) == b"\xcd" * MiB
    assert libvhdi_read(path, 0, MiB) == b"\xab" * MiB
    assert libvhdi_read(path, 30 * MiB, 4096) == b"\xee" * 4096
    assert libvhdi_read(path, 40 * MiB, 512) == b"\x77" * 512
    assert libvhdi_read(path, 20 * MiB, 16) == b"\x22" * 16
    with vhd.open(path) as image:  # what the leaf itself holds: exactly what was written
        assert list(image.extents()) == [(MiB, MiB), (30 * MiB, 4096), (40 * MiB, 512)]
    assert libvhdi_read(sr.volumes.file(first), MiB, 16) == b"\xab" * 16  # the snapshot


def test_write_zeroes_allocate_only_where_the_disk_held_data(sr):
    leaf, _, _, _ = three_deep(sr)
    att = sr.vol_attach(leaf, True, "vbd-1")
    qemu_io(att.uri, "write -z 3M 2M", "write -z 50M 8M", "read -P 0 3M 2M", "read -P 0xab 0 3M")
    sr.vol_detach(leaf, "vbd-1")
    with vhd.open(sr.volumes.file(leaf)) as image:
        assert list(image.extents()) == [(3 * MiB, MiB)]  # only over the base's 0xab
    assert libvhdi_read(sr.volumes.file(leaf), 3 * MiB, 2 * MiB) == bytes(2 * MiB)


def test_a_read_only_attachment_refuses_writes(sr):
    leaf, _, _, _ = three_deep(sr)
    before = sha256(sr.volumes.file(leaf))
    att = sr.vol_attach(leaf, False, "cd")
    assert att.kind == "nbd" and not att.writable
    qemu_io(att.uri, "read -P 0xab 0 4M", read_only=True)
    assert qemu_io(att.uri, "write -P 1 0 4k", check=False).returncode != 0
    with pytest.raises(VolumeInUse):
        sr.vol_attach(leaf, True, "vbd-1")  # readers exclude a writer
    sr.vol_detach(leaf, "cd")
    assert sha256(sr.volumes.file(leaf)) == before


def test_kill_9_in_the_middle_of_a_write_stream_leaves_a_consistent_image(sr):
    leaf, _, _, _ = three_deep(sr)
    path = sr.volumes.file(leaf)
    att = sr.vol_attach(leaf, True, "vbd-1")
    pid = pid_of(sr, att)
    piece = 64 * 1024
    commands = [f"write -P {i % 200 + 1} {i * piece} {piece}" for i in range(SIZE // piece)]
    argv = ["qemu-io", "-f", "raw", att.uri] + [x for c in commands for x in ("-c", c)]
    start = os.path.getsize(path)
    writer = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: os.path.getsize(path) > start + 4 * MiB or writer.poll() is not None, 30,
             "the leaf to grow", pause=0.001)
    os.kill(pid, signal.SIGKILL)
    out, _ = writer.communicate(timeout=60)
    acknowledged = {int(m) for m in re.findall(r"wrote \d+/\d+ bytes at offset (\d+)", out)}
    assert 0 < len(acknowledged) < len(commands), "the kill came mid-stream"

    with vhd.open(path) as image:  # opens, and both readers see the same disk
        ours = image.read(0, SIZE)
    assert libvhdi_read(path, 0, SIZE) == ours
    old = libvhdi_read(sr.volumes.file(sr.vol_stat(leaf).parent), 0, SIZE)
    for i in range(SIZE // piece):
        new = bytes([i % 200 + 1]) * 512
        at = i * piece
        if at in acknowledged:
            assert ours[at:at + piece] == new * (piece // 512), f"acknowledged write {i} lost"
            continue
        for s in range(at, at + piece, 512):  # each sector old or new, never anything else
            assert ours[s:s + 512] in (new, old[s:s + 512]), f"torn sector at {s}"

    # The dead server's attachment is found, served again, and detached.
    assert sr.vol_attach(leaf, True, "vbd-1") == att and pid_of(sr, att) != pid
    flat = os.path.join(sr.state_dir, "flat.raw")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "raw", att.uri, flat],
                   check=True, capture_output=True)
    with open(flat, "rb") as f:
        assert f.read() == ours
    sr.vol_detach(leaf, "vbd-1")


def test_two_attachments_at_once_and_detach_twice(sr):
    one = three_deep(sr)[0]
    two = sr.vol_clone(one, new_uuid()).uuid
    made, errors = {}, []

    def attach(uuid, owner):
        try:
            made[owner] = sr.vol_attach(uuid, True, owner)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=attach, args=a) for a in ((one, "vm-1"), (two, "vm-2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    a, b = made["vm-1"], made["vm-2"]
    assert a.path != b.path and pid_of(sr, a) != pid_of(sr, b)
    writers = [subprocess.Popen(["qemu-io", "-f", "raw", att.uri, "-c",
                                 f"write -P {byte} 8M 8M", "-c", "flush"],
                                stdout=subprocess.DEVNULL) for att, byte in ((a, 0x31), (b, 0x32))]
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    qemu_io(a.uri, "read -P 0x31 8M 8M", "read -P 0xab 0 4M")
    qemu_io(b.uri, "read -P 0x32 8M 8M", "read -P 0xab 0 4M")
    assert {x.owner for x in sr.vol_attachments()} == {"vm-1", "vm-2"}

    pid = pid_of(sr, a)
    sr.vol_detach(one, "vm-1")
    sr.vol_detach(one, "vm-1")
    assert gone(pid) and not os.path.exists(a.path)
    assert [x.owner for x in sr.vol_attachments()] == ["vm-2"]
    qemu_io(b.uri, "read -P 0x32 8M 4k")  # the other one is untouched
    sr.vol_detach(two, "vm-2")
    sr.vol_destroy(one)  # nothing counts as attached any more
    assert sr.vol_attachments() == []


def test_an_attachment_that_cannot_be_served_leaves_nothing_behind(sr):
    leaf, middle, _, _ = three_deep(sr)
    hidden = sr.volumes.file(middle) + ".away"
    os.rename(sr.volumes.file(middle), hidden)  # the chain is broken
    with pytest.raises(BackendFailure) as info:
        sr.vol_attach(leaf, True, "vbd-1")
    assert info.value.code == "SR_BACKEND_FAILURE_46"
    assert "nbdkit exited" in info.value.params[1]
    assert sr.vol_attachments() == [] and sr.book.get(leaf) is None
    assert os.listdir(os.path.join(sr.state_dir, "datapath")) == []
    os.rename(hidden, sr.volumes.file(middle))


def test_errors_of_a_running_server_go_to_its_log(sr):
    leaf, _, _, _ = three_deep(sr)
    att = sr.vol_attach(leaf, True, "vbd-1")
    qemu_io(att.uri, "write -P 0x66 8M 2M")
    os.truncate(sr.volumes.file(leaf), 64 * 1024)  # the leaf's data vanishes behind its back
    assert qemu_io(att.uri, "read 8M 4k", check=False).returncode != 0  # EIO, not zeros
    log = att.path[:-len(".sock")] + ".log"
    assert "CorruptError" in open(log).read()
    sr.vol_detach(leaf, "vbd-1")
    assert not os.path.exists(log)


AGENT = """
import json, os, signal, sys
from sm.drivers.filesr import FileDriver
from sm.runner import Runner
sr_uuid, location, state, leaf = sys.argv[1:]
driver = FileDriver(sr_uuid, {"location": location}, Runner(), state)
print(json.dumps(driver.vol_attach(leaf, True, "vbd-1").__dict__), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # the agent dies; its guests and their disks do not
"""


def test_a_server_outlives_the_agent_and_a_new_one_finds_and_detaches_it(sr):
    leaf, _, _, _ = three_deep(sr)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    agent = subprocess.run([sys.executable, "-c", AGENT, sr.sr_uuid,
                            sr.device_config["location"], sr.state_dir, leaf],
                           capture_output=True, text=True, env=env, cwd="/", timeout=60)
    assert agent.returncode == -signal.SIGKILL, agent.stderr
    made = json.loads(agent.stdout)
    qemu_io(made["uri"], "write -P 0x44 5M 1M", "read -P 0xab 0 4M")  # still served

    again = FileDriver(sr.sr_uuid, sr.device_config, Runner(), sr.state_dir)  # a new agent
    [found] = again.vol_attachments()
    assert found.__dict__ == made
    pid = pid_of(again, found)
    assert pid is not None and os.getppid() != pid
    assert again.vol_attach(leaf, True, "vbd-1") == found and pid_of(again, found) == pid
    again.vol_detach(leaf, "vbd-1")
    again.vol_detach(leaf, "vbd-1")
    assert gone(pid)
    assert again.vol_attachments() == [] and not os.path.exists(found.path)
    assert libvhdi_read(sr.volumes.file(leaf), 5 * MiB, MiB) == b"\x44" * MiB


def test_the_plugin_needs_the_pythonpath_the_launcher_gives_it(sr, tmp_path):
    """nbdkit's embedded Python adds nothing to sys.path: without the launcher's PYTHONPATH
    the plugin cannot import sm (a control for the test above, which ran from /)."""
    leaf = sr.vol_create(new_uuid(), SIZE).uuid
    servers = NbdServers(str(tmp_path / "d"))
    argv = servers.argv("0badcafe", sr.volumes.file(leaf), writable=False)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/", timeout=60)
    assert done.returncode != 0 and "No module named 'sm'" in done.stderr
    os.makedirs(servers.dir)
    pid = servers.start("0badcafe", sr.volumes.file(leaf), writable=False)
    assert servers.serving("0badcafe") == pid
    servers.stop("0badcafe")
    assert servers.serving("0badcafe") is None and os.listdir(servers.dir) == []
