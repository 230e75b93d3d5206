"""API records turned into CLI records: CLI names, markers and printable values.

References print as the uuid of the object they name (`<not in database>` for a
null or dangling one), sets as `a; b`, maps as `k: v; k2: v2`, booleans as
`true`/`false`, floats with three decimals, a VM's power state in lower case.
Objects a record points to are fetched once per class and only when a shown
field needs them.
"""

NOT_IN_DB = "<not in database>"
POWER_STATES = ("Halted", "Running", "Paused", "Suspended")
CONSOLE_PROTOCOLS = ("vt100", "rfb", "rdp")  # xe prints these as VT100, RFB, RDP

# Fields XenServer's xe shows beside a class's own: (cli name, marker, ref field to follow,
# field of the object it names, its type). Computed only when asked for.
EXTRAS = {
    "VM": [("VCPUs-number", "( RO)", "metrics", "VCPUs_number", ["int"]),
           ("memory-actual", "( RO)", "metrics", "memory_actual", ["int"]),
           ("start-time", "( RO)", "metrics", "start_time", ["datetime"]),
           ("install-time", "( RO)", "metrics", "install_time", ["datetime"]),
           ("VCPUs-utilisation", "(MRO)", "metrics", "VCPUs_utilisation", ["map", ["int"], ["float"]]),
           ("os-version", "(MRO)", "guest_metrics", "os_version", ["map", ["string"], ["string"]]),
           ("networks", "(MRO)", "guest_metrics", "networks", ["map", ["string"], ["string"]]),
           ("PV-drivers-version", "(MRO)", "guest_metrics", "PV_drivers_version",
            ["map", ["string"], ["string"]])],
    "console": [("vm-name-label", "( RO)", "VM", "name_label", ["string"])],
    "VBD": [("vm-name-label", "( RO)", "VM", "name_label", ["string"]),
            ("vdi-name-label", "( RO)", "VDI", "name_label", ["string"])],
    "VIF": [("vm-name-label", "( RO)", "VM", "name_label", ["string"])],
    "VDI": [("sr-name-label", "( RO)", "SR", "name_label", ["string"])],
    "PBD": [("sr-name-label", "( RO)", "SR", "name_label", ["string"])],
}


class Column:
    """A field the CLI can show: a class's own or an extra."""

    __slots__ = ("cli", "extra", "field", "marker", "type")

    def __init__(self, cli, marker, field=None, extra=None, type_=None):
        self.cli, self.marker, self.field, self.extra = cli, marker, field, extra
        self.type = field.type if field is not None else type_


def columns(cls):
    """Every column of class `cls` (a model.Class), own fields first."""
    cols = [Column(f.cli, f.marker, field=f) for f in cls.fields]
    for cli, marker, via, target_field, type_ in EXTRAS.get(cls.name, ()):
        f = cls.by_api.get(via)
        if f is not None and f.target:
            cols.append(Column(cli, marker, extra=(via, target_field, f.target), type_=type_))
    if cls.name == "SR":
        cols.append(Column("host", "( RO)", extra=("PBDs", None, "PBD"), type_=["string"]))
    return cols


def find_column(cls, name):
    """The column a CLI name means: a field (by CLI or API name) or an extra; None if none."""
    for col in columns(cls):
        if col.cli == name:
            return col
    f = cls.field(name)
    if f is not None:
        return Column(f.cli, f.marker, field=f)
    return None


class Resolver:
    """Fetches records of any class on demand, once per command."""

    def __init__(self, session, model):
        self.session = session
        self.model = model
        self._all = {}

    def all(self, cls_name):
        if cls_name not in self._all:
            cls = self.model.classes.get(cls_name)
            if cls is not None and cls.get_all:
                self._all[cls_name] = self.session.call(f"{cls_name}.get_all_records")
            else:
                self._all[cls_name] = {}
        return self._all[cls_name]

    def record(self, cls_name, ref):
        rec = self.all(cls_name).get(ref) if cls_name in self.model.classes else None
        if rec is None and ref and ref != "OpaqueRef:NULL" and cls_name in self.model.classes \
                and not self.model.classes[cls_name].get_all:
            from .errors import Failure
            try:
                rec = self.session.call(f"{cls_name}.get_record", ref)
            except Failure:
                rec = None
            self._all[cls_name][ref] = rec
        return rec

    def uuid(self, cls_name, ref):
        rec = self.record(cls_name, ref)
        return rec.get("uuid", NOT_IN_DB) if rec else NOT_IN_DB

    def forget(self, cls_name):
        self._all.pop(cls_name, None)


def value_text(type_, value, resolver) -> str:
    kind = type_[0]
    if kind == "ref":
        return resolver.uuid(type_[1], value)
    if kind == "set":
        return "; ".join(value_text(type_[1], v, resolver) for v in (value or []))
    if kind == "map":
        return "; ".join(f"{k}: {value_text(type_[2], v, resolver)}" for k, v in (value or {}).items())
    if kind == "bool":
        return "true" if value is True or str(value).lower() == "true" else "false"
    if kind == "datetime":
        return getattr(value, "value", str(value))
    if kind == "float":
        try:
            return f"{float(value):.3f}"
        except (TypeError, ValueError):
            return str(value)
    if kind == "enum" and value in POWER_STATES:
        return value.lower()
    if kind == "enum" and value in CONSOLE_PROTOCOLS:
        return value.upper()
    return "" if value is None else str(value)


def column_value(col, rec, resolver):
    """The raw API value of column `col` in record `rec` (following a ref for extras)."""
    if col.field is not None:
        return rec.get(col.field.api)
    via, target_field, target_cls = col.extra
    if target_field is None:
        return _sr_host(rec, resolver)
    ref = rec.get(via)
    if not ref or ref == "OpaqueRef:NULL":
        return None
    target = resolver.record(target_cls, ref)
    return None if target is None else target.get(target_field)


def _sr_host(rec, resolver):
    """sr-list's host column: the name of the host of each PBD, `<shared>` with none."""
    hosts = []
    for pbd in rec.get("PBDs") or []:
        prec = resolver.record("PBD", pbd)
        h = prec and resolver.record("host", prec.get("host"))
        if h:
            hosts.append(h.get("name_label", ""))
    return "; ".join(hosts) if hosts else "<shared>"


def column_text(col, rec, resolver) -> str:
    raw = column_value(col, rec, resolver)
    if raw is None and col.field is None:
        return NOT_IN_DB
    return value_text(col.type, raw, resolver)
