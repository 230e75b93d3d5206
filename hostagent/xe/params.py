"""The param commands every class has: param-get, param-set, param-add, param-remove,
param-clear, working on a field by its CLI name.

A map key is set with one call: add_to_<field> for a new key of an RW map, else the
whole map through set_<field>, so a value the agent refuses leaves the old one.
"""

from . import records as R
from .errors import UsageError, XeError
from .values import parse

column = R.find_column


def text_of(ctx, cls, col, rec):
    return R.column_text(col, rec, ctx.resolver)


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
