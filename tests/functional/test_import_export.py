"""XVA export and import over HTTP with curl (issue 12, items 2, 3 and 5): a VM with two
disks (one a snapshot chain) leaves one SR and comes back on another with the same bytes
and records (identities aside), plain, gzip and zstd; bad archives fail with xapi's errors
and leave nothing behind; every handler wants a session, a cookie or a password."""

import glob
import gzip
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid as uuidlib

import pytest
import XenAPI

from tests.support import wait_for

from .storage_util import login, vm_record, wait_task
from .transfer_support import (
    comparable,
    curl_put,
    curl_to_file,
    devices,
    disk_bytes,
    make_vm,
)

pytest.importorskip("pyvhdi", reason="pyvhdi (libvhdi-python) is in setup.cfg's test extra")


@pytest.fixture(scope="module")
def s(agent):
    return login(agent)


@pytest.fixture(scope="module")
def x(s):
    return s.xenapi


@pytest.fixture(scope="module")
def source(agent, x):
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    vm, vdis, _ = make_vm(agent, x, sr)
    return vm, vdis


@pytest.fixture(scope="module")
def other_sr(x, tmp_path_factory):
    location = str(tmp_path_factory.mktemp("sr2"))
    sr = x.SR.create(x.host.get_all()[0], {"location": location}, "0", "second", "", "file", "",
                     False, {})
    return sr, location


def url(agent, path, **query):
    return agent.url.rstrip("/") + path + "?" + urllib.parse.urlencode(query)


def counts(x, other):
    _sr, location = other
    return (len(x.VM.get_all()), len(x.VDI.get_all()), sorted(glob.glob(os.path.join(location, "*", "*"))))


@pytest.mark.parametrize("compression", ["", "gzip", "zstd"])
def test_export_then_import_on_another_sr(agent, s, x, source, other_sr, tmp_path, compression):
    vm, _vdis = source
    sr, _ = other_sr
    xva = str(tmp_path / "vm.xva")
    query = {"session_id": s._session, "uuid": x.VM.get_uuid(vm)}
    if compression:
        query["use_compression"] = compression
    status, headers = curl_to_file(url(agent, "/export", **query), xva)
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    export_task = headers["task-id"]
    assert x.task.get_status(export_task) == "success"
    assert x.VM.get_current_operations(vm) == {}
    with open(xva, "rb") as f:
        head = f.read(4)
    assert head.startswith({"": b"ova.", "gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}[compression])
    if compression == "":  # an independent reader: tar lists ova.xml first, chunks with checksums
        names = subprocess.run(["tar", "tf", xva], capture_output=True, text=True, check=True).stdout.split()
        assert names[0] == "ova.xml"
        assert any(n.endswith(".xxhash") for n in names)

    status, headers, body = curl_put(url(agent, "/import", session_id=s._session, sr_id=sr), xva)
    assert status == 200, body
    task = headers["task-id"]
    assert wait_task(x, task) == "success", x.task.get_error_info(task)
    [new] = body.split()
    assert x.task.get_result(task) == f"<value><array><data><value>{new}</value></data></array></value>"

    old_rec, new_rec = x.VM.get_record(vm), x.VM.get_record(new)
    assert new_rec["uuid"] != old_rec["uuid"]
    assert comparable(new_rec) == comparable(old_rec)
    old_vbds, old_vifs = devices(x, vm)
    new_vbds, new_vifs = devices(x, new)
    assert sorted(new_vbds) == sorted(old_vbds) and sorted(new_vifs) == sorted(old_vifs)
    for dev, rec in old_vbds.items():
        assert comparable(new_vbds[dev]) == comparable(rec)
        if rec["type"] == "Disk":
            assert x.VDI.get_SR(new_vbds[dev]["VDI"]) == sr
            assert disk_bytes(agent, x, new_vbds[dev]["VDI"]) == disk_bytes(agent, x, rec["VDI"])
            old_vdi, new_vdi = x.VDI.get_record(rec["VDI"]), x.VDI.get_record(new_vbds[dev]["VDI"])
            assert comparable(new_vdi) == comparable(old_vdi)
    for dev, rec in old_vifs.items():
        assert new_vifs[dev]["MAC"] != rec["MAC"]
        assert comparable(new_vifs[dev]) == comparable(rec)


def test_restore_keeps_uuids_and_macs(agent, s, x, source, other_sr, tmp_path):
    vm, _ = source
    xva = str(tmp_path / "vm.xva")
    curl_to_file(url(agent, "/export", session_id=s._session, ref=vm), xva)
    x.VM.set_name_label(vm, "exported")
    _status, headers, body = curl_put(url(agent, "/import", session_id=s._session, sr_id=other_sr[0],
                                         restore="true"), xva)
    assert wait_task(x, headers["task-id"]) == "success"
    [new] = body.split()
    assert x.VM.get_uuid(new) != x.VM.get_uuid(vm)  # the original still holds its uuid
    assert {r["MAC"] for r in devices(x, new)[1].values()} == {r["MAC"] for r in devices(x, vm)[1].values()}
    x.VM.destroy(new)


def test_metadata_export_and_import_with_vdi_remap(agent, s, x, source, tmp_path):
    vm, vdis = source
    meta = str(tmp_path / "meta.xva")
    status, _ = curl_to_file(url(agent, "/export_metadata", session_id=s._session, uuid=x.VM.get_uuid(vm)), meta)
    assert status == 200
    names = subprocess.run(["tar", "tf", meta], capture_output=True, text=True, check=True).stdout.split()
    assert names == ["ova.xml"]
    copy = x.VDI.copy(vdis[0], x.VDI.get_SR(vdis[0]), "OpaqueRef:NULL", "OpaqueRef:NULL")
    remap = {f"vdi:{x.VDI.get_uuid(vdis[0])}": x.VDI.get_uuid(copy)}
    status, headers, body = curl_put(url(agent, "/import_metadata", session_id=s._session, **remap), meta)
    assert wait_task(x, headers["task-id"]) == "success", x.task.get_error_info(headers["task-id"])
    [new] = body.split()
    vbds, _ = devices(x, new)
    assert vbds["0"]["VDI"] == copy  # remapped
    assert vbds["1"]["VDI"] == vdis[1]  # found by its uuid
    x.VM.destroy(new)
    x.VDI.destroy(copy)


def corrupt_chunk(xva: str, out: str) -> None:
    """Flip one byte inside the data of the first disk chunk."""
    with open(xva, "rb") as f:
        data = bytearray(f.read())
    at = data.index(b"/00000000\0") - 5  # the name field of that chunk's header
    header_start = at - at % 512
    data[header_start + 512 + 100] ^= 0xFF
    with open(out, "wb") as f:
        f.write(data)


def test_bad_archives_fail_and_leave_nothing(agent, s, x, source, other_sr, tmp_path):
    vm, _ = source
    xva = str(tmp_path / "vm.xva")
    curl_to_file(url(agent, "/export", session_id=s._session, ref=vm), xva)
    before = counts(x, other_sr)
    target = url(agent, "/import", session_id=s._session, sr_id=other_sr[0])

    bad = str(tmp_path / "corrupt.xva")
    corrupt_chunk(xva, bad)
    status, headers, body = curl_put(target, bad)
    assert status == 200  # the handshake came before the body
    assert wait_task(x, headers["task-id"]) == "failure"
    assert x.task.get_error_info(headers["task-id"]) == ["IMPORT_ERROR_SOME_CHECKSUMS_FAILED"]
    assert body == "IMPORT_ERROR_SOME_CHECKSUMS_FAILED"
    assert counts(x, other_sr) == before

    for cut in (300, os.path.getsize(xva) // 2, os.path.getsize(xva) - 3000):
        short = str(tmp_path / f"short{cut}.xva")
        with open(xva, "rb") as f, open(short, "wb") as g:
            g.write(f.read(cut))
        status, headers, body = curl_put(target, short)
        assert wait_task(x, headers["task-id"]) == "failure"
        assert x.task.get_error_info(headers["task-id"]) == ["IMPORT_ERROR_PREMATURE_EOF"], cut
        assert counts(x, other_sr) == before

    gz = str(tmp_path / "short.xva.gz")
    with open(xva, "rb") as f:
        packed = gzip.compress(f.read())
    with open(gz, "wb") as g:
        g.write(packed[:len(packed) // 2])
    status, headers, body = curl_put(target, gz)
    assert wait_task(x, headers["task-id"]) == "failure"
    assert x.task.get_error_info(headers["task-id"]) == ["IMPORT_ERROR_PREMATURE_EOF"]

    status, headers, body = curl_put(target, xva, "-H", "Transfer-Encoding: chunked")
    assert status == 403
    assert body == "IMPORT_ERROR_CANNOT_HANDLE_CHUNKED"
    assert x.task.get_error_info(headers["task-id"]) == ["IMPORT_ERROR_CANNOT_HANDLE_CHUNKED"]
    assert counts(x, other_sr) == before

    notxva = str(tmp_path / "plain.tar")
    subprocess.run(["tar", "cf", notxva, "-C", str(tmp_path), "corrupt.xva"], check=True)
    status, headers, body = curl_put(target, notxva)
    assert wait_task(x, headers["task-id"]) == "failure"
    assert x.task.get_error_info(headers["task-id"]) == ["IMPORT_ERROR_UNEXPECTED_FILE", "ova.xml", "corrupt.xva"]
    assert counts(x, other_sr) == before


def test_force_takes_a_bad_checksum(agent, s, x, source, other_sr, tmp_path):
    vm, _ = source
    xva, bad = str(tmp_path / "vm.xva"), str(tmp_path / "bad.xva")
    curl_to_file(url(agent, "/export", session_id=s._session, ref=vm), xva)
    corrupt_chunk(xva, bad)
    _status, headers, body = curl_put(url(agent, "/import", session_id=s._session, sr_id=other_sr[0],
                                         force="true"), bad)
    assert wait_task(x, headers["task-id"]) == "success"
    x.VM.destroy(body.split()[0])


def test_export_refusals(agent, s, x, source):
    _vm, _ = source
    out = os.devnull
    status, headers = curl_to_file(url(agent, "/export", session_id=s._session, uuid="nope"), out)
    assert status == 404
    assert x.task.get_error_info(headers["task-id"]) == ["UUID_INVALID", "VM", "nope"]
    running = x.VM.create(vm_record("runs"))
    x.VM.start(running, False, False)
    try:
        status, headers = curl_to_file(url(agent, "/export", session_id=s._session, ref=running), out)
        assert status == 500
        assert x.task.get_error_info(headers["task-id"]) == ["VM_BAD_POWER_STATE", running, "halted, suspended",
                                                            "running"]
    finally:
        x.VM.hard_shutdown(running)
        x.VM.destroy(running)


def test_export_shows_its_operation_and_cancel_stops_it(agent, s, x, source):
    """A client that reads nothing holds the export (backpressure) until the task is cancelled."""
    vm, _ = source
    task = x.task.create("export to cancel", "")
    target = urllib.parse.urlsplit(url(agent, "/export", session_id=s._session, ref=vm, task_id=task))
    sock = socket.create_connection((target.hostname, target.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    try:
        sock.sendall(f"GET {target.path}?{target.query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert sock.recv(12) == b"HTTP/1.1 200"
        wait_for(lambda: x.VM.get_current_operations(vm) == {task: "export"}, 10, "export in current_operations")
        wait_for(lambda: float(x.task.get_progress(task)) > 0.0, 20, "progress on the export's task")
        time.sleep(1.5)
        assert x.task.get_status(task) == "pending"  # held by the client that does not read
        x.task.cancel(task)
        assert wait_task(x, task, timeout=30) == "cancelled"
        assert x.task.get_error_info(task) == ["TASK_CANCELLED", task]
        wait_for(lambda: x.VM.get_current_operations(vm) == {}, 10, "the operation gone")
        sock.settimeout(30)
        got = 0
        while True:  # the agent dropped the connection: what was sent drains, then it ends
            try:
                piece = sock.recv(1 << 20)
            except ConnectionResetError:
                break
            if not piece:
                break
            got += len(piece)
        assert got < 11 << 20
    finally:
        sock.close()


def test_every_handler_wants_a_caller(agent, s, x, source, tmp_path):
    vm, vdis = source
    for path in ("/export", "/export_metadata", "/export_raw_vdi"):
        status, headers = curl_to_file(url(agent, path, ref=vm, vdi=vdis[0]), os.devnull)
        assert status == 401 and headers["www-authenticate"].startswith("Basic")
        status, _ = curl_to_file(url(agent, path, ref=vm, vdi=vdis[0], session_id="OpaqueRef:bogus"), os.devnull)
        assert status == 401
    empty = str(tmp_path / "empty")
    open(empty, "wb").close()
    for path in ("/import", "/import_metadata", "/import_raw_vdi"):
        status, _, _ = curl_put(url(agent, path, vdi=vdis[0]), empty)
        assert status == 401
    # Basic credentials (a session for the request only) and the session cookie both work
    status, _ = curl_to_file(url(agent, "/export_metadata", ref=vm), os.devnull, "-u", f"root:{agent.password}")
    assert status == 200
    status, _ = curl_to_file(url(agent, "/export_metadata", ref=vm), os.devnull,
                             "-b", f"session_id={s._session}")
    assert status == 200
    status, _ = curl_to_file(url(agent, "/export_metadata", ref=vm), os.devnull, "-u", "root:wrong")
    assert status == 401


def test_an_import_killed_half_way_leaves_nothing_after_the_restart(fresh_agent, tmp_path):
    agent = fresh_agent.start()
    s = login(agent)
    x = s.xenapi
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    vm, _, _ = make_vm(agent, x, sr, name="to be killed")
    xva = str(tmp_path / "vm.xva")
    curl_to_file(url(agent, "/export", session_id=s._session, ref=vm), xva)
    sr_dir = os.path.join(agent.state_dir, "sr", x.SR.get_uuid(sr))
    before = (sorted(x.VDI.get_all_records_where(f'field "SR" = "{sr}"')), sorted(os.listdir(sr_dir)),
              len(x.VM.get_all()))
    with open(xva, "rb") as f:
        data = f.read()
    target = urllib.parse.urlsplit(url(agent, "/import", session_id=s._session, sr_id=sr))
    sock = socket.create_connection((target.hostname, target.port))
    try:
        sock.sendall(f"PUT {target.path}?{target.query} HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n".encode() + data[:len(data) // 2])
        wait_for(lambda: len(os.listdir(sr_dir)) > len(before[1]), 20, "the import's volumes")
        fresh_agent.kill()
    finally:
        sock.close()
    fresh_agent.start()
    x = login(fresh_agent).xenapi
    assert sorted(x.VDI.get_all_records_where(f'field "SR" = "{sr}"')) == before[0]
    assert sorted(os.listdir(sr_dir)) == before[1]
    assert len(x.VM.get_all()) == before[2]


def test_a_snapshot_exports_and_comes_back_a_template(agent, s, x, source, other_sr, tmp_path):
    vm, _ = source
    snap = x.VM.snapshot(vm, "snap for export")
    xva = str(tmp_path / "snap.xva")
    status, headers = curl_to_file(url(agent, "/export", session_id=s._session, uuid=x.VM.get_uuid(snap)), xva)
    assert status == 200 and x.task.get_status(headers["task-id"]) == "success"
    status, headers, body = curl_put(url(agent, "/import", session_id=s._session, sr_id=other_sr[0]), xva)
    assert wait_task(x, headers["task-id"]) == "success"
    [new] = body.split()
    rec = x.VM.get_record(new)
    assert rec["is_a_template"] is True and rec["is_a_snapshot"] is False  # as xapi's plain export
    assert rec["name_label"] == "snap for export"
    old_vbds, new_vbds = devices(x, snap)[0], devices(x, new)[0]
    assert disk_bytes(agent, x, new_vbds["1"]["VDI"]) == disk_bytes(agent, x, old_vbds["1"]["VDI"])


def test_the_unix_socket_caller_is_root(agent, x, source):
    vm, _ = source
    r = subprocess.run(["curl", "-sS", "--unix-socket", agent.socket, "-o", "/dev/null", "-w", "%{http_code}",
                        f"http://localhost/export_metadata?ref={vm}"], capture_output=True, text=True,
                       timeout=60, check=True)
    assert r.stdout == "200"


def test_cancelling_an_import_leaves_nothing(agent, s, x, source, other_sr, tmp_path):
    vm, _ = source
    xva = str(tmp_path / "vm.xva")
    curl_to_file(url(agent, "/export", session_id=s._session, ref=vm), xva)
    before = counts(x, other_sr)
    with open(xva, "rb") as f:
        data = f.read()
    task = x.task.create("import to cancel", "")
    target = urllib.parse.urlsplit(url(agent, "/import", session_id=s._session, sr_id=other_sr[0], task_id=task))
    with socket.create_connection((target.hostname, target.port)) as sock:
        sock.sendall(f"PUT {target.path}?{target.query} HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n".encode() + data[:len(data) // 2])
        assert sock.recv(12) == b"HTTP/1.1 200"
        wait_for(lambda: len(counts(x, other_sr)[2]) > len(before[2]), 20, "the import's volumes")
        x.task.cancel(task)
        assert wait_task(x, task, timeout=30) == "cancelled"
        assert x.task.get_error_info(task) == ["TASK_CANCELLED", task]
    wait_for(lambda: counts(x, other_sr) == before, 10, "the import's volumes gone")


def xapi_like_archive(path: str, disk: bytes, uuids: dict | None = None, vif: dict | None = None) -> None:
    """An XVA as another exporter may write it, built here with tarfile and hashlib only:
    a VM record with few fields and one unknown, VM_metrics and host objects we do not
    import, typed <int>s and a dateTime, a gap in the chunk numbers, xapi's empty
    keep-alive chunk, SHA-1 and XXH64 checksum entries mixed."""
    import hashlib
    import io
    import tarfile

    import xxhash

    def v(x):
        if isinstance(x, bool):
            return f"<value><boolean>{int(x)}</boolean></value>"
        if isinstance(x, int):
            return f"<value><int>{x}</int></value>"
        if isinstance(x, dict):
            return "<value><struct>" + "".join(f"<member><name>{k}</name>{v(y)}</member>"
                                               for k, y in x.items()) + "</struct></value>"
        if isinstance(x, list):
            return "<value><array><data>" + "".join(v(y) for y in x) + "</data></array></value>"
        return f"<value>{x}</value>"
    objects = [
        ("VM", "Ref:0", {"name_label": "from elsewhere", "power_state": "Halted", "memory_static_max": "268435456",
                         "memory_dynamic_max": "268435456", "memory_dynamic_min": "268435456",
                         "memory_static_min": "134217728", "VCPUs_max": 1, "VCPUs_at_startup": 1,
                         "is_a_template": False, "VBDs": ["Ref:1"], "VIFs": [], "metrics": "Ref:4",
                         "resident_on": "Ref:5", "HVM_boot_policy": "BIOS order", "a_field_we_lack": "x",
                         "other_config": {"mac_seed": "seed-from-elsewhere"}}),
        ("VBD", "Ref:1", {"VM": "Ref:0", "VDI": "Ref:2", "userdevice": "0", "bootable": True, "mode": "RW",
                          "type": "Disk", "unpluggable": False, "empty": False, "other_config": {}}),
        ("VDI", "Ref:2", {"name_label": "elsewhere disk", "SR": "Ref:3", "virtual_size": str(len(disk)),
                          "type": "user", "sharable": False, "read_only": False, "other_config": {},
                          "snapshot_time": "<dateTime.iso8601>20200101T00:00:00Z</dateTime.iso8601>"}),
        ("SR", "Ref:3", {"name_label": "their SR", "content_type": "user", "VDIs": ["Ref:2"]}),
        ("VM_metrics", "Ref:4", {"memory_actual": "0"}),
        ("host", "Ref:5", {"name_label": "their host"}),
    ]
    version = {"hostname": "elsewhere", "date": "2020-01-01", "product_version": "8.2.1",
               "product_brand": "XCP-ng", "build_number": "release", "xapi_major": 1, "xapi_minor": 20,
               "export_vsn": 2}
    if vif is not None:  # a VIF with these fields, on a network of the archive's
        objects[0][2]["VIFs"] = ["Ref:6"]
        objects += [("VIF", "Ref:6", {"VM": "Ref:0", "network": "Ref:7", "device": "0", "MTU": "1500",
                                      "other_config": {}, **vif}),
                    ("network", "Ref:7", {"name_label": "their net", "bridge": "xenbr-theirs",
                                          "other_config": {}})]
    for c, _i, snap in objects:  # {"VM": uuid, "VDI": uuid}: uuids to put in the archive
        if c in (uuids or {}):
            snap["uuid"] = uuids[c]
    items = [{"class": c, "id": i, "snapshot": s} for c, i, s in objects]
    ova = v({"version": version, "objects": items}).encode()  # the dateTime string above is raw XML
    mib = 1 << 20
    chunks = [(0, disk[:mib], "checksum"), (1, b"", "xxhash"), (3, disk[2 * mib:3 * mib], "xxhash"),
              (4, disk[3 * mib:], "checksum")]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add("ova.xml", ova)
        for n, data, kind in chunks:
            add(f"Ref:2/{n:08d}", data)
            text = hashlib.sha1(data).hexdigest() if kind == "checksum" else xxhash.xxh64_hexdigest(data).upper()
            add(f"Ref:2/{n:08d}.{kind}", text.encode())


def test_an_archive_from_another_exporter(agent, s, x, other_sr, tmp_path):
    mib = 1 << 20
    disk = bytearray(3 * mib + 4096)
    disk[:mib] = b"\x11" * mib
    disk[2 * mib:3 * mib] = b"\x33" * mib  # chunk 1 is zeros: left out, then a keep-alive takes its number
    disk[3 * mib:] = b"\x44" * 4096
    xva = str(tmp_path / "other.xva")
    xapi_like_archive(xva, bytes(disk))
    _, headers, body = curl_put(url(agent, "/import", session_id=s._session, sr_id=other_sr[0]), xva)
    assert wait_task(x, headers["task-id"]) == "success", x.task.get_error_info(headers["task-id"])
    [new] = body.split()
    rec = x.VM.get_record(new)
    assert rec["name_label"] == "from elsewhere" and rec["memory_static_max"] == "268435456"
    assert rec["other_config"]["mac_seed"] != "seed-from-elsewhere"
    [vbd] = x.VM.get_VBDs(new)
    vdi = x.VBD.get_VDI(vbd)
    assert x.VDI.get_name_label(vdi) == "elsewhere disk"
    assert disk_bytes(agent, x, vdi) == bytes(disk)


@pytest.mark.parametrize("bad", ["/", "../..", "not-a-uuid", "{0D6C2B32-9C55-4B4A-9D0B-3C2B2F6D1A11}"])
def test_restore_makes_a_fresh_uuid_for_a_malformed_one(agent, s, x, other_sr, tmp_path, bad):
    xva = str(tmp_path / "bad-uuid.xva")
    xapi_like_archive(xva, bytes(3 * (1 << 20) + 4096), {"VM": bad, "VDI": bad})
    _, headers, body = curl_put(url(agent, "/import", session_id=s._session, sr_id=other_sr[0],
                                    restore="true"), xva)
    assert wait_task(x, headers["task-id"]) == "success", x.task.get_error_info(headers["task-id"])
    [new] = body.split()
    vdi = x.VBD.get_VDI(x.VM.get_VBDs(new)[0])
    for uuid in (x.VM.get_uuid(new), x.VDI.get_uuid(vdi)):
        assert uuid != bad and str(uuidlib.UUID(uuid)) == uuid
    x.VM.destroy(new)
    x.VDI.destroy(vdi)


def test_restoring_an_archive_twice_gives_the_second_copy_fresh_uuids(agent, s, x, other_sr, tmp_path):
    xva = str(tmp_path / "twice.xva")
    vm_uuid, vdi_uuid = str(uuidlib.uuid4()), str(uuidlib.uuid4())
    xapi_like_archive(xva, bytes(3 * (1 << 20) + 4096), {"VM": vm_uuid, "VDI": vdi_uuid})
    made = []
    for _ in range(2):
        _, headers, body = curl_put(url(agent, "/import", session_id=s._session, sr_id=other_sr[0],
                                        restore="true"), xva)
        assert wait_task(x, headers["task-id"]) == "success", x.task.get_error_info(headers["task-id"])
        [new] = body.split()
        made.append((new, x.VBD.get_VDI(x.VM.get_VBDs(new)[0])))
    (vm1, vdi1), (vm2, vdi2) = made
    assert (x.VM.get_uuid(vm1), x.VDI.get_uuid(vdi1)) == (vm_uuid, vdi_uuid)
    assert x.VM.get_uuid(vm2) != vm_uuid and x.VDI.get_uuid(vdi2) != vdi_uuid
    for vm, vdi in made:
        x.VM.destroy(vm)
        x.VDI.destroy(vdi)


@pytest.mark.parametrize("vif,error", [
    ({"MAC": "zz:bb:cc:dd:ee:ff"}, ["MAC_INVALID", "zz:bb:cc:dd:ee:ff"]),
    ({"MAC": "aa:bb:cc:dd:ee:ff", "ipv4_allowed": ["10.0.0.300"]}, ["INVALID_VALUE", "ipv4_allowed", "10.0.0.300"]),
    ({"MAC": "aa:bb:cc:dd:ee:ff", "ipv6_allowed": ["10.0.0.1"]}, ["INVALID_VALUE", "ipv6_allowed", "10.0.0.1"]),
])
def test_an_archives_bad_vif_fails_the_import_and_leaves_nothing(agent, s, x, other_sr, tmp_path, vif, error):
    xva = str(tmp_path / "bad-vif.xva")
    xapi_like_archive(xva, bytes(3 * (1 << 20) + 4096), vif=vif)
    before = counts(x, other_sr), len(x.VIF.get_all()), len(x.network.get_all())
    _, headers, _body = curl_put(url(agent, "/import", session_id=s._session, sr_id=other_sr[0],
                                     restore="true"), xva)
    assert wait_task(x, headers["task-id"]) == "failure"
    assert x.task.get_error_info(headers["task-id"]) == error
    assert (counts(x, other_sr), len(x.VIF.get_all()), len(x.network.get_all())) == before


def test_a_restored_vif_mac_is_written_as_vif_create_does(agent, s, x, other_sr, tmp_path):
    xva = str(tmp_path / "good-vif.xva")
    xapi_like_archive(xva, bytes(3 * (1 << 20) + 4096), vif={"MAC": "AA-BB-CC-DD-EE-0F",
                                                             "ipv4_allowed": ["10.0.0.7"]})
    _, headers, body = curl_put(url(agent, "/import", session_id=s._session, sr_id=other_sr[0],
                                    restore="true"), xva)
    assert wait_task(x, headers["task-id"]) == "success", x.task.get_error_info(headers["task-id"])
    [new] = body.split()
    [vif] = x.VM.get_VIFs(new)
    assert x.VIF.get_MAC(vif) == "aa:bb:cc:dd:ee:0f" and x.VIF.get_ipv4_allowed(vif) == ["10.0.0.7"]
    vdi = x.VBD.get_VDI(x.VM.get_VBDs(new)[0])
    x.VM.destroy(new)
    x.VDI.destroy(vdi)


def test_a_transfer_adopts_only_its_own_sessions_task_unless_superuser(agent, s, x, source, tmp_path):
    vm, _ = source
    proc = subprocess.run([sys.executable, "-m", "hostagent", "passwd", "alice", "--state-dir", agent.state_dir],
                          input="alice-pw\n", capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    alice = XenAPI.Session(agent.url)
    alice.xenapi.login_with_password("alice", "alice-pw", "1.0", "foreign-task-test")
    a = alice.xenapi
    try:
        def export(session, task):
            status, headers = curl_to_file(url(agent, "/export", session_id=session, ref=vm, task_id=task),
                                           str(tmp_path / "t.xva"))
            assert status == 200
            return headers["task-id"]

        roots = x.task.create("root's", "")
        used = export(alice._session, roots)  # alice may not complete root's task
        assert used != roots and x.task.get_status(roots) == "pending"
        assert a.task.get_status(used) == "success"
        mine = a.task.create("alice's", "")
        assert export(alice._session, mine) == mine  # her own
        assert a.task.get_status(mine) == "success"
        hers = a.task.create("alice's too", "")
        assert export(s._session, hers) == hers  # root is a local superuser
        x.task.destroy(roots)
    finally:
        alice.xenapi.session.logout()
