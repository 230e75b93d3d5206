"""The storage port's queues: a long exclusive call on one SR parks no other worker.

Real threads: the agent's ThreadPool(1, 4) and deferToThreadPool, with a stand-in
reactor whose callFromThread hands results to the test's thread, which plays the
reactor thread (it runs every callback and every lock operation). Driver calls are
stand-ins that block on Events, so the test decides when each ends.
"""

import queue
import threading
import time

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from hostagent.backends.storage import Storage, StorageError
from hostagent.server.locks import SharedExclusiveLock

SR_A = "aaaaaaaa-0000-4000-8000-000000000000"
SR_B = "bbbbbbbb-0000-4000-8000-000000000000"


class ThreadReactor:
    """Enough of a reactor for deferToThreadPool: callFromThread queues the call for
    the test's thread, which runs them in `run_until`."""

    def __init__(self):
        self.calls = queue.Queue()

    def callFromThread(self, f, *args, **kw):
        self.calls.put((f, args, kw))

    def run_until(self, predicate, timeout=5.0, what="condition"):
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            try:
                f, args, kw = self.calls.get(timeout=min(left, 0.05))
            except queue.Empty:
                continue
            f(*args, **kw)


class Info:
    exclusive = frozenset({"write", "vol_copy_to"})


class Gauge:
    """Counts driver calls running at once (from the worker threads)."""

    def __init__(self):
        self.mutex = threading.Lock()
        self.now = self.most = 0
        self.started = []

    def enter(self, name):
        with self.mutex:
            self.now += 1
            self.most = max(self.most, self.now)
            self.started.append(name)

    def leave(self):
        with self.mutex:
            self.now -= 1


class FakeDriver:
    """`write` is exclusive, `read` shared; each blocks until its gate opens."""

    info = Info

    def __init__(self, sr_uuid, gauge):
        self.sr_uuid, self.gauge = sr_uuid, gauge
        self.gates = {}

    def gate(self, name):
        return self.gates.setdefault(name, threading.Event())

    def _call(self, name):
        self.gauge.enter(name)
        try:
            if not self.gate(name).wait(10):
                raise RuntimeError(f"{name} was never let go")
            return name
        finally:
            self.gauge.leave()

    def write(self, name):
        return self._call(name)

    def read(self, name):
        return self._call(name)


@pytest.fixture
def port(tmp_path):
    reactor = ThreadReactor()
    pool = ThreadPool(1, 4, name="storage-test")
    pool.start()
    storage = Storage(str(tmp_path), lambda fn, *a: deferToThreadPool(reactor, pool, fn, *a),
                      make_lock=lambda: SharedExclusiveLock(reactor),
                      start=Deferred.fromCoroutine, environ={})
    yield storage, reactor, pool
    if not pool.joined:
        pool.stop()


def call(storage, drv, op, name):
    """Start a storage call; returns the list its outcome lands in."""
    out = []
    Deferred.fromCoroutine(storage.call(drv, op, name)).addBoth(out.append)
    return out


def test_a_held_exclusive_call_parks_one_worker_and_other_srs_go_on(port):
    storage, reactor, pool = port
    gauge = Gauge()
    a, b = FakeDriver(SR_A, gauge), FakeDriver(SR_B, gauge)
    held = call(storage, a, "write", "a-held")
    reactor.run_until(lambda: gauge.started == ["a-held"], what="the long call to start")
    queued = [call(storage, a, op, f"a-{i}") for i, op in
              enumerate(["write", "read", "read", "write", "read", "write"])]
    others = [call(storage, b, "write" if i % 4 == 0 else "read", f"b-{i}") for i in range(10)]
    for i in range(10):
        b.gate(f"b-{i}").set()
    t0 = time.monotonic()
    reactor.run_until(lambda: all(others), timeout=5, what="the calls on SR B")
    assert time.monotonic() - t0 < 2.0
    assert [o[0] for o in others] == [f"b-{i}" for i in range(10)]
    # SR A's queued calls wait without a thread: only the held call has a worker
    time.sleep(0.1)
    assert len(pool.working) == 1 and storage.running == 1 and gauge.now == 1
    assert not any(queued) and held == []
    assert storage.busy_srs() == [SR_A]
    for i in range(6):
        a.gate(f"a-{i}").set()
    a.gate("a-held").set()
    reactor.run_until(lambda: held and all(queued), what="SR A's queue to drain")
    assert held == ["a-held"] and [q[0] for q in queued] == [f"a-{i}" for i in range(6)]
    # first come, first served on A: the queued calls ran in the order they came (the
    # two reads a-1 and a-2 together, in either order)
    started = [n for n in gauge.started if n.startswith("a-")]
    assert started[:2] == ["a-held", "a-0"] and sorted(started[2:4]) == ["a-1", "a-2"]
    assert started[4:] == ["a-3", "a-4", "a-5"]
    reactor.run_until(lambda: storage.busy_srs() == [] and not pool.working,
                      what="the locks to go")


def test_readers_are_held_back_only_by_writers_that_came_first(port):
    """Policy (FIFO between conflicts): a reader arriving while only readers run goes
    straight in; one arriving behind a waiting writer waits for that writer alone;
    the writer does not wait for readers that came after it."""
    storage, reactor, pool = port
    gauge = Gauge()
    a = FakeDriver(SR_A, gauge)
    r1 = call(storage, a, "read", "r1")
    r2 = call(storage, a, "read", "r2")
    reactor.run_until(lambda: sorted(gauge.started) == ["r1", "r2"], what="r1 and r2 together")
    w = call(storage, a, "write", "w")
    r3 = call(storage, a, "read", "r3")
    a.gate("r3").set()
    a.gate("w").set()
    time.sleep(0.1)
    assert sorted(gauge.started) == ["r1", "r2"]
    assert len(pool.working) == 2  # the two readers; w and r3 wait without a thread
    a.gate("r1").set()
    a.gate("r2").set()
    reactor.run_until(lambda: r1 and r2 and w and r3, what="everything")
    assert gauge.started[2:] == ["w", "r3"]
    assert gauge.most == 2


def test_close_refuses_queued_and_new_calls_and_lets_the_running_one_end(port):
    storage, reactor, pool = port
    gauge = Gauge()
    a = FakeDriver(SR_A, gauge)
    running = call(storage, a, "write", "running")
    reactor.run_until(lambda: gauge.started == ["running"], what="the call to start")
    queued = call(storage, a, "read", "queued")
    storage.close()
    late = call(storage, a, "read", "late")
    assert late and isinstance(late[0].value, StorageError)
    assert late[0].value.code == "SR_BACKEND_FAILURE_37" and "stopping" in late[0].value.params[1]
    # the pool is stopped from another thread (as the agent does): it waits for the
    # running call, whose result still arrives
    stopped = threading.Event()
    threading.Thread(target=lambda: (pool.stop(), stopped.set())).start()
    a.gate("running").set()
    reactor.run_until(lambda: running and queued and stopped.is_set(), what="the stop")
    assert running == ["running"]
    assert isinstance(queued[0].value, StorageError) and "stopping" in queued[0].value.params[1]
    assert gauge.started == ["running"]
    assert storage.busy_srs() == []


def test_a_copy_holds_both_srs_in_uuid_order(port):
    storage, reactor, pool = port
    gauge = Gauge()
    a, b = FakeDriver(SR_A, gauge), FakeDriver(SR_B, gauge)
    seen = []

    def vol_copy_to(name, dest):
        seen.append(sorted(storage.busy_srs()))
        return name
    b.vol_copy_to = vol_copy_to
    copy = []
    Deferred.fromCoroutine(storage.call(b, "vol_copy_to", "copy", a)).addBoth(copy.append)
    reactor.run_until(lambda: copy, what="the copy")
    assert copy == ["copy"] and seen == [[SR_A, SR_B]]
    assert storage.busy_srs() == []
