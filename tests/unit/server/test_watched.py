"""WatchedSource: an adapter's event socket on the reactor, its events handed to the feed in order."""

import socket

from twisted.python.failure import Failure

from hostagent.server.watched import WatchedSource


class LineSource:
    """A socketpair's read end whose read() returns the lines waiting (a stand-in for udev's or
    netlink's sockets, which need root and a kernel)."""

    def __init__(self):
        self.a, self.b = socket.socketpair()
        self.a.setblocking(False)
        self.closed = False

    def fileno(self):
        return self.a.fileno()

    def read(self):
        try:
            return self.a.recv(4096).decode().split()
        except BlockingIOError:
            return []

    def close(self):
        self.closed = True
        self.a.close()
        self.b.close()


class Reactor:
    def __init__(self):
        self.readers = set()

    def addReader(self, r):
        self.readers.add(r)

    def removeReader(self, r):
        self.readers.discard(r)


class Feed:
    def __init__(self):
        self.reports = []

    def put_here(self, kind, value):
        self.reports.append((kind, value))


def test_events_reach_the_feed_in_order_and_stop_closes_the_source():
    source, reactor, feed = LineSource(), Reactor(), Feed()
    watched = WatchedSource(reactor, source, feed, "link")
    watched.start()
    assert reactor.readers == {watched} and watched.fileno() == source.fileno()
    source.b.send(b"eth0 eth1\n")
    watched.doRead()
    watched.doRead()  # nothing more waiting: nothing more reported, and no blocking
    assert feed.reports == [("link", "eth0"), ("link", "eth1")]
    watched.stop()
    assert reactor.readers == set() and source.closed and not watched.watching


def test_a_lost_socket_is_logged_and_no_longer_watched(caplog):
    source, reactor, feed = LineSource(), Reactor(), Feed()
    watched = WatchedSource(reactor, source, feed, "nic")
    watched.start()
    watched.connectionLost(Failure(OSError("gone")))
    assert not watched.watching and "nic events: the socket was lost" in caplog.text
    watched.stop()
    assert source.closed
