"""Tasks, Async calls, operation locking and events, driven by a fake clock (no sleeps)."""

import pytest
from twisted.internet import task as ttask
from twisted.internet.defer import Deferred

from hostagent.actions import all_handlers
from hostagent.actions.bootstrap import ensure_host
from hostagent.actions.oprules import TABLES
from hostagent.datamodel.api import build_api
from hostagent.db.store import Store
from hostagent.rpc.dispatch import Dispatcher, Origin
from hostagent.rpc.events import EventHub, EventLimits
from hostagent.rpc.sessions import SessionManager
from hostagent.rpc.tasks import TaskManager
from hostagent.rpc.xmlrpc import XmlEncoder
from hostagent.server.waiters import Waiter

from .runtime import make_runtime
from .test_dispatch import FACTS


@pytest.fixture(scope="module")
def api():
    return build_api()


class Env:
    def __init__(self, api, extra_handlers=None, queue=5000):
        self.clock = ttask.Clock()
        self.clock.advance(1_700_000_000)
        self.store = Store(api)
        now = self.clock.seconds
        host = ensure_host(self.store, FACTS, "test", now)
        self.sessions = SessionManager(self.store, now, lambda: host)
        self.tasks = TaskManager(self.store, now, lambda: host)
        sleep = lambda s: ttask.deferLater(self.clock, s, lambda: None)  # noqa: E731
        self.sleep = sleep
        self.events = EventHub(self.store, now, lambda: Waiter(self.clock), sleep, EventLimits(queue=queue, spread=0.1),
                               rand=lambda: 0.5)
        self.sessions.on_destroy.append(self.events.session_gone)
        handlers = {**all_handlers(), **(extra_handlers or {})}
        rt = make_runtime(self.store, self.sessions, host, now, tasks=self.tasks, events=self.events, sleep=sleep)
        self.d = Dispatcher(api, rt, handlers, oplock_tables=TABLES, spawn=Deferred.fromCoroutine,
                            fragment=XmlEncoder(api).fragment)
        self.d.oplocks.reset()
        self.s = self.ok("session.login_with_password", "root", "secret")

    def start(self, method, *params):
        """The call as a Deferred (fired or not) of its Reply."""
        out = self.d.call(method, list(params), Origin())
        if isinstance(out, Deferred):
            return out
        if hasattr(out, "__await__") and not hasattr(out, "error"):
            return Deferred.fromCoroutine(out)
        d = Deferred()
        d.callback(out)
        return d

    def reply(self, method, *params):
        d = self.start(method, *params)
        results = []
        d.addBoth(results.append)
        assert results, f"{method} did not finish"
        return results[0]

    def ok(self, method, *params):
        r = self.reply(method, *params)
        assert r.error is None, r.error
        return r.value

    def err(self, method, *params):
        r = self.reply(method, *params)
        assert r.error is not None, f"{method} succeeded: {r.value!r}"
        return r.error

    def new_vm(self, name="vm"):
        return self.ok("VM.create", self.s, vm_record(name))

    def field(self, cls, ref, name):
        return self.store.get(cls, ref)[name]


def vm_record(name):
    return {
        "name_label": name, "name_description": "", "user_version": 1, "is_a_template": False,
        "affinity": "OpaqueRef:NULL", "memory_static_max": 1 << 30, "memory_dynamic_max": 1 << 30,
        "memory_dynamic_min": 1 << 30, "memory_static_min": 1 << 30, "VCPUs_params": {}, "VCPUs_max": 1,
        "VCPUs_at_startup": 1, "actions_after_shutdown": "destroy", "actions_after_reboot": "restart",
        "actions_after_crash": "restart", "PV_bootloader": "", "PV_kernel": "", "PV_ramdisk": "",
        "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "", "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {}, "platform": {}, "PCI_bus": "", "other_config": {}, "recommendations": ""}


def slow(steps=5, cancellable=False):
    """An action that takes `steps` seconds, reporting progress and honouring cancel."""

    async def handler(ctx, ref):
        if cancellable:
            ctx.cancellable()
        for i in range(steps):
            ctx.checkpoint()
            ctx.progress(i / steps)
            await ctx.sleep(1.0)
        with ctx.store.transaction():
            ctx.store.delete(ctx.entry.cls, ref)
        return ""

    return handler


@pytest.fixture
def env(api):
    return Env(api)


def slow_env(api, wire, **kw):
    return Env(api, {wire: slow(**kw)})


# ------------------------------------------------------------------ tasks
def test_async_returns_a_task_with_the_result_as_xml(env):
    t = env.ok("Async.network.create", env.s, {"name_label": "n", "other_config": {}})
    rec = env.ok("task.get_record", env.s, t)
    assert rec["status"] == "success" and rec["progress"] == 1.0
    assert rec["name_label"] == "Async.network.create"
    net = rec["result"][len("<value>"):-len("</value>")]
    assert env.ok("network.get_name_label", env.s, net) == "n"
    assert t in env.ok("session.get_tasks", env.s, env.s)
    env.ok("task.destroy", env.s, t)
    assert env.err("task.get_record", env.s, t) == ["HANDLE_INVALID", "task", t]
    assert env.ok("session.get_tasks", env.s, env.s) == []


def test_async_failure_and_no_async_form(env):
    t = env.ok("Async.network.destroy", env.s, "OpaqueRef:nope")
    assert env.field("task", t, "status") == "failure"
    assert env.field("task", t, "error_info") == ["HANDLE_INVALID", "network", "OpaqueRef:nope"]
    assert env.err("Async.VM.get_record", env.s, "x")[0] == "Fault"
    assert env.err("Async.session.logout", env.s)[0] == "Fault"


def test_progress_then_success(api):
    e = slow_env(api, "network.destroy", steps=4)
    net = e.ok("network.create", e.s, {"name_label": "n", "other_config": {}})
    t = e.ok("Async.network.destroy", e.s, net)
    seen = []
    for _ in range(4):
        seen.append(e.field("task", t, "progress"))
        assert e.field("task", t, "status") == "pending"
        assert e.field("task", t, "finished") == "19700101T00:00:00Z"
        e.clock.advance(1.0)
    assert seen == [0.0, 0.25, 0.5, 0.75]
    assert e.field("task", t, "status") == "success"
    assert not e.store.exists("network", net)


def test_cancel(api):
    e = slow_env(api, "network.destroy", steps=10, cancellable=True)
    net = e.ok("network.create", e.s, {"name_label": "n", "other_config": {}})
    t = e.ok("Async.network.destroy", e.s, net)
    e.clock.advance(1.0)
    assert e.ok("task.get_allowed_operations", e.s, t) == ["cancel"]
    e.ok("task.cancel", e.s, t)
    e.clock.advance(1.0)
    assert e.field("task", t, "status") == "cancelled"
    assert e.field("task", t, "error_info") == ["TASK_CANCELLED", t]
    assert e.field("task", t, "allowed_operations") == []
    assert e.store.exists("network", net)  # stopped before the deletion


def test_cancel_refused_when_not_cancellable(api):
    e = slow_env(api, "network.destroy", steps=3)
    net = e.ok("network.create", e.s, {"name_label": "n", "other_config": {}})
    t = e.ok("Async.network.destroy", e.s, net)
    assert e.err("task.cancel", e.s, t)[0] == "OPERATION_NOT_ALLOWED"
    t2 = e.ok("task.create", e.s, "upload", "")
    assert e.err("task.cancel", e.s, t2)[0] == "OPERATION_NOT_ALLOWED"


def test_destroying_a_pending_task_waits_for_its_end(api):
    e = slow_env(api, "network.destroy", steps=2)
    net = e.ok("network.create", e.s, {"name_label": "n", "other_config": {}})
    t = e.ok("Async.network.destroy", e.s, net)
    e.ok("task.destroy", e.s, t)
    assert e.store.exists("task", t)
    e.clock.pump([1.0, 1.0])
    assert not e.store.exists("task", t)


def test_task_setters_only_for_the_owner(env):
    t = env.ok("task.create", env.s, "upload", "via http")
    env.ok("task.set_progress", env.s, t, 0.5)
    env.ok("task.set_result", env.s, t, "<value>x</value>")
    env.ok("task.set_status", env.s, t, "success")
    assert env.field("task", t, "finished") != "19700101T00:00:00Z"
    other = env.ok("session.login_with_password", "root", "secret")
    assert env.err("task.set_progress", other, t, 0.9)[0] == "RBAC_PERMISSION_DENIED"


def test_task_collection(env):
    done = env.ok("task.create", env.s, "a", "")
    env.ok("task.set_status", env.s, done, "success")
    pending = env.ok("task.create", env.s, "b", "")
    env.clock.advance(64 * 60)
    assert env.tasks.collect() == 0
    env.clock.advance(2 * 60)
    assert env.tasks.collect() == 1 and not env.store.exists("task", done)
    env.clock.advance(24 * 3600)
    assert env.tasks.collect() == 1 and not env.store.exists("task", pending)


def test_at_most_200_completed_tasks_oldest_first(env):
    refs = []
    for i in range(205):
        t = env.ok("task.create", env.s, f"t{i}", "")
        env.ok("task.set_status", env.s, t, "success")
        refs.append(t)
        env.clock.advance(1)
    assert env.tasks.collect() == 5
    assert [r for r in refs if env.store.exists("task", r)] == refs[5:]


# ------------------------------------------------------------ op locking
def test_allowed_operations_follow_state_and_implementation(env):
    vm = env.new_vm()
    # a halted VM: what its power state allows, in the table's order
    assert env.field("VM", vm, "allowed_operations") == [
        "start", "start_on", "clone", "copy", "snapshot", "power_state_reset", "destroy"]
    dom0 = env.store.get("host", env.store.get("pool", next(iter(env.store.all("pool"))))["master"])["control_domain"]
    assert env.field("VM", dom0, "allowed_operations") == []
    assert env.err("VM.destroy", env.s, dom0)[0] == "OPERATION_NOT_ALLOWED"


def test_blocked_operations(env):
    vm = env.new_vm()
    env.ok("VM.add_to_blocked_operations", env.s, vm, "destroy", "keep me")
    assert "destroy" not in env.field("VM", vm, "allowed_operations")
    assert "start" in env.field("VM", vm, "allowed_operations")
    assert env.err("VM.destroy", env.s, vm) == ["OPERATION_BLOCKED", vm, "keep me"]


def test_other_operation_in_progress(api):
    e = slow_env(api, "VM.destroy", steps=3)
    vm = e.new_vm()
    t = e.ok("Async.VM.destroy", e.s, vm)
    assert e.field("VM", vm, "current_operations") == {t: "destroy"}
    assert e.field("VM", vm, "allowed_operations") == []
    assert e.err("VM.destroy", e.s, vm) == ["OTHER_OPERATION_IN_PROGRESS", "VM", vm, "destroy", t]
    t2 = e.ok("Async.VM.destroy", e.s, vm)
    assert e.field("task", t2, "error_info") == ["OTHER_OPERATION_IN_PROGRESS", "VM", vm, "destroy", t]
    e.clock.pump([1.0] * 3)
    assert e.field("task", t, "status") == "success" and not e.store.exists("VM", vm)


# ----------------------------------------------------------------- events
def test_register_next_sees_relations(env):
    env.ok("event.register", env.s, ["*"])
    vm = env.new_vm()
    with env.store.transaction():  # VDI.create needs storage: a record is enough here
        vdi = env.store.create("VDI", {"virtual_size": 1, "type": "user", "managed": True})
    env.ok("event.next", env.s)
    env.ok("VBD.create", env.s, {"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW",
                                  "type": "Disk", "empty": False, "other_config": {},
                                  "qos_algorithm_type": "", "qos_algorithm_params": {}})
    evs = env.ok("event.next", env.s)
    seen = {(e["class"], e["operation"]) for e in evs}
    assert {("vbd", "add"), ("vm", "mod"), ("vdi", "mod")} <= seen
    vm_ev = next(e for e in evs if e["class"] == "vm")
    assert len(vm_ev["snapshot"]["VBDs"]) == 1 and int(vm_ev["id"]) > 0


def test_next_blocks_until_an_event(env):
    env.ok("event.register", env.s, ["network"])
    d = env.start("event.next", env.s)
    got = []
    d.addCallback(got.append)
    env.new_vm()  # not subscribed
    assert got == []
    env.ok("network.create", env.s, {"name_label": "n", "other_config": {}})
    assert got and got[0].value[0]["class"] == "network"


def test_events_lost_then_register_again(api):
    e = Env(api, queue=10)
    e.ok("event.register", e.s, ["network"])
    for i in range(11):
        e.ok("network.create", e.s, {"name_label": f"n{i}", "other_config": {}})
    assert e.err("event.next", e.s) == ["EVENTS_LOST"]
    e.ok("event.register", e.s, ["network"])
    e.ok("network.create", e.s, {"name_label": "after", "other_config": {}})
    evs = e.ok("event.next", e.s)
    assert [x["snapshot"]["name_label"] for x in evs] == ["after"]


def test_next_without_register(env):
    assert env.err("event.next", env.s) == ["SESSION_NOT_REGISTERED", env.s]


def test_next_after_unregistering_everything_is_not_registered(env):
    env.ok("event.register", env.s, ["vm", "network"])
    blocked = env.start("event.next", env.s)
    env.ok("event.unregister", env.s, ["vm"])
    env.ok("event.unregister", env.s, ["network"])
    assert blocked.called and blocked.result.error == ["SESSION_NOT_REGISTERED", env.s]  # woken, not stuck
    assert env.err("event.next", env.s) == ["SESSION_NOT_REGISTERED", env.s]


def test_logout_wakes_a_blocked_next(env):
    other = env.ok("session.login_with_password", "root", "secret")
    env.ok("event.register", other, ["*"])
    d = env.start("event.next", other)
    got = []
    d.addCallback(got.append)
    env.ok("session.logout", other)
    assert got and got[0].error in (["SESSION_INVALID", other], ["SESSION_NOT_REGISTERED", other])


def test_from_full_state_then_diffs(env):
    first = env.ok("event.from", env.s, ["*"], "", 0.0)
    kinds = {e["class"] for e in first["events"]}
    assert {"pool", "host", "vm", "host_cpu"} <= kinds
    assert first["valid_ref_counts"]["vm"] == len(env.store.all("VM"))
    assert all(e["operation"] == "add" and "snapshot" in e for e in first["events"])
    token = first["token"]
    vm = env.new_vm("a")
    gone = env.new_vm("b")
    env.ok("event.from", env.s, ["vm"], token, 0.0)
    mid = env.ok("event.from", env.s, ["vm"], token, 0.0)["token"]
    env.ok("VM.set_name_label", env.s, vm, "a2")
    env.ok("VM.set_name_label", env.s, vm, "a3")
    env.ok("VM.destroy", env.s, gone)
    brief = env.new_vm("brief")
    env.ok("VM.destroy", env.s, brief)
    batch = env.ok("event.from", env.s, ["VM"], mid, 0.0)
    ops = {(e["ref"], e["operation"]) for e in batch["events"]}
    assert ops == {(vm, "mod"), (gone, "del")}
    mod = next(e for e in batch["events"] if e["ref"] == vm)
    assert mod["snapshot"]["name_label"] == "a3"
    assert "snapshot" not in next(e for e in batch["events"] if e["ref"] == gone)
    # from the earlier token, the VM made since then is an add
    again = env.ok("event.from", env.s, ["vm"], token, 0.0)
    assert (vm, "add") in {(e["ref"], e["operation"]) for e in again["events"]}


def test_from_long_poll_wakes_on_change_and_times_out(env):
    token = env.ok("event.from", env.s, ["network"], "", 0.0)["token"]
    d = env.start("event.from", env.s, ["network"], token, 30.0)
    got = []
    d.addCallback(got.append)
    env.clock.advance(10)
    assert got == []
    env.ok("network.create", env.s, {"name_label": "n", "other_config": {}})
    env.clock.advance(0.0999)  # the coalescing pause, 0.05 + 0.1 * 0.5
    assert got == []
    env.clock.advance(0.0002)
    assert got and [e["operation"] for e in got[0].value["events"]] == ["add"]
    d2 = env.start("event.from", env.s, ["network"], got[0].value["token"], 30.0)
    got2 = []
    d2.addCallback(got2.append)
    env.clock.advance(29.9)
    assert got2 == []
    env.clock.advance(0.2)
    assert got2 and got2[0].value["events"] == []


def test_from_errors(env):
    assert env.err("event.from", env.s, ["*"], "garbage", 0.0) == ["EVENT_FROM_TOKEN_PARSE_FAILURE", "garbage"]
    assert env.err("event.from", env.s, ["nosuchclass"], "", 0.0) == [
        "EVENT_SUBSCRIPTION_PARSE_FAILURE", "nosuchclass"]
    assert env.ok("event_from", env.s, ["pool"], "", 0.0)["valid_ref_counts"] == {"pool": 1}


def test_logout_ends_a_long_poll_with_session_invalid(env):
    other = env.ok("session.login_with_password", "root", "secret")
    token = env.ok("event.from", other, ["*"], "", 0.0)["token"]
    d = env.start("event.from", other, ["*"], token, 30.0)
    got = []
    d.addCallback(got.append)
    env.ok("session.logout", other)
    env.clock.advance(0.1)
    assert got and got[0].error == ["SESSION_INVALID", other]


def test_cancelled_poll_leaves_no_waiter(env):
    token = env.ok("event.from", env.s, ["*"], "", 0.0)["token"]
    d = env.start("event.from", env.s, ["*"], token, 30.0)
    assert len(env.events.waiters) == 1
    d.addErrback(lambda f: None)
    d.cancel()
    assert env.events.waiters == set()
    assert env.clock.getDelayedCalls() == [] or all(not c.active() for c in env.clock.getDelayedCalls())


def test_inject_and_current_id(env):
    pool = next(iter(env.store.all("pool")))
    before = env.ok("event.get_current_id", env.s)
    token = env.ok("event.inject", env.s, "pool", pool)
    batch = env.ok("event.from", env.s, ["pool"], token, 0.0)
    assert [(e["ref"], e["operation"]) for e in batch["events"]] == [(pool, "mod")]
    assert env.ok("event.get_current_id", env.s) > before
    assert env.err("event.inject", env.s, "pool", "OpaqueRef:x") == ["HANDLE_INVALID", "pool", "OpaqueRef:x"]
