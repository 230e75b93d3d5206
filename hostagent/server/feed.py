"""Reports from adapters' threads onto the reactor, one at a time, in order.

`Feed.put(kind, value)` may be called from any thread (libvirt's event loop,
a sampler in a worker pool). Each report is applied by the reconcilers on
the reactor after the one before it has finished, so a burst of events for
one domain lands in the order libvirt sent it. A failing report is logged
and does not stop the ones after it.
"""

import logging

from twisted.internet.defer import Deferred, succeed

log = logging.getLogger("hostagent.feed")


class Feed:
    def __init__(self, reactor, apply):
        """`apply(kind, value)` is a coroutine function (Reconcilers.apply)."""
        self.reactor = reactor
        self.apply = apply
        self._tail = succeed(None)
        self.applied = 0

    def put(self, kind: str, value) -> None:
        """Thread-safe: queue one report."""
        self.reactor.callFromThread(self.put_here, kind, value)

    def put_here(self, kind: str, value) -> Deferred:
        """On the reactor: queue one report; the Deferred fires once it is applied."""
        done = Deferred()

        def run(_):
            return Deferred.fromCoroutine(self.apply(kind, value)).addBoth(finished)

        def finished(result):
            self.applied += 1
            if hasattr(result, "getTraceback"):
                log.error("applying a %s report failed: %s", kind, result.getTraceback())
            done.callback(None)
            return None

        self._tail = self._tail.addCallback(run)
        return done
