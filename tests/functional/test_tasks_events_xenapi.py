"""Tasks and events through the real `XenAPI` package against the agent process.

The SDK guide's two loops (§4.1.5 task progress, §4.1.6 register/next with
EVENTS_LOST), event.from as clients use it (whole state on "", long polls that
end on a change or on the timeout), 50 concurrent event.from mirrors kept in
step with 1,000 changes, and clients that hang up in the middle of a long poll.

Session expiry and task collection with injected clocks are unit-tested in
tests/unit/rpc/test_tasks_events.py and test_dispatch.py, not here.

Every wait is bounded: XenAPI sessions use a transport with a socket timeout,
polling loops have deadlines.
"""

import collections
import http.client
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import xmlrpc.client

import pytest
import XenAPI

from .agent import AgentProcess
from tests.support import wait_for

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


@pytest.fixture(scope="module")
def s(agent):
    session = login(agent)
    yield session
    logout(session)


@pytest.fixture(scope="module")
def x(s):
    return s.xenapi


# --------------------------------------------------------------------------- §4.1.5 tasks

def test_progress_loop_over_async_vm_create(s, x):
    task = x.Async.VM.create(vm_record("async-made"))
    assert task.startswith("OpaqueRef:") and task != NULL
    assert x.task.get_name_label(task) == "Async.VM.create"
    seen = progress_loop(x, task)
    assert all(isinstance(p, float) and 0.0 <= p <= 1.0 for p in seen), seen
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    rec = x.task.get_record(task)
    assert rec["status"] == "success"
    assert rec["progress"] == 1.0
    assert rec["error_info"] == []
    m = re.fullmatch(r"<value>(OpaqueRef:[0-9a-f-]{36})</value>", rec["result"])
    assert m, rec["result"]
    vm = m.group(1)
    assert x.VM.get_name_label(vm) == "async-made"
    assert x.VM.get_power_state(vm) == "Halted"
    assert rec["finished"].value != "19700101T00:00:00Z"  # finished is stamped on completion
    assert task in x.session.get_tasks(s._session)  # owned by the calling session

    x.task.destroy(task)
    assert task not in x.session.get_tasks(s._session)
    assert failure_of(x.task.get_status, task) == ["HANDLE_INVALID", "task", task]
    assert task not in x.task.get_all()

    # the same loop over Async.VM.destroy of that VM: a void result is an empty <value>
    task = x.Async.VM.destroy(vm)
    progress_loop(x, task)
    rec = x.task.get_record(task)
    assert (rec["status"], rec["result"], rec["error_info"]) == ("success", "<value></value>", [])
    assert failure_of(x.VM.get_record, vm) == ["HANDLE_INVALID", "VM", vm]
    x.task.destroy(task)
    assert failure_of(x.task.get_record, task) == ["HANDLE_INVALID", "task", task]


def test_progress_loop_follows_a_pending_task_to_the_end(agent, s, x):
    """Today's Async operations finish at once, so the loop's pending branch is driven by a task
    the client made (as xe does around HTTP transfers): its owner moves progress on another
    connection, one step after the loop has seen the previous one."""
    task = x.task.create("client-made", "progress loop")
    assert (x.task.get_status(task), x.task.get_progress(task)) == ("pending", 0.0)
    seen = []
    owner = xmlrpc.client.ServerProxy(agent.url, allow_none=True)  # the same session, another connection
    problems = []

    def advance():
        try:
            for p in (0.25, 0.5, 0.75):
                wait_for(lambda: seen and seen[-1] == (0.0 if p == 0.25 else p - 0.25), 10, f"the loop to read {p}")
                assert owner.task.set_progress(s._session, task, p)["Status"] == "Success"
            wait_for(lambda: seen and seen[-1] == 0.75, 10, "the loop to read 0.75")
            assert owner.task.set_result(s._session, task, "<value>done</value>")["Status"] == "Success"
            assert owner.task.set_status(s._session, task, "success")["Status"] == "Success"
        except Exception as e:  # noqa: BLE001 - reported below
            problems.append(e)

    t = threading.Thread(target=advance)
    t.start()
    deadline = time.monotonic() + 20
    while x.task.get_status(task) == "pending":
        progress = x.task.get_progress(task)
        if not seen or seen[-1] != progress:
            seen.append(progress)
        assert time.monotonic() < deadline and not problems, (seen, problems)
        time.sleep(0.01)
    t.join(10)
    assert problems == []
    assert seen == [0.0, 0.25, 0.5, 0.75]
    rec = x.task.get_record(task)
    assert (rec["status"], rec["result"], rec["error_info"]) == ("success", "<value>done</value>", [])
    assert rec["finished"].value != "19700101T00:00:00Z"
    x.task.destroy(task)
    assert failure_of(x.task.get_status, task) == ["HANDLE_INVALID", "task", task]


def test_failing_async_call_ends_in_failure_with_string_error_info(x):
    dom0 = control_domain(x)
    sync_error = failure_of(x.VM.destroy, dom0)
    assert sync_error[0] == "OPERATION_NOT_ALLOWED"

    task = x.Async.VM.destroy(dom0)
    progress_loop(x, task)
    rec = x.task.get_record(task)
    assert rec["status"] == "failure"
    assert isinstance(rec["error_info"], list) and rec["error_info"]
    assert all(isinstance(e, str) for e in rec["error_info"]), rec["error_info"]
    assert rec["error_info"] == sync_error  # identical to the synchronous ErrorDescription
    assert x.task.get_error_info(task) == sync_error
    assert rec["result"] == ""
    assert x.VM.get_is_control_domain(dom0) is True  # still there
    x.task.destroy(task)
    assert failure_of(x.task.get_status, task) == ["HANDLE_INVALID", "task", task]


# --------------------------------------------------------------------------- §4.1.6 register/next

def guide_event_loop(x, stop, deadline_s=10.0):
    """The guide's watch-all-events loop, bounded: read event.next until `stop(events)`.

    On EVENTS_LOST it re-registers, as the guide says; returns (events, lost count)."""
    events, lost = [], 0
    deadline = time.monotonic() + deadline_s
    while not stop(events):
        assert time.monotonic() < deadline, f"no end after {deadline_s} s; got {summary(events)}"
        try:
            for event in x.event.next():
                name = "(unknown)"
                if "snapshot" in event.keys():
                    snapshot = event["snapshot"]
                    if "name_label" in snapshot.keys():
                        name = snapshot["name_label"]
                event["_name"] = name
                events.append(event)
        except XenAPI.Failure as e:
            if e.details == ["EVENTS_LOST"]:
                lost += 1
                x.event.unregister(["*"])
                x.event.register(["*"])
            else:
                raise
    return events, lost


def summary(events):
    return [(e["class"], e["operation"], e.get("_name")) for e in events]


def test_event_loop_sees_another_clients_add_mod_del(agent):
    reader, writer = login(agent, "reader"), login(agent, "writer")
    try:
        r, w = reader.xenapi, writer.xenapi
        r.event.register(["*"])
        net = w.network.create(net_record("evloop-net", MTU="1400", other_config={"k": "v"}))
        w.network.set_name_label(net, "evloop-renamed")
        w.network.destroy(net)

        events, lost = guide_event_loop(r, lambda evs: any(e["operation"] == "del" for e in evs))
        assert lost == 0
        assert [(e["class"], e["operation"], e["ref"]) for e in events] == [
            ("network", "add", net), ("network", "mod", net), ("network", "del", net)]
        assert [e["_name"] for e in events] == ["evloop-net", "evloop-renamed", "evloop-renamed"]
        add, mod, dele = events
        assert add["snapshot"]["MTU"] == "1400" and add["snapshot"]["other_config"] == {"k": "v"}
        assert mod["snapshot"]["uuid"] == add["snapshot"]["uuid"]
        assert dele["snapshot"]["uuid"] == add["snapshot"]["uuid"]  # event.next keeps the del snapshot
        ids = [int(e["id"]) for e in events]
        assert all(isinstance(e["id"], str) for e in events) and ids == sorted(ids) and len(set(ids)) == 3
        assert all(float(e["timestamp"]) > 0 for e in events)
        assert int(r.event.get_current_id()) > ids[-1]
    finally:
        logout(reader)
        logout(writer)


def test_event_next_refuses_an_unregistered_session(agent):
    s = login(agent, "never-registered")
    try:
        assert failure_of(s.xenapi.event.next) == ["SESSION_NOT_REGISTERED", s._session]
    finally:
        logout(s)


@pytest.fixture(scope="module")
def small_queue_agent(tmp_path_factory):
    a = AgentProcess(str(tmp_path_factory.mktemp("smallq")), extra_args=["--event-queue", "50"]).start()
    yield a
    a.cleanup()


def test_slow_reader_gets_events_lost_then_reregisters(small_queue_agent):
    agent = small_queue_agent
    reader, writer = login(agent, "slow-reader"), login(agent, "busy-writer")
    try:
        r, w = reader.xenapi, writer.xenapi
        nets = [w.network.create(net_record("slow-0"))]
        r.event.register(["*"])

        # 50 waiting events is what --event-queue 50 allows: nothing is lost
        for i in range(50):
            w.network.set_name_label(nets[0], f"slow-{i + 1}")
        batch = r.event.next()
        assert [(e["operation"], e["snapshot"]["name_label"]) for e in batch] == [
            ("mod", f"slow-{i + 1}") for i in range(50)]

        # 60 more while the reader sleeps: its queue overflows
        for i in range(60):
            w.network.set_name_label(nets[0], f"lost-{i}")
        details = failure_of(r.event.next)
        assert details == ["EVENTS_LOST"]
        assert failure_of(r.event.next) == ["EVENTS_LOST"]  # until it registers again

        # the guide's remedy: register again, re-read state, carry on
        r.event.unregister(["*"])
        r.event.register(["*"])
        assert r.network.get_name_label(nets[0]) == "lost-59"
        nets.append(w.network.create(net_record("after-reregister")))
        events, lost = guide_event_loop(r, lambda evs: len(evs) >= 1)
        assert lost == 0
        assert [(e["class"], e["operation"], e["ref"], e["_name"]) for e in events] == [
            ("network", "add", nets[1], "after-reregister")]
        for n in nets:
            w.network.destroy(n)
    finally:
        logout(reader)
        logout(writer)


# --------------------------------------------------------------------------- event.from

def test_event_from_empty_token_returns_everything_with_int_counts(x):
    vm = x.VM.create(vm_record("from-all"))
    try:
        batch = event_from(x, ["*"], "", 0.0)
        assert set(batch) == {"events", "valid_ref_counts", "token"}
        counts, events = batch["valid_ref_counts"], batch["events"]
        assert counts and all(type(v) is int for v in counts.values()), counts  # <i4> on the wire
        assert all(k == k.lower() for k in counts)
        assert "session" not in counts  # sessions make no events
        by_class = collections.Counter(e["class"] for e in events)
        assert {k: v for k, v in counts.items() if v} == dict(by_class)
        assert counts["vm"] == len(x.VM.get_all())
        assert counts["pool"] == 1 and counts["host"] == 1
        assert all(e["operation"] in ("add", "mod") and "snapshot" in e for e in events)
        vm_events = [e for e in events if e["ref"] == vm]
        assert len(vm_events) == 1 and vm_events[0]["snapshot"]["name_label"] == "from-all"
        assert isinstance(batch["token"], str) and batch["token"]
        # mixed case subscriptions and the event_from alias that watch-all-events sends
        again = x.event_from(["VM"], "", 0.0)
        assert {e["ref"] for e in again["events"]} == set(x.VM.get_all())
        assert set(again["valid_ref_counts"]) == {"vm"}
    finally:
        x.VM.destroy(vm)


def test_event_from_long_poll_wakes_on_another_clients_change(agent, x):
    token = event_from(x, ["network"], "", 0.0)["token"]
    writer = login(agent, "from-writer")
    made = {}

    def change():
        time.sleep(0.5)
        made["at"] = time.monotonic()
        made["ref"] = writer.xenapi.network.create(net_record("woke-the-poll"))

    t = threading.Thread(target=change)
    try:
        start = time.monotonic()
        t.start()
        batch = event_from(x, ["network"], token, 30.0)
        returned = time.monotonic()
        t.join(10)
        assert [(e["operation"], e["ref"]) for e in batch["events"]] == [("add", made["ref"])]
        assert returned - made["at"] < 1.0, f"long poll answered {returned - made['at']:.3f} s after the change"
        assert returned - start < 5.0
        assert batch["token"] != token
        writer.xenapi.network.destroy(made["ref"])
    finally:
        logout(writer)


def test_event_from_long_poll_times_out_with_nothing(x):
    token = event_from(x, ["network"], "", 0.0)["token"]
    start = time.monotonic()
    batch = event_from(x, ["network"], token, 2.0)
    elapsed = time.monotonic() - start
    assert batch["events"] == []
    assert 1.9 <= elapsed <= 4.0, f"a 2 s poll with no change took {elapsed:.3f} s"
    assert batch["token"] >= token
    assert type(batch["valid_ref_counts"]["network"]) is int


# --------------------------------------------------------------------------- 50 mirrors

POLLERS = 50
CHANGES = 1000
HOLD_S = 30.0  # how long the pollers are held in their loops
SPREAD_S = 24.0  # the writer spreads its changes over at least this long
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Mirror(threading.Thread):
    """One event.from client keeping {(class, ref): (name_label, other_config)} in step."""

    def __init__(self, agent, index, sentinel, abort):
        super().__init__(name=f"poller-{index}", daemon=True)
        self.agent, self.index, self.sentinel, self.abort = agent, index, sentinel, abort
        self.mirror = {}
        self.anomalies = []
        self.error = None
        self.polls = 0
        self.ready = threading.Event()

    def apply(self, events):
        for e in events:
            key = (e["class"], e["ref"])
            op = e["operation"]
            if e["class"] not in ("vm", "network"):
                self.anomalies.append(("unsubscribed class", op, key))
            if op == "del":
                if "snapshot" in e:
                    self.anomalies.append(("event.from del with a snapshot", key))
                if self.mirror.pop(key, None) is None:
                    self.anomalies.append(("del of an object never seen", key))
                continue
            snap = e["snapshot"]
            if op == "add" and key in self.mirror:
                self.anomalies.append(("add of a known object", key))
            if op == "mod" and key not in self.mirror:
                self.anomalies.append(("mod of an unknown object", key))
            self.mirror[key] = (snap["name_label"], snap["other_config"])

    def run(self):
        s = None
        try:
            s = login(self.agent, f"mirror-{self.index}")
            x = s.xenapi
            batch = event_from(x, ["vm", "network"], "", 5.0)
            self.apply(batch["events"])
            token = batch["token"]
            self.ready.set()
            while True:
                batch = event_from(x, ["vm", "network"], token, 5.0)
                self.polls += 1
                self.apply(batch["events"])
                token = batch["token"]
                if self.sentinel and ("network", self.sentinel[0]) in self.mirror:
                    break
                if self.abort.is_set():
                    raise AssertionError("stopped before it saw the sentinel")
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.ready.set()
            if s is not None:
                logout(s)


def state_of(x):
    out = {}
    for cls, api in (("vm", x.VM), ("network", x.network)):
        for ref, rec in api.get_all_records().items():
            out[(cls, ref)] = (rec["name_label"], rec["other_config"])
    return out


def writer_main(argv):
    """The other client of the 50-mirror test, run as its own process (a writer thread in the
    test process would queue for the GIL behind 50 XML-parsing pollers and crawl).

    argv: url password seed changes spread_seconds; prints a JSON summary on stdout."""
    url, password, seed, changes, spread = argv[0], argv[1], int(argv[2]), int(argv[3]), float(argv[4])
    s = XenAPI.Session(url, transport=TimeoutTransport())
    s.xenapi.login_with_password("root", password, "2.21", "thousand-changes")
    w = s.xenapi
    rng = random.Random(seed)
    live = {"vm": [], "network": []}
    counts = collections.Counter()
    began = time.monotonic()
    for i in range(changes):
        ahead = began + spread * i / changes - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        cls = rng.choice(("vm", "network"))
        api = w.VM if cls == "vm" else w.network
        objs = live[cls]
        op = "create" if len(objs) < 3 else rng.choices(
            ("create", "set_name_label", "add_to_other_config", "destroy"), (2, 3, 3, 2))[0]
        if op == "create":
            objs.append(api.create(vm_record(f"m-vm-{i}") if cls == "vm" else net_record(f"m-net-{i}")))
        elif op == "set_name_label":
            api.set_name_label(rng.choice(objs), f"{cls}-name-{i}")
        elif op == "add_to_other_config":
            api.add_to_other_config(rng.choice(objs), f"k{i}", f"v{i}")
        else:
            api.destroy(objs.pop(rng.randrange(len(objs))))
        counts[op] += 1
    elapsed = time.monotonic() - began
    s.xenapi.session.logout()
    print(json.dumps({"counts": counts, "live": live, "elapsed": elapsed}))


@pytest.mark.slow
def test_fifty_event_from_mirrors_follow_a_thousand_changes(agent, x):
    start = time.monotonic()
    sentinel, abort = [], threading.Event()
    pollers = [Mirror(agent, i, sentinel, abort) for i in range(POLLERS)]
    for p in pollers:
        p.start()
    summary = {"live": {}}
    try:
        for p in pollers:
            assert p.ready.wait(30), f"{p.name} did not get its first batch"
        assert [(p.name, repr(p.error)) for p in pollers if p.error] == []
        assert all(p.mirror == pollers[0].mirror for p in pollers)
        assert p.mirror == state_of(x)
        held_from = time.monotonic()

        code = ("import sys; from tests.functional.test_tasks_events_xenapi import writer_main; "
                "writer_main(sys.argv[1:])")
        done = subprocess.run([sys.executable, "-c", code, agent.url, agent.password, "20261127", str(CHANGES),
                               str(SPREAD_S)], cwd=REPO, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        counts = summary["counts"]
        assert sum(counts.values()) == CHANGES and min(counts.values()) > 100, counts
        if time.monotonic() < held_from + HOLD_S:  # hold the pollers for the full 30 s
            time.sleep(held_from + HOLD_S - time.monotonic())
        assert all(p.is_alive() for p in pollers), [(p.name, repr(p.error)) for p in pollers if not p.is_alive()]
        expected = state_of(x)
        sentinel.append(x.network.create(net_record("sentinel")))  # the last change: pollers stop on it
        expected[("network", sentinel[0])] = ("sentinel", {})
        stop_by = time.monotonic() + 30.0
        for p in pollers:
            p.join(max(0.0, stop_by - time.monotonic()))
        alive = [p.name for p in pollers if p.is_alive()]
        assert alive == [], f"pollers still running: {alive}"
        assert [(p.name, repr(p.error)) for p in pollers if p.error] == []
        for p in pollers:
            assert p.anomalies == [], (p.name, p.anomalies[:5])
            assert p.mirror == expected, (p.name, len(p.mirror), len(expected))
        polls = sum(p.polls for p in pollers)
        print(f"\n50 mirrors: {counts} in {summary['elapsed']:.1f} s, {polls} polls "
              f"({polls / POLLERS:.0f} each), test {time.monotonic() - start:.1f} s")
        assert polls / POLLERS > 20  # they long-polled throughout, not in one final catch-up
    finally:
        abort.set()
        for p in pollers:
            p.join(10)  # a poller blocked in event.from sees abort within its 5 s timeout
        for cls, refs in summary["live"].items():
            api = x.VM if cls == "vm" else x.network
            for ref in refs:
                api.destroy(ref)
        for ref in sentinel:
            x.network.destroy(ref)


# --------------------------------------------------------------------------- hang-ups

def agent_fds(agent):
    return len(os.listdir(f"/proc/{agent.proc.pid}/fd"))


def raw_long_poll_then_hang_up(agent, session, method, params, wait=0.3):
    body = xmlrpc.client.dumps((session, *params), method, allow_none=True).encode()
    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=wait)
    conn.request("POST", "/", body, {"Content-Type": "text/xml"})
    with pytest.raises(TimeoutError):  # still polling: no reply yet
        conn.getresponse()
    conn.close()


def test_client_hanging_up_mid_poll_leaves_nothing_behind(agent, x, s):
    log_mark = len(agent.log_lines)
    token = event_from(x, ["*"], "", 0.0)["token"]
    baseline = agent_fds(agent)
    hanger = login(agent, "hang-up")
    try:
        hanger.xenapi.event.register(["network"])
        for i in range(10):
            raw_long_poll_then_hang_up(agent, hanger._session, "event.from", (["network"], token, 1.0))
        for i in range(3):
            raw_long_poll_then_hang_up(agent, hanger._session, "event.from", (["*"], token, 60.0))
            raw_long_poll_then_hang_up(agent, hanger._session, "event.next", ())
        # the hung-up connections are closed on the agent's side too (login added one: ≤ baseline + 1)
        wait_for(lambda: agent_fds(agent) <= baseline + 1, 10, "the agent to close the hung-up sockets")
        time.sleep(1.2)  # past the 1 s polls' timeouts: their timers must be gone, not fire into dead requests
        net = x.network.create(net_record("after-hang-ups"))  # wakes any waiter left registered
        # the agent still serves long polls and the register/next queue of the session that hung up
        batch = event_from(x, ["network"], token, 5.0)
        assert [e["ref"] for e in batch["events"]] == [net]
        assert [(e["operation"], e["ref"]) for e in hanger.xenapi.event.next()] == [("add", net)]
        x.network.destroy(net)
        assert x.pool.get_all() and agent.alive()
        assert error_lines(agent, log_mark) == [], "".join(agent.log_lines[log_mark:])[-6000:]
    finally:
        logout(hanger)
        hanger.transport.close()
    wait_for(lambda: agent_fds(agent) <= baseline, 10, "the agent's descriptors back at their baseline")
