"""The waiter port on Twisted: an awaitable that fires on demand or after a timeout.

`wait(timeout)` gives a Deferred that fires True when `fire()` is called and
False when the timeout passes first (None waits for ever). Cancelling it (a
client hung up mid-poll) also cancels the timer, so nothing is left behind.
"""

from twisted.internet.defer import Deferred


class Waiter:
    __slots__ = ("reactor", "d", "call")

    def __init__(self, reactor):
        self.reactor = reactor
        self.call = None
        self.d = Deferred(canceller=lambda _: self._stop_timer())

    def wait(self, timeout):
        if timeout is not None:
            self.call = self.reactor.callLater(max(0.0, timeout), self._fire, False)
        return self.d

    def fire(self):
        self._fire(True)

    def _fire(self, value):
        self._stop_timer()
        if not self.d.called:
            self.d.callback(value)

    def _stop_timer(self):
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None
