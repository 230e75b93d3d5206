"""The object store: in-memory tables and indexes, transactions, relations.

All access happens on one thread (the reactor's). Values in records are
never changed in place: a write replaces a field's value with a new one, so a
shallow copy of a record is a true snapshot. A write happens inside
`store.transaction()`: it changes the tables at once, keeps what it needs to
undo them, and on success hands the touched objects to the journal as one
batch (and to change listeners, for events). An exception inside the block
rolls every change back, so no half-written object is ever visible.
"""

import copy
import json
from collections import deque
import uuid as uuidlib
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional

from ..datamodel.api import Api
from ..datamodel.types import NULL_REF


class StoreError(Exception):
    """Root of the store's errors."""


class NotFound(StoreError):
    def __init__(self, cls: str, ref: str):
        super().__init__(cls, ref)
        self.cls, self.ref = cls, ref


class NoTransaction(StoreError):
    pass


def new_ref() -> str:
    return f"OpaqueRef:{uuidlib.uuid4()}"


def new_uuid() -> str:
    return str(uuidlib.uuid4())


class Change:
    """One object touched by a committed transaction, with its generation (0: no events)."""

    __slots__ = ("op", "cls", "ref", "record", "gen")

    def __init__(self, op: str, cls: str, ref: str, record: Optional[dict], gen: int = 0):
        self.op, self.cls, self.ref, self.record, self.gen = op, cls, ref, record, gen

    def __repr__(self):
        return f"Change({self.op} {self.cls} {self.ref})"


class Store:
    def __init__(self, api: Api, submit: Optional[Callable] = None, deletions: int = 50000):
        """`submit(rows)` hands a batch to the journal and returns its ticket (or None); it
        raises, and the transaction is undone, when the journal accepts no more."""
        self.api = api
        self.tables: Dict[str, Dict[str, dict]] = {c: {} for c in api.classes if api.classes[c].stored}
        self.private: Dict[str, Dict[str, dict]] = {c: {} for c in self.tables}
        self.uuids: Dict[str, Dict[str, str]] = {c: {} for c in self.tables}
        self._submit = submit
        self._txn: Optional["_Txn"] = None
        self.commits = 0  # number of batches handed to the journal
        self.last_durable = None  # journal ticket of the newest batch
        # objects whose newest change is not durable yet: (cls, ref) -> ticket; a read of
        # one waits for that ticket before it is answered (see `unsettled`)
        self.pending: Dict[tuple, object] = {}
        self._pending_batches = deque()  # (ticket, keys) in commit order
        self.listeners: List[Callable[[List[Change]], None]] = []
        # generations: each change to an object of a class with events gets the next number,
        # journalled with its row, so they go on across restarts whatever the clock does.
        # Per object the generation that created it and the one that last changed it; the
        # newest deletions as (gen, (cls, ref), created gen); deletions up to `horizon` are
        # forgotten (the event hub answers a token older than that with the whole state)
        self.gen = 0
        self.born: Dict[tuple, int] = {}
        self.changed: Dict[tuple, int] = {}
        self.deleted = deque(maxlen=deletions)
        self.horizon = 0
        self._evented = frozenset(c for c in self.tables if api.classes[c].events)
        # run inside every successful transaction before it commits, with the
        # touched keys: derived fields (allowed_operations) are set here
        self.precommit: List[Callable[[List[tuple]], None]] = []
        self._ones = {}  # (cls, field) -> (many cls, many field, many is a set)
        self._manys = {}  # (cls, field) -> (one cls, one field)
        for r in api.relations:
            many_field = api.classes[r.many[0]].field(r.many[1])
            self._ones[r.one] = (r.many[0], r.many[1], many_field.type.kind == "set")
            self._manys[r.many] = r.one

    # ------------------------------------------------------------------ reads
    def get(self, cls: str, ref: str) -> dict:
        try:
            return self.tables[cls][ref]
        except KeyError:
            raise NotFound(cls, ref) from None

    def exists(self, cls: str, ref: str) -> bool:
        t = self.tables.get(cls)
        return t is not None and ref in t

    def all(self, cls: str) -> Dict[str, dict]:
        return self.tables[cls]

    def by_uuid(self, cls: str, uuid: str) -> Optional[str]:
        return self.uuids[cls].get(uuid)

    def private_of(self, cls: str, ref: str) -> dict:
        self.get(cls, ref)
        return self.private[cls][ref]

    def find(self, cls: str, **match) -> List[str]:
        """Refs of `cls` whose fields equal all of `match`."""
        return [r for r, rec in self.tables[cls].items()
                if all(rec.get(k) == v for k, v in match.items())]

    # ----------------------------------------------------------------- writes
    @contextmanager
    def transaction(self) -> Iterator["_Txn"]:
        if self._txn is not None:  # joined: the outer block commits
            yield self._txn
            return
        txn = self._txn = _Txn()
        try:
            yield txn
        except BaseException:
            self._txn = None
            self._undo(txn)
            raise
        if txn.touched and self.precommit:
            try:
                for hook in self.precommit:
                    hook(list(txn.touched))
            except BaseException:
                self._txn = None
                self._undo(txn)
                raise
        self._txn = None
        if txn.touched:
            try:
                self._commit(txn)
            except BaseException:  # the journal refused the batch: nothing happened
                self._undo(txn)
                raise

    def create(self, cls: str, values: dict, ref: str = None, private: dict = None) -> str:
        """Add an object; fields not in `values` take their declared initial values."""
        txn = self._need_txn()
        ref = ref or new_ref()
        table = self.tables[cls]
        if ref in table:
            raise StoreError(f"{cls} {ref} exists")
        rec = {}
        for f in self.api.public_fields(cls):
            v = values[f.name] if f.name in values else f.initial
            rec[f.name] = copy.deepcopy(v) if isinstance(v, (list, dict)) else v
        if not rec.get("uuid") and "uuid" in rec:
            rec["uuid"] = new_uuid()
        if rec.get("uuid") in self.uuids[cls]:
            raise StoreError(f"{cls} uuid {rec['uuid']} exists")
        txn.remember(self, cls, ref)
        table[ref] = rec
        self.private[cls][ref] = dict(private or {})
        if "uuid" in rec:
            self.uuids[cls][rec["uuid"]] = ref
        txn.mark(cls, ref, "add")
        for name, value in rec.items():
            if (cls, name) in self._ones:
                self._link(cls, name, ref, value, add=True)
        return ref

    def set(self, cls: str, ref: str, name: str, value) -> None:
        """Replace one field's value, keeping relations in step."""
        txn = self._need_txn()
        rec = self.get(cls, ref)
        old = rec[name]
        if old == value and type(old) is type(value):
            return
        txn.remember(self, cls, ref)
        if (cls, name) in self._ones:
            self._link(cls, name, ref, old, add=False)
        if name == "uuid":
            self.uuids[cls].pop(old, None)
            self.uuids[cls][value] = ref
        rec[name] = value
        if (cls, name) in self._ones:
            self._link(cls, name, ref, value, add=True)
        txn.mark(cls, ref, "mod")

    def update(self, cls: str, ref: str, **values) -> None:
        for name, value in values.items():
            self.set(cls, ref, name, value)

    def set_private(self, cls: str, ref: str, **values) -> None:
        txn = self._need_txn()
        self.get(cls, ref)
        txn.remember(self, cls, ref)
        self.private[cls][ref].update(values)
        txn.mark(cls, ref, "mod")

    def delete(self, cls: str, ref: str) -> None:
        txn = self._need_txn()
        rec = self.get(cls, ref)
        txn.remember(self, cls, ref)
        for name, value in rec.items():
            if (cls, name) in self._ones:
                self._link(cls, name, ref, value, add=False)
        del self.tables[cls][ref]
        del self.private[cls][ref]
        if "uuid" in rec:
            self.uuids[cls].pop(rec["uuid"], None)
        txn.mark(cls, ref, "del")

    def replace_all(self, objects: dict[tuple, dict]) -> None:
        """Make the tables hold exactly `objects` ({(cls, ref): {"r": record, "p": private}},
        records whole, relations already consistent: another store's copy), in the
        caller's transaction: objects not in it are deleted, the others created or replaced.
        Classes this version does not store are skipped."""
        txn = self._need_txn()
        for cls, table in self.tables.items():
            for ref in [r for r in table if (cls, r) not in objects]:
                txn.remember(self, cls, ref)
                rec = table.pop(ref)
                self.private[cls].pop(ref, None)
                if "uuid" in rec:
                    self.uuids[cls].pop(rec["uuid"], None)
                txn.mark(cls, ref, "del")
        for (cls, ref), blob in objects.items():
            if cls not in self.tables:
                continue
            txn.remember(self, cls, ref)
            table, saved = self.tables[cls], blob["r"]
            old = table.get(ref)
            if old is not None and "uuid" in old:
                self.uuids[cls].pop(old["uuid"], None)
            rec = {f.name: saved[f.name] if f.name in saved else copy.deepcopy(f.initial)
                   for f in self.api.public_fields(cls)}
            table[ref] = rec
            self.private[cls][ref] = dict(blob.get("p") or {})
            if "uuid" in rec:
                self.uuids[cls][rec["uuid"]] = ref
            txn.mark(cls, ref, "mod" if old is not None else "add")

    def touch(self, cls: str, ref: str) -> None:
        """Record a change to an object without changing it (event.inject)."""
        txn = self._need_txn()
        self.get(cls, ref)
        txn.remember(self, cls, ref)
        txn.mark(cls, ref, "mod")

    # --------------------------------------------------------------- helpers
    def _need_txn(self) -> "_Txn":
        if self._txn is None:
            raise NoTransaction("store writes need a transaction")
        return self._txn

    def _link(self, cls, name, ref, target, add):
        many_cls, many_field, is_set = self._ones[(cls, name)]
        if target == NULL_REF or target not in self.tables[many_cls]:
            return
        self._txn.remember(self, many_cls, target)
        other = self.tables[many_cls][target]
        if is_set:
            current = other[many_field]
            if add and ref not in current:
                other[many_field] = current + [ref]
            elif not add and ref in current:
                other[many_field] = [r for r in current if r != ref]
            else:
                return
        else:
            other[many_field] = ref if add else NULL_REF
        self._txn.mark(many_cls, target, "mod")

    def _undo(self, txn: "_Txn") -> None:
        for (cls, ref), (rec, priv) in txn.before.items():
            table = self.tables[cls]
            current = table.get(ref)
            if current is not None and "uuid" in current:
                self.uuids[cls].pop(current["uuid"], None)
            if rec is None:
                table.pop(ref, None)
                self.private[cls].pop(ref, None)
            else:
                table[ref] = rec
                self.private[cls][ref] = priv
                if "uuid" in rec:
                    self.uuids[cls][rec["uuid"]] = ref

    def _commit(self, txn: "_Txn") -> None:
        rows, changes = [], []
        gen, evented, born = self.gen, self._evented, self.born
        for key, op in txn.touched.items():
            cls, ref = key
            before = txn.before[key][0]
            rec = self.tables[cls].get(ref)
            if rec is None and before is None:
                continue  # created and deleted in one transaction: nothing happened
            g = b = 0  # this change's generation, the object's first
            if cls in evented:
                gen += 1
                g = gen
                b = gen if before is None else born.get(key, 0)
            if rec is None:
                rows.append((cls, ref, None, g, b))
                changes.append(Change("del", cls, ref, before, g))
            else:
                rows.append((cls, ref, json.dumps({"r": rec, "p": self.private[cls][ref]},
                                                  separators=(",", ":")), g, b))
                changes.append(Change("add" if before is None else "mod", cls, ref, rec, g))
        if not rows:
            return
        if self._submit is not None:
            ticket = self._submit(rows)  # raises, changing nothing, if the journal has stopped
            self.last_durable = ticket
            if ticket is not None:
                keys = [row[:2] for row in rows]
                for key in keys:
                    self.pending[key] = ticket
                self._pending_batches.append((ticket, keys))
        self.commits += 1
        if gen != self.gen:
            self.gen = gen
            self._remember(changes)
        for listener in self.listeners:
            listener(changes)

    def _remember(self, changes: List[Change]) -> None:
        born, changed = self.born, self.changed
        for ch in changes:
            if not ch.gen:
                continue
            key = (ch.cls, ch.ref)
            if ch.op == "del":
                self._deletion(ch.gen, key, born.pop(key, 0))
                changed.pop(key, None)
            else:
                if ch.op == "add":
                    born[key] = ch.gen
                changed[key] = ch.gen

    def _deletion(self, gen: int, key: tuple, born: int) -> None:
        deleted = self.deleted
        if len(deleted) == deleted.maxlen:  # the oldest is about to be forgotten
            self.horizon = deleted[0][0] if deleted else gen
        deleted.append((gen, key, born))

    # ------------------------------------------------------------ durability
    def settled(self, upto) -> None:
        """The journal made every batch up to ticket `upto` durable."""
        batches = self._pending_batches
        while batches and batches[0][0] <= upto:
            ticket, keys = batches.popleft()
            for key in keys:
                if self.pending.get(key) == ticket:
                    del self.pending[key]

    def unsettled(self, cls: Optional[str] = None, ref: Optional[str] = None):
        """The ticket a read must wait for before it is answered, or None: the newest batch
        that touched (cls, ref), or with no object named, the newest batch of all."""
        if not self.pending:
            return None
        if cls is None:
            return self.last_durable
        return self.pending.get((cls, ref))

    # ---------------------------------------------------------------- loading
    def load(self, loaded) -> None:
        """Install what the journal kept (a journal.Loaded; start-up only): the rows, the
        generation counter and the remembered deletions."""
        for cls, ref, data, born, changed in loaded.rows:
            self.load_row(cls, ref, data, born, changed)
        self.gen = max(self.gen, loaded.generation)
        self.horizon = max(self.horizon, loaded.horizon)
        for gen, cls, ref, born in loaded.deletions:
            if cls in self._evented:
                self._deletion(gen, (cls, ref), born)

    def limit_deletions(self, keep: int) -> None:
        """Remember at most the newest `keep` deletions from now on."""
        old = self.deleted
        while len(old) > keep:
            self.horizon = old.popleft()[0]
        if old.maxlen != keep:
            self.deleted = deque(old, maxlen=keep)

    def load_row(self, cls: str, ref: str, data: str, born: int = 0, changed: int = 0) -> None:
        """Install a row read back from the journal (start-up only), with the generations
        that created and last changed it."""
        if cls not in self.tables:
            return  # a class this version no longer stores
        if cls in self._evented:
            self.born[(cls, ref)], self.changed[(cls, ref)] = born, changed
        blob = json.loads(data)
        rec = {}
        saved = blob["r"]
        for f in self.api.public_fields(cls):
            rec[f.name] = saved[f.name] if f.name in saved else copy.deepcopy(f.initial)
        self.tables[cls][ref] = rec
        self.private[cls][ref] = blob.get("p", {})
        if "uuid" in rec:
            self.uuids[cls][rec["uuid"]] = ref


class _Txn:
    __slots__ = ("before", "touched")

    def __init__(self):
        self.before = {}  # (cls, ref) -> (record copy or None, private copy or None)
        self.touched = {}  # (cls, ref) -> last op, in first-touch order

    def remember(self, store: Store, cls: str, ref: str) -> None:
        key = (cls, ref)
        if key in self.before:
            return
        rec = store.tables[cls].get(ref)
        if rec is None:
            self.before[key] = (None, None)
        else:
            self.before[key] = (snapshot(rec), snapshot(store.private[cls][ref]))

    def mark(self, cls: str, ref: str, op: str) -> None:
        self.touched[(cls, ref)] = op


_SCALARS = (str, int, float, bool, type(None))


def snapshot(value):
    """A deep copy of a record: its fields are scalars, flat lists (sets) and flat maps,
    which one level of copying covers; anything nested deeper goes to copy.deepcopy."""
    out = {}
    for k, v in value.items():
        t = type(v)
        if t is list:
            out[k] = v.copy() if all(type(x) in _SCALARS for x in v) else copy.deepcopy(v)
        elif t is dict:
            out[k] = v.copy() if all(type(x) in _SCALARS for x in v.values()) else copy.deepcopy(v)
        elif t in _SCALARS:
            out[k] = v
        else:
            out[k] = copy.deepcopy(v)
    return out
