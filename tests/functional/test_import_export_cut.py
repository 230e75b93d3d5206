"""Exports cut short: a reader that leaves while the agent waits for it (backpressure), and
a task cancelled during the stream. Either way the worker stops, the task ends (`failure`
with INTERNAL_ERROR for the reader that left, as xapi's export does when its writes fail;
`cancelled` with TASK_CANCELLED for the cancel), `export` leaves the VM's
current_operations, and the VM can be exported again at once."""

import os
import socket
import subprocess
import time
import urllib.parse

import pytest

from tests.support import wait_for

from .storage_util import MiB, login, vdi_record, wait_task
from .transfer_support import curl_put, curl_to_file, make_vm

BIG = 16 * MiB  # random data: with the rest, more than the loopback connection's buffers hold

pytest.importorskip("pyvhdi", reason="pyvhdi (libvhdi-python) is in setup.cfg's test extra")


@pytest.fixture(scope="module")
def s(agent):
    return login(agent)


@pytest.fixture(scope="module")
def x(s):
    return s.xenapi


def url(agent, path, **query):
    return agent.url.rstrip("/") + path + "?" + urllib.parse.urlencode(query)


@pytest.fixture(scope="module")
def vm(agent, s, x, tmp_path_factory):
    """The transfer tests' VM with a third disk of random data, written through /import_raw_vdi."""
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    ref, _vdis, _ = make_vm(agent, x, sr, name="cut short")
    big = x.VDI.create(vdi_record(sr, BIG, "big"))
    data = tmp_path_factory.mktemp("big") / "data"
    data.write_bytes(os.urandom(BIG))
    _status, headers, _ = curl_put(url(agent, "/import_raw_vdi", session_id=s._session, vdi=big), str(data))
    assert wait_task(x, headers["task-id"]) == "success"
    x.VBD.create({"VM": ref, "VDI": big, "userdevice": "4", "bootable": False, "mode": "RW", "type": "Disk",
                  "unpluggable": True, "empty": False, "other_config": {}, "qos_algorithm_type": "",
                  "qos_algorithm_params": {}})
    return ref


def read_response(sock) -> bytes:
    """One whole response with a content-length, read from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(length - len(body))
    return head


def stalled_export(agent, s, x, vm, task, unix=False, before=None):
    """A raw HTTP client (over TCP, or the Unix socket as xe uses) that asks for the export,
    reads the status line and then nothing: returns its socket once the agent is held by it
    (progress made, task still pending)."""
    target = urllib.parse.urlsplit(url(agent, "/export", session_id=s._session, ref=vm, task_id=task))
    if unix:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(agent.socket)
    else:
        sock = socket.create_connection((target.hostname, target.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    if before is not None:  # an earlier request on the same kept-alive connection
        sock.sendall(f"GET {before} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert read_response(sock).startswith(b"HTTP/1.1 200")
    sock.sendall(f"GET {target.path}?{target.query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert sock.recv(12) == b"HTTP/1.1 200"
    wait_for(lambda: x.VM.get_current_operations(vm) == {task: "export"}, 10, "export in current_operations")
    wait_for(lambda: float(x.task.get_progress(task)) > 0.0, 20, "progress on the export's task")
    time.sleep(1.5)  # the agent's queue fills and the response is paused
    assert x.task.get_status(task) == "pending"
    return sock


def exports_again(agent, s, x, vm, tmp_path):
    status, headers = curl_to_file(url(agent, "/export", session_id=s._session, ref=vm), str(tmp_path / "again.xva"))
    assert status == 200 and x.task.get_status(headers["task-id"]) == "success"
    assert x.VM.get_current_operations(vm) == {}


@pytest.mark.parametrize("how", ["close", "reset", "unix", "kept-alive"])
def test_a_reader_that_leaves_a_paused_export_fails_its_task(agent, s, x, vm, tmp_path, how):
    """close: the socket closed with unread data (the kernel answers with a reset);
    reset: SO_LINGER 0, an abortive close; unix: the Unix socket closed with unread data;
    kept-alive: the export is the second request of its connection."""
    task = x.task.create("export whose reader leaves", "")
    before = None
    if how == "kept-alive":
        before = "/export_metadata?" + urllib.parse.urlencode({"session_id": s._session, "ref": vm})
    sock = stalled_export(agent, s, x, vm, task, unix=how == "unix", before=before)
    if how == "reset":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
    assert wait_task(x, task, timeout=30) == "failure"
    info = x.task.get_error_info(task)
    assert info[0] == "INTERNAL_ERROR" and "closed the connection" in info[1], info
    wait_for(lambda: x.VM.get_current_operations(vm) == {}, 10, "the operation gone")
    exports_again(agent, s, x, vm, tmp_path)


def test_a_reader_that_half_closes_and_leaves_fails_its_task(agent, s, x, vm, tmp_path):
    """The reader drains what it was sent, shuts its side down (FIN) and stops: the agent's next
    writes are refused by the peer."""
    task = x.task.create("export whose reader half-closes", "")
    sock = stalled_export(agent, s, x, vm, task)
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(0.2)
    try:
        while sock.recv(1 << 20):
            pass
    except (TimeoutError, ConnectionResetError):
        pass
    sock.close()
    assert wait_task(x, task, timeout=30) == "failure"
    assert x.task.get_error_info(task)[0] == "INTERNAL_ERROR"
    wait_for(lambda: x.VM.get_current_operations(vm) == {}, 10, "the operation gone")
    exports_again(agent, s, x, vm, tmp_path)


def test_curl_killed_during_a_slow_export_fails_its_task(agent, s, x, vm, tmp_path):
    task = x.task.create("export read by a killed curl", "")
    p = subprocess.Popen(["curl", "-sS", "--limit-rate", "64k", "-o", os.devnull,
                          url(agent, "/export", session_id=s._session, ref=vm, task_id=task)])
    try:
        wait_for(lambda: float(x.task.get_progress(task)) > 0.0, 20, "progress on the export's task")
        time.sleep(1.5)
        assert x.task.get_status(task) == "pending"
    finally:
        p.kill()
        p.wait()
    assert wait_task(x, task, timeout=30) == "failure"
    assert x.task.get_error_info(task)[0] == "INTERNAL_ERROR"
    wait_for(lambda: x.VM.get_current_operations(vm) == {}, 10, "the operation gone")
    exports_again(agent, s, x, vm, tmp_path)


def test_cancel_during_a_paused_export_cuts_it(agent, s, x, vm, tmp_path):
    task = x.task.create("export to cancel", "")
    sock = stalled_export(agent, s, x, vm, task)
    try:
        x.task.cancel(task)
        assert wait_task(x, task, timeout=30) == "cancelled"
        assert x.task.get_error_info(task) == ["TASK_CANCELLED", task]
        wait_for(lambda: x.VM.get_current_operations(vm) == {}, 10, "the operation gone")
        sock.settimeout(30)
        got, last = 0, b""
        while True:  # what was sent drains, then the connection ends without the archive's end
            try:
                piece = sock.recv(1 << 20)
            except ConnectionResetError:
                break
            if not piece:
                break
            got, last = got + len(piece), (last + piece)[-8:]
        assert got < BIG and last != b"0\r\n\r\n"  # no last chunk of the chunked body
    finally:
        sock.close()
    exports_again(agent, s, x, vm, tmp_path)


def read_all_but(sock, left: int, size: int) -> None:
    """Read the response (about `size` bytes of archive) until about `left` bytes are unread."""
    sock.settimeout(30)
    got = 0
    while got < size - left:
        piece = sock.recv(min(1 << 20, size - left - got))
        assert piece, "the export ended early"
        got += len(piece)


@pytest.mark.parametrize("end", ["cancel", "leave"])
def test_the_end_of_an_export_is_held_for_its_reader(agent, s, x, vm, tmp_path, end):
    """The worker has handed everything over but the reader has not taken it: the task stays
    pending; a cancel then still cuts the stream (`cancelled`, never `success`), and a reader
    that leaves then fails the task. Over the Unix socket, whose kernel buffers are small and
    fixed (TCP's grow with the transfer), so that what the agent holds back is known."""
    status, _ = curl_to_file(url(agent, "/export", session_id=s._session, ref=vm), str(tmp_path / "whole.xva"))
    assert status == 200
    size = os.path.getsize(tmp_path / "whole.xva")
    task = x.task.create(f"export ended by {end}", "")
    sock = stalled_export(agent, s, x, vm, task, unix=True)
    try:
        # 3 MiB left: the worker has handed over its last chunk and the archive's end (the agent
        # queues 4 of them), but they are far more than the Unix socket's buffers hold
        read_all_but(sock, 3 * MiB, size)
        time.sleep(1.5)
        assert x.task.get_status(task) == "pending"
        if end == "cancel":
            x.task.cancel(task)
            assert wait_task(x, task, timeout=30) == "cancelled"
        else:
            sock.close()
            assert wait_task(x, task, timeout=30) == "failure"
            assert x.task.get_error_info(task)[0] == "INTERNAL_ERROR"
        wait_for(lambda: x.VM.get_current_operations(vm) == {}, 10, "the operation gone")
    finally:
        sock.close()
    exports_again(agent, s, x, vm, tmp_path)
