"""pool: join, join_force and eject, and the master's and member's sides of them.

`pool.join` runs on the joining host: it checks itself as xapi does, contacts the master's
internal endpoint (`hello`, first contact: the certificate it shows is recorded), then
sends its own records and certificate (`join`, pinned from now on); the master adds them in
one durable transaction and answers with the pool secret; the joiner then records its new
role and behaves as a slave without a restart. `pool.eject` runs on the master: the member
is told first (`eject`, pinned to the certificate recorded at its join) and resets to a
lone master, then its records leave the master's database. Failures leave both unchanged.
The functions named `serve_*` answer the internal endpoint (server/pool_endpoint.py).
"""

import logging

from ..datamodel.errors import ApiError
from ..db.store import new_uuid
from ..pool.identity import IdentityError, fingerprint
from ..pool.records import export_host, forget_host, import_host
from ..pool.role import split_address
from ..rpc.coerce import now_text
from .host_facts import MEMORY_STEP
from .pool_forward import reconcile_member
from .session import _authenticate

log = logging.getLogger("hostagent.pool")

LIVE_STATES = ("Running", "Paused")


# ------------------------------------------------------------------ joining host
async def join(ctx, master_address, master_username, master_password):
    await _join(ctx, master_address, master_username, master_password, force=False)
    return ""


async def join_force(ctx, master_address, master_username, master_password):
    await _join(ctx, master_address, master_username, master_password, force=True)
    return ""


def prejoin_problem(store, host: str):
    """xapi's checks of the joining host itself, in its order; an ApiError or None."""
    if len(store.all("host")) > 1:
        return ApiError("JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS")
    vms = store.all("VM").values()
    if any(not v["is_control_domain"] and v["power_state"] in LIVE_STATES for v in vms):
        return ApiError("JOINING_HOST_CANNOT_HAVE_RUNNING_VMS")
    if any(v["current_operations"] for v in vms):
        return ApiError("JOINING_HOST_CANNOT_HAVE_VMS_WITH_CURRENT_OPERATIONS")
    if any(sr["shared"] for sr in store.all("SR").values()):
        return ApiError("JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS")
    if store.all("Bond"):
        return ApiError("POOL_JOINING_HOST_HAS_BONDS")
    if any(not p["management"] and p["VLAN"] >= 0 for p in store.all("PIF").values()):
        return ApiError("POOL_JOINING_HOST_HAS_NON_MANAGEMENT_VLANS")
    return None


def version_problem(mine, masters):
    """POOL_JOINING_HOST_MUST_HAVE_SAME_API_VERSION unless both (major, minor) agree."""
    if list(mine) != list(masters):
        return ApiError("POOL_JOINING_HOST_MUST_HAVE_SAME_API_VERSION",
                        "%s.%s" % tuple(mine), "%s.%s" % tuple(masters))
    return None


async def _join(ctx, address, user, password, force):
    m, store = ctx.rt.pool, ctx.store
    if m.is_slave:
        raise ApiError("HOST_IS_SLAVE", m.role.master_address)
    try:
        split_address(address)
    except ValueError:
        raise ApiError("JOINING_HOST_CONNECTION_FAILED") from None
    if not m.endpoint:
        raise ApiError("OPERATION_NOT_ALLOWED",
                       "this host has no TLS listener (--tls-listen): pool members reach it there")
    me = store.get("host", ctx.host)
    credentials = {"username": user, "password": password}
    hello = await _first_contact(m, address, credentials)
    info = hello.value
    try:
        same = fingerprint(info["certificate"]) == fingerprint(hello.peer_cert)
    except (IdentityError, KeyError, TypeError):
        same = False
    if not same:
        log.warning("pool.join: %s shows a certificate other than the one it describes", address)
        raise ApiError("JOINING_HOST_CONNECTION_FAILED")
    if info.get("host_uuid") == me["uuid"]:
        raise ApiError("OPERATION_NOT_ALLOWED", "Host cannot become slave of itself")
    problem = prejoin_problem(store, ctx.host)
    if problem is None and not force:
        problem = version_problem((me["API_version_major"], me["API_version_minor"]), info["api_version"])
    if problem is not None:
        raise problem
    ctx.checkpoint()
    answer = await m.call(address, "join", {**credentials, "host": export_host(store, ctx.host),
                                            "certificate": m.identity.cert_pem, "endpoint": m.endpoint,
                                            "links": m.links_netns},
                          pinned=hello.peer_cert, host=address, secret=None)
    reply = answer.value
    m.become_slave(address, reply["master_host"], info["host_uuid"], hello.peer_cert, reply["secret"])
    log.info("joined the pool of %s as host %s", address, me["uuid"])


async def _first_contact(m, address, credentials):
    try:
        return await m.call(address, "hello", credentials, pinned=None, host=address, secret=None)
    except ApiError as e:
        if e.code == "CANNOT_CONTACT_HOST":
            raise ApiError("JOINING_HOST_CONNECTION_FAILED") from None
        raise


# ------------------------------------------------------------------ master
async def eject(ctx, host):
    m, store = ctx.rt.pool, ctx.store
    rec = ctx.need("host", host)
    if host == ctx.host:
        raise ApiError("OPERATION_NOT_ALLOWED", "Cannot eject the pool master")
    running = [v for v in rec["resident_VMs"]
               if not store.get("VM", v)["is_control_domain"] and store.get("VM", v)["power_state"] in LIVE_STATES]
    if running:
        raise ApiError("OPERATION_NOT_ALLOWED", "the host still runs VMs: shut them down or move them first")
    private = store.private_of("host", host)
    await m.call(private.get("pool_endpoint", ""), "eject", {"host": rec["uuid"]},
                 pinned=private.get("pool_cert", ""), host=host)
    with store.transaction():
        forget_host(store, host)
    m.beats.pop(rec["uuid"], None)
    log.info("ejected host %s from the pool", rec["uuid"])
    return ""


def host_destroy(ctx, self):
    """Forget a member that is not live (xapi's host.destroy): records only, the host is not told."""
    store = ctx.store
    rec = ctx.need("host", self)
    if self == ctx.host:
        raise ApiError("HOST_CANNOT_DESTROY_SELF", self)
    metrics = rec["metrics"]
    if store.exists("host_metrics", metrics) and store.get("host_metrics", metrics)["live"]:
        raise ApiError("HOST_IS_LIVE", self)
    if any(not store.get("VM", v)["is_control_domain"] for v in rec["resident_VMs"]):
        raise ApiError("HOST_HAS_RESIDENT_VMS", self)
    with store.transaction():
        forget_host(store, self)
    ctx.rt.pool.beats.pop(rec["uuid"], None)
    log.info("forgot host %s", rec["uuid"])
    return ""


async def serve_hello(ctx, payload):
    """A joining host's first contact: who this master is (after checking the credentials)."""
    m = ctx.rt.pool
    if m.is_slave:
        raise ApiError("HOST_IS_SLAVE", m.role.master_address)
    await _authenticate(ctx, _text(payload, "username"), _text(payload, "password"))
    me = ctx.store.get("host", ctx.host)
    return {"host_uuid": me["uuid"], "host": ctx.host,
            "api_version": [me["API_version_major"], me["API_version_minor"]],
            "certificate": m.identity.cert_pem}


async def serve_join(ctx, payload):
    """Record a joining host (credentials checked again): its records in one durable
    transaction, its endpoint and certificate kept for calls to it."""
    m, store = ctx.rt.pool, ctx.store
    if m.is_slave:
        raise ApiError("HOST_IS_SLAVE", m.role.master_address)
    await _authenticate(ctx, _text(payload, "username"), _text(payload, "password"))
    bundle, cert, endpoint = payload.get("host"), _text(payload, "certificate"), _text(payload, "endpoint")
    hosts = bundle.get("host") if isinstance(bundle, dict) else None
    if not isinstance(hosts, dict) or len(hosts) != 1:
        raise ApiError("INTERNAL_ERROR", "a join names exactly one host")
    href, hrec = next(iter(hosts.items()))
    try:
        fingerprint(cert)
        split_address(endpoint)
    except (IdentityError, ValueError) as e:
        raise ApiError("INTERNAL_ERROR", f"a join names its certificate and endpoint: {e}") from None
    stale = store.by_uuid("host", hrec.get("uuid", "")) or (href if store.exists("host", href) else None)
    if stale == ctx.host:
        raise ApiError("OPERATION_NOT_ALLOWED", "Host cannot become slave of itself")
    pool = next(iter(store.all("pool")))
    with store.transaction():
        if stale is not None:
            # a lone master (it checked itself) this pool still lists: a join whose answer
            # was lost, or an eject the master did not finish; its records are replaced
            log.warning("host %s joins again: its old records are replaced", hrec.get("uuid"))
            forget_host(store, stale)
        import_host(store, bundle, pool)
        store.set_private("host", href, pool_endpoint=endpoint, pool_cert=cert)
        metrics = store.get("host", href)["metrics"]
        if store.exists("host_metrics", metrics):
            store.update("host_metrics", metrics, live=True, last_updated=now_text(ctx.clock()))
    await ctx.durable()
    m.beats[hrec["uuid"]] = ctx.clock()
    note_links(m, hrec["uuid"], payload)
    log.info("host %s (%s) joined the pool", hrec.get("uuid"), endpoint)
    return {"secret": m.secret, "master_host": ctx.host}


def _memory(current: dict, told) -> dict:
    """The member's memory figures as its heartbeat tells them (its own hypervisor's, sampled
    by its agent), when they moved by a step worth an update (host_facts.MEMORY_STEP)."""
    if not (isinstance(told, list) and len(told) == 2 and all(type(v) is int and v >= 0 for v in told)):
        return {}
    total, free = told
    if current["memory_total"] == total and abs(current["memory_free"] - free) < MEMORY_STEP:
        return {}
    return {"memory_total": total, "memory_free": min(free, total)}


def note_links(m, uuid: str, payload) -> None:
    """Whether the member's agent manages its links, and in which namespace ("" its own), as
    its join and heartbeats say: its ports then include its links (pool/remote_links.py)."""
    links = payload.get("links")
    if isinstance(links, str):
        m.links_of[uuid] = links
    else:
        m.links_of.pop(uuid, None)


async def serve_heartbeat(ctx, payload):
    """A member is alive: it is live from now on, until it falls silent. A new run of its
    agent (or one back from being not live) gets its VMs reconciled first."""
    m, store = ctx.rt.pool, ctx.store
    if m.is_slave:  # a master that handed the pool over: the member was not told (docs/pools.md)
        raise ApiError("HOST_IS_SLAVE", m.role.master_address)
    uuid = _text(payload, "host")
    ref = store.by_uuid("host", uuid)
    if ref is None:
        raise ApiError("HOST_UNKNOWN_TO_MASTER", uuid)
    m.beats[uuid] = ctx.clock()
    note_links(m, uuid, payload)
    metrics = store.get("host", ref)["metrics"]
    was_live = store.exists("host_metrics", metrics) and store.get("host_metrics", metrics)["live"]
    if store.exists("host_metrics", metrics):
        with store.transaction():
            store.update("host_metrics", metrics, live=True, last_updated=now_text(ctx.clock()),
                         **_memory(store.get("host_metrics", metrics), payload.get("memory")))
    instance = payload.get("instance")
    if isinstance(instance, str) and (m.instances.get(uuid) != instance or not was_live):
        try:
            changed = await reconcile_member(ctx, ref)
            m.instances[uuid] = instance  # reconciled: not again for this run unless it goes silent
            if changed:
                log.info("host %s is back: %d of its VMs reconciled", uuid, changed)
        except ApiError as e:
            log.warning("cannot reconcile the VMs of host %s yet: %s", uuid, " ".join(e.description))
    return True


def mark_silent(ctx) -> list:
    """Members silent for longer than the pool's host timeout become not live; their uuids."""
    m, store = ctx.rt.pool, ctx.store
    now, gone = ctx.clock(), []
    for ref, rec in store.all("host").items():
        if ref == ctx.host:
            continue
        last = m.beats.setdefault(rec["uuid"], now)  # after a restart: a full timeout's grace
        metrics = rec["metrics"]
        if now - last > m.host_timeout and store.exists("host_metrics", metrics) \
                and store.get("host_metrics", metrics)["live"]:
            with store.transaction():
                store.set("host_metrics", metrics, "live", False)
            gone.append(rec["uuid"])
            log.warning("host %s is not live: no heartbeat for %.0f s", rec["uuid"], now - last)
    return gone


# ------------------------------------------------------------------ member
async def beat(ctx) -> None:
    """A slave's heartbeat to its master (CANNOT_CONTACT_HOST when it cannot be reached)."""
    m = ctx.rt.pool
    if not m.is_slave:
        return
    role = m.role
    await m.call(role.master_address, "heartbeat",
                 {"host": ctx.store.get("host", ctx.host)["uuid"], "instance": m.instance,
                  "links": m.links_netns, "memory": _own_memory(ctx)},
                 pinned=role.master_cert, host=role.master_host or role.master_address,
                 timeout=max(1.0, m.heartbeat_interval * 2))


def _own_memory(ctx):
    """[total, free] of this host, as its agent last sampled them (host_facts.py)."""
    metrics = ctx.store.get("host", ctx.host)["metrics"]
    if not ctx.store.exists("host_metrics", metrics):
        return None
    rec = ctx.store.get("host_metrics", metrics)
    return [rec["memory_total"], rec["memory_free"]]


async def serve_eject(ctx, payload):
    """The master ejects this host: a lone master again, in a new pool of its own."""
    m, store = ctx.rt.pool, ctx.store
    if not m.is_slave:
        raise ApiError("OPERATION_NOT_ALLOWED", "this host is not a pool member")
    if _text(payload, "host") != store.get("host", ctx.host)["uuid"]:
        raise ApiError("HOST_UNKNOWN_TO_MASTER", _text(payload, "host"))
    with store.transaction():
        for ref in list(store.all("pool")):
            store.update("pool", ref, uuid=new_uuid(), name_label="", master=ctx.host)
    for ref, rec in list(store.all("session").items()):
        if rec["pool"]:
            ctx.sessions.destroy(ref, "ejected from the pool")
    await ctx.durable()
    m.become_master()
    log.info("ejected from the pool: a lone master again")
    return True


def _text(payload, key) -> str:
    value = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(value, str):
        raise ApiError("INTERNAL_ERROR", f"pool call without {key}")
    return value


HANDLERS = {
    "pool.join": join,
    "pool.join_force": join_force,
    "pool.eject": eject,
    "host.destroy": host_destroy,
}
