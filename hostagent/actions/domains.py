"""Domains that change behind the agent's back: libvirt's lifecycle events.

A domain whose uuid is a VM's reports starting, pausing, resuming and
stopping; the VM's record follows (power_state, domid, resident_on). A VM
recorded as Suspended stays so when its domain stops (that is how a suspend
ends). Domains that are no VM of ours, and the control domain, are ignored.
"""

import logging

from ..datamodel.types import NULL_REF

log = logging.getLogger("hostagent.domains")

STATES = {"started": "Running", "resumed": "Running", "suspended": "Paused",
          "stopped": "Halted", "crashed": "Halted", "undefined": "Halted"}


def lifecycle(ctx, event) -> None:
    """`event` is (uuid, name, what, detail) from the hypervisor port."""
    uuid, name, what, _detail = event
    store = ctx.store
    vm = store.by_uuid("VM", uuid)
    state = STATES.get(what)
    if vm is None or state is None:
        return
    rec = store.get("VM", vm)
    if rec["is_control_domain"] or rec["power_state"] == state:
        return
    if state == "Halted" and rec["power_state"] == "Suspended":
        return
    log.info("VM %s (%s): domain %s, now %s", rec["name_label"], uuid, what, state)
    with store.transaction():
        store.set("VM", vm, "power_state", state)
        if state == "Halted":
            store.update("VM", vm, domid=-1, resident_on=NULL_REF)
        else:
            store.set("VM", vm, "resident_on", ctx.host)
