"""Shared/exclusive locks whose waiters hold no thread: Deferreds on the reactor.

The storage port queues every driver call on its SR's lock here *before* the
call takes a worker thread, so a long exclusive operation on one SR (a 10 GB
copy, a scan) parks nothing but its own worker, and calls on other SRs run.

Policy: first come, first served between calls that conflict. A request is
granted as soon as it is compatible with the holders (shared with shared,
exclusive alone) and every request queued before it has been granted. So a run
of shared requests at the head of the queue goes in together; a shared request
arriving while only shared holders run and nobody waits goes straight in; one
arriving behind a waiting exclusive request waits for that request alone (and
those ahead of it), so writers never starve behind a stream of readers and
readers never wait for writers that came after them.

All methods run on the reactor thread (where the port's coroutines run).
"""

from collections import deque

from twisted.internet.defer import Deferred


class _Waiter:
    __slots__ = ("exclusive", "d", "timer")

    def __init__(self, exclusive: bool):
        self.exclusive = exclusive
        self.d = None
        self.timer = None


class SharedExclusiveLock:
    """``await lock.acquire(exclusive, timeout)`` gives True once held (False if the
    timeout passed first); ``lock.release(exclusive)`` lets the next ones in.
    Cancelling the Deferred of a waiting acquire leaves the queue."""

    def __init__(self, reactor):
        self.reactor = reactor
        self.readers = 0
        self.writer = False
        self._queue: deque[_Waiter] = deque()

    @property
    def idle(self) -> bool:
        return not (self.readers or self.writer or self._queue)

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def acquire(self, exclusive: bool, timeout: float | None = None) -> Deferred:
        w = _Waiter(exclusive)
        w.d = Deferred(canceller=lambda _: self._leave(w))
        self._queue.append(w)
        self._grant()
        if not w.d.called and timeout is not None:
            w.timer = self.reactor.callLater(max(0.0, timeout), self._expire, w)
        return w.d

    def release(self, exclusive: bool) -> None:
        if exclusive:
            assert self.writer, "release of an exclusive lock nobody holds"
            self.writer = False
        else:
            assert self.readers > 0, "release of a shared lock nobody holds"
            self.readers -= 1
        self._grant()

    def _grant(self) -> None:
        ready = []
        while self._queue:
            w = self._queue[0]
            if w.exclusive:
                if self.writer or self.readers:
                    break
                self.writer = True
            else:
                if self.writer:
                    break
                self.readers += 1
            self._queue.popleft()
            ready.append(w)
        # the state is settled before anyone runs: a woken caller may release at once
        for w in ready:
            self._stop_timer(w)
            w.d.callback(True)

    def _leave(self, w: _Waiter) -> None:
        """A waiter gives up (cancelled or timed out): whoever it held back may go."""
        self._stop_timer(w)
        try:
            self._queue.remove(w)
        except ValueError:
            return
        self._grant()

    def _expire(self, w: _Waiter) -> None:
        w.timer = None
        if w in self._queue:
            self._leave(w)
            w.d.callback(False)

    @staticmethod
    def _stop_timer(w: _Waiter) -> None:
        if w.timer is not None and w.timer.active():
            w.timer.cancel()
        w.timer = None
