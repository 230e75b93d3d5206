"""VM.pool_migrate: a running VM moves to another pool member while it runs.

The master checks the destination as placement does (live, enabled, the VM's SRs plugged
there, its networks there: actions/placement.py) and its memory, then asks both hosts'
hypervisors: each must be able to migrate (libvirt's xen and qemu drivers can, the test
driver cannot) and the destination must name the libvirt URI its libvirtd takes migrations
at (its --libvirt-migrate-uri). A VM that writes to a disk does not migrate yet (see
`writable_disk`). Anything missing is VM_MIGRATE_FAILED [vm, source, destination, why]
before anything moves. Then the destination's storage attaches the VM's (read-only) disks,
the source's libvirtd migrates the domain there peer to peer (backends/hypervisor/
migration.py), the source's storage lets the disks go, and the records follow: resident_on the destination, its domid there, consoles at its
address; VBDs and VIFs stay attached. A failed migration leaves the VM running on its
source, the destination's attachments undone.

The VM's lifecycle events on either host during the move are the operation's own: the
VM's current_operations hold pool_migrate until the records are written, and the events
handlers leave such VMs alone (actions/domains.py; a member's own "stopped" is not pushed).
"""

import logging

from ..backends.hypervisor import HypervisorError
from ..backends.storage import StorageError
from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from . import domain_policy as policy
from . import placement, vif_links
from . import pool_forward as forward
from . import storage_records as R
from .storage_errors import translated as storage_translated

log = logging.getLogger("hostagent.vm")


def failed(vm: str, source: str, destination: str, why: str) -> ApiError:
    return ApiError("VM_MIGRATE_FAILED", vm, source, destination, why)


# ------------------------------------------------------------------ checks
def memory_problem(store, vm: str, host: str, planned: int = 0):
    """HOST_NOT_ENOUGH_FREE_MEMORY when `host` cannot give the VM its memory, with `planned`
    bytes already promised to other VMs moving there (an evacuation's plan)."""
    needed = store.get("VM", vm)["memory_static_max"]
    available = max(0, placement.free_memory(store, host, vm) - planned)
    return ApiError("HOST_NOT_ENOUGH_FREE_MEMORY", needed, available) if needed > available else None


def writable_disk(store, vm: str):
    """The first VDI the VM writes to (a non-empty RW VBD of a VDI that is not read-only), or
    None. Such a disk does not migrate yet: the destination's datapath (an nbdkit serving the
    VHD chain, sm/datapath) reads the chain's block table when it starts, before the source's
    last writes, and would then allocate over blocks the source allocated meanwhile."""
    for vbd in store.get("VM", vm)["VBDs"]:
        rec = store.get("VBD", vbd)
        if rec["empty"] or rec["mode"] != "RW" or not store.exists("VDI", rec["VDI"]):
            continue
        if not store.get("VDI", rec["VDI"])["read_only"]:
            return rec["VDI"]
    return None


async def destination(ctx, vm: str, source: str, host: str, planned: int = 0):
    """(source ctx, destination ctx, destination URI) once every check passed; the first
    problem raised as its XenAPI error: the host as placement sees it (live, enabled, the
    VM's SRs and networks there), its memory, then both hypervisors."""
    store = ctx.store
    if host == source:
        raise failed(vm, source, host, "the VM already runs on that host")
    for problem in (placement.problem(store, vm, host, ctx.host, memory=False),
                    memory_problem(store, vm, host, planned)):
        if problem is not None:
            raise problem
    vdi = writable_disk(store, vm)
    if vdi is not None:
        raise failed(vm, source, host, f"VDI {store.get('VDI', vdi)['uuid']} is written by the VM: VMs with "
                                       "writable disks do not migrate yet (only read-only disks and CDs)")
    dst = ctx.on_host(host)  # CANNOT_CONTACT_HOST when its certificate or address fails
    src = ctx.on_host(source)
    drivers = set()
    for who, there in ((source, src), (host, dst)):
        try:
            caps = await there.ports.domains.capabilities()
        except HypervisorError as e:
            raise failed(vm, source, host, f"cannot ask the hypervisor of host {who}: {e}") from None
        if not caps.migrate:
            raise failed(vm, source, host, f"the {caps.driver} hypervisor of host {who} cannot migrate domains")
        drivers.add(caps.driver)
    if len(drivers) > 1:
        raise failed(vm, source, host, "the two hosts run different hypervisors")
    try:
        uri = await dst.ports.domains.call("migration_uri")
    except HypervisorError as e:
        raise failed(vm, source, host, f"cannot ask host {host} where it takes migrations: {e}") from None
    if not uri:
        raise failed(vm, source, host, f"host {host} takes no migrations (its --libvirt-migrate-uri is none)")
    return src, dst, uri


# ------------------------------------------------------------------ the move
async def pool_migrate(ctx, vm, host, options):
    ctx.need("VM", vm)
    ctx.need("host", host)
    await migrate(ctx, vm, forward.resident_host(ctx, vm), host)
    return ""


async def migrate(ctx, vm: str, source: str, host: str, checked=None, progress=None) -> None:
    """Move running VM `vm` from `source` to `host` (the checks done unless `checked` holds
    destination()'s answer); `progress(fraction)` instead of the task's own."""
    src, dst, uri = checked or await destination(ctx, vm, source, host)
    progress = progress or ctx.progress
    store = ctx.store
    rec = store.get("VM", vm)
    caps = await dst.ports.domains.capabilities()
    await vif_links.ensure_vm_bridges(dst, vm)  # its NICs' bridges, made on the destination
    progress(0.1)
    volumes = store.private_of("VM", vm).get("attached") or []
    disks, attached_there = await _attach_there(dst, vm, caps.driver)
    progress(0.3)
    try:
        await src.ports.domains.call("migrate", rec["uuid"], uri, disks)
    except HypervisorError as e:
        await _detach(dst, attached_there)
        log.warning("migration of VM %s from %s to %s failed: %s", rec["name_label"], source, host, e)
        raise failed(vm, source, host, str(e)) from None
    except ApiError as e:  # the source's agent did not answer: the domain may have moved all the same
        if not await _arrived(dst, rec["uuid"]):
            await _detach(dst, attached_there)
            raise
        log.warning("VM %s migrated to %s though host %s did not say so (%s)", rec["name_label"], host, source,
                    " ".join(e.description))
    progress(0.8)
    state = None
    try:
        state = await dst.ports.domains.call("state", rec["uuid"])
    except (HypervisorError, ApiError) as e:
        log.warning("VM %s migrated to %s, whose hypervisor does not say its state: %s", rec["name_label"], host, e)
    await _detach(src, volumes)
    if store.exists("VM", vm):
        _moved(dst, vm, state)
    consoles = src.rt.ports.consoles  # the master's: it runs its own terminals and tells members of theirs
    if consoles is not None:  # the relays to the source close; vncterms stop there and start at dst
        consoles.vm_gone(rec["uuid"])
        consoles.changed(rec["uuid"])
    progress(1.0)
    log.info("VM %s migrated from host %s to host %s (domid %s)", rec["name_label"], source, host,
             state.domid if state else "?")


async def _arrived(dst, uuid: str) -> bool:
    """Whether the domain runs on the destination now (False when it cannot be asked). Only a
    domain that runs counts: one migrating in waits paused until its memory has all come."""
    try:
        state = await dst.ports.domains.call("state", uuid)
    except (HypervisorError, ApiError):
        return False
    return state is not None and state.state == "running"


async def _attach_there(dst, vm: str, driver: str):
    """The VM's disks attached by the destination's storage (the same volumes and owners the
    VM's private `attached` names): (their descriptions there, the volumes attached); on a
    failure what was attached there is detached."""
    store = dst.store
    rec = store.get("VM", vm)
    kind = policy.boot_kind(rec)
    disks, done = [], []
    try:
        for vbd in rec["VBDs"]:
            vbd_rec = store.get("VBD", vbd)
            vdi = vbd_rec["VDI"]
            if vbd_rec["empty"] or vdi == NULL_REF or not store.exists("VDI", vdi):
                disks.append(policy.disk(driver, kind, vbd_rec, None, None))
                continue
            vdi_rec = store.get("VDI", vdi)
            drv = R.plugged_driver(dst, vdi_rec["SR"])
            writable = vbd_rec["mode"] == "RW" and not vdi_rec["read_only"]
            with storage_translated(dst):
                attachment = await dst.ports.storage.attach(drv, R.volume_of(store, vdi), writable, vbd_rec["uuid"])
            done.append([vdi_rec["SR"], R.volume_of(store, vdi), vbd_rec["uuid"]])
            disks.append(policy.disk(driver, kind, vbd_rec, vdi_rec, attachment))
    except BaseException:
        await _detach(dst, done)
        raise
    return [d for d in disks if d.source], done  # what the destination reaches by its own paths


async def _detach(there, volumes) -> None:
    """Let the volumes go on one host (failures logged: the domain has left it)."""
    store = there.store
    for sr, volume, *owner in volumes:
        if not store.exists("SR", sr):
            continue
        try:
            await there.ports.storage.detach(R.plugged_driver(there, sr), volume, owner[0] if owner else "")
        except (ApiError, StorageError) as e:
            log.warning("detaching volume %s of SR %s on host %s: %s", volume, sr, there.host, e)


def _moved(dst, vm: str, state) -> None:
    """The records of a VM now running on dst.host: resident there with its domid, consoles
    at the master's address (which relays a member's); devices stay attached."""
    store = dst.store
    rec = store.get("VM", vm)
    address = store.get("host", dst.rt.host)["address"]
    with store.transaction():
        store.update("VM", vm, resident_on=dst.host, scheduled_to_be_resident_on=NULL_REF,
                     domid=state.domid if state is not None else rec["domid"])
        for console in rec["consoles"]:
            if store.exists("console", console):
                uuid = store.get("console", console)["uuid"]
                store.set("console", console, "location", f"https://{address}/console?uuid={uuid}")


HANDLERS = {"VM.pool_migrate": pool_migrate}
