"""Raw disk transfer (issue 12, item 4): /export_raw_vdi and /import_raw_vdi with
format=raw and format=vhd, checked by pyvhdi and qemu-img; short bodies fail the task
with VDI_IO_ERROR."""

import os
import shutil
import socket
import subprocess
import urllib.parse

import pytest
import XenAPI

from .storage_util import MiB, login, read_pyvhdi, vdi_record, vhd_path, wait_task
from .transfer_support import curl_put, curl_to_file, disk_bytes, make_vm

pytest.importorskip("pyvhdi", reason="pyvhdi (libvhdi-python) is in setup.cfg's test extra")
QEMU_IMG = shutil.which("qemu-img")


@pytest.fixture(scope="module")
def s(agent):
    return login(agent)


@pytest.fixture(scope="module")
def x(s):
    return s.xenapi


@pytest.fixture(scope="module")
def disks(agent, x):
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    _, vdis, _ = make_vm(agent, x, sr, name="raw source")
    return sr, vdis


def url(agent, path, **query):
    return agent.url.rstrip("/") + path + "?" + urllib.parse.urlencode(query)


def new_vdi(x, sr, size):
    return x.VDI.create(vdi_record(sr, size, "raw target"))


def qemu_img(*args):
    if QEMU_IMG is None:
        pytest.skip("qemu-img is not installed (Makefile's APT_PACKAGES has qemu-utils)")
    return subprocess.run([QEMU_IMG, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("which", [0, 1], ids=["plain", "snapshot-chain"])
def test_export_raw_and_vhd(agent, s, x, disks, tmp_path, which):
    _, vdis = disks
    vdi = vdis[which]
    expected = disk_bytes(agent, x, vdi)
    raw, vhd = str(tmp_path / "disk.raw"), str(tmp_path / "disk.vhd")
    status, headers = curl_to_file(url(agent, "/export_raw_vdi", session_id=s._session, vdi=vdi,
                                       format="raw"), raw)
    assert status == 200 and int(headers["content-length"]) == len(expected)
    with open(raw, "rb") as f:
        assert f.read() == expected
    assert x.task.get_status(headers["task-id"]) == "success"
    status, headers = curl_to_file(url(agent, "/export_raw_vdi", session_id=s._session,
                                       vdi=x.VDI.get_uuid(vdi), format="vhd"), vhd)
    assert status == 200 and int(headers["content-length"]) == os.path.getsize(vhd)
    assert read_pyvhdi(vhd, len(expected)) == expected  # flattened: one file, no parent
    r = qemu_img("compare", "-f", "vpc", "-F", "raw", vhd, raw)
    assert r.returncode == 0, r.stdout + r.stderr


def test_import_raw(agent, s, x, disks, tmp_path):
    sr, vdis = disks
    source = str(tmp_path / "source.raw")
    with open(source, "wb") as f:
        f.write(disk_bytes(agent, x, vdis[1]))
    target = new_vdi(x, sr, os.path.getsize(source))
    status, headers, body = curl_put(url(agent, "/import_raw_vdi", session_id=s._session, vdi=target,
                                         format="raw"), source)
    assert status == 200
    assert wait_task(x, headers["task-id"]) == "success", x.task.get_error_info(headers["task-id"])
    assert body == target
    with open(source, "rb") as f:
        assert disk_bytes(agent, x, target) == f.read()
    path = vhd_path(agent.state_dir, x.SR.get_uuid(sr), x.VDI.get_uuid(target))
    r = qemu_img("compare", "-f", "vpc", "-F", "raw", path, source)
    assert r.returncode == 0, r.stdout + r.stderr
    x.VDI.destroy(target)


def test_import_vhd_made_by_qemu(agent, s, x, disks, tmp_path):
    sr, vdis = disks
    raw = str(tmp_path / "source.raw")
    with open(raw, "wb") as f:
        f.write(disk_bytes(agent, x, vdis[0]))
    vhd = str(tmp_path / "source.vhd")
    r = qemu_img("convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on", raw, vhd)
    assert r.returncode == 0, r.stderr
    target = new_vdi(x, sr, os.path.getsize(raw))
    _status, headers, _body = curl_put(url(agent, "/import_raw_vdi", session_id=s._session,
                                         vdi=x.VDI.get_uuid(target), format="vhd"), vhd)
    assert wait_task(x, headers["task-id"]) == "success", x.task.get_error_info(headers["task-id"])
    with open(raw, "rb") as f:
        assert disk_bytes(agent, x, target) == f.read()
    x.VDI.destroy(target)


def test_vhd_round_trip_through_the_agent(agent, s, x, disks, tmp_path):
    sr, vdis = disks
    vhd = str(tmp_path / "out.vhd")
    curl_to_file(url(agent, "/export_raw_vdi", session_id=s._session, vdi=vdis[1], format="vhd"), vhd)
    target = new_vdi(x, sr, int(x.VDI.get_virtual_size(vdis[1])))
    _status, headers, _ = curl_put(url(agent, "/import_raw_vdi", session_id=s._session, vdi=target,
                                      format="vhd"), vhd)
    assert wait_task(x, headers["task-id"]) == "success"
    assert disk_bytes(agent, x, target) == disk_bytes(agent, x, vdis[1])
    x.VDI.destroy(target)


def short_put(agent, path, declared: int, body: bytes):
    """PUT with a Content-Length of `declared` but only `body` sent, then the connection closed;
    the task-id header of the answer."""
    target = urllib.parse.urlsplit(agent.url.rstrip("/") + path)
    with socket.create_connection((target.hostname, target.port)) as sock:
        sock.sendall(f"PUT {target.path}?{target.query} HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: {declared}\r\n\r\n".encode() + body)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        sock.shutdown(socket.SHUT_WR)
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 200")
    return next(line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("task-id:"))


def test_short_bodies_fail_with_vdi_io_error(agent, s, x, disks, tmp_path):
    sr, _ = disks
    target = new_vdi(x, sr, 4 * MiB)
    path = "/import_raw_vdi?" + urllib.parse.urlencode({"session_id": s._session, "vdi": target})
    task = short_put(agent, path, 4 * MiB, b"\x01" * (MiB + 17))
    assert wait_task(x, task) == "failure"
    [code, _msg] = x.task.get_error_info(task)
    assert code == "VDI_IO_ERROR", x.task.get_error_info(task)

    vhd = str(tmp_path / "cut.vhd")
    curl_to_file(url(agent, "/export_raw_vdi", session_id=s._session, vdi=disks[1][0], format="vhd"), vhd)
    with open(vhd, "rb") as f:
        whole = f.read()
    with open(vhd, "wb") as f:
        f.write(whole[:len(whole) // 2])
    big = new_vdi(x, sr, int(x.VDI.get_virtual_size(disks[1][0])))
    _, headers, body = curl_put(url(agent, "/import_raw_vdi", session_id=s._session, vdi=big,
                                         format="vhd"), vhd)
    assert wait_task(x, headers["task-id"]) == "failure"
    assert x.task.get_error_info(headers["task-id"])[0] == "VDI_IO_ERROR"
    assert body.startswith("VDI_IO_ERROR")

    too_big = str(tmp_path / "big.raw")
    with open(too_big, "wb") as f:
        f.write(b"\x02" * (5 * MiB))
    _status, headers, body = curl_put(url(agent, "/import_raw_vdi", session_id=s._session, vdi=target), too_big)
    assert wait_task(x, headers["task-id"]) == "failure"
    assert x.task.get_error_info(headers["task-id"])[0] == "VDI_IO_ERROR"
    for vdi in (target, big):
        x.VDI.destroy(vdi)


def test_raw_refusals(agent, s, x, disks):
    _, vdis = disks
    status, headers = curl_to_file(url(agent, "/export_raw_vdi", session_id=s._session, vdi=vdis[0],
                                       format="qcow9"), os.devnull)
    assert status == 500
    assert x.task.get_error_info(headers["task-id"]) == ["INTERNAL_ERROR", "Unknown format qcow9"]
    status, headers = curl_to_file(url(agent, "/export_raw_vdi", session_id=s._session, vdi="nope"), os.devnull)
    assert status == 404
    assert x.task.get_error_info(headers["task-id"]) == ["UUID_INVALID", "VDI", "nope"]


def refused_put(agent, s, x, vdi, tmp_path, fill=b"\x77"):
    """PUT a MiB of `fill` into vdi; (status, task error info, body)."""
    body = str(tmp_path / "refused.raw")
    with open(body, "wb") as f:
        f.write(fill * MiB)
    status, headers, text = curl_put(url(agent, "/import_raw_vdi", session_id=s._session, vdi=vdi), body)
    assert wait_task(x, headers["task-id"]) == "failure"
    return status, x.task.get_error_info(headers["task-id"]), text


def test_import_into_a_read_only_vdi_is_refused(agent, s, x, disks, tmp_path):
    sr, _ = disks
    target = x.VDI.create(vdi_record(sr, 2 * MiB, "read-only target", read_only=True))
    before = disk_bytes(agent, x, target)
    status, error, text = refused_put(agent, s, x, target, tmp_path)
    assert status == 500 and error == ["VDI_READONLY", target] and text == f"VDI_READONLY {target}"
    assert disk_bytes(agent, x, target) == before  # nothing written
    assert x.VDI.get_current_operations(target) == {}
    x.VDI.destroy(target)


def test_import_into_a_disk_of_a_running_vm_is_refused(agent, s, x, tmp_path):
    [t] = [ref for ref, rec in x.VM.get_all_records().items()
           if rec["is_a_template"] and rec["name_label"] == "Debian Etch 4.0"]
    vm = x.VM.clone(t, "raw import victim")
    x.VM.provision(vm)
    [vbd] = x.VM.get_VBDs(vm)
    vdi = x.VBD.get_VDI(vbd)
    x.VM.start(vm, False, False)
    try:
        assert x.VBD.get_currently_attached(vbd) is True
        status, error, _ = refused_put(agent, s, x, vdi, tmp_path)
        assert status == 500 and error == ["VDI_IN_USE", vdi, "import"]
        assert x.VDI.get_current_operations(vdi) == {}
    finally:
        x.VM.hard_shutdown(vm)
    # halted, the same disk takes the write
    _, headers, _ = curl_put(url(agent, "/import_raw_vdi", session_id=s._session, vdi=vdi),
                             str(tmp_path / "refused.raw"))
    assert wait_task(x, headers["task-id"]) == "success", x.task.get_error_info(headers["task-id"])
    x.VM.destroy(vm)
    x.VDI.destroy(vdi)


def test_a_disk_being_imported_is_locked(agent, s, x, disks, tmp_path):
    """While an import writes, VDI.destroy, another import and an export of that disk get
    OTHER_OPERATION_IN_PROGRESS; once the import ends (here: its client left) the lock is gone."""
    sr, _ = disks
    target = new_vdi(x, sr, 4 * MiB)
    path = "/import_raw_vdi?" + urllib.parse.urlencode({"session_id": s._session, "vdi": target})
    where = urllib.parse.urlsplit(agent.url.rstrip("/") + path)
    with socket.create_connection((where.hostname, where.port)) as sock:
        sock.sendall(f"PUT {where.path}?{where.query} HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: {4 * MiB}\r\n\r\n".encode() + b"\x01" * 4096)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        task = next(line.split(":", 1)[1].strip() for line in head.decode("latin-1").split("\r\n")
                    if line.lower().startswith("task-id:"))
        assert x.VDI.get_current_operations(target) == {task: "copy"}
        assert "destroy" not in x.VDI.get_allowed_operations(target)
        with pytest.raises(XenAPI.Failure) as e:
            x.VDI.destroy(target)
        assert e.value.details == ["OTHER_OPERATION_IN_PROGRESS", "VDI", target, "copy", task]
        _status, error, _ = refused_put(agent, s, x, target, tmp_path)
        assert error == ["OTHER_OPERATION_IN_PROGRESS", "VDI", target, "copy", task]
        status, headers = curl_to_file(url(agent, "/export_raw_vdi", session_id=s._session, vdi=target),
                                       os.devnull)
        assert status == 500
        assert x.task.get_error_info(headers["task-id"]) == ["OTHER_OPERATION_IN_PROGRESS", "VDI", target,
                                                             "copy", task]
    assert wait_task(x, task) == "failure"  # the body stopped short
    assert x.VDI.get_current_operations(target) == {}
    x.VDI.destroy(target)


def test_import_into_a_snapshot_leaves_its_original_and_a_base_copy_is_refused(agent, s, x, disks, tmp_path):
    """A snapshot is a leaf of its own (as with xapi's VHD SRs): it takes the write and the disk
    it was taken of keeps its bytes; the hidden base copy both read through is refused."""
    sr, _ = disks
    original = x.VDI.create(vdi_record(sr, 2 * MiB, "snapshotted"))
    snap = x.VDI.snapshot(original, {})
    base = x.VDI.get_by_uuid(x.VDI.get_sm_config(snap)["vhd-parent"])
    assert x.VDI.get_managed(base) is False and x.VDI.get_sm_config(original)["vhd-parent"] == x.VDI.get_uuid(base)
    before = disk_bytes(agent, x, original)
    status, error, _ = refused_put(agent, s, x, base, tmp_path)
    assert status == 500 and error == ["VDI_NOT_MANAGED", base]
    _, headers, _ = curl_put(url(agent, "/import_raw_vdi", session_id=s._session, vdi=snap),
                             str(tmp_path / "refused.raw"))
    assert wait_task(x, headers["task-id"]) == "success", x.task.get_error_info(headers["task-id"])
    assert disk_bytes(agent, x, snap)[:MiB] == b"\x77" * MiB
    assert disk_bytes(agent, x, original) == before
    for vdi in (snap, original):
        x.VDI.destroy(vdi)
