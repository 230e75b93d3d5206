"""server.locks: the SR lock the storage port queues on, first come first served,
holding no thread while it waits (Deferreds on a task.Clock)."""

from twisted.internet import task
from twisted.internet.defer import CancelledError

from hostagent.server.locks import SharedExclusiveLock


def lock():
    clock = task.Clock()
    return SharedExclusiveLock(clock), clock


def fired(d):
    out = []
    d.addBoth(out.append)
    return out


def test_shared_together_exclusive_alone():
    lk, _ = lock()
    r1, r2 = fired(lk.acquire(False)), fired(lk.acquire(False))
    assert r1 == r2 == [True] and lk.readers == 2
    w = fired(lk.acquire(True))
    assert w == []
    lk.release(False)
    assert w == []
    lk.release(False)
    assert w == [True] and lk.writer
    r3 = fired(lk.acquire(False))
    assert r3 == []
    lk.release(True)
    assert r3 == [True]
    lk.release(False)
    assert lk.idle


def test_first_come_first_served_between_conflicts():
    """A reader behind a waiting writer waits for it (writers never starve); the
    writer waits only for the holders and those queued before it (readers that came
    later never pass it); the run of readers after it goes in together."""
    lk, _ = lock()
    order = []

    def take(name, exclusive):
        lk.acquire(exclusive).addCallback(lambda _: order.append(name))

    take("r1", False)
    take("r2", False)          # no writer waits: straight in beside r1
    take("w1", True)
    take("r3", False)          # behind w1
    take("r4", False)
    take("w2", True)
    assert order == ["r1", "r2"] and lk.waiting == 4
    lk.release(False)
    lk.release(False)
    assert order == ["r1", "r2", "w1"]
    lk.release(True)
    assert order == ["r1", "r2", "w1", "r3", "r4"]  # both readers at once
    lk.release(False)
    assert order[-1] == "r4"
    lk.release(False)
    assert order[-1] == "w2"
    lk.release(True)
    assert lk.idle


def test_timeout_and_cancel_leave_the_queue_and_let_others_in():
    lk, clock = lock()
    assert fired(lk.acquire(True)) == [True]
    late = fired(lk.acquire(True, timeout=5))
    cancelled = lk.acquire(True)
    reader = fired(lk.acquire(False, timeout=60))
    clock.advance(5)
    assert late == [False] and lk.waiting == 2
    gone = fired(cancelled)
    cancelled.cancel()
    assert gone[0].check(CancelledError) and lk.waiting == 1
    lk.release(True)
    assert reader == [True]          # neither the timed-out nor the cancelled one holds it
    assert clock.getDelayedCalls() == []  # the granted waiter's timer went too
    lk.release(False)
    assert lk.idle


def test_a_woken_holder_may_release_at_once():
    lk, _ = lock()
    lk.acquire(True)
    seen = []
    lk.acquire(True).addCallback(lambda _: (seen.append("w2"), lk.release(True)))
    lk.acquire(False).addCallback(lambda _: seen.append("r"))
    lk.release(True)
    assert seen == ["w2", "r"] and lk.readers == 1 and not lk.writer
