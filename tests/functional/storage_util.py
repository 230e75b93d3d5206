"""Helpers for the storage functional tests: sessions, VHD files behind the agent's
back (through sm.vhd), reading them back independently (pyvhdi), record snapshots."""

import os
import time
import xmlrpc.client

import XenAPI

from sm import vhd

from .test_xenapi_client import vm_record  # noqa: F401 - re-exported for the storage tests

NULL = "OpaqueRef:NULL"
MiB = 1 << 20
GiB = 1 << 30


def login(agent):
    s = XenAPI.Session(agent.url)
    s.xenapi.login_with_password("root", agent.password, "2.21", "storage-test")
    return s


def failure(fn, *args) -> list:
    """The ErrorDescription of a call that must fail."""
    try:
        fn(*args)
    except XenAPI.Failure as e:
        return e.details
    raise AssertionError(f"{fn} succeeded")


def vdi_record(sr, size, name="disk", **extra):
    rec = {"SR": sr, "virtual_size": str(size), "type": "user", "sharable": False,
           "read_only": False, "other_config": {}, "name_label": name}
    rec.update(extra)
    return rec


def vhd_path(agent_state, sr_uuid, vdi_uuid, location=None):
    """Where the file driver keeps a VDI of an SR whose location is <state>/sr."""
    return os.path.join(location or os.path.join(agent_state, "sr"), sr_uuid, vdi_uuid + ".vhd")


def write(path, writes):
    with vhd.open(path, writable=True) as img:
        for offset, data in writes:
            img.write(offset, data)
        img.flush()


def apply(model: bytearray, writes):
    for offset, data in writes:
        model[offset:offset + len(data)] = data


def read_pyvhdi(path, size, chunk=4 * MiB) -> bytes:
    """The virtual contents of the VHD at path, read by libvhdi through its whole chain."""
    import pyvhdi
    files = []
    try:
        for p in reversed(vhd.chain(path)):
            f = pyvhdi.file()
            f.open(p)
            if files:
                f.set_parent(files[-1])
            files.append(f)
        leaf = files[-1]
        assert leaf.get_media_size() == size
        return b"".join(leaf.read_buffer_at_offset(min(chunk, size - o), o)
                        for o in range(0, size, chunk))
    finally:
        for f in reversed(files):
            f.close()


def records(x, classes=("SR", "VDI", "VBD", "PBD", "SM", "pool", "VM")) -> dict:
    return {c: getattr(x, c).get_all_records() for c in classes}


def wait_task(x, task, timeout=60.0, seen=None):
    """Poll a task until it leaves pending; collects the progress values it showed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = x.task.get_status(task)
        if seen is not None:
            seen.append(float(x.task.get_progress(task)))
        if status not in ("pending", "cancelling"):
            return status
        time.sleep(0.02)
    raise AssertionError(f"task {task} still pending after {timeout}s")


def task_ref_result(x, task) -> str:
    """The ref a successful task returned (its result is an XML-RPC value fragment)."""
    (value,), _ = xmlrpc.client.loads("<params><param>" + x.task.get_result(task)
                                      + "</param></params>")
    return value
