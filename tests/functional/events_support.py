"""What the XenAPI task and event tests share: timeouts on every call, records, small loops.

The `s` and `x` fixtures built on them (a module-wide session and its `xenapi` proxy) are in
conftest.py; modules that need another kind of session define their own."""

import re
import time
import xmlrpc.client

import pytest
import XenAPI


NULL = "OpaqueRef:NULL"
GiB = 1 << 30
CALL_TIMEOUT = 30.0  # no single call of these tests may take longer


# --------------------------------------------------------------------------- helpers

class TimeoutTransport(xmlrpc.client.Transport):
    """xmlrpc.client's HTTP transport with a socket timeout, so no call hangs a test."""

    def __init__(self, timeout=CALL_TIMEOUT):
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host):
        conn = super().make_connection(host)
        conn.timeout = self.timeout
        if conn.sock is not None:
            conn.sock.settimeout(self.timeout)
        return conn


def login(agent, originator="tasks-events-test", timeout=CALL_TIMEOUT):
    s = XenAPI.Session(agent.url, transport=TimeoutTransport(timeout))
    s.xenapi.login_with_password("root", agent.password, "2.21", originator)
    return s


def logout(s):
    try:
        s.xenapi.session.logout()
    except Exception:  # noqa: BLE001 - best effort clean-up
        pass


def event_from(x, classes, token, timeout):
    # `from` is a Python keyword: XenAPI users spell it with getattr (or event_from)
    return getattr(x.event, "from")(classes, token, timeout)


def vm_record(name, **overrides):
    """A full VM.create record (every mandatory member), ints as strings as XenAPI.py users write them."""
    rec = {
        "name_label": name, "name_description": "made by test_tasks_events_xenapi", "user_version": "1",
        "is_a_template": False, "affinity": NULL, "memory_static_max": str(GiB),
        "memory_dynamic_max": str(GiB), "memory_dynamic_min": str(GiB), "memory_static_min": str(GiB),
        "VCPUs_params": {}, "VCPUs_max": "1", "VCPUs_at_startup": "1", "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart", "actions_after_crash": "restart", "PV_bootloader": "",
        "PV_kernel": "", "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "cd"}, "platform": {}, "PCI_bus": "",
        "other_config": {}, "recommendations": "",
    }
    rec.update(overrides)
    return rec


def net_record(name, **overrides):
    rec = {"name_label": name, "name_description": "", "other_config": {}}
    rec.update(overrides)
    return rec


def control_domain(x):
    doms = [r for r, v in x.VM.get_all_records().items() if v["is_control_domain"]]
    assert len(doms) == 1
    return doms[0]


def failure_of(fn, *args):
    with pytest.raises(XenAPI.Failure) as ei:
        fn(*args)
    return ei.value.details


def progress_loop(x, task, deadline_s=10.0, pause=0.02):
    """The guide's §4.1.5 loop (task.* as the datamodel spells the class), bounded.

    Returns every progress value read while the task was pending."""
    seen = []
    deadline = time.monotonic() + deadline_s
    while x.task.get_status(task) == "pending":
        progress = x.task.get_progress(task)
        seen.append(progress)
        assert time.monotonic() < deadline, f"task still pending after {deadline_s} s (progress {seen[-5:]})"
        time.sleep(pause)
    return seen


def error_lines(agent, since=0):
    text = "".join(agent.log_lines[since:])
    return [line for line in text.splitlines()
            if re.search(r" (ERROR|CRITICAL) |Traceback|Unhandled|AlreadyCalled", line)]
