"""Generic implementations of the messages derived from field declarations.

One function per implicit kind; the dispatcher calls `run(store, entry, args)`.
An actions/ module may override any of them by registering the same wire name
(VM.create, for instance, also makes the VM's metrics object).
"""

from ..datamodel import api as A
from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from ..db.query import QueryError, compile_expr
from ..db.store import Store


def need(store: Store, cls: str, ref) -> dict:
    """The record of `ref`, or HANDLE_INVALID [cls, ref]."""
    table = store.tables[cls]
    rec = table.get(ref) if isinstance(ref, str) else None
    if rec is None:
        raise ApiError("HANDLE_INVALID", cls, ref)
    return rec


def where(expr: str):
    try:
        return compile_expr(expr)
    except (QueryError, RecursionError):
        raise ApiError("INVALID_VALUE", "expr", expr) from None


def check_refs(store: Store, cls: str, values: dict) -> None:
    """Ref fields of a new object must name existing objects (or be NULL)."""
    for f in store.api.public_fields(cls):
        if f.type.kind != "ref" or f.name not in values:
            continue
        target = values[f.name]
        if target != NULL_REF and f.type.cls in store.tables and not store.exists(f.type.cls, target):
            raise ApiError("HANDLE_INVALID", f.type.cls, target)


def run(store: Store, entry: A.Entry, args: list):
    cls, kind = entry.cls, entry.implicit
    table = store.tables[cls]
    if kind == A.GET:
        return need(store, cls, args[0])[entry.field.name]
    if kind == A.GET_RECORD:
        return need(store, cls, args[0])
    if kind == A.GET_ALL:
        return list(table)
    if kind == A.GET_ALL_RECORDS:
        return table
    if kind == A.GET_BY_UUID:
        ref = store.by_uuid(cls, args[0])
        if ref is None:
            raise ApiError("UUID_INVALID", cls, args[0])
        return ref
    if kind == A.GET_BY_NAME_LABEL:
        return [r for r, rec in table.items() if rec["name_label"] == args[0]]
    if kind == A.GET_ALL_WHERE:
        pred = where(args[0])
        return [r for r, rec in table.items() if pred(rec)]
    if kind == A.GET_ALL_RECORDS_WHERE:
        pred = where(args[0])
        return {r: rec for r, rec in table.items() if pred(rec)}
    if kind == A.CREATE:
        values = args[0]
        check_refs(store, cls, values)
        with store.transaction():
            return store.create(cls, values)
    if kind == A.DESTROY:
        need(store, cls, args[0])
        with store.transaction():
            store.delete(cls, args[0])
        return ""
    return _write(store, entry, args)


def _write(store: Store, entry: A.Entry, args: list):
    cls, kind, name = entry.cls, entry.implicit, entry.field.name
    ref = args[0]
    rec = need(store, cls, ref)
    old = rec[name]
    if kind == A.SET:
        new = args[1]
        if entry.field.type.kind == "ref":
            check_refs(store, cls, {name: new})
    elif kind == A.ADD_TO:
        key, value = args[1], args[2]
        if key in old:
            raise ApiError("MAP_DUPLICATE_KEY", cls, name, ref, key)
        new = {**old, key: value}
    elif kind == A.REMOVE_FROM:
        if args[1] not in old:
            return ""
        new = {k: v for k, v in old.items() if k != args[1]}
    elif kind == A.ADD:
        if args[1] in old:
            return ""
        new = old + [args[1]]
    elif kind == A.REMOVE:
        if args[1] not in old:
            return ""
        new = [v for v in old if v != args[1]]
    else:  # pragma: no cover - the kinds are closed
        raise ApiError("INTERNAL_ERROR", f"unknown implicit message kind {kind}")
    with store.transaction():
        store.set(cls, ref, name, new)
    return ""
