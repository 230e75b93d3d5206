"""pool.designate_new_master: a planned handover of the pool's database to a member.

On the master: the target must be a live member reachable on its internal endpoint. New
API calls are held (pool/handover.py), the calls being served finish and their writes
become durable, then the whole database (every object with its private fields: the
members' endpoints and pinned certificates among them) goes to the target (`take_over`,
pinned to the certificate recorded at its join). The target replaces its database with
the copy in one durable transaction and becomes the master of the same pool (same secret).
Only then does the old master record itself as the target's slave (the commit point) and
release the held calls, which now get `HOST_IS_SLAVE [new master]`; then it tells the other
members to follow the new master (`repoint`). If the target does not take the copy the old
master stays master and serves the held calls.
"""

import logging

from ..datamodel.errors import ApiError
from ..pool.handover import SnapshotError, check_snapshot, snapshot
from ..pool.identity import IdentityError, fingerprint
from ..pool.role import split_address
from ..rpc.coerce import now_text

log = logging.getLogger("hostagent.pool")

DRAIN_TIMEOUT = 30.0  # seconds the calls under way get to finish before the handover gives up
DRAIN_POLL = 0.02
TAKE_OVER_TIMEOUT = 60.0  # the copy is installed and made durable within this
REPOINT_TIMEOUT = 5.0


async def designate_new_master(ctx, host):
    m, store = ctx.rt.pool, ctx.store
    if m.is_slave:
        raise ApiError("HOST_IS_SLAVE", m.role.master_address)
    target = ctx.need("host", host)
    if host == ctx.host:
        return ""  # as xapi: the master already
    metrics = target["metrics"]
    if not (store.exists("host_metrics", metrics) and store.get("host_metrics", metrics)["live"]):
        raise ApiError("HOST_OFFLINE", host)
    private = store.private_of("host", host)
    endpoint, cert = private.get("pool_endpoint", ""), private.get("pool_cert", "")
    if not endpoint or not cert:
        raise ApiError("CANNOT_CONTACT_HOST", host)
    if not m.endpoint:
        raise ApiError("OPERATION_NOT_ALLOWED",
                       "this host has no TLS listener (--tls-listen): the pool's members reach it there")
    pool = next(iter(store.all("pool")))
    if not m.freeze.start():
        raise ApiError("OTHER_OPERATION_IN_PROGRESS", "pool", pool, "designate_new_master", "")
    try:
        await _drain(ctx)
        me = store.get("host", ctx.host)
        with store.transaction():  # how the new master reaches this host, once a member
            store.set_private("host", ctx.host, pool_endpoint=m.endpoint, pool_cert=m.identity.cert_pem)
        await ctx.durable()
        rows = snapshot(store)
        log.info("handing the pool over to host %s (%s): %d objects", target["uuid"], endpoint, len(rows))
        await m.call(endpoint, "take_over", {"master": me["uuid"], "rows": rows, "generation": store.gen},
                     pinned=cert, host=host, timeout=TAKE_OVER_TIMEOUT)
    except BaseException:
        m.freeze.thaw()
        log.warning("handover to host %s failed: this host stays the master", target["uuid"])
        raise
    try:
        m.become_slave(endpoint, host, target["uuid"], cert, m.secret)  # the commit point
    finally:
        m.freeze.thaw()  # held calls are decided again (and never held for ever)
    log.info("host %s is the pool master now", target["uuid"])
    await _repoint_members(ctx, host, target["uuid"], endpoint, cert)
    return ""


def _async_work(store) -> int:
    """Async calls still running (their tasks pending), a handover's own excepted; tasks a
    client made with task.create are its own business and are not waited for."""
    return sum(1 for t in store.all("task").values()
               if t["status"] == "pending" and t["name_label"].startswith("Async.")
               and not t["name_label"].endswith("designate_new_master"))


async def _drain(ctx) -> None:
    """Wait until no call and no async call is under way."""
    m, store = ctx.rt.pool, ctx.store
    deadline = ctx.clock() + DRAIN_TIMEOUT
    while m.freeze.active or _async_work(store):
        if ctx.clock() > deadline:
            raise ApiError("OPERATION_NOT_ALLOWED",
                           f"calls still under way after {DRAIN_TIMEOUT:.0f} s: try the handover again")
        await ctx.sleep(DRAIN_POLL)


async def _repoint_members(ctx, master, master_uuid, endpoint, cert) -> None:
    """Tell every other member to follow the new master; one that cannot be told keeps
    calling this host (a slave now): pool.emergency_reset_master on it."""
    m, store = ctx.rt.pool, ctx.store
    for ref, rec in list(store.all("host").items()):
        if ref in (ctx.host, master):
            continue
        private = store.private_of("host", ref)
        try:
            await m.call(private.get("pool_endpoint", ""), "repoint",
                         {"master_address": endpoint, "master_host": master, "master_uuid": master_uuid,
                          "master_cert": cert}, pinned=private.get("pool_cert", ""), host=ref,
                         timeout=REPOINT_TIMEOUT)
        except ApiError as e:
            log.warning("host %s was not told of the new master: %s", rec["uuid"], " ".join(e.description))


# ------------------------------------------------------------------ member
async def serve_take_over(ctx, payload):
    """This member becomes the master: the master's database copy replaces its own."""
    m, store = ctx.rt.pool, ctx.store
    if not m.is_slave:
        raise ApiError("OPERATION_NOT_ALLOWED", "this host is not a pool member")
    if payload.get("master") != m.role.master_uuid:
        raise ApiError("OPERATION_NOT_ALLOWED", "only this host's master can hand the pool over to it")
    me = store.get("host", ctx.host)
    try:
        objects = check_snapshot(payload.get("rows"), me["uuid"])
    except SnapshotError as e:
        raise ApiError("INTERNAL_ERROR", f"cannot take the pool's database: {e}") from None
    if ("host", ctx.host) not in objects:
        raise ApiError("INTERNAL_ERROR", "the pool's database names this host by another ref")
    await install_copy(ctx, objects, payload.get("generation"))
    m.become_master(keep_secret=True)
    log.info("took over the pool's database (%d objects): this host is the master", len(objects))
    return {"host": ctx.host}


async def install_copy(ctx, objects, generation, dead: str = "") -> None:
    """The pool's database copy replaces this host's, durably, with this host its master
    (and live; host `dead` not live); this host's sessions not in the copy end, the copy's
    are kept alive."""
    store = ctx.store
    if isinstance(generation, int) and generation > store.gen:
        # the copy's changes come after every event the old master gave out: a client's
        # event.from token of the old master sees them (and no change is missed)
        store.gen = generation
    for ref in [r for r in store.all("session") if ("session", r) not in objects]:
        ctx.sessions.destroy(ref, "the pool's database replaced this host's")
    with store.transaction():
        store.replace_all(objects)
        for ref in store.all("pool"):
            store.set("pool", ref, "master", ctx.host)
        metrics = store.get("host", ctx.host)["metrics"]
        if store.exists("host_metrics", metrics):
            store.update("host_metrics", metrics, live=True, last_updated=now_text(ctx.clock()))
        dead_metrics = store.get("host", dead)["metrics"] if dead and store.exists("host", dead) else ""
        if dead_metrics and store.exists("host_metrics", dead_metrics):
            store.set("host_metrics", dead_metrics, "live", False)
    now = ctx.clock()
    active = ctx.sessions.active
    for ref in store.all("session"):
        active.setdefault(ref, now)
    for ref in [r for r in active if not store.exists("session", r)]:
        del active[ref]
    await ctx.durable()


async def serve_repoint(ctx, payload):
    """The pool has a new master: follow it (its address and certificate as given)."""
    m = ctx.rt.pool
    if not m.is_slave:
        raise ApiError("OPERATION_NOT_ALLOWED", "this host is not a pool member")
    values = [payload.get(k) for k in ("master_address", "master_host", "master_uuid", "master_cert")]
    if not all(isinstance(v, str) and v for v in values):
        raise ApiError("INTERNAL_ERROR", "a new master is named by its address, host, uuid and certificate")
    try:
        split_address(values[0])
        fingerprint(values[3])
    except (ValueError, IdentityError) as e:
        raise ApiError("INTERNAL_ERROR", f"unusable new master: {e}") from None
    m.become_slave(*values, m.secret)
    log.info("the pool's master is now %s (%s)", values[2], values[0])
    return True


HANDLERS = {
    "pool.designate_new_master": designate_new_master,
}
