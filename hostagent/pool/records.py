"""A host's own records, as carried from a joining host to its new master and dropped at eject.

`export_host` gathers what is bound to one host in its database: the host, its metrics and
CPUs, its control domain, its PIFs (with their metrics and networks), its PBDs and the
local (unshared) SRs they plug with their VDIs. `import_host` adds such a bundle to the
master's database, inside the caller's transaction: networks are matched by bridge name,
pool refs become the master's pool, refs to anything the bundle does not carry become
NULL, and set fields kept by relations are rebuilt by the store. `forget_host` deletes
those records again. Pure logic over a Store: no I/O.
"""

from typing import Dict, List

from ..datamodel.types import NULL_REF

Bundle = Dict[str, Dict[str, dict]]

# creation order; relations are filled in by a second pass, so only plain refs matter
ORDER = ("host_metrics", "PIF_metrics", "VM_metrics", "network", "SR", "host", "VM", "host_cpu", "PIF",
         "PBD", "VDI")


def export_host(store, host: str) -> Bundle:
    out: Bundle = {c: {} for c in ORDER}

    def put(cls, ref):
        if ref != NULL_REF and store.exists(cls, ref):
            out[cls][ref] = dict(store.get(cls, ref))

    h = store.get("host", host)
    put("host", host)
    put("host_metrics", h["metrics"])
    for c in h["host_CPUs"]:
        put("host_cpu", c)
    dom0 = h["control_domain"]
    if dom0 != NULL_REF and store.exists("VM", dom0):
        put("VM", dom0)
        put("VM_metrics", store.get("VM", dom0)["metrics"])
    for p in h["PIFs"]:
        put("PIF", p)
        pif = store.get("PIF", p)
        put("PIF_metrics", pif["metrics"])
        put("network", pif["network"])
    for b in h["PBDs"]:
        put("PBD", b)
        sr = store.get("PBD", b)["SR"]
        if sr != NULL_REF and store.exists("SR", sr) and not store.get("SR", sr)["shared"]:
            put("SR", sr)
            for v in store.get("SR", sr)["VDIs"]:
                put("VDI", v)
    return out


def _relations(api):
    ones = {r.one: r.many for r in api.relations}
    manys = {r.many for r in api.relations}
    return ones, manys


def import_host(store, bundle: Bundle, pool: str) -> Dict[str, str]:
    """Add the bundle's records (in the caller's transaction); the ref map it used."""
    api = store.api
    ones, manys = _relations(api)
    remap: Dict[str, str] = {}
    for ref, rec in bundle.get("network", {}).items():
        same = store.find("network", bridge=rec.get("bridge"))
        if same:
            remap[ref] = same[0]
    carried = {ref for cls in ORDER for ref in bundle.get(cls, {})}

    def target(cls_name, value):
        if value == NULL_REF or not isinstance(value, str):
            return NULL_REF
        if cls_name == "pool":
            return pool
        if value in remap:
            return remap[value]
        if value in carried or store.exists(cls_name, value):
            return value
        return NULL_REF

    later: List[tuple] = []
    for cls in ORDER:
        for ref, rec in bundle.get(cls, {}).items():
            if ref in remap:
                continue  # a network the master already has
            values = {}
            for f in api.classes[cls].fields:
                if f.name not in rec:
                    continue
                v, t = rec[f.name], f.type
                if (cls, f.name) in manys:
                    v = []
                elif t.kind == "ref":
                    v = target(t.cls, v)
                    if (cls, f.name) in ones and v != NULL_REF:
                        later.append((cls, ref, f.name, v))
                        v = NULL_REF
                elif t.kind == "set" and t.elem.kind == "ref":
                    v = [x for x in (target(t.elem.cls, x) for x in v or []) if x != NULL_REF]
                values[f.name] = v
            store.create(cls, values, ref=ref)
    for cls, ref, name, value in later:
        if store.exists(ones[(cls, name)][0], value):
            store.set(cls, ref, name, value)
    return remap


def forget_host(store, host: str) -> None:
    """Delete a member's own records (in the caller's transaction); shared things stay."""
    h = store.get("host", host)
    doomed_srs = []
    for b in list(h["PBDs"]):
        sr = store.get("PBD", b)["SR"]
        store.delete("PBD", b)
        if store.exists("SR", sr) and not store.get("SR", sr)["shared"] and not store.get("SR", sr)["PBDs"]:
            doomed_srs.append(sr)
    for sr in doomed_srs:
        for v in list(store.get("SR", sr)["VDIs"]):
            for vbd in list(store.get("VDI", v)["VBDs"]):
                store.delete("VBD", vbd)
            store.delete("VDI", v)
        store.delete("SR", sr)
    for p in list(h["PIFs"]):
        metrics = store.get("PIF", p)["metrics"]
        store.delete("PIF", p)
        if store.exists("PIF_metrics", metrics):
            store.delete("PIF_metrics", metrics)
    for c in list(h["host_CPUs"]):
        store.delete("host_cpu", c)
    for vm in list(h["resident_VMs"]):
        rec = store.get("VM", vm)
        if rec["is_control_domain"]:
            for console in list(rec["consoles"]):
                store.delete("console", console)
            store.delete("VM", vm)
            if store.exists("VM_metrics", rec["metrics"]):
                store.delete("VM_metrics", rec["metrics"])
        else:  # a VM last seen there: it is no longer running anywhere this pool knows
            store.update("VM", vm, resident_on=NULL_REF, power_state="Halted")
    metrics = h["metrics"]
    store.delete("host", host)
    if store.exists("host_metrics", metrics):
        store.delete("host_metrics", metrics)
