"""The objects a host has from its first start: pool, host, CPUs, dom0.

`ensure_host(store, facts, version, clock, host_uuid)` runs at every start.
This host is the host record whose uuid the state dir names (`host_uuid`),
never simply the pool's master. On an empty store it makes the pool (this
host its master), the host with its metrics and CPUs, and the control domain
with its metrics and text console. On later starts it refreshes what
describes the machine (names, address, memory, CPUs, versions, liveness).

`machine(proc, node)` lays the hypervisor's view (the host's memory and
CPUs, its guest capabilities and versions) over what /proc says, which on a
Xen dom0 describes dom0 only; dom0's own memory is Xen's allocation for
domain 0 where the hypervisor reports it (/proc's MemTotal is less: the
kernel's reservations are not in it), else /proc's.

The compatibility numbers: clients gate features on `software_version`'s
`product_version` (XenServer/XCP-ng release: 8.4.0) and `xapi` (the xapi
release whose API this matches: 25.0), and on API_version_major/minor (2.21);
docs/api-core.md lists them.
"""

import dataclasses
import time
from typing import Optional

from ..datamodel.types import NULL_REF
from ..db.store import Store
from ..backends.hostinfo import Cpu, HostFacts
from ..rpc.coerce import now_text

API_VERSION = (2, 21)
PRODUCT_VERSION = "8.4.0"
PLATFORM_VERSION = "3.4.0"
XAPI_COMPAT = "25.0"


def software_version(facts: HostFacts, version: str) -> dict:
    return {
        "product_version": PRODUCT_VERSION,
        "product_version_text": PRODUCT_VERSION,
        "product_version_text_short": PRODUCT_VERSION,
        "platform_name": "hostagent",
        "platform_version": PLATFORM_VERSION,
        "product_brand": "hostagent",
        "build_number": version,
        "hostagent": version,
        "xapi": XAPI_COMPAT,
        "xapi_build": XAPI_COMPAT,
        "hostname": facts.hostname,
        "date": time.strftime("%Y-%m-%d"),
        **facts.versions,
    }


def machine(proc: HostFacts, node=None) -> HostFacts:
    """The host as the hypervisor sees it (`node`: backends.hypervisor.NodeFacts), with the
    CPU descriptions /proc gives; /proc alone when the hypervisor cannot be asked."""
    if node is None:
        return proc
    first = proc.cpus[0] if proc.cpus else Cpu(0)
    cpus = [dataclasses.replace(first, number=i, speed_mhz=node.mhz or first.speed_mhz)
            for i in range(node.cpus)] or proc.cpus
    versions = {node.driver.lower(): node.hypervisor_version, "libvirt": node.libvirt_version}
    return dataclasses.replace(proc, cpus=cpus, sockets=node.sockets, memory_total=node.memory_total,
                               memory_free=node.memory_free, capabilities=list(node.capabilities),
                               versions=versions, dom0_memory=node.dom0_memory or proc.memory_total,
                               dom0_vcpus=node.dom0_vcpus or len(proc.cpus))


def cpu_info(facts: HostFacts) -> dict:
    first = facts.cpus[0]
    return {
        "cpu_count": str(len(facts.cpus)),
        "socket_count": str(facts.sockets),
        "vendor": first.vendor,
        "speed": "%d.000" % first.speed_mhz,
        "modelname": first.modelname,
        "family": str(first.family),
        "model": str(first.model),
        "stepping": first.stepping,
        "flags": first.flags,
        "features": "",
    }


def ensure_host(store: Store, facts: HostFacts, version: str, clock=time.time,
                host_uuid: Optional[str] = None) -> str:
    """Make or refresh this host's objects; returns the host ref. `host_uuid` names this
    host (None: the pool's master, for a store made before hosts were named)."""
    now = now_text(clock())
    pools = store.all("pool")
    with store.transaction():
        if not pools:
            return _first_start(store, facts, version, now, host_uuid)
        host = store.by_uuid("host", host_uuid) if host_uuid else next(iter(pools.values()))["master"]
        if host is None:
            raise LookupError(f"this state dir names host {host_uuid}, which its database does not hold")
        store.update("host", host, hostname=facts.hostname, address=facts.address,
                     software_version=software_version(facts, version), cpu_info=cpu_info(facts))
        if facts.capabilities:
            store.set("host", host, "capabilities", list(facts.capabilities))
        rec = store.get("host", host)
        if store.exists("host_metrics", rec["metrics"]):
            store.update("host_metrics", rec["metrics"], live=True, last_updated=now,
                         memory_total=facts.memory_total, memory_free=facts.memory_free)
        _sync_cpus(store, host, facts)
        if facts.dom0_memory and store.exists("VM", rec["control_domain"]):
            metrics = store.get("VM", rec["control_domain"])["metrics"]
            if store.exists("VM_metrics", metrics):
                store.update("VM_metrics", metrics, memory_actual=facts.dom0_memory)
        return host


def _sync_cpus(store: Store, host: str, facts: HostFacts) -> None:
    """One host_cpu per CPU the machine has now."""
    have = {store.get("host_cpu", c)["number"]: c for c in store.get("host", host)["host_CPUs"]}
    for cpu in facts.cpus:
        values = {"vendor": cpu.vendor, "speed": cpu.speed_mhz, "modelname": cpu.modelname,
                  "family": cpu.family, "model": cpu.model, "stepping": cpu.stepping, "flags": cpu.flags}
        if cpu.number in have:
            store.update("host_cpu", have.pop(cpu.number), **values)
        else:
            store.create("host_cpu", {"host": host, "number": cpu.number, "features": "",
                                      "utilisation": 0.0, **values})
    for gone in have.values():
        store.delete("host_cpu", gone)


def _first_start(store: Store, facts: HostFacts, version: str, now: str, host_uuid: Optional[str]) -> str:
    metrics = store.create("host_metrics", {
        "memory_total": facts.memory_total, "memory_free": facts.memory_free,
        "live": True, "last_updated": now})
    host = store.create("host", {
        "uuid": host_uuid or "",
        "name_label": facts.hostname,
        "name_description": "Default install",
        "hostname": facts.hostname,
        "address": facts.address,
        "enabled": True,
        "API_version_major": API_VERSION[0],
        "API_version_minor": API_VERSION[1],
        "API_version_vendor": "XenSource",
        "software_version": software_version(facts, version),
        "cpu_info": cpu_info(facts),
        "capabilities": list(facts.capabilities),
        "metrics": metrics,
        "memory_overhead": 0,
    })
    _sync_cpus(store, host, facts)
    store.create("pool", {"name_label": "", "master": host, "default_SR": NULL_REF})
    # dom0 is what /proc describes; on a dom0 that is less than the host
    dom0_memory, dom0_vcpus = facts.dom0_memory or facts.memory_total, facts.dom0_vcpus or len(facts.cpus)
    vm_metrics = store.create("VM_metrics", {
        "memory_actual": dom0_memory, "VCPUs_number": dom0_vcpus,
        "start_time": now, "install_time": now, "last_updated": now, "state": []})
    dom0 = store.create("VM", {
        "name_label": f"Control domain on host: {facts.hostname}",
        "name_description": "The domain which manages physical devices and manages other domains",
        "power_state": "Running",
        "is_control_domain": True,
        "is_a_template": False,
        "resident_on": host,
        "domid": 0,
        "memory_static_max": dom0_memory,
        "memory_dynamic_max": dom0_memory,
        "memory_dynamic_min": dom0_memory,
        "memory_static_min": dom0_memory,
        "memory_target": dom0_memory,
        "VCPUs_max": dom0_vcpus,
        "VCPUs_at_startup": dom0_vcpus,
        "metrics": vm_metrics,
        "domain_type": "pv",
        "user_version": 1,
    })
    console = store.create("console", {"protocol": "vt100", "VM": dom0})
    store.set("console", console, "location", f"https://{facts.address}/console?ref={console}")
    store.set("host", host, "control_domain", dom0)
    return host
