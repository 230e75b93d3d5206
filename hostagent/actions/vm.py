"""VM: creation and destruction of the record and what hangs off it.

Lifecycle operations (start, shutdown, ...) arrive with the hypervisor port.
"""

import uuid

from ..datamodel.types import NULL_REF
from ..rpc.implicit import check_refs
from . import eliloader


def create(ctx, args):
    """A new VM is Halted, has no domain (domid -1), and gets its metrics object.

    A power_state in the record is ignored: a VM without a domain cannot be anything
    but Halted (suspend images arrive through import, not create)."""
    check_refs(ctx.store, "VM", args)
    values = dict(args)
    other = dict(values.get("other_config", {}))
    other.setdefault("mac_seed", str(uuid.uuid4()))  # stable seed for generated VIF MACs
    values.update(other_config=other, domid=-1, power_state="Halted", resident_on=NULL_REF)
    with ctx.store.transaction():
        metrics = ctx.store.create("VM_metrics", {"VCPUs_number": values.get("VCPUs_at_startup", 0),
                                                  "memory_actual": 0})
        values["metrics"] = metrics
        return ctx.store.create("VM", values)


async def destroy(ctx, self):
    """Remove the VM with its devices, consoles and metrics (its disks stay)."""
    rec = ctx.need("VM", self)
    with ctx.store.transaction():
        for cls, refs in (("VBD", rec["VBDs"]), ("VIF", rec["VIFs"]), ("console", rec["consoles"])):
            for ref in refs:
                if ctx.store.exists(cls, ref):
                    ctx.store.delete(cls, ref)
        for cls, ref in (("VM_metrics", rec["metrics"]), ("VM_guest_metrics", rec["guest_metrics"])):
            if ctx.store.exists(cls, ref):
                ctx.store.delete(cls, ref)
        ctx.store.delete("VM", self)
    # installer files kept between install rounds: an rmtree, so off the reactor
    run = ctx.ports.run_blocking
    if run is not None:
        await run(eliloader.forget, ctx, rec["uuid"])
    else:
        eliloader.forget(ctx, rec["uuid"])
    return ""


HANDLERS = {"VM.create": create, "VM.destroy": destroy}
