"""An adapter's event socket watched by the reactor, its events handed to the feed.

`WatchedSource(reactor, source, feed, kind)` watches `source.fileno()`; when it
becomes readable, `source.read()` (which must not block: it takes only what is
waiting) returns a list of events and each becomes a `kind` report on the feed,
in order, applied on the reactor like any other adapter's report. No thread: the
reactor's own poll waits on the socket. Used for udev's monitor of network devices
(backends/udev.py: NetDeviceEvents) and for the kernel's link notifications
(backends/netlink/monitor.py).
"""

import logging

from twisted.internet.interfaces import IReadDescriptor
from zope.interface import implementer

log = logging.getLogger("hostagent.watched")


@implementer(IReadDescriptor)
class WatchedSource:
    def __init__(self, reactor, source, feed, kind: str):
        self.reactor = reactor
        self.source = source
        self.feed = feed
        self.kind = kind
        self.watching = False

    def start(self) -> None:
        self.reactor.addReader(self)
        self.watching = True

    def stop(self) -> None:
        if self.watching:
            self.reactor.removeReader(self)
            self.watching = False
        self.source.close()

    def fileno(self) -> int:
        return self.source.fileno()

    def doRead(self):
        for event in self.source.read():
            self.feed.put_here(self.kind, event)

    def connectionLost(self, reason) -> None:
        log.warning("%s events: the socket was lost: %s", self.kind, reason.getErrorMessage())
        self.watching = False

    def logPrefix(self) -> str:
        return f"{self.kind}-events"
