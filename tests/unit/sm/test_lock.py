"""sm.lock: exclusive operations run alone on their SR, shared ones together."""

import threading
import time

import pytest

from sm.errors import BackendFailure
from sm.lock import SRLocks

EXCLUSIVE = frozenset({"scan", "vol_snapshot"})
SR_A = "a" * 8
SR_B = "b" * 8


def _run(target, *args):
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_shared_operations_overlap():
    locks = SRLocks()
    inside = threading.Barrier(2, timeout=5)

    def op():
        with locks.hold(SR_A, "vol_stat", EXCLUSIVE):
            inside.wait()  # both threads must be inside at once

    threads = [_run(op), _run(op)]
    for t in threads:
        t.join(5)
    assert not inside.broken


def test_exclusive_operation_waits_for_shared_ones_and_blocks_new_ones():
    locks = SRLocks()
    events = []
    release_reader = threading.Event()
    reader_in = threading.Event()

    def reader():
        with locks.hold(SR_A, "vol_stat", EXCLUSIVE):
            reader_in.set()
            release_reader.wait(5)
            events.append("reader out")

    def writer():
        with locks.hold(SR_A, "scan", EXCLUSIVE):
            events.append("writer in")
            time.sleep(0.1)
            events.append("writer out")

    def late_reader():
        with locks.hold(SR_A, "vol_attach", EXCLUSIVE):
            events.append("late reader in")

    r = _run(reader)
    assert reader_in.wait(5)
    w = _run(writer)
    time.sleep(0.1)
    late = _run(late_reader)  # arrives while the writer waits: must not overtake it
    time.sleep(0.1)
    assert events == []
    release_reader.set()
    for t in (r, w, late):
        t.join(5)
    assert events == ["reader out", "writer in", "writer out", "late reader in"]


def test_two_exclusive_operations_never_overlap():
    locks = SRLocks()
    active = []
    overlaps = []

    def op():
        for _ in range(20):
            with locks.hold(SR_A, "vol_snapshot", EXCLUSIVE):
                active.append(1)
                if len(active) > 1:
                    overlaps.append(True)
                time.sleep(0.001)
                active.pop()

    threads = [_run(op) for _ in range(4)]
    for t in threads:
        t.join(10)
    assert overlaps == []


def test_different_srs_do_not_block_each_other():
    locks = SRLocks()
    with locks.hold(SR_A, "scan", EXCLUSIVE):
        with locks.hold(SR_B, "scan", EXCLUSIVE, timeout=1):
            assert locks.active() == [SR_A, SR_B]


def test_timeout_raises_lock_error_and_leaves_nothing_behind():
    locks = SRLocks()
    with locks.hold(SR_A, "scan", EXCLUSIVE):
        started = time.monotonic()
        with pytest.raises(BackendFailure) as info:
            with locks.hold(SR_A, "vol_stat", EXCLUSIVE, timeout=0.2):
                pass
        assert time.monotonic() - started >= 0.15
        assert info.value.code == "SR_BACKEND_FAILURE_37"
        # The failed waiter must not have left a writer-waiting mark behind.
        with pytest.raises(BackendFailure):
            with locks.hold(SR_A, "scan", EXCLUSIVE, timeout=0.1):
                pass
    with locks.hold(SR_A, "vol_stat", EXCLUSIVE, timeout=1):
        pass
    assert locks.active() == []


def test_exception_inside_releases_the_lock():
    locks = SRLocks()
    with pytest.raises(RuntimeError):
        with locks.hold(SR_A, "scan", EXCLUSIVE):
            raise RuntimeError("driver failed")
    with locks.hold(SR_A, "scan", EXCLUSIVE, timeout=1):
        pass
    assert locks.active() == []


def test_declared_exclusive_operations_come_from_driver_info():
    from sm.drivers.filesr import FileDriver
    locks = SRLocks()
    exclusive = FileDriver.info.exclusive
    assert "vol_snapshot" in exclusive and "vol_stat" not in exclusive
    with locks.hold(SR_A, "vol_snapshot", exclusive):
        with pytest.raises(BackendFailure):
            with locks.hold(SR_A, "vol_stat", exclusive, timeout=0.1):
                pass
