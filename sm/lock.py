"""Per-SR locks for driver calls, built from each driver's declared exclusive operations.

An exclusive operation (say ``scan`` or ``vol_snapshot`` on a VHD SR) runs
alone on its SR; every other operation shares the SR with other shared ones but
never overlaps an exclusive one. Threading-based: driver calls run in worker
threads, never on the reactor. Locks are per process; on a real pool the master
serialises SR-wide operations before they reach a host.
"""

import threading
import time
from contextlib import contextmanager

from sm.errors import BackendFailure


class _SharedExclusive:
    """A readers-writer lock that lets a waiting writer in before new readers."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self.users = 0  # holders plus waiters, guarded by SRLocks._mutex

    def acquire(self, exclusive: bool, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if exclusive:
                self._writers_waiting += 1
                try:
                    while self._writer or self._readers:
                        if not self._wait(deadline):
                            return False
                finally:
                    self._writers_waiting -= 1
                self._writer = True
            else:
                while self._writer or self._writers_waiting:
                    if not self._wait(deadline):
                        return False
                self._readers += 1
            return True

    def _wait(self, deadline) -> bool:
        if deadline is None:
            self._cond.wait()
            return True
        remaining = deadline - time.monotonic()
        return remaining > 0 and (self._cond.wait(remaining) or time.monotonic() < deadline)

    def release(self, exclusive: bool):
        with self._cond:
            if exclusive:
                self._writer = False
            else:
                self._readers -= 1
            self._cond.notify_all()


class SRLocks:
    """One shared/exclusive lock per SR uuid, created on first use and dropped when idle."""

    def __init__(self):
        self._mutex = threading.Lock()
        self._locks: dict[str, _SharedExclusive] = {}

    @contextmanager
    def hold(self, sr_uuid: str, op: str, exclusive_ops, timeout: float | None = None):
        """Hold the SR's lock for op: alone if op is in exclusive_ops, else shared.

        With a timeout, failing to get the lock raises BackendFailure("LockErr").
        """
        exclusive = op in exclusive_ops
        with self._mutex:
            lock = self._locks.setdefault(sr_uuid, _SharedExclusive())
            lock.users += 1
        try:
            if not lock.acquire(exclusive, timeout):
                raise BackendFailure("LockErr", f"{op} on SR {sr_uuid}: lock not free "
                                                f"after {timeout:g}s")
            try:
                yield
            finally:
                lock.release(exclusive)
        finally:
            with self._mutex:
                lock.users -= 1
                if lock.users == 0:
                    del self._locks[sr_uuid]

    def active(self) -> list[str]:
        """SR uuids with a holder or waiter (for diagnostics and tests)."""
        with self._mutex:
            return sorted(self._locks)
