"""A fingerprint of the whole wire-visible model, pinned in this file.

Any change to a class, field, enum, relation or message (name, type, qualifier,
default, lifecycle, parameters, result, async form) changes the sha256 below.
Docs are left out: rewording never needs a new fingerprint.

To see the current value: python -m tests.unit.datamodel.test_fingerprint
"""

import dataclasses
import hashlib
import json

from hostagent.datamodel.api import Api, build_api
from hostagent.datamodel.decl import MISSING, RW

EXPECTED_FINGERPRINT = "7c002cbe23bb5b850af1a99f18487ea26bccbf4fe4d6c2be30dcf63bc538dfdc"


def _walk(t):
    yield t
    if t.kind == "set":
        yield from _walk(t.elem)
    elif t.kind == "map":
        yield from _walk(t.key)
        yield from _walk(t.value)
    elif t.kind == "struct":
        for _, m in t.members:
            yield from _walk(m)


def _with_default(d, value):
    if value is not MISSING:
        d["default"] = value
    return d


def canonical(api: Api) -> str:
    """The model as one JSON text with a fixed key and list order."""
    enums = {}
    types = []
    classes = []
    for c in api.classes.values():
        fields = []
        for f in c.fields:
            types.append(f.type)
            fields.append(_with_default({
                "name": f.name, "type": f.type.xapi, "qualifier": f.qualifier,
                "lifecycle": f.lifecycle, "internal": f.internal}, f.default))
        classes.append({
            "name": c.name, "constructor": c.constructor, "get_all": c.get_all,
            "by_name_label": c.by_name_label, "events": c.events, "stored": c.stored,
            "fields": fields})
    entries = []
    for wire in sorted(api.entries):
        e = api.entries[wire]
        types.append(e.result)
        params = []
        for p in e.params:
            types.append(p.type)
            params.append(_with_default({"name": p.name, "type": p.type.xapi}, p.default))
        entries.append({"wire": wire, "params": params, "result": e.result.xapi,
                        "async": e.async_, "session": e.session})
    for t in types:
        for u in _walk(t):
            if u.kind == "enum":
                enums[u.name] = list(u.values)
            elif u.kind == "struct":
                enums[f"struct {u.name}"] = [[n, m.xapi] for n, m in u.members]
    relations = [[list(r.one), list(r.many)] for r in api.relations]
    doc = {"classes": classes, "enums": enums, "relations": relations, "entries": entries}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def fingerprint(api: Api) -> str:
    return hashlib.sha256(canonical(api).encode("ascii")).hexdigest()


def test_fingerprint():
    got = fingerprint(build_api())
    assert got == EXPECTED_FINGERPRINT, (
        f"the datamodel fingerprint is now {got}.\n"
        "Something wire-visible in hostagent/datamodel changed (a class, field, enum, "
        "relation or message). A schema change must be deliberate: check the change against "
        "xapi, then set EXPECTED_FINGERPRINT in tests/unit/datamodel/test_fingerprint.py to "
        "the value above (python -m tests.unit.datamodel.test_fingerprint prints it).")


def test_fingerprint_sees_small_changes():
    api = build_api()
    base = fingerprint(api)
    vm = api.classes["VM"]
    # flip one qualifier: the field's setters appear or vanish, and so must the digest
    name_label = vm.field("name_label")
    changed = dataclasses.replace(name_label, qualifier="RO/runtime" if name_label.qualifier == RW
                                  else RW)
    vm2 = dataclasses.replace(vm, fields=tuple(changed if f is name_label else f
                                               for f in vm.fields))
    classes = tuple(vm2 if c is vm else c for c in api.classes.values())
    assert fingerprint(Api(classes, api.relations)) != base
    # a default alone
    changed = dataclasses.replace(name_label, default="x")
    vm3 = dataclasses.replace(vm, fields=tuple(changed if f is name_label else f
                                               for f in vm.fields))
    classes = tuple(vm3 if c is vm else c for c in api.classes.values())
    assert fingerprint(Api(classes, api.relations)) != base
    # docs do not count
    vm4 = dataclasses.replace(vm, doc=vm.doc + " (reworded)")
    classes = tuple(vm4 if c is vm else c for c in api.classes.values())
    assert fingerprint(Api(classes, api.relations)) == base


if __name__ == "__main__":
    print(fingerprint(build_api()))
