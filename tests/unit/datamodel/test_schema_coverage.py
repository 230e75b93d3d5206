"""Our declarations checked against xapi's published schema facts.

For every class we model: every schema field is declared, in schema order, with
the same type notation, qualifier, default and lifecycle; every implicit message
of the schema is answered by a derived entry with the same parameters and result;
every enum has the same values. The last test prints how much of the whole
schema the model covers (always shown; the per-class table needs `-s`).

The schema is read from $HOSTAGENT_XAPI_SCHEMA, else from the shared reference
copy. Deliberate departures are listed in the *_EXCEPTIONS tables with a reason.
"""

import json
import os
import re

import pytest

from hostagent.datamodel import enums as enums_module
from hostagent.datamodel.api import build_api
from hostagent.datamodel.classes import CLASSES
from hostagent.datamodel.decl import (DEPRECATED, MISSING, PROTOTYPED, PUBLISHED, REMOVED,
                                      Message)
from hostagent.datamodel.types import EPOCH, NULL_REF, AnyRecord, Enum

def _default_schema() -> str:
    """shared/ beside the repository (as CI lays it out), else the developers' usual place."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    for path in (os.path.join(os.path.dirname(repo), "shared", "reference", "xapi-schema.json"),
                 "/work/shared/reference/xapi-schema.json"):
        if os.path.exists(path):
            return path
    return path


SCHEMA_PATH = os.environ.get("HOSTAGENT_XAPI_SCHEMA") or _default_schema()

# The classes we have chosen to model, in documentation order. Adding a class to
# CLASSES without adding it here (or the reverse) fails test_scope: deliberate.
OUR_CLASSES = (
    "session", "task", "event", "pool", "host", "host_metrics", "host_cpu", "VM", "VM_metrics",
    "VM_guest_metrics", "console", "SR", "SM", "VDI", "VBD", "VBD_metrics", "PBD", "network",
    "VIF", "VIF_metrics", "PIF", "PIF_metrics", "VLAN", "Bond", "message", "secret", "blob",
    "user",
)

# "Class.message" -> why we do not answer that implicit message as xapi does.
IMPLICIT_EXCEPTIONS = {}

# "Class.field" -> why our type notation differs from the schema's. The event
# snapshot needs no entry: AnyRecord() spells itself "<class> record" like xapi.
TYPE_EXCEPTIONS = {}

LIFECYCLES = {None: PUBLISHED, "Published_s": PUBLISHED, "Prototyped_s": PROTOTYPED,
              "Deprecated_s": DEPRECATED, "Removed_s": REMOVED}


# ---------------------------------------------------------------------------
# schema access


@pytest.fixture(scope="module")
def schema():
    if not os.path.exists(SCHEMA_PATH):
        pytest.skip(f"xapi schema not found at {SCHEMA_PATH} (set HOSTAGENT_XAPI_SCHEMA)")
    with open(SCHEMA_PATH) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def sclasses(schema):
    return {c["name"]: c for c in schema["classes"]}


@pytest.fixture(scope="module")
def senums(schema):
    """Enum name -> values, over all schema classes (an enum may be listed twice)."""
    out = {}
    for c in schema["classes"]:
        for e in c["enums"]:
            values = tuple(e["values"])
            assert out.setdefault(e["name"], values) == values, f"schema disagrees on {e['name']}"
    return out


@pytest.fixture(scope="module")
def api():
    return build_api()


def schema_params(m):
    """A schema message's parameters without the leading session."""
    ps = m["params"]
    return ps[1:] if ps and ps[0]["name"] == "session_id" else ps


def takes_session(m):
    return bool(m["params"]) and m["params"][0]["name"] == "session_id"


def convert_default(type_, lit):
    """A schema default literal in our internal value form (see types.py)."""
    if lit in ("Null", "OpaqueRef:NULL"):
        return NULL_REF
    if type_.endswith(" map"):
        inner = lit.strip()[1:-1].strip()
        if not inner:
            return {}
        return dict(re.findall(r'"([^"]*)"\s*->\s*"([^"]*)"', inner))
    if type_.endswith(" set"):
        inner = lit.strip()[1:-1].strip()
        if not inner:
            return []
        elem = type_[:-4]
        return [convert_default(elem, x.strip()) for x in inner.split(",")]
    if type_ == "bool":
        return {"true": True, "false": False}[lit]
    if type_ == "int":
        return int(lit)
    if type_ == "float":
        return float(lit)
    if type_ == "string":
        assert lit.startswith('"') and lit.endswith('"'), lit
        return lit[1:-1]
    if type_ == "datetime":
        assert re.fullmatch(r"\d{8}T\d\d:\d\d:\d\dZ", lit), lit
        return lit
    if type_.startswith("enum "):
        return lit
    raise AssertionError(f"no conversion for default {lit!r} of type {type_}")


def same_value(a, b):
    """Equal and of the same JSON shape (0 is not 0.0, False is not 0)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def walk(t):
    yield t
    if t.kind == "set":
        yield from walk(t.elem)
    elif t.kind == "map":
        yield from walk(t.key)
        yield from walk(t.value)


# ---------------------------------------------------------------------------
# structure


def test_scope(api, sclasses):
    assert tuple(c.name for c in CLASSES) == OUR_CLASSES
    unknown = [c for c in OUR_CLASSES if c not in sclasses]
    assert not unknown, f"classes not in the schema: {unknown}"


def test_convert_default_examples():
    # the converter is the yardstick for every default below; pin its reading
    assert convert_default("string", '""') == ""
    assert convert_default("(string -> string) map", "{}") == {}
    assert convert_default("string set", "{}") == []
    assert convert_default("VM ref", "Null") == NULL_REF
    assert convert_default("datetime", "19700101T00:00:00Z") == EPOCH
    assert same_value(convert_default("float", "0."), 0.0)
    assert convert_default("int set", "{0}") == [0]
    assert convert_default("(string -> string) map", '{"a" -> "b", "c" -> "d"}') == \
        {"a": "b", "c": "d"}
    assert not same_value(0, 0.0) and not same_value(False, 0)


@pytest.mark.parametrize("name", OUR_CLASSES)
def test_fields(api, sclasses, name):
    cls = api.classes[name]
    sfields = sclasses[name]["fields"]
    assert [f.name for f in cls.fields if not f.internal] == [f["name"] for f in sfields], \
        "public fields must be exactly the schema's, in schema order"
    problems = []
    for sf in sfields:
        f = cls.field(sf["name"])
        where = f"{name}.{sf['name']}"
        if f.type.xapi != sf["type"] and where not in TYPE_EXCEPTIONS:
            problems.append(f"{where}: type {f.type.xapi!r}, schema {sf['type']!r}")
        if f.qualifier != sf["qualifier"]:
            problems.append(f"{where}: qualifier {f.qualifier}, schema {sf['qualifier']}")
        if "default" in sf:
            want = convert_default(sf["type"], sf["default"])
            if f.default is MISSING or not same_value(f.default, want):
                problems.append(f"{where}: default {f.default!r}, schema {sf['default']} "
                                f"-> {want!r}")
        elif f.default is not MISSING:
            problems.append(f"{where}: default {f.default!r}, schema has none")
        if f.lifecycle != LIFECYCLES[sf.get("lifecycle")]:
            problems.append(f"{where}: lifecycle {f.lifecycle!r}, schema {sf.get('lifecycle')}")
    assert not problems, "\n".join(problems)


def test_event_snapshot_is_any_record(api):
    assert isinstance(api.classes["event"].field("snapshot").type, AnyRecord)


@pytest.mark.parametrize("name", OUR_CLASSES)
def test_field_enums(api, senums, name):
    problems = []
    for f in api.classes[name].fields:
        for t in walk(f.type):
            if t.kind == "enum" and t.values != senums.get(t.name):
                problems.append(f"{name}.{f.name}: enum {t.name} {t.values} != "
                                f"schema {senums.get(t.name)}")
    assert not problems, "\n".join(problems)


def test_enums_module(api, senums):
    declared = {n: v for n, v in vars(enums_module).items() if isinstance(v, Enum)}
    assert declared, "enums.py declares no Enum"
    for const, e in declared.items():
        assert const == e.name.upper(), f"{const} should be named {e.name.upper()}"
        assert e.values == senums.get(e.name), f"{e.name}: {e.values} != {senums.get(e.name)}"
    # every enum a field uses is one of these very constants, and each is used
    used = {id(t): t for c in api.classes.values() for f in c.fields for t in walk(f.type)
            if t.kind == "enum"}
    strays = sorted({t.name for t in used.values()} - {e.name for e in declared.values()})
    assert not strays, f"enums used by fields but not declared in enums.py: {strays}"
    assert not (set(used) - {id(e) for e in declared.values()}), \
        "a field builds its own Enum instead of using the enums.py constant"
    unused = sorted(e.name for e in declared.values() if id(e) not in used)
    assert not unused, f"enums.py constants no field uses: {unused}"


# ---------------------------------------------------------------------------
# messages


@pytest.mark.parametrize("name", OUR_CLASSES)
def test_implicit_messages(api, sclasses, name):
    problems = []
    for m in sclasses[name]["messages"]:
        if not m["implicit"]:
            continue
        wire = f"{name}.{m['name']}"
        if wire in IMPLICIT_EXCEPTIONS:
            continue
        e = api.entries.get(wire)
        if e is None:
            problems.append(f"{wire}: missing")
            continue
        if e.implicit is None:
            problems.append(f"{wire}: declared by hand, but xapi derives it")
        ps = schema_params(m)
        if len(e.params) != len(ps):
            problems.append(f"{wire}: {len(e.params)} parameters, schema {len(ps)}")
        mine = [(p.name, p.type.xapi) for p in e.params]
        theirs = [(p["name"], p["type"]) for p in ps]
        if mine != theirs:
            problems.append(f"{wire}: parameters {mine}, schema {theirs}")
        if e.result.xapi != m["result"]:
            problems.append(f"{wire}: result {e.result.xapi}, schema {m['result']}")
        if e.session != takes_session(m):
            problems.append(f"{wire}: session {e.session}, schema {takes_session(m)}")
    assert not problems, "\n".join(problems)


def test_implicit_exceptions_are_current(api, sclasses):
    for wire, reason in IMPLICIT_EXCEPTIONS.items():
        cls, msg = wire.split(".", 1)
        assert reason, f"{wire}: an exception needs a reason"
        assert any(m["name"] == msg and m["implicit"] for m in sclasses[cls]["messages"]), \
            f"{wire}: not an implicit message of the schema; drop the exception"
        assert wire not in api.entries, f"{wire}: now answered; drop the exception"


# real xapi messages that xapi hides from its documentation, and so from the schema
HIDDEN_IN_XAPI = {
    "session.slave_login": "the intra-pool login with the pool secret (docs/pools.md)",
}


@pytest.mark.parametrize("name", OUR_CLASSES)
def test_declared_messages(api, sclasses, name):
    """Hand-declared messages are real xapi messages with xapi's parameters."""
    smsgs = {m["name"]: m for m in sclasses[name]["messages"]}
    problems = []
    for d in api.classes[name].messages:
        assert isinstance(d, Message)
        m = smsgs.get(d.name)
        wire = f"{name}.{d.name}"
        if m is None:
            if wire not in HIDDEN_IN_XAPI:
                problems.append(f"{wire}: not in the schema")
            continue
        if m["implicit"]:
            problems.append(f"{wire}: the schema derives it; do not declare it")
        ps = schema_params(m)
        if [p.name for p in d.params] != [p["name"] for p in ps]:
            problems.append(f"{wire}: parameters {[p.name for p in d.params]}, schema "
                            f"{[p['name'] for p in ps]}")
        elif [p.type.xapi for p in d.params] != [p["type"] for p in ps]:
            problems.append(f"{wire}: parameter types differ from the schema")
        if d.result.xapi != m["result"]:
            problems.append(f"{wire}: result {d.result.xapi}, schema {m['result']}")
        if d.session != takes_session(m):
            problems.append(f"{wire}: session {d.session}, schema {takes_session(m)}")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------
# coverage report


def coverage(api, schema):
    ours = [c for c in schema["classes"] if c["name"] in api.classes]

    def fields(classes):
        total = covered = 0
        for c in classes:
            mine = api.classes.get(c["name"])
            for sf in c["fields"]:
                total += 1
                f = mine and mine.field(sf["name"])
                covered += bool(f and f.type.xapi == sf["type"])
        return covered, total

    def messages(classes, implicit):
        total = covered = 0
        for c in classes:
            for m in c["messages"]:
                if m["implicit"] != implicit:
                    continue
                total += 1
                covered += f"{c['name']}.{m['name']}" in api.entries
        return covered, total

    declared = sum(len(c.messages) for c in api.classes.values())
    names = {f"{c['name']}.{m['name']}" for c in schema["classes"] for m in c["messages"]}
    beyond = sorted(w for w in api.entries if w not in names)
    per_class = []
    for c in sorted(ours, key=lambda c: list(api.classes).index(c["name"])):
        f = fields([c])
        i = messages([c], True)
        x = messages([c], False)
        per_class.append((c["name"], f, i, x))
    return {
        "classes": (len(ours), len(schema["classes"])),
        "fields_ours": fields(ours),
        "fields_all": fields(schema["classes"]),
        "implicit_ours": messages(ours, True),
        "implicit_all": messages(schema["classes"], True),
        "explicit_ours": messages(ours, False),
        "explicit_all": messages(schema["classes"], False),
        "declared": declared,
        "beyond": beyond,
        "per_class": per_class,
    }


def _frac(p):
    return f"{p[0]}/{p[1]} ({100.0 * p[0] / p[1]:.1f}%)" if p[1] else "0/0"


def test_coverage_summary(api, schema, capsys):
    cov = coverage(api, schema)
    kinds = sorted({w.split(".", 1)[1] if "where" in w else w for w in cov["beyond"]})
    summary = "\n".join([
        "",
        "xapi schema coverage of the hostagent datamodel",
        f"  classes modelled                   {_frac(cov['classes'])}",
        f"  fields, our classes                {_frac(cov['fields_ours'])}",
        f"  fields, whole schema               {_frac(cov['fields_all'])}",
        f"  implicit messages, our classes     {_frac(cov['implicit_ours'])}",
        f"  implicit messages, whole schema    {_frac(cov['implicit_all'])}",
        f"  explicit messages, our classes     {_frac(cov['explicit_ours'])}"
        f"  ({cov['declared']} declared by hand, the rest served by derived entries)",
        f"  explicit messages, whole schema    {_frac(cov['explicit_all'])}",
        f"  entries beyond the schema          {len(cov['beyond'])}: {', '.join(kinds)}",
    ])
    # per-class detail: visible with -s
    print("\nclass                fields     implicit   explicit")
    for name, f, i, x in cov["per_class"]:
        print(f"{name:<20} {f[0]:>3}/{f[1]:<5} {i[0]:>3}/{i[1]:<5} {x[0]:>3}/{x[1]:<5}")
    # the summary is always shown, captured or not
    with capsys.disabled():
        print(summary)

    exceptions = sum(1 for w in IMPLICIT_EXCEPTIONS if w.split(".")[0] in api.classes)
    assert cov["fields_ours"][0] == cov["fields_ours"][1]
    assert cov["implicit_ours"][0] == cov["implicit_ours"][1] - exceptions
    assert cov["classes"][0] == len(OUR_CLASSES)
