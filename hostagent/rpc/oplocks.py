"""Operation locking: allowed_operations, current_operations and their checks.

Each class with operations has one declarative `OpTable` (see
actions/oprules.py). An `Op` names the message it guards, the states it
needs, the operations it may overlap, and refusals. `OpLocks` checks a call in
xapi's order (blocked_operations, state, concurrency, refusals), records it in
`current_operations` under the call's task for its duration, and recomputes
`allowed_operations` inside every transaction that touches a guarded object.
"""

from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, Iterable, Optional, Tuple

from ..datamodel.errors import ApiError
from ..db.store import Store

# a refusal: (predicate(store, ref, rec) -> bool, error(store, ref, rec, op) -> ApiError);
# early refusals (checked before the state) also get the op name: predicate(store, ref, rec, op)
Refusal = Tuple[Callable, Callable]


@dataclass(frozen=True)
class Op:
    name: str
    message: Optional[str] = None  # wire name guarded by this op
    states: Optional[FrozenSet[str]] = None  # allowed values of the table's state field
    overlap: FrozenSet[str] = frozenset()  # ops that may run at the same time as this one
    refuse: Tuple[Refusal, ...] = ()
    param: int = 0  # which argument (after the session) names the object


@dataclass(frozen=True)
class OpTable:
    cls: str
    ops: Tuple[Op, ...]
    state_field: Optional[str] = None
    state_error: Optional[Callable] = None  # (ref, expected states, actual) -> ApiError
    blocked: bool = False  # honour a blocked_operations map
    early: Tuple[Refusal, ...] = ()  # refusals checked before the state (e.g. templates)
    # (other class, its ref or ref-set field): a change to such an object recomputes those it names
    watch: Tuple[Tuple[str, str], ...] = ()
    # (store, ref, rec, implemented) -> allowed ops not guarded by a message on this object
    extra_allowed: Callable = None
    # (store, ref, rec, op name) -> True: not offered in allowed_operations, though a call is let
    # through to its action, which answers for itself (VM.pool_migrate: VM_MIGRATE_FAILED)
    hidden: Callable = None


class OpLocks:
    def __init__(self, store: Store, tables: Iterable[OpTable], implemented: Callable[[str], bool]):
        self.store = store
        self.tables: Dict[str, OpTable] = {t.cls: t for t in tables}
        self.implemented = implemented
        self.by_message: Dict[str, Tuple[OpTable, Op]] = {}
        self.watchers: Dict[str, list] = {}
        for t in self.tables.values():
            for op in t.ops:
                if op.message:
                    self.by_message[op.message] = (t, op)
            for other, fld in t.watch:
                self.watchers.setdefault(other, []).append((t.cls, fld))
        store.precommit.append(self._recompute)

    # ----------------------------------------------------------------- checks
    def problem(self, table: OpTable, op: Op, ref: str, rec: dict) -> Optional[ApiError]:
        """The error a call of `op` on `ref` would get now, or None."""
        if table.blocked:
            blocked = rec.get("blocked_operations") or {}
            if op.name in blocked:
                return ApiError("OPERATION_BLOCKED", ref, blocked[op.name])
        for pred, err in table.early:
            if pred(self.store, ref, rec, op.name):
                return err(self.store, ref, rec, op.name)
        if op.states is not None and table.state_field:
            actual = rec[table.state_field]
            if actual not in op.states:
                return table.state_error(ref, op.states, actual)
        current = rec.get("current_operations") or {}
        for task, running in current.items():
            if running not in op.overlap:
                return ApiError("OTHER_OPERATION_IN_PROGRESS", table.cls, ref, running, task)
        for pred, err in op.refuse:
            if pred(self.store, ref, rec):
                return err(self.store, ref, rec, op.name)
        return None

    def allowed(self, cls: str, ref: str) -> list:
        table = self.tables[cls]
        rec = self.store.get(cls, ref)
        out = [op.name for op in table.ops
               if op.message and self.implemented(op.message) and self.problem(table, op, ref, rec) is None
               and not (table.hidden and table.hidden(self.store, ref, rec, op.name))]
        if table.extra_allowed:
            out += [x for x in table.extra_allowed(self.store, ref, rec, self.implemented) if x not in out]
        return out

    # ---------------------------------------------------------------- locking
    def guard(self, wire: str, args: list):
        """(table, op, ref) when `wire` is a guarded message, else None."""
        hit = self.by_message.get(wire)
        if hit is None:
            return None
        table, op = hit
        return table, op, args[op.param]

    def begin(self, table: OpTable, op: Op, ref: str, key: str) -> None:
        rec = self.store.tables[table.cls].get(ref)
        if rec is None:
            raise ApiError("HANDLE_INVALID", table.cls, ref)
        err = self.problem(table, op, ref, rec)
        if err is not None:
            raise err
        with self.store.transaction():
            self.store.set(table.cls, ref, "current_operations", {**rec["current_operations"], key: op.name})

    def end(self, table: OpTable, ref: str, key: str) -> None:
        rec = self.store.tables[table.cls].get(ref)
        if rec is None or key not in rec["current_operations"]:
            return  # destroyed by the operation itself
        with self.store.transaction():
            self.store.set(table.cls, ref, "current_operations",
                           {k: v for k, v in rec["current_operations"].items() if k != key})

    # -------------------------------------------------------------- recompute
    def _recompute(self, touched) -> None:
        targets = []
        for cls, ref in touched:
            if cls in self.tables:
                targets.append((cls, ref))
            for target_cls, fld in self.watchers.get(cls, ()):
                rec = self.store.tables[cls].get(ref)
                if rec is not None:
                    value = rec[fld]
                    targets += [(target_cls, v) for v in (value if isinstance(value, list) else [value])]
        for cls, ref in targets:
            if self.store.exists(cls, ref):
                new = self.allowed(cls, ref)
                if new != self.store.get(cls, ref)["allowed_operations"]:
                    self.store.set(cls, ref, "allowed_operations", new)

    def reset(self) -> None:
        """At start-up: no operation survives a restart; recompute everything."""
        with self.store.transaction():
            for cls in self.tables:
                for ref, rec in list(self.store.all(cls).items()):
                    if rec["current_operations"]:
                        self.store.set(cls, ref, "current_operations", {})
                    new = self.allowed(cls, ref)
                    if new != rec["allowed_operations"]:
                        self.store.set(cls, ref, "allowed_operations", new)
