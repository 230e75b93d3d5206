"""VM memory and VCPU settings (live where the VM runs), and the checks clients ask for.

Memory: static_min <= dynamic_min <= dynamic_max <= static_max, in bytes,
else MEMORY_CONSTRAINT_VIOLATION. Static limits and VCPUs_max change only on
a halted VM; the dynamic range and the VCPU count change a running domain
too (its memory target and its VCPUs).
"""

from ..datamodel.errors import ApiError
from . import domain_policy as policy
from . import placement
from .hypervisor_errors import translated
from .pool_forward import resident_host
from .vbd import allowed_slots

MEMORY = ("memory_static_min", "memory_dynamic_min", "memory_dynamic_max", "memory_static_max")
VIF_SLOTS = range(0, 7)  # as xapi: seven VIFs per VM


def _halted(ctx, vm: str, rec: dict) -> None:
    if rec["power_state"] != "Halted":
        raise ApiError("VM_BAD_POWER_STATE", vm, "halted", rec["power_state"].lower())


async def _set_memory(ctx, vm: str, static_ok: bool, **values) -> str:
    rec = ctx.need("VM", vm)
    new = {**{k: rec[k] for k in MEMORY}, **values}
    if any(rec[k] != new[k] for k in ("memory_static_min", "memory_static_max")):
        if not static_ok:
            raise ApiError("OPERATION_NOT_ALLOWED", "static memory limits change only with set_memory_limits "
                                                    "or set_memory_static_range")
        _halted(ctx, vm, rec)
    problem = policy.memory_problem({**rec, **new})
    if problem:
        raise ApiError("MEMORY_CONSTRAINT_VIOLATION", problem)
    if rec["power_state"] in ("Running", "Paused") and new["memory_dynamic_max"] != rec["memory_dynamic_max"]:
        with translated(vm, "VM.set_memory_dynamic_range"):
            await ctx.on_host(resident_host(ctx, vm)).ports.domains.call(  # where it runs
                "set_memory", rec["uuid"], new["memory_dynamic_max"])
    with ctx.store.transaction():
        ctx.store.update("VM", vm, **new, memory_target=new["memory_dynamic_max"])
        if rec["power_state"] in ("Running", "Paused") and ctx.store.exists("VM_metrics", rec["metrics"]):
            ctx.store.set("VM_metrics", rec["metrics"], "memory_actual", new["memory_dynamic_max"])
    return ""


async def set_memory_limits(ctx, self, static_min, static_max, dynamic_min, dynamic_max):
    return await _set_memory(ctx, self, True, memory_static_min=static_min, memory_static_max=static_max,
                             memory_dynamic_min=dynamic_min, memory_dynamic_max=dynamic_max)


async def set_memory_static_range(ctx, self, min, max):  # noqa: A002 - the API's names
    return await _set_memory(ctx, self, True, memory_static_min=min, memory_static_max=max)


async def set_memory_dynamic_range(ctx, self, min, max):  # noqa: A002
    return await _set_memory(ctx, self, False, memory_dynamic_min=min, memory_dynamic_max=max)


async def set_memory(ctx, self, value):
    return await _set_memory(ctx, self, False, memory_dynamic_min=value, memory_dynamic_max=value)


async def set_memory_static_max(ctx, self, value):
    return await _set_memory(ctx, self, True, memory_static_max=value)


async def set_memory_static_min(ctx, self, value):
    return await _set_memory(ctx, self, True, memory_static_min=value)


async def set_memory_dynamic_max(ctx, self, value):
    return await _set_memory(ctx, self, False, memory_dynamic_max=value)


async def set_memory_dynamic_min(ctx, self, value):
    return await _set_memory(ctx, self, False, memory_dynamic_min=value)


def set_VCPUs_max(ctx, self, value):
    rec = ctx.need("VM", self)
    _halted(ctx, self, rec)
    if value < 1 or value < rec["VCPUs_at_startup"]:
        raise ApiError("INVALID_VALUE", "VCPUs_max", str(value))
    with ctx.store.transaction():
        ctx.store.set("VM", self, "VCPUs_max", value)
    return ""


def set_VCPUs_at_startup(ctx, self, value):
    rec = ctx.need("VM", self)
    if not 1 <= value <= rec["VCPUs_max"]:
        raise ApiError("INVALID_VALUE", "VCPUs_at_startup", str(value))
    with ctx.store.transaction():
        ctx.store.set("VM", self, "VCPUs_at_startup", value)
    return ""


async def set_VCPUs_number_live(ctx, self, nvcpu):
    rec = ctx.need("VM", self)
    if rec["power_state"] != "Running":
        raise ApiError("VM_BAD_POWER_STATE", self, "running", rec["power_state"].lower())
    if not 1 <= nvcpu <= rec["VCPUs_max"]:
        raise ApiError("INVALID_VALUE", "nvcpu", str(nvcpu))
    with translated(self, "VM.set_VCPUs_number_live"):
        await ctx.on_host(resident_host(ctx, self)).ports.domains.call("set_vcpus", rec["uuid"], nvcpu)
    with ctx.store.transaction():
        if ctx.store.exists("VM_metrics", rec["metrics"]):
            ctx.store.set("VM_metrics", rec["metrics"], "VCPUs_number", nvcpu)
    return ""


# ------------------------------------------------------------------ checks
def get_allowed_VBD_devices(ctx, vm):
    rec = ctx.need("VM", vm)
    used = [ctx.store.get("VBD", v)["userdevice"] for v in rec["VBDs"]]
    return policy.free_slots(used, allowed_slots(rec))


def get_allowed_VIF_devices(ctx, vm):
    rec = ctx.need("VM", vm)
    used = [ctx.store.get("VIF", v)["device"] for v in rec["VIFs"]]
    return policy.free_slots(used, VIF_SLOTS)


def assert_operation_valid(ctx, self, op):
    rec = ctx.need("VM", self)
    oplocks = ctx.oplocks
    table = oplocks.tables["VM"]
    for candidate in table.ops:
        if candidate.name == op:
            err = oplocks.problem(table, candidate, self, rec)
            if err is not None:
                raise err
            return ""
    raise ApiError("OPERATION_NOT_ALLOWED", f"{op} is not an operation this agent performs")


def update_allowed_operations(ctx, self):
    ctx.need("VM", self)
    with ctx.store.transaction():
        ctx.store.touch("VM", self)  # recomputed inside every transaction that touches the VM
    return ""


def assert_can_boot_here(ctx, self, host):
    ctx.need("VM", self)
    ctx.need("host", host)
    placement.check(ctx.store, self, host, ctx.host)
    return ""


def get_possible_hosts(ctx, vm):
    ctx.need("VM", vm)
    return [h for h in ctx.store.all("host") if placement.problem(ctx.store, vm, h, ctx.host) is None]


def get_boot_record(ctx, self):
    return ctx.need("VM", self)


HANDLERS = {f"VM.{f.__name__}": f for f in (
    set_memory_limits, set_memory_static_range, set_memory_dynamic_range, set_memory, set_memory_static_max,
    set_memory_static_min, set_memory_dynamic_max, set_memory_dynamic_min, set_VCPUs_max,
    set_VCPUs_at_startup, set_VCPUs_number_live, get_allowed_VBD_devices, get_allowed_VIF_devices,
    assert_operation_valid, update_allowed_operations, assert_can_boot_here, get_possible_hosts,
    get_boot_record)}
