"""The command table as `xe` sees it: classes, their CLI names and their fields.

Loaded from `commands.json` (written by `gentable.py` from the datamodel), so
`xe` never imports the datamodel itself. A field's CLI name is its API name with
`-` for `_`, except a reference named after the class it points to, which is
shown as that object's uuid (`VBD.VM` is `vm-uuid`), as XenServer's xe does.
"""

import json
import os

TABLE = os.path.join(os.path.dirname(__file__), "commands.json")

# CLI names of classes that are not simply the lower-cased API name with '-' for '_'
CLI_CLASS = {"VM_metrics": "vm-metrics", "VM_guest_metrics": "vm-guest-metrics"}
# fields XenServer's xe shows under another name
RENAMES = {("VM", "domid"): "dom-id", ("VM", "suspend_VDI"): "suspend-VDI-uuid",
           ("VM", "suspend_SR"): "suspend-SR-uuid"}
# CLI markers: (kind, writable) -> the suffix printed after a field name
MARKERS = {("plain", False): "( RO)", ("plain", True): "( RW)", ("map", False): "(MRO)",
           ("map", True): "(MRW)", ("set", False): "(SRO)", ("set", True): "(SRW)"}


class Field:
    """One field of a class as the CLI shows it."""

    __slots__ = ("api", "cli", "cls", "deprecated", "required", "rw", "settable", "type", "writable")

    def __init__(self, cls, api, type_, qualifier, settable, required, deprecated):
        self.cls = cls
        self.api = api
        self.type = type_
        self.rw = qualifier == "RW"  # so the API derives add/remove for its maps and sets
        self.writable = self.rw or settable
        self.settable = settable
        self.required = required
        self.deprecated = deprecated
        self.cli = cli_field_name(cls, api, type_)

    @property
    def kind(self) -> str:
        return self.type[0]

    @property
    def marker(self) -> str:
        shape = self.kind if self.kind in ("map", "set") else "plain"
        return MARKERS[(shape, self.writable)]

    @property
    def target(self):
        """The class a ref (or set of refs) points to, else None."""
        t = self.type[1] if self.kind == "set" else self.type
        return t[1] if t[0] == "ref" else None


class Class:
    def __init__(self, name, data):
        self.name = name
        self.cli = CLI_CLASS.get(name, name.lower().replace("_", "-"))
        self.fields = [Field(name, *f) for f in data["fields"]]
        self.by_cli = {f.cli: f for f in self.fields}
        self.by_api = {f.api: f for f in self.fields}
        self.constructor = data["ctor"]
        self.get_all = data["all"]
        self.messages = data["messages"]
        self.doc = data["doc"]

    def field(self, cli_name: str):
        """The field a CLI parameter names: its CLI name, its API name, or `_` spelt `-`."""
        f = self.by_cli.get(cli_name) or self.by_api.get(cli_name)
        if f is None:
            f = self.by_api.get(cli_name.replace("-", "_"))
        return f


def cli_field_name(cls: str, api: str, type_) -> str:
    if (cls, api) in RENAMES:
        return RENAMES[(cls, api)]
    if type_[0] == "ref" and type_[1].lower() == api.lower():
        return f"{type_[1].lower().replace('_', '-')}-uuid"
    return api.replace("_", "-")


class Model:
    def __init__(self, data):
        self.classes = {name: Class(name, c) for name, c in data["classes"].items()}
        self.by_cli = {c.cli: c for c in self.classes.values()}
        self.errors = data["errors"]

    def cls(self, name: str) -> Class:
        return self.classes[name]


def load(path: str = TABLE) -> Model:
    with open(path, encoding="utf-8") as f:
        return Model(json.load(f))
