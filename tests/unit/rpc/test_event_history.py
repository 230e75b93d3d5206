"""event.from across restarts: generations journalled with the objects, deletions remembered,
tokens that do not depend on the clock; tokens the diff cannot serve get the whole state.

Each `Run` is one life of an agent's store and event hub on the same SQLite journal, with a
fake clock of its own (so a run can start with its clock stepped back)."""

import pytest
from twisted.internet import task as ttask
from twisted.internet.defer import Deferred

from hostagent.actions.bootstrap import ensure_host
from hostagent.datamodel.api import build_api
from hostagent.db.journal import Journal
from hostagent.db.store import Store
from hostagent.rpc.events import EventHub, EventLimits
from hostagent.server.waiters import Waiter

from .test_dispatch import FACTS

DAY = 86400.0
SESSION = "OpaqueRef:session"


@pytest.fixture(scope="module")
def api():
    return build_api()


class Run:
    def __init__(self, api, path, now=1_700_000_000.0, deletions=50000, at_start=None):
        self.clock = ttask.Clock()
        self.clock.advance(now)
        self.journal = Journal(path)
        self.store = Store(api, submit=self.write)
        self.store.load(self.journal.load())
        ensure_host(self.store, FACTS, "test", self.clock.seconds)
        if at_start:  # changes made at start, before the hub listens
            at_start(self)
        sleep = lambda s: ttask.deferLater(self.clock, s, lambda: None)  # noqa: E731
        self.hub = EventHub(self.store, self.clock.seconds, lambda: Waiter(self.clock), sleep,
                            EventLimits(deletions=deletions, spread=0.1), rand=lambda: 0.5)

    def write(self, rows):
        self.journal.write([rows])

    def close(self):
        self.journal.close()

    def net(self, name):
        with self.store.transaction():
            return self.store.create("network", {"name_label": name})

    def rename(self, ref, name):
        with self.store.transaction():
            self.store.set("network", ref, "name_label", name)

    def destroy(self, ref):
        with self.store.transaction():
            self.store.delete("network", ref)

    def poll(self, token, timeout=0.0, classes=("network",)):
        """event.from as a list that holds the answer once there is one."""
        got = []
        d = Deferred.fromCoroutine(self.hub.from_(SESSION, list(classes), token, timeout, lambda: True))
        d.addBoth(got.append)
        return got

    def answer(self, token, classes=("network",)):
        got = self.poll(token, classes=classes)
        assert got, "event.from did not answer at once"
        return got[0]


def ops(batch):
    return {(e["ref"], e["operation"]) for e in batch["events"]}


def refs(run):
    return set(run.store.all("network"))


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "state.db")


@pytest.mark.parametrize("step", [0.0, -DAY, +DAY], ids=["same-clock", "clock-stepped-back", "clock-ahead"])
def test_an_old_token_gets_exactly_what_changed_after_a_restart(api, path, step):
    first = Run(api, path)
    kept, changed, gone = first.net("kept"), first.net("changed"), first.net("gone")
    token = first.answer("")["token"]
    first.close()

    second = Run(api, path, now=1_700_000_000.0 + 3600 + step)
    new = second.net("new")
    second.rename(changed, "changed after the restart")
    second.destroy(gone)
    batch = second.answer(token)
    assert ops(batch) == {(new, "add"), (changed, "mod"), (gone, "del")}
    assert kept in second.store.all("network")
    assert batch["token"] > token  # tokens stay ordered across the restart and the clock step
    mod = next(e for e in batch["events"] if e["ref"] == changed)
    assert mod["snapshot"]["name_label"] == "changed after the restart"
    # the fresh token is not mistaken for one from the future: a long poll waits for a change
    waiting = second.poll(batch["token"], timeout=30.0)
    second.clock.advance(10)
    assert waiting == []
    later = second.net("later")
    second.clock.advance(0.2)
    assert waiting and ops(waiting[0]) == {(later, "add")}
    second.close()


def test_changes_between_the_token_and_the_restart_are_not_lost(api, path):
    first = Run(api, path)
    a, b = first.net("a"), first.net("b")
    token = first.answer("")["token"]
    first.destroy(a)
    first.rename(b, "b2")
    c = first.net("c")
    brief = first.net("brief")
    first.destroy(brief)
    first.close()
    second = Run(api, path)
    assert ops(second.answer(token)) == {(a, "del"), (b, "mod"), (c, "add")}
    second.close()


def test_changes_made_at_start_before_the_hub_listens_are_reported(api, path):
    first = Run(api, path)
    a, b = first.net("a"), first.net("b")
    token = first.answer("")["token"]
    first.close()

    def at_start(run):
        run.destroy(a)
        run.rename(b, "refreshed at start")

    second = Run(api, path, at_start=at_start)
    assert ops(second.answer(token)) == {(a, "del"), (b, "mod")}
    second.close()


def test_a_token_from_the_future_gets_the_whole_state_at_once(api, path):
    run = Run(api, path)
    nets = {run.net("a"), run.net("b")}
    future = "%020d,%020d" % (run.store.gen + 1000, 0)
    batch = run.answer(future)  # answered at once, not after the timeout
    assert ops(batch) == {(ref, "add") for ref in refs(run)} and nets <= refs(run)
    assert batch["token"] == run.hub.token() < future
    # even with nothing to send, the answer comes at once, with a token that works
    nothing = run.answer(future, classes=("network/OpaqueRef:none",))
    assert nothing["events"] == [] and nothing["token"] == run.hub.token()
    run.close()


def test_a_token_older_than_the_remembered_deletions_gets_the_whole_state(api, path):
    run = Run(api, path, deletions=2)
    kept = run.net("kept")
    doomed = [run.net(f"d{i}") for i in range(3)]
    token = run.answer("")["token"]
    for ref in doomed:
        run.destroy(ref)
    # the first deletion is forgotten: a diff would keep a ghost, so the whole state comes
    assert ops(run.answer(token)) == {(ref, "add") for ref in refs(run)}
    assert (kept, "add") in ops(run.answer(token))
    run.close()
    again = Run(api, path, deletions=2)
    assert ops(again.answer(token)) == {(ref, "add") for ref in refs(again)}
    # a token after the cut still gets a diff
    recent = again.answer("")["token"]
    again.destroy(kept)
    assert ops(again.answer(recent)) == {(kept, "del")}
    again.close()


def test_event_ids_and_current_id_follow_the_journalled_counter(api, path):
    first = Run(api, path)
    first.net("a")
    gen = first.hub.gen
    first.close()
    second = Run(api, path)
    assert second.hub.gen >= gen  # start-up refreshes (the host's facts) count on from there
    before = second.hub.gen
    b = second.net("b")
    batch = second.answer("%020d,%020d" % (before, 0))
    assert [(e["id"], e["ref"]) for e in batch["events"]] == [(str(before + 1), b)]
    second.close()
