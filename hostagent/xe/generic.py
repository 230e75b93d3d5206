"""Commands derived from the command table for every class, never written per class.

`<c>-list`, `<c>-param-list|get|set|add|remove|clear`, `<c>-create` and
`<c>-destroy` where the API has a constructor, and `<c>-<message>` for each
explicit message whose first parameter is the object itself (`vbd-plug uuid=`,
`sr-scan uuid=`, `vdi-resize uuid= size=`). `template` and `snapshot` are views of
the VM class with their own hidden filters, as in XenServer's xe.
"""

from . import records as R
from .command import Command
from .errors import UsageError, XeError
from .render import minimal_text, record_text
from .values import parse

# views of a class: cli name -> (class, hidden filters {api field: value})
VIEWS = {"vm": ("VM", {"is_a_template": False}),
         "template": ("VM", {"is_a_template": True, "is_a_snapshot": False}),
         "snapshot": ("VM", {"is_a_snapshot": True})}
DEFAULT_COLUMNS = {
    "vm": ["uuid", "name-label", "power-state"],
    "template": ["uuid", "name-label", "name-description"],
    "snapshot": ["uuid", "name-label", "name-description"],
    "host": ["uuid", "name-label", "name-description"],
    "sr": ["uuid", "name-label", "name-description", "host", "type", "content-type"],
    "vdi": ["uuid", "name-label", "name-description", "virtual-size", "read-only", "sharable", "sr-uuid"],
    "vbd": ["uuid", "vm-uuid", "vm-name-label", "vdi-uuid", "device", "empty"],
    "vif": ["uuid", "device", "vm-uuid", "network-uuid"],
    "network": ["uuid", "name-label", "name-description", "bridge"],
    "pif": ["uuid", "device", "VLAN", "MAC", "network-uuid", "currently-attached", "host-uuid"],
    "pbd": ["uuid", "host-uuid", "sr-uuid", "device-config", "currently-attached"],
    "console": ["uuid", "vm-uuid", "vm-name-label", "protocol", "location"],
    "task": ["uuid", "name-label", "name-description", "status", "progress"],
    "vlan": ["uuid", "tagged-PIF", "untagged-PIF", "tag"],
    "bond": ["uuid", "master", "slaves", "mode"],
    "host-cpu": ["uuid", "number", "vendor", "speed", "modelname"],
    "sm": ["uuid", "name-label", "type", "vendor", "capabilities"],
}


def views(model):
    """Every (cli name, class, hidden filters) that gets derived commands."""
    out = []
    for cls in model.classes.values():
        if not cls.get_all:
            continue
        if cls.name == "VM":
            out += [(name, cls, hidden) for name, (_, hidden) in VIEWS.items()]
        else:
            out.append((cls.cli, cls, {}))
    return out


def register(reg, model):
    for cli, cls, hidden in views(model):
        _register_view(reg, model, cli, cls, hidden)


def _register_view(reg, model, cli, cls, hidden):
    group = cli
    reg.add(Command(f"{cli}-list", lambda ctx, c=cls, h=hidden, v=cli: list_cmd(ctx, c, h, v),
                    optional=("params",), open=True, group=group, fields=True,
                    help=f"List the {cli}s (field filters such as name-label=..., params=a,b or all)."))
    sel = lambda ctx, c=cls: by_uuid(ctx, c)
    reg.add(Command(f"{cli}-param-list", lambda ctx, c=cls: param_list(ctx, c, sel(ctx)),
                    required=("uuid",), group=group, help=f"Show every field of a {cli}."))
    reg.add(Command(f"{cli}-param-get", lambda ctx, c=cls: param_get(ctx, c, sel(ctx)),
                    required=("uuid", "param-name"), optional=("param-key",), group=group,
                    help=f"Print one field of a {cli} (a key of a map field with param-key=)."))
    reg.add(Command(f"{cli}-param-set", lambda ctx, c=cls: param_set(ctx, c, sel(ctx)),
                    required=("uuid",), open=True, group=group, fields=True,
                    help=f"Set fields of a {cli}: field=value, map-field:key=value."))
    reg.add(Command(f"{cli}-param-add", lambda ctx, c=cls: param_add(ctx, c, sel(ctx)),
                    required=("uuid", "param-name"), optional=("param-key",), open=True, group=group,
                    help=f"Add to a set field (param-key=value) or map field (key=value...) of a {cli}."))
    reg.add(Command(f"{cli}-param-remove", lambda ctx, c=cls: param_remove(ctx, c, sel(ctx)),
                    required=("uuid", "param-name", "param-key"), group=group,
                    help=f"Remove a key from a map field, or a value from a set field, of a {cli}."))
    reg.add(Command(f"{cli}-param-clear", lambda ctx, c=cls: param_clear(ctx, c, sel(ctx)),
                    required=("uuid", "param-name"), group=group,
                    help=f"Empty a map or set field (or a string field) of a {cli}."))
    if cli != cls.cli:
        return  # templates and snapshots share the VM's other commands
    if cls.constructor:
        reg.add(Command(f"{cli}-create", lambda ctx, c=cls: create_cmd(ctx, c), open=True, group=group,
                        fields=True,
                        required=tuple(f.cli for f in cls.fields if f.required and f.kind == "ref"),
                        help=f"Create a {cli} from field=value parameters; prints its uuid."))
        reg.add(Command(f"{cli}-destroy", lambda ctx, c=cls: destroy_cmd(ctx, c), required=("uuid",),
                        group=group, help=f"Destroy a {cli}."))
    for name, msg in cls.messages.items():
        params = msg["params"]
        if not params or params[0][1] != ["ref", cls.name]:
            continue
        cmd = f"{cli}-{name.replace('_', '-')}"
        if cmd in reg:
            continue
        rest = params[1:]
        reg.add(Command(cmd, lambda ctx, c=cls, n=name, m=msg: message_cmd(ctx, c, n, m),
                        required=("uuid",) + tuple(_pname(p) for p in rest if not p[2]),
                        optional=tuple(_pname(p) for p in rest if p[2]), group=group,
                        help=msg["doc"] or f"{cls.name}.{name}"))


def _pname(p):
    name = p[0].replace("_", "-")
    return f"{name}-uuid" if p[1][0] == "ref" and not name.endswith("uuid") else name


def by_uuid(ctx, cls):
    return ctx.call(f"{cls.name}.get_by_uuid", ctx.param("uuid"))


def column(cls, name):
    for col in R.columns(cls):
        if col.cli == name:
            return col
    f = cls.field(name)
    if f is not None:
        return R.Column(f.cli, f.marker, field=f)
    return None


def text_of(ctx, cls, col, rec):
    return R.column_text(col, rec, ctx.resolver)


def chosen_columns(ctx, cls, view, every=False):
    spec = ctx.param("params")
    if spec is None and not every:
        names = DEFAULT_COLUMNS.get(view)
        if names is None:
            names = ["uuid"] + [n for n in ("name-label", "name-description") if cls.field(n)]
    elif spec is None or spec == "all":
        return R.columns(cls)
    else:
        names = [n.strip() for n in spec.split(",") if n.strip()]
    cols = []
    for n in names:
        col = column(cls, n)
        if col is None:
            raise UsageError(f"Unknown field: {n} (not a field of {view})")
        cols.append(col)
    return cols


def matches(ctx, cls, rec, filters):
    for key, want in filters:
        name, _, sub = key.partition(":")
        col = column(cls, name)
        if sub:
            value = col and col.field and rec.get(col.field.api)
            if col is None or col.type[0] not in ("map", "set"):
                raise UsageError(f"Unknown parameter: {key}")
            if col.type[0] == "set":
                if sub != "contains":
                    raise UsageError(f"Unknown parameter: {key} (sets take {name}:contains=)")
                if want not in R.value_text(col.type, value, ctx.resolver).split("; "):
                    return False
            elif R.value_text(col.type[2], (value or {}).get(sub, ""), ctx.resolver) != want:
                return False
            continue
        if col is None:
            raise UsageError(f"Unknown parameter: {key}")
        text = text_of(ctx, cls, col, rec)
        if col.type[0] == "enum" or col.type[0] == "bool":
            if text.lower() != want.lower():
                return False
        elif text != want:
            return False
    return True


def where_expr(cls, hidden, filters):
    """The part of the selection the agent can do (get_all_records_where), as xe asks it:
    the hidden filters and exact matches on plain string and bool fields."""
    terms = []
    for api, value in hidden.items():
        terms.append((api, "true" if value is True else "false" if value is False else str(value)))
    for key, want in filters:
        f = cls.field(key) if ":" not in key else None
        if f is not None and f.kind in ("string", "bool") and f.cli == key:
            terms.append((f.api, want.lower() if f.kind == "bool" else want))
    if not terms:
        return "true"

    def quote(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return " and ".join(f'field {quote(_column_name(api))} = {quote(v)}' for api, v in terms)


def _column_name(api):
    return "name__" + api[5:] if api.startswith("name_") else api


def select(ctx, cls, hidden, filters):
    """(ref, record) of every object of `cls` passing the hidden and the given filters."""
    expr = where_expr(cls, hidden, filters)
    if expr == "true":
        recs = ctx.resolver.all(cls.name)
    else:
        recs = ctx.call(f"{cls.name}.get_all_records_where", expr)
    out = []
    for ref, rec in recs.items():
        if any(rec.get(k) != v for k, v in hidden.items()):
            continue
        if matches(ctx, cls, rec, filters):
            out.append((ref, rec))
    return out


def list_cmd(ctx, cls, hidden, view):
    filters = [(k, v) for k, v in ctx.opts.params.items() if k != "params"]
    cols = chosen_columns(ctx, cls, view)
    found = select(ctx, cls, hidden, filters)
    if ctx.opts.minimal:
        ctx.write(minimal_text([text_of(ctx, cls, cols[0], rec) for _, rec in found] if cols else []))
        return
    for _, rec in found:
        ctx.write(record_text([(f"{c.cli} {c.marker}", text_of(ctx, cls, c, rec)) for c in cols]))


def show_record(ctx, cls, rec, cols):
    if ctx.opts.minimal:
        ctx.write(minimal_text([text_of(ctx, cls, cols[0], rec)]))
    else:
        ctx.write(record_text([(f"{c.cli} {c.marker}", text_of(ctx, cls, c, rec)) for c in cols]))


def param_list(ctx, cls, ref):
    rec = ctx.call(f"{cls.name}.get_record", ref)
    show_record(ctx, cls, rec, R.columns(cls))


def _field(cls, name):
    f = cls.field(name)
    if f is None:
        raise UsageError(f"Unknown field: {name} (not a field of {cls.cli})")
    return f


def param_get(ctx, cls, ref):
    name = ctx.param("param-name")
    rec = ctx.call(f"{cls.name}.get_record", ref)
    col = column(cls, name)
    if col is None:
        raise UsageError(f"Unknown field: {name} (not a field of {cls.cli})")
    key = ctx.param("param-key")
    if key is not None:
        if col.type[0] != "map":
            raise UsageError(f"param-key= needs a map field; {name} is not one")
        value = R.column_value(col, rec, ctx.resolver) or {}
        if key not in value:
            raise XeError(f"Key {key} not found in map {name}")
        ctx.write(R.value_text(col.type[2], value[key], ctx.resolver) + "\n")
        return
    ctx.write(text_of(ctx, cls, col, rec) + "\n")


def _read_only(cls, f):
    return XeError(f"Field {f.cli} of {cls.cli} is read-only")


def set_map_key(ctx, cls, ref, f, key, value):
    parsed = parse(f.type[2], value, ctx.session, ctx.model, f"{f.cli}:{key}")
    if f"add_to_{f.api}" in _accessors(cls, f) and not f.settable:
        ctx.call(f"{cls.name}.remove_from_{f.api}", ref, key)
        ctx.call(f"{cls.name}.add_to_{f.api}", ref, key, parsed)
    elif f"add_to_{f.api}" in _accessors(cls, f) and \
            key not in ctx.call(f"{cls.name}.get_{f.api}", ref):
        ctx.call(f"{cls.name}.add_to_{f.api}", ref, key, parsed)
    elif f.settable:
        # the whole map in one call: a refused value leaves the old one in place
        current = ctx.call(f"{cls.name}.get_{f.api}", ref)
        current[key] = parsed
        ctx.call(f"{cls.name}.set_{f.api}", ref, current)
    else:
        raise _read_only(cls, f)


def _accessors(cls, f):
    """Derived accessor names a field has: RW maps and sets get add/remove."""
    if f.rw:
        if f.kind == "map":
            return (f"add_to_{f.api}", f"remove_from_{f.api}")
        if f.kind == "set":
            return (f"add_{f.api}", f"remove_{f.api}")
    return ()


def param_set(ctx, cls, ref):
    for key, value in ctx.opts.params.items():
        if key == "uuid":
            continue
        name, sep, sub = key.partition(":")
        f = _field(cls, name)
        if sep:
            if f.kind != "map":
                raise UsageError(f"{name} is not a map field: {key}")
            set_map_key(ctx, cls, ref, f, sub, value)
            continue
        if not f.settable:
            raise _read_only(cls, f)
        ctx.call(f"{cls.name}.set_{f.api}", ref, parse(f.type, value, ctx.session, ctx.model, f.cli))


def param_add(ctx, cls, ref):
    f = _field(cls, ctx.param("param-name"))
    extra = {k: v for k, v in ctx.opts.params.items() if k not in ("uuid", "param-name", "param-key")}
    if f.kind == "set":
        if ctx.param("param-key") is None or extra:
            raise UsageError(f"{f.cli} is a set: give the value as param-key=<value>")
        value = parse(f.type[1], ctx.param("param-key"), ctx.session, ctx.model, f.cli)
        if f"add_{f.api}" in _accessors(cls, f):
            ctx.call(f"{cls.name}.add_{f.api}", ref, value)
        elif f.settable:
            current = ctx.call(f"{cls.name}.get_{f.api}", ref)
            if value not in current:
                ctx.call(f"{cls.name}.set_{f.api}", ref, current + [value])
        else:
            raise _read_only(cls, f)
    elif f.kind == "map":
        if ctx.param("param-key") is not None:
            raise UsageError(f"{f.cli} is a map: give key=value parameters")
        for key, value in extra.items():
            set_map_key(ctx, cls, ref, f, key, value)
    else:
        raise UsageError(f"{f.cli} is neither a map nor a set")


def param_remove(ctx, cls, ref):
    f = _field(cls, ctx.param("param-name"))
    key = ctx.param("param-key")
    if f.kind not in ("map", "set"):
        raise UsageError(f"{f.cli} is neither a map nor a set")
    accessors = _accessors(cls, f)
    if f.kind == "map" and accessors:
        ctx.call(f"{cls.name}.remove_from_{f.api}", ref, key)
    elif f.kind == "set" and accessors:
        ctx.call(f"{cls.name}.remove_{f.api}", ref, parse(f.type[1], key, ctx.session, ctx.model, f.cli))
    elif f.settable:
        current = ctx.call(f"{cls.name}.get_{f.api}", ref)
        if f.kind == "map":
            current.pop(key, None)
        else:
            value = parse(f.type[1], key, ctx.session, ctx.model, f.cli)
            current = [v for v in current if v != value]
        ctx.call(f"{cls.name}.set_{f.api}", ref, current)
    else:
        raise _read_only(cls, f)


def param_clear(ctx, cls, ref):
    f = _field(cls, ctx.param("param-name"))
    if not f.settable:
        raise _read_only(cls, f)
    empty = {"map": {}, "set": [], "string": ""}.get(f.kind)
    if empty is None:
        raise UsageError(f"{f.cli} cannot be cleared (only maps, sets and strings)")
    ctx.call(f"{cls.name}.set_{f.api}", ref, empty)


def zero(type_):
    return {"string": "", "int": "0", "float": 0.0, "bool": False, "datetime": "19700101T00:00:00Z",
            "ref": "OpaqueRef:NULL", "enum": (type_[1] or [""])[0] if type_[0] == "enum" else "",
            "set": [], "map": {}}.get(type_[0], "")


def create_cmd(ctx, cls):
    record = {}
    for f in cls.fields:
        if f.required:
            record[f.api] = zero(f.type)
    maps = {}
    for key, value in ctx.opts.params.items():
        name, sep, sub = key.partition(":")
        f = cls.field(name)
        if f is None:
            raise UsageError(f"Unknown parameter: {key} (not a field of {cls.cli})")
        if sep:
            if f.kind != "map":
                raise UsageError(f"{name} is not a map field: {key}")
            maps.setdefault(f.api, {})[sub] = parse(f.type[2], value, ctx.session, ctx.model, key)
        else:
            record[f.api] = parse(f.type, value, ctx.session, ctx.model, f.cli)
    record.update(maps)
    ref = ctx.call(f"{cls.name}.create", record)
    ctx.write(ctx.call(f"{cls.name}.get_uuid", ref) + "\n")


def destroy_cmd(ctx, cls):
    ctx.call(f"{cls.name}.destroy", by_uuid(ctx, cls))


def message_cmd(ctx, cls, name, msg):
    from .tasks import run_message
    args = [by_uuid(ctx, cls)]
    for p in msg["params"][1:]:
        cli = _pname(p)
        if cli not in ctx.opts.params:
            break  # a trailing defaulted parameter
        args.append(parse(p[1], ctx.param(cli), ctx.session, ctx.model, cli))
    result = run_message(ctx, f"{cls.name}.{name}", args, msg)
    print_result(ctx, msg["result"], result)


def print_result(ctx, type_, value):
    if type_[0] == "void" or value is None:
        return
    if type_[0] == "ref":
        ctx.write(ctx.call(f"{type_[1]}.get_uuid", value) + "\n")
    elif type_[0] == "set" and type_[1][0] == "ref":
        ctx.write(",".join(ctx.call(f"{type_[1][1]}.get_uuid", v) for v in value) + "\n")
    else:
        ctx.write(R.value_text(type_, value, ctx.resolver) + "\n")
