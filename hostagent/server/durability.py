"""Group commit: every store batch reaches SQLite before its call replies.

Batches queue while one write runs in the journal's own thread; the next
write takes all of them in one transaction. `wait(ticket)` gives a fresh
Deferred that fires once that batch (and all before it) is durable.
"""

import logging

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

log = logging.getLogger("hostagent.journal")


class GroupCommit:
    def __init__(self, reactor, journal):
        self.reactor = reactor
        self.journal = journal
        self.pool = ThreadPool(1, 1, name="journal")
        self.pending = []
        self.issued = 0  # tickets handed out
        self.done = 0  # highest durable ticket
        self.failed = None  # the error that stopped the journal, if any
        self.waiters = []  # (ticket, Deferred)
        self.busy = False

    def start(self):
        self.pool.start()

    def stop(self):
        self.pool.stop()

    def submit(self, rows) -> int:
        self.issued += 1
        self.pending.append(rows)
        self._kick()
        return self.issued

    def wait(self, ticket) -> Deferred:
        if self.failed is not None:
            return _failed(self.failed)
        if ticket is None or ticket <= self.done:
            return succeed(None)
        d = Deferred()
        self.waiters.append((ticket, d))
        return d

    def idle(self) -> bool:
        return not self.busy and not self.pending

    def _kick(self):
        if self.busy or not self.pending:
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
        for d in ready:
            d.callback(None)
        self._kick()

    def _error(self, failure):
        self.busy = False
        self.failed = failure.value
        log.critical("the database cannot be written; refusing further changes: %s", failure.value)
        waiters, self.waiters = self.waiters, []
        for _, d in waiters:
            d.errback(failure.value)


def _failed(exc) -> Deferred:
    d = Deferred()
    d.errback(exc)
    return d
