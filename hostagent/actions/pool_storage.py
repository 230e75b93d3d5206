"""Storage work on the pool member whose storage it is.

An SR's storage is reached through the PBD of a host: a local SR of a member (its "Local
storage", or one made with `SR.create(host=member)`) is plugged on that member only, so
its driver calls (making, scanning, resizing, cloning and destroying volumes; attaching
and detaching the SR) run on that member's agent, as xapi forwards them to the host whose
PBD is plugged. The wrappers here give an action the context of that host
(`ctx.on_host`, pool/remote.py); the actions themselves stay as they are. A member that is
not live is HOST_OFFLINE, as for VM work. What moves data between hosts (VDI.copy from
one member's SR to another's, the HTTP import and export handlers of a member's SR) is not
forwarded and says so.
"""

import functools

from ..datamodel.errors import ApiError


def sr_host(ctx, sr: str) -> str:
    """The host that does the SR's work: this host when its PBD of the SR is plugged, else
    a member whose PBD is; with none plugged (SR.destroy), this host if it has a PBD, else
    a member that has one; this host when the SR has no PBD (its own checks then refuse)."""
    store = ctx.store
    rec = store.all("SR").get(sr)
    if rec is None:
        return ctx.host
    pbds = [p for p in (store.all("PBD").get(ref) for ref in rec["PBDs"]) if p is not None]
    for hosts in ([p["host"] for p in pbds if p["currently_attached"]], [p["host"] for p in pbds]):
        if ctx.host in hosts:
            return ctx.host
        if hosts:
            return min(hosts)
    return ctx.host


def sr_host_ctx(ctx, sr: str):
    """The call's context on the host that does `sr`'s work (see sr_host)."""
    return ctx.on_host(sr_host(ctx, sr))


def sr(fn):
    """An action `fn(ctx, sr, ...)`, done on the host the SR is plugged on."""
    @functools.wraps(fn)
    async def run_there(ctx, sr, *args):
        return await fn(sr_host_ctx(ctx, sr), sr, *args)
    return run_there


def sr_of_vdi(fn):
    """An action `fn(ctx, vdi, ...)`, done on the host the VDI's SR is plugged on."""
    @functools.wraps(fn)
    async def run_there(ctx, vdi, *args):
        return await fn(sr_host_ctx(ctx, ctx.need("VDI", vdi)["SR"]), vdi, *args)
    return run_there


def sr_in_record(fn):
    """An action `fn(ctx, args)` making a record in the SR `args["SR"]` (VDI.create)."""
    @functools.wraps(fn)
    async def run_there(ctx, args, *rest):
        sr = args.get("SR") if isinstance(args, dict) else None
        if isinstance(sr, str) and ctx.store.exists("SR", sr):
            ctx = sr_host_ctx(ctx, sr)
        return await fn(ctx, args, *rest)
    return run_there


def pbd_host(fn):
    """An action `fn(ctx, pbd, ...)` (plug, unplug), done on the PBD's own host."""
    @functools.wraps(fn)
    async def run_there(ctx, pbd, *args):
        return await fn(ctx.on_host(ctx.need("PBD", pbd)["host"]), pbd, *args)
    return run_there


def given_host(fn):
    """An action `fn(ctx, host, ...)` (SR.create, SR.probe, PIF.scan, PIF.introduce), done on
    the host it names."""
    @functools.wraps(fn)
    async def run_there(ctx, host, *args):
        ctx.need("host", host)
        return await fn(ctx.on_host(host), host, *args)
    return run_there


def same_host(ctx, sr_a: str, sr_b: str, what: str) -> None:
    """Work that moves data between two SRs runs where both are plugged."""
    if sr_host(ctx, sr_a) != sr_host(ctx, sr_b):
        raise ApiError("OPERATION_NOT_ALLOWED",
                       f"{what} between SRs plugged on different pool members is not forwarded yet")
