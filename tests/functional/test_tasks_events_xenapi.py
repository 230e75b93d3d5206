"""Tasks and events through the real `XenAPI` package against the agent process.

The SDK guide's two loops (§4.1.5 task progress, §4.1.6 register/next with
EVENTS_LOST), event.from as clients use it (whole state on "", long polls that
end on a change or on the timeout), 50 concurrent event.from mirrors kept in
step with 1,000 changes (test_event_load_xenapi.py), and clients that hang up in the
middle of a long poll (there too).

Session expiry and task collection with injected clocks are unit-tested in
tests/unit/rpc/test_tasks_events.py and test_dispatch.py, not here.

Every wait is bounded: XenAPI sessions use a transport with a socket timeout,
polling loops have deadlines.

Tests marked `lab` use the agent only through TCP and the API and have no tight timing, so
lab/run.py runs them against the agent in the Xen lab's dom0 as well (lab_agent.py).
"""

import collections
import re
import threading
import time
import xmlrpc.client

import pytest
import XenAPI

from tests.support import wait_for

from .agent import AgentProcess
from .events_support import (NULL, control_domain, event_from, failure_of, login, logout, net_record,
                             progress_loop, vm_record)



# --------------------------------------------------------------------------- §4.1.5 tasks

@pytest.mark.lab
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


@pytest.mark.lab
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


@pytest.mark.lab
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


@pytest.mark.lab
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

@pytest.mark.lab
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
