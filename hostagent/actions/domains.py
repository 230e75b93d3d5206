"""Domains that change behind the agent's back, and the reconciliation at start-up.

libvirt's lifecycle events: a domain whose uuid is a VM's reports starting,
pausing, resuming and stopping; the VM's record follows (power_state, domid,
resident_on), and a stopped domain's storage is detached. A VM with an
operation in progress is left to that operation (it owns the record), a VM
recorded as Suspended stays so when its domain stops (that is how a suspend
ends), and domains that are no VM of ours, or the control domain, are
ignored.

At start-up (`at_start`) the records are made to match the running domains:
a VM recorded as running whose domain is gone becomes Halted, a domain that
runs for a VM recorded otherwise (the agent died between the two) makes it
Running, storage attached for domains that are gone is detached, and a
suspend image no VM owns (the agent died during a suspend) is destroyed.
"""

import logging
import os

from ..backends.hypervisor import HypervisorError
from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from ..rpc.coerce import now_text
from . import vdi as vdi_actions
from . import vm_runtime as run

log = logging.getLogger("hostagent.domains")
SLOW_MEMBER = 5.0  # seconds a member may take to read a guest's keys before its others are skipped

STATES = {"started": "Running", "resumed": "Running", "suspended": "Paused",
          "stopped": "Halted", "crashed": "Halted", "undefined": "Halted"}


async def lifecycle(ctx, event) -> None:
    """`event` is (uuid, name, what, detail) from the hypervisor port."""
    uuid, name, what, _detail = event
    store = ctx.store
    vm = store.by_uuid("VM", uuid)
    state = STATES.get(what)
    if vm is None or state is None:
        return
    rec = store.get("VM", vm)
    if rec["is_control_domain"] or rec["power_state"] == state or rec["current_operations"]:
        return
    if rec["resident_on"] not in (ctx.host, NULL_REF):
        return  # it runs on another host now (it migrated there): an event of this host's is stale
    if state == "Halted" and rec["power_state"] in ("Suspended", "Halted"):
        return
    log.info("VM %s (%s): domain %s behind our back, now %s", rec["name_label"], uuid, what, state)
    if state == "Halted":
        await run.detach_disks(ctx, vm)
        if store.exists("VM", vm):
            run.mark_halted(ctx, vm)
        return
    with store.transaction():
        store.update("VM", vm, power_state=state, resident_on=ctx.host)


async def _listed(ctx, complaint: str, say):
    """The hypervisor's domains by uuid, or None (said with `complaint`) when it cannot tell."""
    if ctx.ports.domains is None:
        return None
    try:
        return {d.uuid: d for d in await ctx.ports.domains.call("list")}
    except HypervisorError as e:
        say(complaint, e)
        return None


async def figures(ctx) -> None:
    """VM_metrics follow the hypervisor between events: the memory and VCPUs of running
    domains as libvirt lists them (a balloon target or VCPU count changed behind the
    agent's back), written only when they moved; one listing per host sample."""
    listed = await _listed(ctx, "cannot list domains for their figures: %s", log.info)
    if listed is None:
        return
    store = ctx.store
    moved = []
    for rec in store.all("VM").values():
        if (rec["is_control_domain"] or rec["power_state"] not in ("Running", "Paused")
                or rec["current_operations"] or rec["resident_on"] != ctx.host):
            continue
        d = listed.get(rec["uuid"])
        metrics = store.all("VM_metrics").get(rec["metrics"])
        if d is None or d.domid != rec["domid"] or metrics is None or not d.memory:
            continue  # gone or replaced: the lifecycle events say so
        if (metrics["memory_actual"], metrics["VCPUs_number"]) != (d.memory, d.vcpus):
            moved.append((rec["metrics"], d))
    if moved:
        now = now_text(ctx.clock())
        with store.transaction():
            for ref, d in moved:
                store.update("VM_metrics", ref, memory_actual=d.memory, VCPUs_number=d.vcpus, last_updated=now)


async def guest_metrics(ctx) -> None:
    """Read again what running guests publish (a guest agent writes its OS and addresses into
    xenstore after boot and when they change, long after VM.start); for agents that read real
    guests only (`periodic`), on every host sample."""
    store = ctx.store
    reads_again = {}  # host -> its context, when its guests' keys are read again
    for vm, rec in list(store.all("VM").items()):
        if (rec["is_control_domain"] or rec["power_state"] != "Running" or rec["current_operations"]
                or rec["domid"] < 1):
            continue
        host = rec["resident_on"]
        if host not in reads_again:
            reads_again[host] = await _reading_again(ctx, host)
        hctx = reads_again[host]
        if hctx is None:
            continue
        asked = ctx.clock()
        facts = await run.guest_facts(hctx, vm, rec["domid"])
        if hctx.remote and ctx.clock() - asked >= SLOW_MEMBER:  # stalled: its other guests wait a round
            log.warning("host %s was slow to answer for its guests' keys: the rest wait for the next round", host)
            reads_again[host] = None
        rec = store.get("VM", vm) if store.exists("VM", vm) else None
        if facts is not None and rec is not None and rec["power_state"] == "Running":
            run.refresh_guest_metrics(ctx, vm, facts)


async def _reading_again(ctx, host: str):
    """`host`'s context if its guests' keys change while they run (a real guest agent's: this
    host's agent says so; a pool member's, when its hypervisor is Xen's), else None."""
    if host == ctx.host:
        return ctx if getattr(ctx.ports.guest_agent, "periodic", False) else None
    if not ctx.store.exists("host", host):
        return None
    try:
        hctx = ctx.on_host(host)
        return hctx if (await hctx.ports.domains.capabilities()).driver == "Xen" else None
    except (ApiError, HypervisorError):  # not live, not reachable, or this host is a slave
        return None


async def at_start(ctx) -> None:
    store = ctx.store
    running = await _listed(ctx, "cannot list domains at start-up, VM power states are as recorded: %s",
                            log.error)
    if running is None:
        return
    for vm, rec in list(store.all("VM").items()):
        if rec["is_control_domain"] or rec["is_a_template"]:
            continue
        dom = running.get(rec["uuid"])
        if dom is not None:
            if rec["power_state"] not in ("Running", "Paused") or rec["domid"] != dom.domid:
                log.warning("VM %s runs as domain %d: recording it so", rec["name_label"], dom.domid)
                run.mark_running(ctx, vm, dom, [], paused=dom.state == "paused")
            continue
        if rec["resident_on"] not in (ctx.host, NULL_REF):
            continue  # a pool member's (started or migrated there): its heartbeat reconciles it
        if rec["power_state"] in ("Running", "Paused"):
            log.warning("VM %s was recorded %s but has no domain: Halted", rec["name_label"], rec["power_state"])
            await run.detach_disks(ctx, vm)
            run.mark_halted(ctx, vm)
        elif rec["power_state"] == "Suspended" and not store.exists("VDI", rec["suspend_VDI"]):
            log.warning("VM %s was Suspended but its image is gone: Halted", rec["name_label"])
            run.mark_halted(ctx, vm)
        elif store.private_of("VM", vm).get("attached"):
            await run.detach_disks(ctx, vm)
    await _orphan_images(ctx)


async def _orphan_images(ctx) -> None:
    """Suspend images on their way in or out when the agent died: files and VDIs."""
    scratch = ctx.ports.scratch_dir
    if scratch and os.path.isdir(scratch):
        for name in os.listdir(scratch):
            log.warning("removing %s, left by an interrupted suspend or resume", name)
            os.unlink(os.path.join(scratch, name))
    store = ctx.store
    for vdi, rec in list(store.all("VDI").items()):
        owner = rec["other_config"].get("suspend-image-of")
        if not owner or rec["type"] != "suspend":
            continue
        vm = store.by_uuid("VM", owner)
        if vm is not None and store.get("VM", vm)["suspend_VDI"] == vdi:
            continue
        log.warning("destroying suspend image %s that no VM owns (an interrupted suspend)", rec["uuid"])
        try:
            await vdi_actions.destroy(ctx, vdi)
        except ApiError as e:
            log.error("cannot destroy orphan suspend image %s: %s", rec["uuid"], e.description)
