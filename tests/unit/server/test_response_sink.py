"""ResponseSink: a download's end as its task sees it. A client that closes once it has the
whole response (curl does, as soon as Content-Length bytes are in) has not cut it; one that
leaves while pieces still wait, or while the connection holds data back, has."""

import threading

import pytest

from hostagent.server.transfer_common import Gone, ResponseSink


class FakeRequest:
    """A fake of twisted.web's Request: records what is written."""

    def __init__(self):
        self.written, self.finished = [], False

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def write(self, data):
        self.written.append(data)

    def finish(self):
        self.finished = True


class FakeCall:
    """A fake of routes.Call, the part the sink uses: the request, `over`, what runs at the end."""

    def __init__(self):
        self.request, self.over, self.ends = FakeRequest(), False, []

    def at_end(self, fn):
        self.ends.append(fn)

    def client_leaves(self):
        self.over = True
        for fn in self.ends:
            fn()


class FakeReactor:
    """A fake reactor: callFromThread queued until `run()`, as the reactor thread would run it later."""

    def __init__(self):
        self.queued = []

    def callFromThread(self, fn, *args):
        self.queued.append((fn, args))

    def run(self):
        todo, self.queued = self.queued, []
        for fn, args in todo:
            fn(*args)


def drain_in_thread(sink):
    outcome = {}

    def run():
        try:
            sink.drain()
            outcome["ended"] = "drained"
        except Gone:
            outcome["ended"] = "gone"
    t = threading.Thread(target=run)
    t.start()
    return t, outcome


def test_a_client_that_leaves_with_the_whole_response_has_not_cut_it():
    call, reactor = FakeCall(), FakeReactor()
    sink = ResponseSink(call, reactor, depth=2)
    sink.write(b"a")
    sink.write(b"b")
    reactor.run()  # both pieces handed to the connection
    call.client_leaves()  # then the client, having all it was promised, closes
    t, outcome = drain_in_thread(sink)
    t.join(5)
    assert outcome == {"ended": "drained"} and call.request.written == [b"a", b"b"]
    assert not sink.cut


def test_a_client_that_leaves_before_a_piece_was_sent_has_cut_it():
    call, reactor = FakeCall(), FakeReactor()
    sink = ResponseSink(call, reactor, depth=2)
    sink.write(b"a")
    reactor.run()
    sink.write(b"b")  # scheduled for the reactor, not yet written
    call.client_leaves()
    reactor.run()  # the piece arrives after the loss: dropped
    t, outcome = drain_in_thread(sink)
    t.join(5)
    assert outcome == {"ended": "gone"} and call.request.written == [b"a"] and sink.cut


def test_a_client_that_leaves_while_the_connection_holds_data_back_has_cut_it():
    call, reactor = FakeCall(), FakeReactor()
    sink = ResponseSink(call, reactor, depth=2)
    sink.write(b"a")
    reactor.run()
    sink.pauseProducing()  # the connection's buffer is full: data still waits in it
    call.client_leaves()
    t, outcome = drain_in_thread(sink)
    t.join(5)
    assert outcome == {"ended": "gone"} and sink.cut


def test_writing_after_the_client_left_raises():
    call, reactor = FakeCall(), FakeReactor()
    sink = ResponseSink(call, reactor, depth=2)
    call.client_leaves()
    with pytest.raises(Gone):
        sink.write(b"late")
