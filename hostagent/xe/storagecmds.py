"""Storage commands whose xe form differs from the API: vdi-create, sr-create."""

from .command import Command
from .errors import UsageError
from .values import parse

UNITS = {"": 1, "b": 1, "kib": 1 << 10, "kb": 1 << 10, "k": 1 << 10, "mib": 1 << 20, "mb": 1 << 20,
         "m": 1 << 20, "gib": 1 << 30, "gb": 1 << 30, "g": 1 << 30, "tib": 1 << 40, "tb": 1 << 40,
         "t": 1 << 40}


def size(text: str, name: str) -> str:
    """Bytes, with an optional unit as xe takes them: 10GiB, 512MiB, 4096."""
    digits = text.rstrip("BbKkMmGgTtIi")
    unit = text[len(digits):].lower()
    if not digits.isdigit() or unit not in UNITS:
        raise UsageError(f"Parameter {name} must be a size such as 4096, 512MiB or 10GiB, not {text!r}")
    return str(int(digits) * UNITS[unit])


def _maps(ctx, prefix):
    return {k.split(":", 1)[1]: v for k, v in ctx.opts.params.items() if k.startswith(prefix + ":")}


def _check_extra(ctx, known, maps):
    for key in ctx.opts.params:
        if key not in known and key.split(":", 1)[0] not in maps:
            raise UsageError(f"Unknown parameter: {key}")


def vdi_create(ctx):
    _check_extra(ctx, ("sr-uuid", "name-label", "virtual-size", "type", "sharable", "read-only",
                       "name-description"), ("sm-config", "other-config"))
    record = {
        "SR": ctx.call("SR.get_by_uuid", ctx.param("sr-uuid")),
        "name_label": ctx.param("name-label"),
        "name_description": ctx.param("name-description", ""),
        "virtual_size": size(ctx.param("virtual-size"), "virtual-size"),
        "type": parse(ctx.model.cls("VDI").field("type").type, ctx.param("type", "user"), ctx.session,
                      ctx.model, "type"),
        "sharable": parse(["bool"], ctx.param("sharable", "false"), ctx.session, ctx.model, "sharable"),
        "read_only": parse(["bool"], ctx.param("read-only", "false"), ctx.session, ctx.model, "read-only"),
        "other_config": _maps(ctx, "other-config"),
        "sm_config": _maps(ctx, "sm-config"),
        "xenstore_data": {}, "tags": [],
    }
    from .tasks import run_message
    ref = run_message(ctx, "VDI.create", [record], {"async": True})
    ctx.write(ctx.call("VDI.get_uuid", ref) + "\n")


def sr_create(ctx):
    _check_extra(ctx, ("name-label", "type", "host-uuid", "shared", "content-type", "physical-size",
                       "name-description"), ("device-config", "sm-config"))
    host_uuid = ctx.param("host-uuid")
    if host_uuid is None:
        pool = next(iter(ctx.resolver.all("pool").values()))
        host = pool["master"]
    else:
        host = ctx.call("host.get_by_uuid", host_uuid)
    args = [host, _maps(ctx, "device-config"),
            size(ctx.param("physical-size", "0"), "physical-size"), ctx.param("name-label"),
            ctx.param("name-description", ""), ctx.param("type"), ctx.param("content-type", ""),
            parse(["bool"], ctx.param("shared", "false"), ctx.session, ctx.model, "shared"),
            _maps(ctx, "sm-config")]
    from .tasks import run_message
    ref = run_message(ctx, "SR.create", args, {"async": True})
    ctx.write(ctx.call("SR.get_uuid", ref) + "\n")


def register(reg, model):
    reg.add(Command("vdi-create", vdi_create, required=("sr-uuid", "name-label", "virtual-size"),
                    optional=("type", "sharable", "read-only", "name-description"), open=True, group="vdi",
                    help="Create a VDI of virtual-size bytes (units KiB, MiB, GiB, TiB taken) on an SR; "
                         "sm-config:k=v, other-config:k=v; prints its uuid."))
    reg.add(Command("sr-create", sr_create, required=("name-label", "type"),
                    optional=("host-uuid", "shared", "content-type", "physical-size", "name-description"),
                    open=True, group="sr",
                    help="Create an SR of a driver type (file, ext, nfs, lvm, iso) with device-config:k=v "
                         "keys on a host (default: the master); prints its uuid."))
