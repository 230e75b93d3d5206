"""Group commit over the real SQLite journal, with writes run when the test says so."""

import sqlite3

import pytest
from twisted.python.failure import Failure

from hostagent.datamodel.api import build_api
from hostagent.db.journal import Journal, JournalError
from hostagent.db.store import Store
from hostagent.server.durability import GroupCommit, JournalFailed


class InlineReactor:
    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)

    def callLater(self, delay, f, *args, **kwargs):
        f(*args, **kwargs)


class ManualPool:
    """A stand-in for the journal's thread: each write waits until `run_next()`."""

    def __init__(self):
        self.queue = []

    def callInThreadWithCallback(self, on_result, f, *args, **kwargs):
        self.queue.append((on_result, f, args, kwargs))

    def run_next(self):
        on_result, f, args, kwargs = self.queue.pop(0)
        try:
            result = f(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - handed on as the pool would
            on_result(False, Failure(e))
        else:
            on_result(True, result)

    def start(self):
        pass

    def stop(self):
        pass


class FailingJournal(Journal):
    """The real journal, whose write number `fail_at` (1-based) fails like a full disk."""

    def __init__(self, path, fail_at):
        super().__init__(path)
        self.fail_at = fail_at
        self.writes = 0

    def write(self, batches):
        self.writes += 1
        if self.writes == self.fail_at:
            raise JournalError("cannot write database: database or disk is full")
        super().write(batches)


@pytest.fixture(scope="module")
def api():
    return build_api()


def make(api, tmp_path, fail_at):
    journal = FailingJournal(str(tmp_path / "state.db"), fail_at)
    pool = ManualPool()
    commit = GroupCommit(InlineReactor(), journal, pool=pool)
    store = Store(api, submit=commit.submit)
    commit.on_durable.append(store.settled)
    return journal, pool, commit, store


def create_vm(store, name):
    with store.transaction():
        return store.create("VM", {"name_label": name})


def names_on_disk(path):
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT data FROM objects WHERE cls='VM'").fetchall()
    import json
    return sorted(json.loads(d)["r"]["name_label"] for (d,) in rows)


def test_a_failed_write_stops_every_later_batch(api, tmp_path):
    """Batches queued behind a failed write are never written, later transactions are
    refused and undone, and the disk keeps exactly what was acknowledged before."""
    journal, pool, commit, store = make(api, tmp_path, fail_at=2)
    failures = []
    commit.on_failure.append(failures.append)
    create_vm(store, "a")
    pool.run_next()  # write 1: "a" is durable
    acked = []
    commit.wait(store.last_durable).addCallback(lambda _: acked.append("a"))
    create_vm(store, "b")  # write 2 starts (and will fail)
    create_vm(store, "c")  # queued behind it
    create_vm(store, "d")
    b_done = []
    commit.wait(store.last_durable).addBoth(b_done.append)
    pool.run_next()  # write 2 fails
    assert acked == ["a"]
    assert len(b_done) == 1 and isinstance(b_done[0], Failure) and b_done[0].check(JournalFailed)
    assert len(failures) == 1 and "disk is full" in str(failures[0])
    assert pool.queue == []  # c and d are never written over the lost b
    before = sorted(r["name_label"] for r in store.all("VM").values())
    with pytest.raises(JournalFailed, match="accepts no more changes"):
        create_vm(store, "e")
    assert sorted(r["name_label"] for r in store.all("VM").values()) == before  # e was undone
    assert "e" not in before
    commit.journal.close()
    assert names_on_disk(str(tmp_path / "state.db")) == ["a"]


def test_reads_wait_until_what_they_report_is_durable(api, tmp_path):
    """store.unsettled names the ticket a read of an object must wait for."""
    journal, pool, commit, store = make(api, tmp_path, fail_at=0)
    vm = create_vm(store, "a")
    other = create_vm(store, "b")
    ticket = store.unsettled("VM", vm)
    assert ticket is not None and not commit.durable(ticket)
    pool.run_next()  # writes "a" (then "b" goes in the next write)
    assert store.unsettled("VM", vm) is None
    assert store.unsettled("VM", other) is not None and store.unsettled() is not None
    pool.run_next()
    assert store.unsettled("VM", other) is None and store.unsettled() is None and not store.pending
    journal.close()


def test_task_success_is_not_reported_before_it_is_durable(api, tmp_path):
    """task.get_status answers `success` only once the task's completion is on disk."""
    from twisted.internet.defer import Deferred

    from hostagent.actions import all_handlers
    from hostagent.actions.bootstrap import ensure_host
    from hostagent.actions.oprules import TABLES
    from hostagent.rpc.dispatch import Dispatcher, Origin, Reply
    from hostagent.rpc.sessions import SessionManager
    from hostagent.rpc.tasks import TaskManager
    from hostagent.rpc.xmlrpc import XmlEncoder

    from ..rpc.runtime import make_runtime
    from ..rpc.test_dispatch import FACTS

    journal, pool, commit, store = make(api, tmp_path, fail_at=0)
    clock = lambda: 1_000_000.0  # noqa: E731
    host = ensure_host(store, FACTS, "test", clock)
    sessions = SessionManager(store, clock, lambda: host)
    tasks = TaskManager(store, clock, lambda: host)
    rt = make_runtime(store, sessions, host, clock, tasks=tasks, wait_durable=commit.wait)
    gate = Deferred()

    async def destroy_when_told(ctx, vm):
        await gate
        return ""
    d = Dispatcher(api, rt, {**all_handlers(), "VM.destroy": destroy_when_told}, oplock_tables=TABLES,
                   spawn=Deferred.fromCoroutine, fragment=XmlEncoder(api).fragment)

    def drain():
        while pool.queue:
            pool.run_next()

    def call(method, *params):
        out = d.call(method, list(params), Origin())
        if isinstance(out, Reply):
            return out, True
        results = []
        Deferred.fromCoroutine(out).addBoth(results.append)
        answered_at_once = bool(results)
        drain()
        assert results, f"{method} never answered"
        return results[0], answered_at_once

    drain()
    s, _ = call("session.login_with_password", "root", "secret", "1.0", "test")
    assert s.error is None, s.error
    s = s.value
    vm = create_vm(store, "v")
    drain()
    task, _ = call("Async.VM.destroy", s, vm)
    task = task.value
    assert store.get("task", task)["status"] == "pending"
    gate.callback(None)  # the work ends: the task succeeds in memory, its write is queued
    assert store.get("task", task)["status"] == "success" and pool.queue
    out = d.call("task.get_status", [s, task], Origin())
    assert not isinstance(out, Reply), "answered before the task's completion was durable"
    results = []
    Deferred.fromCoroutine(out).addBoth(results.append)
    assert results == []
    drain()
    assert results[0].value == "success"
    journal.close()
