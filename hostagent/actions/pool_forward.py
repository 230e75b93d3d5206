"""Host-bound work on pool members: the member's side of a port call, its domains' events
pushed to the master, and the master's reconciliation of a member's VMs.

The master runs every action and holds every record; what must happen on a member goes
through that member's ports (`ctx.on_host(host)`, pool/remote.py), which call
`serve_port` on the member's agent. The member runs the call on its own local ports,
never forwarding it on and never touching its database. Its libvirt lifecycle events
(a domain that stops or crashes behind the agent's back) go to the master
(`push_lifecycle` -> `serve_domain_event`), whose records follow. When a member comes
back (a heartbeat from a new run of its agent, or after it was not live) the master
reconciles that member's VMs with the domains its hypervisor lists (`reconcile_member`).
"""

import contextlib
import functools
import logging
import os

from ..backends.hypervisor import HypervisorError
from ..backends.netlink import LinkError
from ..backends.storage import StorageError
from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from ..pool import wire
from . import domains
from . import vm_runtime as run

log = logging.getLogger("hostagent.pool")

LIVE_STATES = ("Running", "Paused")
# the lifecycle event a port call of the master's makes, which the master need not hear of
OWN_EVENTS = {"start": "started", "pause": "suspended", "unpause": "resumed", "destroy": "stopped", "migrate": "stopped",
              "save": "stopped", "restore": "started"}
EVENT_TRIES = 5  # looks at a member's domain whose VM record keeps changing, before its event is dropped
NOW = {"running": "started", "paused": "suspended", "shutoff": "stopped", "crashed": "crashed", "gone": "stopped"}


# ------------------------------------------------------------------ member
async def serve_port(ctx, payload):
    """A port call from the master, run on this host's own ports: {"result": ...} or
    {"raised": the port's exception}; a call outside the allow-list runs nothing. With
    "quiet" the lifecycle event the call makes is not pushed back (the master's operation
    writes the records itself)."""
    m = ctx.rt.pool
    if not m.is_slave:
        raise ApiError("OPERATION_NOT_ALLOWED", "this host is not a pool member: it runs no port calls")
    try:
        port, op, args = wire.parse(payload)
    except wire.WireError as e:
        log.warning("refused a port call from the master: %s", e)
        raise ApiError("OPERATION_NOT_ALLOWED", str(e)) from None
    ports = ctx.rt.ports
    try:
        if port == "scratch":
            return {"result": wire.encode(scratch_file(ports, op, args[0]))}
        if port == "guest":
            return {"result": wire.encode(await guest_call(ports, op, args))}
        if port == "links":
            if ports.links is None:
                raise ApiError("OPERATION_NOT_ALLOWED", "this host's agent does not manage its links")
            return {"result": wire.encode(await getattr(ports.links, op)(*args))}
        args = [scratch_path(ports, a) if isinstance(a, wire.ScratchFile) else a for a in args]
        if port == "domains":
            if ports.domains is None:
                raise ApiError("OPERATION_NOT_ALLOWED", "this host has no hypervisor")
            if op == "capabilities":
                result = await ports.domains.capabilities()
            else:
                result = await ports.domains.call(op, *args)
        else:
            args = [ports.storage.driver(a.sr_type, a.sr_uuid, a.device_config)
                    if isinstance(a, wire.DriverRef) else a for a in args]
            if port == "sr":  # the SR driver's own call
                result = await ports.storage.call(*args[:1], op, *args[1:])
            else:
                result = await getattr(ports.storage, op)(*args)
    except (HypervisorError, StorageError, LinkError) as e:
        return {"raised": wire.encode_error(e)}
    if payload.get("quiet") is True and port == "domains" and op in OWN_EVENTS and args:
        m.expect_event(args[0] if isinstance(args[0], str) else getattr(args[0], "uuid", ""), OWN_EVENTS[op])
    return {"result": wire.encode(result)}


async def guest_call(ports, op: str, args):
    """The master's call on this member's xenstore or guest agent. Both are best effort, as
    for a VM of the master's own: a failure is logged here and answers None."""
    if op == "facts":
        fn = ports.guest_agent.facts if ports.guest_agent is not None else None
    else:
        fn = getattr(ports.xenstore, op) if ports.xenstore is not None else None
    if fn is None or ports.domains is None:
        return None
    try:
        return await ports.domains.run(fn, *args)
    except Exception as e:  # noqa: BLE001 - a guest's keys never fail the master's operation
        log.warning("guest %s for domain %s, asked by the master, failed: %s", op, args[0] if args else "?", e)
        return None


def scratch_path(ports, file) -> str:
    """Where a ScratchFile the master names is in this member's scratch dir."""
    os.makedirs(ports.scratch_dir, mode=0o700, exist_ok=True)
    return os.path.join(ports.scratch_dir, file.name)


def scratch_file(ports, op: str, file):
    """The size of a scratch file, or None once removed."""
    path = scratch_path(ports, file)
    if op == "size":
        try:
            return os.path.getsize(path)
        except FileNotFoundError:
            raise StorageError("VDI_IO_ERROR", [f"no suspend image {file.name} on this host"]) from None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return None


async def push_lifecycle(ctx, event) -> None:
    """A libvirt lifecycle event: a slave's goes to its master, a master's is its own."""
    m = ctx.rt.pool
    if m is None or not m.is_slave:
        await domains.lifecycle(ctx, event)
        return
    if m.expected_event(event[0], event[2]):
        return  # the master's own call did this, and wrote its records
    role = m.role
    try:
        await m.call(role.master_address, "domain_event",
                     {"host": ctx.store.get("host", ctx.host)["uuid"], "event": [str(x) for x in event]},
                     pinned=role.master_cert, host=role.master_host or role.master_address)
    except ApiError as e:
        log.warning("domain event %s not told to the master: %s", list(event), " ".join(e.description))


# ------------------------------------------------------------------ master
def member_of(ctx, payload) -> str:
    """The member host a member's call comes from (by the uuid it gives)."""
    uuid = payload.get("host") if isinstance(payload, dict) else None
    ref = ctx.store.by_uuid("host", uuid) if isinstance(uuid, str) else None
    if ref is None:
        raise ApiError("HOST_UNKNOWN_TO_MASTER", str(uuid))
    return ref


async def serve_domain_event(ctx, payload):
    """A member's domain changed behind its agent's back: that member's VM records follow."""
    host = member_of(ctx, payload)
    event = payload.get("event")
    if not isinstance(event, list) or len(event) != 4 or host == ctx.host:
        raise ApiError("INTERNAL_ERROR", "a domain event names a member and (uuid, name, what, detail)")
    vm = ctx.store.by_uuid("VM", event[0])
    if vm is None:
        return False
    resident = ctx.store.get("VM", vm)["resident_on"]
    if resident not in (host, NULL_REF):
        return False  # the VM is another host's: a stale event
    # events arrive late and out of order (a pause's after the unpause that followed it): the
    # records follow what the member's hypervisor says now, asked while the VM's record did
    # not change (an operation that changed it meanwhile owns it; ask again after it)
    hctx = ctx.on_host(host)
    for _ in range(EVENT_TRIES):
        seen = ctx.store.changed.get(("VM", vm))
        try:
            now = await hctx.ports.domains.call("state", event[0])
        except HypervisorError as e:
            log.warning("domain event %s from host %s: cannot ask its state: %s", event, host, e)
            return False
        if not ctx.store.exists("VM", vm):
            return False
        if ctx.store.changed.get(("VM", vm)) == seen:
            what = NOW.get(now.state if now is not None else "gone", "stopped")
            await domains.lifecycle(hctx, (event[0], event[1], what, event[3]))
            return True
    return False


async def reconcile_member(ctx, host: str) -> int:
    """The member's VMs as its hypervisor lists them: a VM recorded running there whose
    domain is gone is Halted, one whose domain runs there is Running or Paused. The number
    of VMs changed."""
    hctx = ctx.on_host(host)
    listed = {d.uuid: d for d in await hctx.ports.domains.call("list")}
    store, changed = ctx.store, 0
    for vm, rec in list(store.all("VM").items()):
        if rec["is_control_domain"] or rec["is_a_template"] or rec["current_operations"]:
            continue
        dom = listed.get(rec["uuid"])
        if dom is not None and rec["resident_on"] in (host, NULL_REF):
            state = "Paused" if dom.state == "paused" else "Running"
            if rec["power_state"] != state or rec["domid"] != dom.domid or rec["resident_on"] != host:
                log.warning("VM %s runs as domain %d on host %s: recording it so", rec["name_label"], dom.domid,
                            host)
                run.mark_running(hctx, vm, dom, [], paused=state == "Paused")
                changed += 1
        elif dom is None and rec["resident_on"] == host and rec["power_state"] in LIVE_STATES:
            log.warning("VM %s was %s on host %s but has no domain there: Halted", rec["name_label"],
                        rec["power_state"], host)
            await run.detach_disks(hctx, vm)
            if store.exists("VM", vm):
                run.mark_halted(hctx, vm)
            changed += 1
    return changed


# ------------------------------------------------------------------ actions on the VM's host
def resident_host(ctx, vm: str) -> str:
    rec = ctx.need("VM", vm)
    host = rec["resident_on"]
    return host if host != NULL_REF and rec["power_state"] in LIVE_STATES else ctx.host


def on_resident(fn):
    """An action `fn(ctx, vm, ...)` done on the host the VM runs on."""
    @functools.wraps(fn)
    async def run_there(ctx, vm, *args):
        return await fn(ctx.on_host(resident_host(ctx, vm)), vm, *args)
    return run_there


def on_resident_of_device(cls: str):
    """An action `fn(ctx, device, ...)` on a VBD or VIF, done on the host its VM runs on."""
    def wrap(fn):
        @functools.wraps(fn)
        async def run_there(ctx, ref, *args):
            vm = ctx.need(cls, ref)["VM"]
            return await fn(ctx.on_host(resident_host(ctx, vm)), ref, *args)
        return run_there
    return wrap
