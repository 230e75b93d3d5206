"""The assembled API: classes, relations, and every message, implicit ones derived.

`build_api()` validates the declarations and returns an `Api` whose `entries`
maps each wire name ("VM.get_record") to an `Entry` that the dispatcher, the
documentation generator and the coverage tests all read.
"""

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from . import types as T
from .decl import RW, Cls, Field, Message, Param, MISSING
from .error_table import ERRORS

# Implicit message kinds, in the order the docs list them.
GET_RECORD, GET_BY_UUID, GET_BY_NAME_LABEL = "get_record", "get_by_uuid", "get_by_name_label"
GET_ALL, GET_ALL_RECORDS = "get_all", "get_all_records"
GET_ALL_WHERE, GET_ALL_RECORDS_WHERE = "get_all_where", "get_all_records_where"
CREATE, DESTROY = "create", "destroy"
GET, SET, ADD_TO, REMOVE_FROM, ADD, REMOVE = "get", "set", "add_to", "remove_from", "add", "remove"


@dataclass(frozen=True)
class Entry:
    """One callable message as the dispatcher sees it."""

    cls: str
    name: str
    params: Tuple[Param, ...]  # excluding the session
    result: T.Type
    session: bool
    async_: bool
    implicit: Optional[str] = None  # kind, for derived messages
    field: Optional[Field] = None  # the field a derived accessor works on
    message: Optional[Message] = None  # the declaration, for explicit messages
    errors: Tuple[str, ...] = ()

    @property
    def wire(self) -> str:
        return f"{self.cls}.{self.name}"

    @property
    def required_count(self) -> int:
        return sum(1 for p in self.params if p.default is MISSING)

    @property
    def doc(self) -> str:
        if self.message is not None:
            return self.message.doc
        return _IMPLICIT_DOCS[self.implicit].format(cls=self.cls, field=self.field.name if self.field else "")


_IMPLICIT_DOCS = {
    GET_RECORD: "Return the whole record of the given {cls}.",
    GET_BY_UUID: "Return the {cls} with the given UUID (UUID_INVALID if there is none).",
    GET_BY_NAME_LABEL: "Return every {cls} whose name_label is exactly the given label.",
    GET_ALL: "Return every {cls}.",
    GET_ALL_RECORDS: "Return a map from every {cls} to its record.",
    GET_ALL_WHERE: "Return every {cls} for which the expression holds.",
    GET_ALL_RECORDS_WHERE: "Return the records of every {cls} for which the expression holds.",
    CREATE: "Create a {cls} from a record and return its reference.",
    DESTROY: "Destroy the given {cls}.",
    GET: "Return the {field} field of the given {cls}.",
    SET: "Replace the {field} field of the given {cls}.",
    ADD_TO: "Add a key to the {field} map of the given {cls} (MAP_DUPLICATE_KEY if present).",
    REMOVE_FROM: "Remove a key from the {field} map of the given {cls}, if present.",
    ADD: "Add a value to the {field} set of the given {cls}.",
    REMOVE: "Remove a value from the {field} set of the given {cls}.",
}


class Api:
    def __init__(self, classes: Tuple[Cls, ...], relations: tuple):
        self.classes: Dict[str, Cls] = {c.name: c for c in classes}
        self.relations = tuple(relations)
        self.entries: Dict[str, Entry] = {}
        for c in classes:
            for e in _derive(c):
                self.entries[e.wire] = e
        # class name lookup without case, as event subscriptions need
        self.by_lower = {name.lower(): name for name in self.classes}

    def public_fields(self, cls: str) -> Tuple[Field, ...]:
        return tuple(f for f in self.classes[cls].fields if not f.internal)

    def messages_of(self, cls: str):
        return [e for e in self.entries.values() if e.cls == cls]


def _derive(c: Cls):
    """Every message of class `c`: implicit ones first, explicit ones override."""
    ref = T.Ref(c.name)
    self_p = Param("self", ref)
    out = {}
    if not c.stored:  # e.g. event: only its explicit messages exist
        return [Entry(c.name, m.name, m.params, m.result, m.session, m.async_, None, None, m, m.errors)
                for m in c.messages]

    def add(name, params, result, kind, fld=None, async_=False):
        out[name] = Entry(c.name, name, tuple(params), result, True, async_, kind, fld)

    add(GET_RECORD, [self_p], T.RecordOf(c.name), GET_RECORD)
    add(GET_BY_UUID, [Param("uuid", T.STRING)], ref, GET_BY_UUID)
    if c.by_name_label:
        add(GET_BY_NAME_LABEL, [Param("label", T.STRING)], T.SetOf(ref), GET_BY_NAME_LABEL)
    if c.get_all:
        add(GET_ALL, [], T.SetOf(ref), GET_ALL)
        add(GET_ALL_RECORDS, [], T.MapOf(ref, T.RecordOf(c.name)), GET_ALL_RECORDS)
        add(GET_ALL_WHERE, [Param("expr", T.STRING)], T.SetOf(ref), GET_ALL_WHERE)
        add(GET_ALL_RECORDS_WHERE, [Param("expr", T.STRING)], T.MapOf(ref, T.RecordOf(c.name)),
            GET_ALL_RECORDS_WHERE)
    if c.constructor:
        add(CREATE, [Param("args", T.RecordOf(c.name))], ref, CREATE, async_=True)
        add(DESTROY, [self_p], T.VOID, DESTROY, async_=True)
    for f in c.fields:
        if f.internal:
            continue
        add(f"get_{f.name}", [self_p], f.type, GET, f)
        if f.qualifier != RW:
            continue
        add(f"set_{f.name}", [self_p, Param("value", f.type)], T.VOID, SET, f)
        if f.type.kind == "map":
            add(f"add_to_{f.name}", [self_p, Param("key", f.type.key), Param("value", f.type.value)],
                T.VOID, ADD_TO, f)
            add(f"remove_from_{f.name}", [self_p, Param("key", f.type.key)], T.VOID, REMOVE_FROM, f)
        elif f.type.kind == "set":
            add(f"add_{f.name}", [self_p, Param("value", f.type.elem)], T.VOID, ADD, f)
            add(f"remove_{f.name}", [self_p, Param("value", f.type.elem)], T.VOID, REMOVE, f)
    for m in c.messages:
        # an explicit message that only writes a field (xapi's setters of RO/constructor
        # fields, such as SR.set_name_label) is served like a derived setter
        kind, fld = (SET, c.field(m.sets)) if m.sets else (None, None)
        out[m.name] = Entry(c.name, m.name, m.params, m.result, m.session, m.async_, kind, fld, m,
                            m.errors)
    return out.values()


class ModelError(Exception):
    """The declarations contradict themselves."""


def validate(api: Api) -> None:
    """Check the model before use: types resolve, defaults fit, relations agree."""
    problems = []
    for c in api.classes.values():
        names = [f.name for f in c.fields]
        if len(set(names)) != len(names):
            problems.append(f"{c.name}: duplicate field names")
        if c.stored and c.field("uuid") is None:
            problems.append(f"{c.name}: stored class without uuid")
        for f in c.fields:
            # refs to classes we do not model are allowed (they are always NULL); a record of
            # one could not be encoded
            for t in T.walk(f.type):
                if t.kind == "record" and t.cls not in api.classes:
                    problems.append(f"{c.name}.{f.name}: record of unmodelled class {t.cls}")
            if f.default is not MISSING and not fits(f.type, f.default):
                problems.append(f"{c.name}.{f.name}: default {f.default!r} is not a {f.type.xapi}")
        for m in c.messages:
            for e in m.errors:
                if e not in ERRORS:
                    problems.append(f"{c.name}.{m.name}: unknown error {e}")
            if m.sets and (c.field(m.sets) is None or [p.type for p in m.params][1:] != [c.field(m.sets).type]):
                problems.append(f"{c.name}.{m.name}: not a setter of a field {m.sets!r}")
    for r in api.relations:
        (oc, of), (mc, mf) = r.one, r.many
        one = api.classes.get(oc) and api.classes[oc].field(of)
        many = api.classes.get(mc) and api.classes[mc].field(mf)
        if not one or not many:
            problems.append(f"relation {r}: missing field")
            continue
        if one.type != T.Ref(mc):
            problems.append(f"relation {r}: {oc}.{of} is not a {mc} ref")
        if many.type not in (T.SetOf(T.Ref(oc)), T.Ref(oc)):
            problems.append(f"relation {r}: {mc}.{mf} is not a {oc} ref set")
    if problems:
        raise ModelError("; ".join(problems))


def fits(t: T.Type, v) -> bool:
    """Whether the internal value `v` is a well-formed value of type `t`."""
    k = t.kind
    if k in ("string", "datetime", "ref"):
        return isinstance(v, str)
    if k == "enum":
        return isinstance(v, str) and v in t.values
    if k == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if k == "float":
        return isinstance(v, float)
    if k == "bool":
        return isinstance(v, bool)
    if k == "set":
        return isinstance(v, list) and all(fits(t.elem, x) for x in v)
    if k == "map":
        return isinstance(v, dict) and all(isinstance(a, str) and fits(t.value, b) for a, b in v.items())
    return isinstance(v, dict)


def build_api() -> Api:
    from .classes import CLASSES
    from .relations import RELATIONS
    api = Api(CLASSES, RELATIONS)
    validate(api)
    return api
