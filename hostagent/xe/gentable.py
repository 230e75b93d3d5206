"""Write `commands.json`, the compact command table `xe` reads instead of the datamodel.

Building the datamodel costs `xe` more time than its whole call should take, so
the facts it needs (per class: fields with types and writability, setters,
constructors, explicit messages; the error table) are kept as data beside the
package. `make docs` (or `python -m hostagent.xe.gentable`) rewrites it;
tests/unit/xe/test_table.py fails while it is out of date.
"""

import json
import os
import sys

from hostagent.datamodel import types as T
from hostagent.datamodel.api import build_api
from hostagent.datamodel.decl import DEPRECATED, MISSING, REMOVED, RW
from hostagent.datamodel.error_table import ERRORS

TABLE = os.path.join(os.path.dirname(__file__), "commands.json")


def encode_type(t: T.Type):
    """A type as a small JSON value: ["string"], ["ref", "VM"], ["set", t], ["map", k, v]..."""
    k = t.kind
    if k == "ref":
        return ["ref", t.cls]
    if k == "enum":
        return ["enum", list(t.values)]
    if k == "set":
        return ["set", encode_type(t.elem)]
    if k == "map":
        return ["map", encode_type(t.key), encode_type(t.value)]
    if k == "record":
        return ["record", t.cls]
    if k in ("struct", "anyrecord"):
        return [k]
    return ["int" if k == "i4" else k]


def build_table() -> dict:
    api = build_api()
    classes = {}
    for c in api.classes.values():
        if not c.stored:
            continue
        fields = []
        for f in api.public_fields(c.name):
            setter = f"set_{f.name}"
            entry = api.entries.get(f"{c.name}.{setter}")
            # a field xe may set: one with a setter (derived, or declared such as
            # VM.set_VCPUs_max); a task's setters are its owner's, not param-set's
            settable = entry is not None and len(entry.params) == 2 and c.name != "task"
            fields.append([f.name, encode_type(f.type), "RW" if f.qualifier == RW else "RO",
                           settable, f.required_in_create and c.constructor,
                           f.lifecycle in (DEPRECATED, REMOVED)])
        messages = {}
        for m in c.messages:
            if m.sets:
                continue
            messages[m.name] = {"params": [[p.name, encode_type(p.type), p.default is not MISSING]
                                           for p in m.params],
                                "result": encode_type(m.result), "async": m.async_, "doc": m.doc}
        classes[c.name] = {"fields": fields, "ctor": c.constructor, "all": c.get_all,
                           "by_name": c.by_name_label, "messages": messages, "doc": c.doc}
    return {"classes": classes, "errors": {code: list(p) for code, p in sorted(ERRORS.items())}}


def render() -> str:
    return json.dumps(build_table(), sort_keys=True, separators=(",", ":")) + "\n"


def main(argv=None) -> int:
    path = (argv or sys.argv[1:] or [TABLE])[0]
    with open(path, "w", encoding="utf-8") as f:
        f.write(render())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
