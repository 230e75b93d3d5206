"""Network work on the pool member whose links it is.

A PIF belongs to one host: plugging it, changing its IP configuration or its links'
settings, making a VLAN on it, scanning or introducing a host's NICs all change that
host's links, so they run with that host's ports (`ctx.on_host`): on a member, the
master's action drives the member's links through its agent (pool/remote_links.py), and
the records stay the master's. A member whose agent does not manage links has none, as a
lone agent without --manage-network: the records change and its links are left alone. A
member that is not live is HOST_OFFLINE, before anything changes.
"""

import functools

from .pool_storage import given_host as on_given_host  # an action on the host it names  # noqa: F401


def on_pif_host(fn):
    """An action `fn(ctx, pif, ...)` done on the PIF's host."""
    @functools.wraps(fn)
    async def run_there(ctx, pif, *args):
        return await fn(ctx.on_host(ctx.need("PIF", pif)["host"]), pif, *args)
    return run_there


def on_vlan_host(fn):
    """An action `fn(ctx, vlan, ...)` done on the host of the VLAN's untagged PIF."""
    @functools.wraps(fn)
    async def run_there(ctx, vlan, *args):
        untagged = ctx.need("VLAN", vlan)["untagged_PIF"]
        pif = ctx.store.all("PIF").get(untagged)
        return await fn(ctx.on_host(pif["host"]) if pif is not None else ctx, vlan, *args)
    return run_there

