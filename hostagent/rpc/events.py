"""Events: the register/next queues and the event.from state diff.

The hub listens to every committed store batch. Each change carries its
generation, a number the store assigns and journals (so it goes on across
restarts, whatever the clock does). `event.next` sessions get the change, with
a snapshot taken then, in a bounded queue of their own (overflow: EVENTS_LOST
until they register again). `event.from` is a diff: objects changed since the
token's generation appear once, as `add` (created since) or `mod`, with their
current record; objects deleted since appear as `del` with no snapshot. A token
the diff cannot serve (older than the oldest remembered deletion, or newer than
the newest generation: another agent's, or forged) gets the whole state as
`add`, at once. Waiting uses the injected waiter port, so a long poll holds no
thread.
"""

import bisect
import random
from dataclasses import dataclass
from typing import Callable, Dict, List

from ..datamodel.errors import ApiError
from ..db.store import Change, Store


class SharedValue(dict):
    """A reply value many callers get at once (an event batch in a storm).

    Encoders may keep their output for it in `encoded` and reuse it."""

    __slots__ = ("encoded",)

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.encoded = {}


class TypedRecord(dict):
    """A record that remembers its class, so encoders can type its fields."""

    __slots__ = ("cls",)

    def __init__(self, cls: str, rec: dict):
        super().__init__(rec)
        self.cls = cls


@dataclass(frozen=True)
class EventLimits:
    queue: int = 5000  # events a register/next session may have waiting
    deletions: int = 50000  # deletions remembered for event.from
    coalesce: float = 0.05  # seconds event.from waits for more changes once woken
    # a session's successive event.from answers are at least coalesce + [0, spread) seconds
    # apart, so a burst of changes arrives in one reply and pollers that are answered together
    # come back spread out; the spread widens with the number of calls in progress (`spread`
    # per `crowd` of them, at most `spread_max`), bounding how often a crowd of pollers cycles,
    # while a lone poller still hears of a change within coalesce + spread
    spread: float = 0.2
    crowd: int = 10
    spread_max: float = 1.0


class _Queue:
    __slots__ = ("subs", "events", "lost", "waiters")

    def __init__(self):
        self.subs = set()
        self.events = []
        self.lost = False
        self.waiters = set()


class EventHub:
    def __init__(self, store: Store, clock: Callable[[], float], make_waiter: Callable,
                 sleep: Callable, limits: EventLimits = EventLimits(), rand: Callable[[], float] = None):
        self.store = store
        self.api = store.api
        self.clock = clock
        self.make_waiter = make_waiter
        self.sleep = sleep
        self.limits = limits
        self.rand = rand or random.random
        self.classes = {c.lower(): c for c, k in self.api.classes.items() if k.stored and k.events}
        # per object the generations that created and last changed it, and the newest
        # deletions (gen, key, created gen): kept by the store, journalled with the objects
        store.limit_deletions(limits.deletions)
        self.added: Dict[tuple, int] = store.born
        self.mod: Dict[tuple, int] = store.changed
        self.log: List[tuple] = sorted((g, k) for k, g in self.mod.items())  # (gen, key), gens increasing
        self.queues: Dict[str, _Queue] = {}
        self.waiters = set()
        self.inflight = 0  # event.from calls in progress
        self.answered: Dict[str, float] = {}  # session -> when event.from last answered it
        self._batches = {}  # (subscriptions, token gen) -> batch, for the current generation
        store.listeners.append(self.on_changes)

    @property
    def gen(self) -> int:
        """The generation of the newest change."""
        return self.store.gen

    # ---------------------------------------------------------------- intake
    def on_changes(self, changes: List[Change]) -> None:
        self._batches.clear()
        now = "%.6f" % self.clock()
        for ch in changes:
            if not ch.gen:
                continue  # a class without events
            if ch.op != "del":
                self.log.append((ch.gen, (ch.cls, ch.ref)))
            if self.queues:
                ev = {"id": str(ch.gen), "timestamp": now, "class": ch.cls.lower(), "operation": ch.op,
                      "ref": ch.ref, "snapshot": TypedRecord(ch.cls, ch.record)}
                for q in self.queues.values():
                    if _matches(q.subs, ch.cls, ch.ref):
                        if len(q.events) >= self.limits.queue:
                            q.lost = True
                            q.events = []
                        elif not q.lost:
                            q.events.append(ev)
        if len(self.log) > 2 * len(self.mod) + 1000:
            self.log = sorted((g, k) for k, g in self.mod.items())
        self._wake(self.waiters)
        for q in self.queues.values():
            self._wake(q.waiters)

    def _wake(self, waiters) -> None:
        for w in list(waiters):
            w.fire()

    def session_gone(self, session: str) -> None:
        self.answered.pop(session, None)
        q = self.queues.pop(session, None)
        if q:
            self._wake(q.waiters)
        self._wake(self.waiters)

    # --------------------------------------------------------- subscriptions
    def parse_subs(self, classes) -> set:
        subs = set()
        for s in classes:
            name, _, ref = s.partition("/")
            name = name.lower()
            if name != "*" and name not in self.classes:
                raise ApiError("EVENT_SUBSCRIPTION_PARSE_FAILURE", s)
            subs.add((name if name == "*" else self.classes[name], ref))
        return subs

    def register(self, session: str, classes) -> None:
        subs = self.parse_subs(classes)
        q = self.queues.get(session)
        if q is None or q.lost:
            old = q
            q = self.queues[session] = _Queue()
            if old:
                q.subs = old.subs
                q.waiters = old.waiters
        q.subs |= subs

    def unregister(self, session: str, classes) -> None:
        q = self.queues.get(session)
        if q:
            q.subs -= self.parse_subs(classes)
            if not q.subs:  # registered for nothing: as before any register
                del self.queues[session]
                self._wake(q.waiters)

    async def next(self, session: str, alive: Callable[[], bool]) -> list:
        q = self.queues.get(session)
        if q is None:
            raise ApiError("SESSION_NOT_REGISTERED", session)
        while True:
            if not alive():
                raise ApiError("SESSION_INVALID", session)
            q = self.queues.get(session)
            if q is None:
                raise ApiError("SESSION_NOT_REGISTERED", session)
            if q.lost:
                raise ApiError("EVENTS_LOST")
            if q.events:
                out, q.events = q.events, []
                return out
            w = self.make_waiter()
            q.waiters.add(w)
            try:
                await w.wait(None)
            finally:
                q.waiters.discard(w)

    # ------------------------------------------------------------ event.from
    def token(self) -> str:
        return "%020d,%020d" % (self.gen, 0)

    @staticmethod
    def parse_token(token: str) -> int:
        if token == "":
            return 0
        first = token.split(",", 1)[0].strip()
        if not first.isdigit():
            raise ApiError("EVENT_FROM_TOKEN_PARSE_FAILURE", token)
        if "," in token and not token.split(",", 1)[1].strip().isdigit():
            raise ApiError("EVENT_FROM_TOKEN_PARSE_FAILURE", token)
        return int(first)

    def resync(self, since: int) -> bool:
        """A token the diff cannot serve: from before the oldest remembered deletion, or from
        after the newest generation (another agent's, or forged). It gets the whole state."""
        return since > self.store.gen or since < self.store.horizon

    def collect(self, subs: set, since: int) -> list:
        events = []
        tables = self.store.tables
        if since == 0 or self.resync(since):
            for cls in self._sub_classes(subs):
                for ref, rec in tables[cls].items():
                    if _matches(subs, cls, ref):
                        events.append(self._from_event("add", cls, ref, self.mod.get((cls, ref), self.gen),
                                                       rec))
            return events
        start = bisect.bisect_right(self.log, (since, ("~", "~")))
        seen = set()
        for gen, key in self.log[start:]:
            if key in seen or self.mod.get(key) != gen:
                continue
            cls, ref = key
            if not _matches(subs, cls, ref):
                continue
            seen.add(key)
            op = "add" if self.added.get(key, 0) > since else "mod"
            events.append(self._from_event(op, cls, ref, gen, tables[cls][ref]))
        deleted = self.store.deleted
        if deleted and deleted[-1][0] > since:
            for gen, (cls, ref), added in deleted:
                if gen > since and added <= since and _matches(subs, cls, ref):
                    events.append({"id": str(gen), "timestamp": "0.0", "class": cls.lower(),
                                   "operation": "del", "ref": ref})
        events.sort(key=lambda e: int(e["id"]))
        return events

    def _from_event(self, op, cls, ref, gen, rec) -> dict:
        return {"id": str(gen), "timestamp": "0.0", "class": cls.lower(), "operation": op, "ref": ref,
                "snapshot": TypedRecord(cls, rec)}

    def _sub_classes(self, subs: set):
        if any(name == "*" for name, _ in subs):
            return list(self.classes.values())
        return sorted({name for name, _ in subs})

    def counts(self, subs: set) -> dict:
        return {cls.lower(): len(self.store.tables[cls]) for cls in self._sub_classes(subs)}

    async def from_(self, session: str, classes, token: str, timeout: float,
                    alive: Callable[[], bool]) -> dict:
        subs = self.parse_subs(classes)
        since = self.parse_token(token)
        deadline = self.clock() + max(0.0, timeout)
        only_tasks = all(name == "task" for name, _ in subs)
        self.inflight += 1
        try:
            while True:
                if not alive():
                    raise ApiError("SESSION_INVALID", session)
                remaining = deadline - self.clock()
                key = (frozenset(subs), since)
                batch = self._batches.get(key)
                events = None if batch is not None else self.collect(subs, since)
                if batch is not None or events or (since and self.resync(since)):
                    # pace each session: a poller that was answered a moment ago waits out
                    # a gap (wider when many poll) so that fast changes come in batches
                    # instead of letting every poller spin once per change
                    pause = 0.0 if only_tasks else self._gap() - (self.clock() - self.answered.get(session, 0.0))
                    if pause > 0 and remaining > 0:
                        await self.sleep(min(pause, remaining))
                        self.answered[session] = 0.0  # the gap is served; answer next time round
                        continue
                    if batch is None:
                        batch = SharedValue(events=events, valid_ref_counts=self.counts(subs), token=self.token())
                        if len(self._batches) > 1000:
                            self._batches.clear()
                        self._batches[key] = batch
                    self.answered[session] = self.clock()
                    return batch
                if remaining <= 0:
                    self.answered[session] = self.clock()
                    return {"events": [], "valid_ref_counts": self.counts(subs), "token": self.token()}
                w = self.make_waiter()
                self.waiters.add(w)
                try:
                    woken = await w.wait(remaining)
                finally:
                    self.waiters.discard(w)
                if woken and not only_tasks:
                    self.answered[session] = self.clock()  # gather the burst that woke us: serve a gap
        finally:
            self.inflight -= 1

    def _gap(self) -> float:
        """Seconds a session waits between two answers: 50 ms, plus a spread that grows with
        the number of pollers so that a crowd of them does not answer in one burst."""
        lim = self.limits
        width = min(lim.spread_max, lim.spread * max(1.0, self.inflight / lim.crowd))
        return lim.coalesce + width * self.rand()

    def inject(self, cls_name: str, ref: str) -> str:
        cls = self.classes.get(cls_name.lower())
        if cls is None or not self.store.exists(cls, ref):
            raise ApiError("HANDLE_INVALID", cls or cls_name, ref)
        token = self.token()
        with self.store.transaction():
            self.store.touch(cls, ref)
        return token


def _matches(subs: set, cls: str, ref: str) -> bool:
    for name, r in subs:
        if (name == "*" or name == cls) and (not r or r == ref):
            return True
    return False
