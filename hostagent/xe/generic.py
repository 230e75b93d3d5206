"""Commands derived from the command table for every class, never written per class.

`<c>-list`, `<c>-param-list|get|set|add|remove|clear`, `<c>-create` and
`<c>-destroy` where the API has a constructor, and `<c>-<message>` for each
explicit message whose first parameter is the object itself (`vbd-plug uuid=`,
`sr-scan uuid=`, `vdi-resize uuid= size=`). `template` and `snapshot` are views of
the VM class with their own hidden filters, as in XenServer's xe.
"""

from . import records as R
from .command import Command
from .errors import UsageError
from .params import param_add, param_clear, param_get, param_remove, param_set
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


column = R.find_column


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
