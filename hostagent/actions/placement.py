"""Where a VM may start or resume in the pool: xapi's assert_can_boot_here and its choice
of a host for VM.start and VM.resume.

A host can run a VM when it is live (the master, which runs this, always is), enabled (not
`host.disable`d), sees every SR the VM's disks are on (a PBD currently attached on that host;
for a suspended VM also its suspend image's SR), reaches every network of its VIFs (one with
a PIF on that host, or one with no PIF at all: internal, see `network_missing`), and has the
memory free. `check` raises the first of those that fails, in xapi's order; `choose` takes
the VM's affinity host when it can run it, else the host that can with the most memory free
(the master first among equals). As xapi, when no host has the memory the choice is made
again without it, so the start fails on the host chosen with HOST_NOT_ENOUGH_FREE_MEMORY;
NO_HOSTS_AVAILABLE when no host can run the VM even then. Pure over the store: no I/O.
"""


import contextlib

from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from . import domain_policy as policy

LIVE_STATES = ("Running", "Paused")
SHARED_KEY = "assume_network_is_shared"  # xapi's other_config key: a PIF-less network on every host


def free_memory(store, host: str, vm: str) -> int:
    """What `host` can still give `vm`: its hypervisor's free memory, on libvirt's test
    driver (whose free figure is a token) its total less what the VMs resident there have;
    less, either way, what the VMs starting or resuming there right now will take (`reserved`)."""
    rec = store.get("host", host)
    metrics = store.all("host_metrics").get(rec["metrics"])
    if metrics is None:
        return 0
    vms = store.all("VM")
    coming = sum(r["memory_static_max"] for v, r in vms.items()
                 if v != vm and r["scheduled_to_be_resident_on"] == host and r["resident_on"] != host
                 and r["current_operations"])
    if rec["software_version"].get("test") is None:
        return max(0, metrics["memory_free"] - coming)
    used = sum(vms[v]["memory_static_max"] for v in rec["resident_VMs"]
               if v != vm and v in vms and not vms[v]["is_control_domain"])
    return max(0, metrics["memory_total"] - used - coming)


@contextlib.contextmanager
def reserved(store, vm: str, host: str):
    """While `vm` starts or resumes on `host`: its scheduled_to_be_resident_on is that host
    (xapi's reservation), so placement counts its memory there before its domain exists.
    Set in the same reactor turn as the choice; cleared at the end (mark_running clears it
    on success). Only VMs with an operation in progress count, so a reservation left by a
    crash counts for nothing."""
    with store.transaction():
        store.set("VM", vm, "scheduled_to_be_resident_on", host)
    try:
        yield
    finally:
        if store.exists("VM", vm) and store.get("VM", vm)["scheduled_to_be_resident_on"] != NULL_REF:
            with store.transaction():
                store.set("VM", vm, "scheduled_to_be_resident_on", NULL_REF)


def is_live(store, host: str, here: str) -> bool:
    if host == here:
        return True
    metrics = store.all("host_metrics").get(store.get("host", host)["metrics"])
    return bool(metrics and metrics["live"])


def required_srs(store, vm: str) -> list[str]:
    """The SRs of the VM's disks (empty drives left out) and, while it is suspended, of its
    suspend image; in VBD order, each once."""
    rec = store.get("VM", vm)
    vbds, vdis = store.all("VBD"), store.all("VDI")
    wanted = [vbds[b]["VDI"] for b in rec["VBDs"] if b in vbds and not vbds[b]["empty"]]
    if rec["power_state"] == "Suspended" and rec["suspend_VDI"] != NULL_REF:
        wanted.append(rec["suspend_VDI"])
    out: list[str] = []
    for vdi in wanted:
        sr = vdis[vdi]["SR"] if vdi in vdis else NULL_REF
        if sr != NULL_REF and sr not in out:
            out.append(sr)
    return out


def srs_seen(store, host: str) -> set:
    pbds = store.all("PBD")
    return {pbds[p]["SR"] for p in store.get("host", host)["PBDs"] if p in pbds and pbds[p]["currently_attached"]}


def sr_missing(store, vm: str, host: str) -> str | None:
    """The first SR the VM needs that `host` has not plugged, or None."""
    seen = srs_seen(store, host)
    return next((sr for sr in required_srs(store, vm) if sr not in seen), None)


def network_missing(store, vm: str, host: str) -> str | None:
    """The first network of the VM's VIFs that `host` cannot reach, or None. As xapi: a
    network with PIFs is reached where one of them is; one without PIFs is internal: on any
    host while no running VM uses it (or when it is unmanaged, or marked shared in
    other_config), else only on the host where those VMs run."""
    vifs, nets, pifs, vms = (store.all(c) for c in ("VIF", "network", "PIF", "VM"))
    for vif in store.get("VM", vm)["VIFs"]:
        net = vifs[vif]["network"] if vif in vifs else NULL_REF
        if net not in nets:
            continue
        n = nets[net]
        if n["PIFs"]:
            if not any(pifs[p]["host"] == host for p in n["PIFs"] if p in pifs):
                return net
            continue
        if n["other_config"].get(SHARED_KEY) == "true" or not n["managed"]:
            continue
        users = {vifs[v]["VM"] for v in n["VIFs"] if v in vifs} - {vm}
        hosts = {vms[u]["resident_on"] for u in users if u in vms and vms[u]["power_state"] in LIVE_STATES}
        if hosts and host not in hosts:
            return net
    return None


def problem(store, vm: str, host: str, here: str, memory: bool = True) -> ApiError | None:
    """Why `vm` cannot start (or resume) on `host` now, or None. `here` is this agent's
    host. The VM's memory settings are checked first (`memory_problem`); the memory free on
    the host last, unless `memory` is false."""
    rec = store.get("VM", vm)
    wrong = policy.memory_problem(rec)
    if wrong:
        return ApiError("MEMORY_CONSTRAINT_VIOLATION", wrong)
    if not is_live(store, host, here):
        return ApiError("HOST_OFFLINE", host)
    if not store.get("host", host)["enabled"] and not rec["is_control_domain"]:
        return ApiError("HOST_DISABLED", host)
    sr = sr_missing(store, vm, host)
    if sr is not None:
        return ApiError("VM_REQUIRES_SR", vm, sr)
    net = network_missing(store, vm, host)
    if net is not None:
        return ApiError("VM_REQUIRES_NETWORK", vm, net)
    available = free_memory(store, host, vm)
    if memory and rec["memory_static_max"] > available:
        return ApiError("HOST_NOT_ENOUGH_FREE_MEMORY", rec["memory_static_max"], available)
    return None


def check(store, vm: str, host: str, here: str) -> None:
    """VM.start_on / resume_on / assert_can_boot_here: raise why `host` cannot take `vm`."""
    err = problem(store, vm, host, here)
    if err is not None:
        raise err


def possible(store, vm: str, here: str, memory: bool = True) -> list[str]:
    """The hosts that can run `vm` now, most memory free first (the master first among equals)."""
    ok = [h for h in store.all("host") if problem(store, vm, h, here, memory) is None]
    return sorted(ok, key=lambda h: (-free_memory(store, h, vm), h != here))


def choose(store, vm: str, here: str) -> str:
    """The host VM.start or VM.resume runs `vm` on: its affinity host when that can run it,
    else the one with the most memory free that can; failing that, the same choice made
    without the memory check (the start then fails there, as xapi's); NO_HOSTS_AVAILABLE
    when no host qualifies even so. A VM whose memory settings are inconsistent gets
    MEMORY_CONSTRAINT_VIOLATION as on any host."""
    rec = store.get("VM", vm)
    wrong = policy.memory_problem(rec)
    if wrong:
        raise ApiError("MEMORY_CONSTRAINT_VIOLATION", wrong)
    affinity = rec["affinity"]
    for memory in (True, False):
        if store.exists("host", affinity) and problem(store, vm, affinity, here, memory) is None:
            return affinity
        hosts = possible(store, vm, here, memory)
        if hosts:
            return hosts[0]
    raise ApiError("NO_HOSTS_AVAILABLE")
