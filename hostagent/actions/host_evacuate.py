"""host.evacuate: every VM running on a host migrates to other hosts of the pool.

The plan comes first: for each VM resident on the host, the first other live, enabled host
that can take it (VM.pool_migrate's own checks: hypervisors that migrate, its SRs and
networks there, memory, counting what the plan already sends there). A VM that can go
nowhere refuses the whole evacuation before anything moves, with that VM's error
(`get_vms_which_prevent_evacuation` lists them all, `assert_can_evacuate` sums them up as
CANNOT_EVACUATE_HOST). Then the VMs move one at a time, each locked as a pool_migrate of
its own; a migration that fails then stops the evacuation there (the VMs already moved
stay where they went, the failed one runs on where it was).
"""

import logging

from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from ..db.store import new_uuid
from . import vm_migrate

log = logging.getLogger("hostagent.pool")


def _resident(ctx, host: str):
    store = ctx.store
    return [vm for vm in store.get("host", host)["resident_VMs"]
            if store.exists("VM", vm) and not store.get("VM", vm)["is_control_domain"]]


def _candidates(ctx, host: str):
    """The other hosts that are live and enabled."""
    store, out = ctx.store, []
    for ref, rec in store.all("host").items():
        metrics = store.all("host_metrics").get(rec["metrics"])
        if ref != host and rec["enabled"] and metrics is not None and metrics["live"]:
            out.append(ref)
    return out


async def plan(ctx, host: str):
    """([(vm, destination host, destination()'s answer)], {vm: ApiError of a VM that can go nowhere})."""
    store = ctx.store
    guard = ctx.oplocks.by_message.get("VM.pool_migrate") if ctx.oplocks is not None else None
    candidates = _candidates(ctx, host)
    planned, moves, problems = {}, [], {}
    for vm in _resident(ctx, host):
        rec = store.get("VM", vm)
        problem = ctx.oplocks.problem(guard[0], guard[1], vm, rec) if guard else None
        if problem is None and not candidates:
            problem = ApiError("NO_HOSTS_AVAILABLE")
        if problem is not None:
            problems[vm] = problem
            continue
        first = None
        for there in candidates:
            try:
                checked = await vm_migrate.destination(ctx, vm, host, there, planned.get(there, 0))
            except ApiError as e:
                first = first or e
                continue
            moves.append((vm, there, checked))
            planned[there] = planned.get(there, 0) + rec["memory_static_max"]
            break
        else:
            problems[vm] = first
    return moves, problems


async def evacuate(ctx, host, network=NULL_REF, evacuate_batch_size=0):
    ctx.need("host", host)
    moves, problems = await plan(ctx, host)
    if problems:
        vm, problem = next(iter(problems.items()))
        log.warning("host %s cannot be evacuated: VM %s: %s", host, vm, " ".join(problem.description))
        raise problem
    table, op = ctx.oplocks.by_message["VM.pool_migrate"]
    key = ctx.task or f"OpaqueRef:{new_uuid()}"
    for done, (vm, there, checked) in enumerate(moves):
        ctx.oplocks.begin(table, op, vm, key)
        try:
            await vm_migrate.migrate(ctx, vm, host, there, checked,
                                     progress=lambda f, done=done: ctx.progress((done + f) / len(moves)))
        finally:
            ctx.oplocks.end(table, vm, key)
    log.info("host %s evacuated: %d VMs migrated", host, len(moves))
    return ""


async def get_vms_which_prevent_evacuation(ctx, self):
    ctx.need("host", self)
    _, problems = await plan(ctx, self)
    return {vm: list(problem.description) for vm, problem in problems.items()}


async def assert_can_evacuate(ctx, host):
    ctx.need("host", host)
    _, problems = await plan(ctx, host)
    if problems:
        raise ApiError("CANNOT_EVACUATE_HOST", "|".join(",".join([vm, *p.description]) for vm, p in problems.items()))
    return ""


HANDLERS = {
    "host.evacuate": evacuate,
    "host.get_vms_which_prevent_evacuation": get_vms_which_prevent_evacuation,
    "host.assert_can_evacuate": assert_can_evacuate,
}
