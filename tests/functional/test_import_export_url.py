"""VM.import (issue 12): the agent fetches an XVA from an http URL and imports it as PUT
/import does. The archive is one the agent exported itself (curl on /export), served by a
real HTTP server (http.server in a thread); the call goes through the real XenAPI package.
Bad URLs and bad archives fail with xapi's errors and leave no VM, VDI or file behind."""

import functools
import glob
import http.server
import os
import socket
import threading
import time
import urllib.parse

import pytest

from .storage_util import failure, login, wait_task
from .test_import_export import corrupt_chunk
from .transfer_support import comparable, curl_to_file, devices, disk_bytes, make_vm

pytest.importorskip("pyvhdi", reason="pyvhdi (libvhdi-python) is in setup.cfg's test extra")

NULL = "OpaqueRef:NULL"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        """Requests are not logged: the tests' output stays readable."""

    def copyfile(self, source, outputfile):
        if "cut" in self.path:  # /cut/...: the whole length announced, half the bytes sent
            size = os.fstat(source.fileno()).st_size
            outputfile.write(source.read(size // 2))
            return None
        if "slow" not in self.path:
            return super().copyfile(source, outputfile)
        while True:  # /slow/...: 16 KiB every 10 ms, so that an import lasts long enough to cancel
            piece = source.read(16384)
            if not piece:
                return None
            try:
                outputfile.write(piece)
            except OSError:
                return None
            time.sleep(0.01)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(directory served, base URL) of an HTTP server on a free local port."""
    root = tmp_path_factory.mktemp("served")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def s(agent):
    return login(agent)


@pytest.fixture(scope="module")
def x(s):
    return s.xenapi


@pytest.fixture(scope="module")
def other_sr(x, tmp_path_factory):
    location = str(tmp_path_factory.mktemp("sr2"))
    sr = x.SR.create(x.host.get_all()[0], {"location": location}, "0", "second", "", "file", "",
                     False, {})
    return sr, location


@pytest.fixture(scope="module")
def source(agent, s, x, served):
    """A VM with two disks, a CD drive and a VIF, exported to `vm.xva` on the HTTP server."""
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    vm, _vdis, _ = make_vm(agent, x, sr, name="url source")
    root, _base = served
    query = urllib.parse.urlencode({"session_id": s._session, "ref": vm})
    status, _ = curl_to_file(f"{agent.url.rstrip('/')}/export?{query}", str(root / "vm.xva"))
    assert status == 200
    return vm


def counts(x, other):
    _sr, location = other
    return (len(x.VM.get_all()), len(x.VDI.get_all()), sorted(glob.glob(os.path.join(location, "*", "*"))))


def check_same(agent, x, old, new, sr):
    old_rec, new_rec = x.VM.get_record(old), x.VM.get_record(new)
    assert comparable(new_rec) == comparable(old_rec)
    old_vbds, old_vifs = devices(x, old)
    new_vbds, new_vifs = devices(x, new)
    assert sorted(new_vbds) == sorted(old_vbds) and sorted(new_vifs) == sorted(old_vifs)
    for dev, rec in old_vbds.items():
        assert comparable(new_vbds[dev]) == comparable(rec)
        if rec["type"] == "Disk":
            assert x.VDI.get_SR(new_vbds[dev]["VDI"]) == sr
            assert disk_bytes(agent, x, new_vbds[dev]["VDI"]) == disk_bytes(agent, x, rec["VDI"])
            assert comparable(x.VDI.get_record(new_vbds[dev]["VDI"])) == comparable(x.VDI.get_record(rec["VDI"]))
    for dev, rec in old_vifs.items():
        assert comparable(new_vifs[dev]) == comparable(rec)
    return old_vifs, new_vifs


def test_import_from_url_makes_the_same_vm(agent, x, source, served, other_sr):
    _root, base = served
    sr, _ = other_sr
    refs = getattr(x.VM, "import")(f"{base}/vm.xva", sr, False, False)
    assert len(refs) == 1 and refs[0] != source
    [new] = refs
    assert x.VM.get_uuid(new) != x.VM.get_uuid(source)
    old_vifs, new_vifs = check_same(agent, x, source, new, sr)
    for dev, rec in old_vifs.items():
        assert new_vifs[dev]["MAC"] != rec["MAC"]


def test_async_import_task_has_the_refs_and_progress(agent, x, source, served):
    _root, base = served
    default = x.pool.get_default_SR(x.pool.get_all()[0])
    task = getattr(x.Async.VM, "import")(f"{base}/vm.xva", NULL, False, False)
    seen = []
    assert wait_task(x, task, seen=seen) == "success", x.task.get_error_info(task)
    assert float(x.task.get_progress(task)) == 1.0
    assert seen == sorted(seen) and all(0.0 <= p <= 1.0 for p in seen)
    result = x.task.get_result(task)
    assert result.startswith("<value><array><data><value>OpaqueRef:")
    new = result.split("<value>")[-1].split("</value>")[0]
    assert x.VM.get_is_a_template(new) == x.VM.get_is_a_template(source)
    check_same(agent, x, source, new, default)  # NULL sr: the pool's default SR


def test_full_restore_keeps_uuids(agent, s, x, served, other_sr):
    """The VM exported, then destroyed with its disks: full_restore brings its UUIDs and MACs back."""
    root, base = served
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    vm, vdis, snap = make_vm(agent, x, sr, name="restored")
    query = urllib.parse.urlencode({"session_id": s._session, "ref": vm})
    assert curl_to_file(f"{agent.url.rstrip('/')}/export?{query}", str(root / "restore.xva"))[0] == 200
    vm_uuid = x.VM.get_uuid(vm)
    vdi_uuids = sorted(x.VDI.get_uuid(v) for v in vdis)
    macs = sorted(r["MAC"] for r in devices(x, vm)[1].values())
    x.VM.destroy(vm)
    for vdi in (*vdis, snap):
        x.VDI.destroy(vdi)
    [new] = getattr(x.VM, "import")(f"{base}/restore.xva", other_sr[0], True, False)
    assert x.VM.get_uuid(new) == vm_uuid
    vbds, vifs = devices(x, new)
    assert sorted(x.VDI.get_uuid(r["VDI"]) for r in vbds.values() if r["type"] == "Disk") == vdi_uuids
    assert sorted(r["MAC"] for r in vifs.values()) == macs


def test_bad_urls_and_archives_fail_and_leave_nothing(agent, x, source, served, other_sr):
    root, base = served
    sr, _ = other_sr
    imp = getattr(x.VM, "import")
    before = counts(x, other_sr)

    assert failure(imp, f"{base}/missing.xva", sr, False, False) == ["IMPORT_ERROR", "404 Not Found"]
    with socket_closed() as port:  # nothing listens there
        err = failure(imp, f"http://127.0.0.1:{port}/vm.xva", sr, False, False)
    assert err[0] == "IMPORT_ERROR" and "refused" in err[1].lower(), err
    err = failure(imp, "file:///etc/passwd", sr, False, False)
    assert err[0] == "IMPORT_ERROR" and "not an http or https URL" in err[1], err
    assert counts(x, other_sr) == before

    with open(root / "vm.xva", "rb") as f:
        whole = f.read()
    for cut in (300, len(whole) // 2, len(whole) - 3000):
        (root / "short.xva").write_bytes(whole[:cut])
        assert failure(imp, f"{base}/short.xva", sr, False, False) == ["IMPORT_ERROR_PREMATURE_EOF"], cut
        assert counts(x, other_sr) == before

    (root / "cut").mkdir(exist_ok=True)
    (root / "cut" / "vm.xva").write_bytes(whole)  # the server closes after half its Content-Length
    assert failure(imp, f"{base}/cut/vm.xva", sr, False, False) == ["IMPORT_ERROR_PREMATURE_EOF"]
    assert counts(x, other_sr) == before

    corrupt_chunk(str(root / "vm.xva"), str(root / "corrupt.xva"))
    task = getattr(x.Async.VM, "import")(f"{base}/corrupt.xva", sr, False, False)
    assert wait_task(x, task) == "failure"
    assert x.task.get_error_info(task) == ["IMPORT_ERROR_SOME_CHECKSUMS_FAILED"]
    assert counts(x, other_sr) == before

    # force takes the bad chunk, as /import's force=true does
    [new] = imp(f"{base}/corrupt.xva", sr, False, True)
    assert x.VM.get_name_label(new) == x.VM.get_name_label(source)
    x.VM.destroy(new)


def test_cancelled_import_leaves_nothing(agent, x, source, served, other_sr):
    root, base = served
    (root / "slow").mkdir(exist_ok=True)
    (root / "slow" / "vm.xva").write_bytes((root / "vm.xva").read_bytes())
    before = counts(x, other_sr)
    task = getattr(x.Async.VM, "import")(f"{base}/slow/vm.xva", other_sr[0], False, False)
    deadline = time.monotonic() + 30
    while float(x.task.get_progress(task)) == 0.0 and time.monotonic() < deadline:
        time.sleep(0.05)  # until chunks are being written
    assert x.task.get_status(task) == "pending"
    x.task.cancel(task)
    assert wait_task(x, task) == "cancelled"
    assert x.task.get_error_info(task) == ["TASK_CANCELLED", task]
    assert counts(x, other_sr) == before


def test_empty_sr_is_the_default_sr(x, source, served):
    _root, base = served
    default = x.pool.get_default_SR(x.pool.get_all()[0])
    [new] = getattr(x.VM, "import")(f"{base}/vm.xva", "", False, False)
    vbds, _ = devices(x, new)
    assert {x.VDI.get_SR(r["VDI"]) for r in vbds.values() if r["type"] == "Disk"} == {default}


def test_bad_sr_is_refused_before_any_fetch(x, served):
    _root, base = served
    assert failure(getattr(x.VM, "import"), f"{base}/vm.xva", "OpaqueRef:nonsense", False, False) == \
        ["HANDLE_INVALID", "SR", "OpaqueRef:nonsense"]


class socket_closed:
    """A local port nobody listens on, for the time of the block."""

    def __enter__(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        return self.port

    def __exit__(self, *exc):
        return False

