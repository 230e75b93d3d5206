"""What a running domain adds to a VM's records, and the storage it holds.

`attach_disks` gives each VBD's VDI to the hypervisor through the storage
port (attached for that VBD: a VHD chain gets its own NBD server, which
outlives the agent) and remembers, durably and before the domain exists,
which volumes it attached (VM private `attached`: SR, volume, VBD uuid), so that whatever happens next (a failed
start, a stop, a killed agent) knows what to detach. `mark_running` and
`mark_halted` write the records that follow a domain: power state, domid,
resident_on, devices' currently_attached, metrics, consoles, guest metrics.
"""

import logging
from typing import List, Optional

from ..backends import domain as D
from ..backends.storage import StorageError
from ..backends.xenstore import XenstoreError
from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from ..rpc.coerce import now_text
from . import domain_policy as policy
from . import storage_records as R
from .storage_errors import translated as storage_translated

log = logging.getLogger("hostagent.vm")


async def attach_disks(ctx, vm: str, driver: str) -> List[D.Disk]:
    """Attach every disk of the VM; on any failure detach what was attached and raise."""
    store = ctx.store
    rec = store.get("VM", vm)
    kind = policy.boot_kind(rec)
    plan = []
    for vbd in rec["VBDs"]:
        vbd_rec = store.get("VBD", vbd)
        vdi = vbd_rec["VDI"]
        if vbd_rec["empty"] or vdi == NULL_REF:
            plan.append((vbd_rec, None, None))
            continue
        vdi_rec = ctx.need("VDI", vdi)
        plan.append((vbd_rec, vdi_rec, vdi))
    disks = []
    await remember_attached(ctx, vm, [[store.get("VDI", v)["SR"], R.volume_of(store, v), vbd_rec["uuid"]]
                                      for vbd_rec, _, v in plan if v is not None])
    try:
        for vbd_rec, vdi_rec, vdi in plan:
            if vdi is None:
                disks.append(policy.disk(driver, kind, vbd_rec, None, None))
                continue
            drv = R.plugged_driver(ctx, vdi_rec["SR"])
            writable = vbd_rec["mode"] == "RW" and not vdi_rec["read_only"]
            with storage_translated(ctx):
                attachment = await ctx.ports.storage.attach(drv, R.volume_of(store, vdi), writable,
                                                            vbd_rec["uuid"])
            disks.append(policy.disk(driver, kind, vbd_rec, vdi_rec, attachment))
    except BaseException:
        await detach_disks(ctx, vm)
        raise
    return disks


async def remember_attached(ctx, vm: str, volumes: list) -> None:
    """Durably record the volumes attached for the VM (nothing to write when it already says so)."""
    if (ctx.store.private_of("VM", vm).get("attached") or []) == volumes:
        return
    with ctx.store.transaction():
        ctx.store.set_private("VM", vm, attached=volumes)
    await ctx.durable()


async def detach_disks(ctx, vm: str) -> None:
    """Detach what `attach_disks` attached (idempotent; failures are logged, not raised:
    the domain is gone whatever the storage says)."""
    store = ctx.store
    if not store.exists("VM", vm):
        return
    volumes = store.private_of("VM", vm).get("attached") or []
    for sr, volume, *owner in volumes:
        if not store.exists("SR", sr):
            continue
        try:
            drv = R.plugged_driver(ctx, sr)
            await ctx.ports.storage.detach(drv, volume, owner[0] if owner else "")
        except (ApiError, StorageError) as e:
            log.warning("detaching volume %s of SR %s: %s", volume, sr, e)
    if volumes and store.exists("VM", vm):
        await remember_attached(ctx, vm, [])


def nics(ctx, vm: str) -> List[D.Nic]:
    store = ctx.store
    out = []
    for vif in store.get("VM", vm)["VIFs"]:
        rec = store.get("VIF", vif)
        if store.exists("network", rec["network"]):
            out.append(policy.nic(rec, store.get("network", rec["network"])))
    return out


def mark_running(ctx, vm: str, state, disks, paused: bool = False, guest=None) -> None:
    """The records of a VM whose domain now runs (`state`: the port's DomainState)."""
    store = ctx.store
    rec = store.get("VM", vm)
    now = now_text(ctx.clock())
    targets = {d.userdevice: d.target for d in disks}
    with store.transaction():
        store.update("VM", vm, power_state="Paused" if paused else "Running", domid=state.domid,
                     resident_on=ctx.host, scheduled_to_be_resident_on=NULL_REF, suspend_VDI=NULL_REF)
        if store.exists("VM_metrics", rec["metrics"]):
            store.update("VM_metrics", rec["metrics"], memory_actual=state.memory or rec["memory_dynamic_max"],
                         VCPUs_number=state.vcpus or rec["VCPUs_at_startup"], start_time=now, last_updated=now,
                         state=[], hvm=policy.boot_kind(rec) == D.HVM,
                         current_domain_type=rec["domain_type"] if rec["domain_type"] != "unspecified"
                         else ("hvm" if policy.boot_kind(rec) == D.HVM else "pv"))
        for vbd in rec["VBDs"]:
            slot = int(store.get("VBD", vbd)["userdevice"])
            store.update("VBD", vbd, currently_attached=True, device=targets.get(slot, ""))
        for vif in rec["VIFs"]:
            store.set("VIF", vif, "currently_attached", True)
        _make_consoles(ctx, vm, rec)
        if guest is not None:
            _guest_metrics(ctx, vm, guest, now)
    consoles = ctx.rt.ports.consoles  # this host's: it settles its terminals and tells members of theirs
    if consoles is not None:  # its vncterm starts (actions/consoles.py, consoles_pool.py)
        consoles.changed(rec["uuid"])


def mark_halted(ctx, vm: str, power_state: str = "Halted", suspend_vdi: str = NULL_REF) -> None:
    """The records of a VM whose domain is gone (Halted, or Suspended with its image)."""
    store = ctx.store
    rec = store.get("VM", vm)
    with store.transaction():
        store.update("VM", vm, power_state=power_state, domid=-1, resident_on=NULL_REF,
                     suspend_VDI=suspend_vdi)
        if store.exists("VM_metrics", rec["metrics"]):
            store.update("VM_metrics", rec["metrics"], VCPUs_number=0, memory_actual=0,
                         last_updated=now_text(ctx.clock()))
        for vbd in rec["VBDs"]:
            store.set("VBD", vbd, "currently_attached", False)
        for vif in rec["VIFs"]:
            store.set("VIF", vif, "currently_attached", False)
        for console in rec["consoles"]:
            store.delete("console", console)
        if store.exists("VM_guest_metrics", rec["guest_metrics"]):
            store.delete("VM_guest_metrics", rec["guest_metrics"])
            store.set("VM", vm, "guest_metrics", NULL_REF)
    consoles = ctx.rt.ports.consoles  # this host's, as in mark_running
    if consoles is not None:  # its console relays close, its vncterm stops
        consoles.vm_gone(rec["uuid"])
        consoles.changed(rec["uuid"])


def _make_consoles(ctx, vm: str, rec: dict) -> None:
    """rfb for every guest, and vt100 too for PV ones, at https://<master's address>/console?uuid=..."""
    store = ctx.store
    for console in rec["consoles"]:
        store.delete("console", console)
    address = store.get("host", ctx.rt.host)["address"]  # clients reach every console at the master
    protocols = ["rfb"] + (["vt100"] if policy.boot_kind(rec) != D.HVM else [])
    for protocol in protocols:
        ref = store.create("console", {"protocol": protocol, "VM": vm})
        uuid = store.get("console", ref)["uuid"]
        store.set("console", ref, "location", f"https://{address}/console?uuid={uuid}")


def refresh_guest_metrics(ctx, vm: str, facts) -> bool:
    """VM_guest_metrics from what the guest publishes now; no write when nothing changed.
    True when something was written."""
    store = ctx.store
    current = store.get("VM", vm)["guest_metrics"]
    if store.exists("VM_guest_metrics", current):
        rec = store.get("VM_guest_metrics", current)
        if (rec["os_version"], rec["networks"], rec["PV_drivers_version"], rec["other"]) == (
                facts.os_version, facts.networks, facts.pv_drivers_version, facts.other):
            return False
    with store.transaction():
        _guest_metrics(ctx, vm, facts, now_text(ctx.clock()))
    return True


def _guest_metrics(ctx, vm: str, facts, now: str) -> None:
    store = ctx.store
    values = {"os_version": facts.os_version, "networks": facts.networks,
              "PV_drivers_version": facts.pv_drivers_version, "other": facts.other, "last_updated": now,
              "live": True, "PV_drivers_detected": bool(facts.pv_drivers_version),
              "PV_drivers_up_to_date": bool(facts.pv_drivers_version)}
    current = store.get("VM", vm)["guest_metrics"]
    if store.exists("VM_guest_metrics", current):
        store.update("VM_guest_metrics", current, **values)
    else:
        store.set("VM", vm, "guest_metrics", store.create("VM_guest_metrics", values))


async def guest_facts(ctx, vm: str, domid: int) -> Optional[object]:
    agent = ctx.ports.guest_agent
    if agent is None:
        return None
    store = ctx.store
    rec = dict(store.get("VM", vm))
    vifs = [dict(store.get("VIF", v)) for v in rec["VIFs"]]
    try:
        return await ctx.ports.domains.run(agent.facts, domid, rec, vifs)
    except Exception as e:  # noqa: BLE001 - a guest's keys never stop its VM from running
        log.warning("cannot read what the guest of VM %s published: %s", rec["uuid"], e)
        return None


async def write_vm_data(ctx, vm: str, domid: int) -> None:
    """Seed §5.3: keys of xenstore_data under vm-data go to the domain's xenstore; others
    are ignored."""
    xs = ctx.ports.xenstore
    data = {k: v for k, v in ctx.store.get("VM", vm)["xenstore_data"].items()
            if k == "vm-data" or k.startswith("vm-data/")}
    if xs is not None and data:
        try:
            await ctx.ports.domains.run(xs.write, domid, data)
        except XenstoreError as e:  # the domain runs: report, do not undo the start
            log.error("VM %s: cannot write its vm-data keys into xenstore: %s", vm, e)
