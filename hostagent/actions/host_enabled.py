"""host.enable and host.disable: whether a host takes new VMs.

A disabled host keeps running its VMs but takes no new ones: placement skips it and
VM.start_on / resume_on answer HOST_DISABLED [host] (actions/placement.py). The flag is the
host record's `enabled`, in the master's database for every member, so it is set there
without calling the member and outlives restarts. xapi's disable re-enables a host when its
own toolstack restarts unless asked not to (auto_enable false); here it stays disabled until
host.enable.
"""

import logging

log = logging.getLogger("hostagent.pool")


def _set_enabled(ctx, host: str, value: bool) -> str:
    rec = ctx.need("host", host)
    if rec["enabled"] != value:
        with ctx.store.transaction():
            ctx.store.set("host", host, "enabled", value)
        log.info("host %s (%s) %s at a user's request", rec["name_label"], rec["uuid"],
                 "enabled" if value else "disabled")
    return ""


def disable(ctx, host):
    return _set_enabled(ctx, host, False)


def enable(ctx, host):
    return _set_enabled(ctx, host, True)


HANDLERS = {"host.disable": disable, "host.enable": enable}
