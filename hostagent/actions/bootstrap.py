"""The objects a host has from its first start: pool, host, CPUs, dom0.

`ensure_host(store, facts, version)` runs at every start. On an empty store it
makes the pool (this host its master), the host with its metrics and CPUs,
and the control domain with its metrics and text console. On later starts it
refreshes what describes the machine (names, address, memory, liveness).
"""

import time

from ..datamodel.types import NULL_REF
from ..db.store import Store
from ..backends.hostinfo import HostFacts
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
    }


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


def ensure_host(store: Store, facts: HostFacts, version: str, clock=time.time) -> str:
    """Make or refresh this host's objects; returns the host ref."""
    now = now_text(clock())
    pools = store.all("pool")
    with store.transaction():
        if not pools:
            return _first_start(store, facts, version, now)
        host = next(iter(pools.values()))["master"]
        store.update("host", host, hostname=facts.hostname, address=facts.address,
                     software_version=software_version(facts, version), cpu_info=cpu_info(facts))
        rec = store.get("host", host)
        if store.exists("host_metrics", rec["metrics"]):
            store.update("host_metrics", rec["metrics"], live=True, last_updated=now,
                         memory_total=facts.memory_total)
        return host


def _first_start(store: Store, facts: HostFacts, version: str, now: str) -> str:
    metrics = store.create("host_metrics", {
        "memory_total": facts.memory_total, "memory_free": facts.memory_free,
        "live": True, "last_updated": now})
    host = store.create("host", {
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
        "capabilities": ["xen-3.0-x86_64", "hvm-3.0-x86_32", "hvm-3.0-x86_32p", "hvm-3.0-x86_64"],
        "metrics": metrics,
        "memory_overhead": 0,
    })
    for cpu in facts.cpus:
        store.create("host_cpu", {
            "host": host, "number": cpu.number, "vendor": cpu.vendor, "speed": cpu.speed_mhz,
            "modelname": cpu.modelname, "family": cpu.family, "model": cpu.model,
            "stepping": cpu.stepping, "flags": cpu.flags, "features": "", "utilisation": 0.0})
    store.create("pool", {"name_label": "", "master": host, "default_SR": NULL_REF})
    vm_metrics = store.create("VM_metrics", {
        "memory_actual": facts.memory_total, "VCPUs_number": len(facts.cpus),
        "start_time": now, "install_time": now, "last_updated": now, "state": []})
    dom0 = store.create("VM", {
        "name_label": f"Control domain on host: {facts.hostname}",
        "name_description": "The domain which manages physical devices and manages other domains",
        "power_state": "Running",
        "is_control_domain": True,
        "is_a_template": False,
        "resident_on": host,
        "domid": 0,
        "memory_static_max": facts.memory_total,
        "memory_dynamic_max": facts.memory_total,
        "memory_dynamic_min": facts.memory_total,
        "memory_static_min": facts.memory_total,
        "memory_target": facts.memory_total,
        "VCPUs_max": len(facts.cpus),
        "VCPUs_at_startup": len(facts.cpus),
        "metrics": vm_metrics,
        "domain_type": "pv",
        "user_version": 1,
    })
    console = store.create("console", {"protocol": "vt100", "VM": dom0})
    store.set("console", console, "location", f"https://{facts.address}/console?ref={console}")
    store.set("host", host, "control_domain", dom0)
    return host
