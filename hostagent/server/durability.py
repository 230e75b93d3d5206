"""Group commit: every store batch reaches SQLite before its call replies.

Batches queue while one write runs in the journal's own thread; the next
write takes all of them in one transaction. `wait(ticket)` gives a fresh
Deferred that fires once that batch (and all before it) is durable.

A write that fails stops the journal for good: the failed batches and every
later one stay unwritten (the disk keeps a prefix of what was acknowledged,
never a later batch over a lost one), waiters get `JournalFailed`, and
`submit` refuses new batches. `on_failure` hears of it once, so the agent
can stop and let its supervisor restart it from the durable state.
"""

import logging
from typing import Callable, List, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

log = logging.getLogger("hostagent.journal")


class JournalFailed(Exception):
    """The journal cannot be written: no change can be acknowledged any more."""


class GroupCommit:
    def __init__(self, reactor, journal, pool=None):
        """`pool`: where writes run (default: a thread of the journal's own)."""
        self.reactor = reactor
        self.journal = journal
        self.pool = pool or ThreadPool(1, 1, name="journal")
        self.pending = []
        self.issued = 0  # tickets handed out
        self.done = 0  # highest durable ticket
        self.failed = None  # the error that stopped the journal, if any
        self.waiters = []  # (ticket, Deferred)
        self.busy = False
        self._scheduled = False
        self.on_durable: List[Callable[[int], None]] = []  # told the highest durable ticket
        self.on_failure: List[Callable[[Exception], None]] = []

    def start(self):
        self.pool.start()

    def stop(self):
        self.pool.stop()

    def check(self) -> None:
        """Raise JournalFailed if the journal has stopped (before changing anything)."""
        if self.failed is not None:
            raise JournalFailed(f"the database cannot be written ({self.failed}); "
                                "the agent accepts no more changes until it is restarted")

    def submit(self, rows) -> int:
        self.check()
        self.issued += 1
        self.pending.append(rows)
        if not self._scheduled:
            # start the write once this reactor turn is over, so that the transactions one
            # call makes in a row (a task, its lock, its first change) share one disk sync
            self._scheduled = True
            self.reactor.callLater(0, self._kick_now)
        return self.issued

    def wait(self, ticket) -> Deferred:
        if ticket is None or ticket <= self.done:
            return succeed(None)
        if self.failed is not None:
            return _failed(self._refusal())
        d = Deferred()
        self.waiters.append((ticket, d))
        return d

    def idle(self) -> bool:
        return not self.busy and not self.pending

    def _kick_now(self):
        self._scheduled = False
        self._kick()

    def durable(self, ticket) -> bool:
        return ticket is None or ticket <= self.done

    def _refusal(self) -> Exception:
        try:
            self.check()
        except JournalFailed as e:
            return e
        raise AssertionError("journal has not failed")

    def _kick(self):
        if self.busy or not self.pending or self.failed is not None:
            return
        batches, self.pending = self.pending, []
        upto = self.issued
        self.busy = True
        d = deferToThreadPool(self.reactor, self.pool, self.journal.write, batches)
        d.addCallbacks(self._written, self._error, callbackArgs=(upto,))

    def _written(self, _, upto):
        self.busy = False
        self.done = upto
        ready = [d for t, d in self.waiters if t <= upto]
        self.waiters = [(t, d) for t, d in self.waiters if t > upto]
        for hook in self.on_durable:
            hook(upto)
        for d in ready:
            d.callback(None)
        self._kick()

    def _error(self, failure):
        self.busy = False
        self.failed = failure.value
        lost = self.issued - self.done
        log.critical("the database cannot be written (%s); %d unacknowledged batch(es) dropped, "
                     "refusing every further change", failure.value, lost)
        self.pending = []  # never written after a lost batch: the disk stays a prefix
        waiters, self.waiters = self.waiters, []
        refusal = self._refusal()
        for _, d in waiters:
            d.errback(refusal)
        for hook in self.on_failure:
            hook(refusal)


def _failed(exc) -> Deferred:
    d = Deferred()
    d.errback(exc)
    return d
