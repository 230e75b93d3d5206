"""What an XVA export holds: the exported objects, their ova.xml snapshots, the disks.

As xapi lays it out (xapi-protocol.md §8.3): the VM is `Ref:0`, then its VBDs, VIFs, the
VDIs of its VBDs, those VDIs' SRs and the VIFs' networks, each numbered in that order;
a metadata export adds the VM's snapshots with their devices. Every reference in a
snapshot becomes the id of an exported object or OpaqueRef:NULL, and sets keep only
exported members. A plain export takes no snapshot metadata (the VM comes out a plain
Halted VM); VBDs and VIFs come out detached. Streamed disks are the non-CD VBDs' VDIs
outside ISO SRs, in the order of their ids as strings (`Ref:10` before `Ref:2`).
"""

import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import __version__
from ..datamodel.types import EPOCH, NULL_REF
from ..rpc.coerce import now_text
from ..xva import ovaxml

XAPI_VERSION = (1, 1)  # modest on purpose: xapi refuses archives from a newer xapi than itself
BRAND = "hostagent"


@dataclass
class ExportPlan:
    vm: str
    table: dict[str, str] = field(default_factory=dict)  # ref -> Ref:<n>
    objects: list[tuple[str, str]] = field(default_factory=list)  # (class, ref) in id order
    disks: list[tuple[str, str]] = field(default_factory=list)  # (Ref:<n>, VDI ref) streamed


def _add(plan: ExportPlan, cls: str, ref: str) -> None:
    if ref != NULL_REF and ref not in plan.table:
        plan.table[ref] = f"Ref:{len(plan.table)}"
        plan.objects.append((cls, ref))


def _streamed(store, vbd: dict) -> bool:
    vdi = vbd["VDI"]
    if vbd["type"] == "CD" or vbd["empty"] or vdi == NULL_REF or not store.exists("VDI", vdi):
        return False
    sr = store.all("SR").get(store.get("VDI", vdi)["SR"])
    return sr is not None and sr["content_type"] != "iso"


def plan(store, vm: str, metadata: bool = False) -> ExportPlan:
    """The objects of an export of `vm` (with its snapshots when `metadata`)."""
    out = ExportPlan(vm)
    vms = [vm] + (list(store.get("VM", vm)["snapshots"]) if metadata else [])
    for v in vms:
        _add(out, "VM", v)
    for v in vms:
        rec = store.get("VM", v)
        for vbd in rec["VBDs"]:
            _add(out, "VBD", vbd)
        for vif in rec["VIFs"]:
            _add(out, "VIF", vif)
    for cls, ref in list(out.objects):
        if cls == "VBD":
            rec = store.get("VBD", ref)
            if rec["VDI"] != NULL_REF and store.exists("VDI", rec["VDI"]):
                _add(out, "VDI", rec["VDI"])
                if not metadata and _streamed(store, rec):
                    out.disks.append((out.table[rec["VDI"]], rec["VDI"]))
    for cls, ref in list(out.objects):
        if cls == "VDI":
            _add(out, "SR", store.get("VDI", ref)["SR"])
        elif cls == "VIF" and store.exists("network", store.get("VIF", ref)["network"]):
            _add(out, "network", store.get("VIF", ref)["network"])
    out.disks = sorted(set(out.disks))
    return out


def _rewrite(t, value, table: dict[str, str]):
    kind = t.kind
    if kind == "ref":
        return table.get(value, NULL_REF)
    if kind == "set" and t.elem.kind == "ref":
        return [table[v] for v in value if v in table]
    if kind == "map" and (t.key.kind == "ref" or t.value.kind == "ref"):
        return {table.get(k, k) if t.key.kind == "ref" else k: _rewrite(t.value, v, table)
                for k, v in value.items() if t.key.kind != "ref" or k in table}
    return value


# fields xapi resets on export (without snapshot metadata, without the power state)
_VM_PLAIN = {"power_state": "Halted", "suspend_VDI": NULL_REF, "is_a_snapshot": False,
             "snapshot_of": NULL_REF, "snapshots": [], "snapshot_time": EPOCH,
             "transportable_snapshot_id": "", "parent": NULL_REF, "domid": -1}
_CLEARED = {"current_operations": {}, "allowed_operations": [], "crash_dumps": [], "consoles": [],
            "blobs": {}, "PIFs": []}


def snapshot(store, plan: ExportPlan, cls: str, ref: str, metadata: bool) -> dict:
    """The record of an exported object as ova.xml carries it."""
    rec = dict(store.get(cls, ref))
    for f in store.api.public_fields(cls):
        if f.name in rec:
            rec[f.name] = _rewrite(f.type, rec[f.name], plan.table)
    for name, value in _CLEARED.items():
        if name in rec:
            rec[name] = value
    if cls == "VM" and not metadata:
        rec.update(_VM_PLAIN)
    if cls in ("VBD", "VIF"):
        rec["currently_attached"] = False
    return rec


def ova_xml(store, plan: ExportPlan, encode: Callable[[str, dict], str], clock: Callable[[], float],
            metadata: bool = False) -> bytes:
    """ova.xml of the plan; `encode(cls, record)` gives a record's XML-RPC `<value>`."""
    version = ovaxml.version(socket.gethostname(), now_text(clock()), __version__, BRAND, "0",
                             XAPI_VERSION)
    objects = [(cls, plan.table[ref], encode(cls, snapshot(store, plan, cls, ref, metadata)))
               for cls, ref in plan.objects]
    return ovaxml.write(version, objects)
