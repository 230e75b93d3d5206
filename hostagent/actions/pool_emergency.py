"""The master's database copies on its members, and the emergency calls that use them.

The master sends each live member a copy of the pool database (`send_copies`, run from the
heartbeat loop; pool/replica.py says when) to the member's internal op `db_copy`, pinned
to the certificate recorded at its join; the member keeps it apart from its own database.
When the master is dead, `pool.emergency_transition_to_master` on a member installs its
copy as its database and makes it the master of the same pool (same secret; the old
master's host record stays, not live); `pool.recover_slaves` on it then tells the members
still following the old master to follow it (`repoint`), and
`pool.emergency_reset_master` points one member at a new master by hand.
"""

import json
import logging

from ..datamodel.errors import ApiError
from ..pool import replica
from ..pool.handover import SnapshotError, check_snapshot, snapshot
from ..pool.identity import IdentityError, fingerprint
from ..pool.role import split_address
from .pool_handover import REPOINT_TIMEOUT, install_copy

log = logging.getLogger("hostagent.pool")

COPY_TIMEOUT = 30.0


def _live_members(ctx) -> dict:
    """{uuid: (ref, endpoint, cert)} of the live members other than this host."""
    store, out = ctx.store, {}
    for ref, rec in store.all("host").items():
        if ref == ctx.host:
            continue
        metrics = rec["metrics"]
        if not (store.exists("host_metrics", metrics) and store.get("host_metrics", metrics)["live"]):
            continue
        private = store.private_of("host", ref)
        if private.get("pool_endpoint") and private.get("pool_cert"):
            out[rec["uuid"]] = (ref, private["pool_endpoint"], private["pool_cert"])
    return out


async def send_copies(ctx) -> int:
    """Master: send the database to the live members whose copy is not current, when due;
    how many took it. A member that cannot be reached gets it at a later heartbeat."""
    m, store = ctx.rt.pool, ctx.store
    if m.is_slave:
        return 0
    members = _live_members(ctx)
    gen, now = store.gen, ctx.clock()
    current = frozenset(u for u, g in m.copy_gens.items() if g == gen)
    if not members or not m.copies.due(gen, now, frozenset(members), current):
        return 0
    m.copies.busy = True
    try:
        me = store.get("host", ctx.host)
        with store.transaction():  # how a member that takes over reaches this host later
            store.set_private("host", ctx.host, pool_endpoint=m.endpoint, pool_cert=m.identity.cert_pem)
        gen = store.gen
        rows = snapshot(store)
        payload = {"master": me["uuid"], "generation": gen, "rows": rows}
        sent = 0
        for uuid, (ref, endpoint, cert) in members.items():
            if m.copy_gens.get(uuid) == gen:
                continue
            try:
                await m.call(endpoint, "db_copy", payload, pinned=cert, host=ref, timeout=COPY_TIMEOUT)
            except ApiError as e:
                log.warning("host %s has no current copy of the database: %s", uuid, " ".join(e.description))
                continue
            m.copy_gens[uuid] = gen
            sent += 1
        m.copies.sent(gen, ctx.clock())
        return sent
    finally:
        m.copies.busy = False


async def serve_db_copy(ctx, payload):
    """Member: keep the master's copy of the pool database (this host's own stays as it is)."""
    m = ctx.rt.pool
    if not m.is_slave:
        raise ApiError("OPERATION_NOT_ALLOWED", "this host is not a pool member")
    if payload.get("master") != m.role.master_uuid:
        raise ApiError("OPERATION_NOT_ALLOWED", "only this host's master sends it the pool's database")
    rows, generation = payload.get("rows"), payload.get("generation")
    if not isinstance(generation, int):
        raise ApiError("INTERNAL_ERROR", "a database copy carries its generation")
    try:
        check_snapshot(rows, ctx.store.get("host", ctx.host)["uuid"])
    except SnapshotError as e:
        raise ApiError("INTERNAL_ERROR", f"cannot keep the pool's database: {e}") from None
    await m.run_blocking(lambda: replica.save_copy(m.state_dir, payload["master"], generation, rows))
    return True


async def emergency_transition_to_master(ctx):
    """Member whose master is dead: its copy of the pool database becomes the pool's."""
    m, store = ctx.rt.pool, ctx.store
    if not m.is_slave:
        return ""  # the master already
    try:
        copy = await m.run_blocking(lambda: replica.load_copy(m.state_dir))
    except replica.CopyError as e:
        raise ApiError("INTERNAL_ERROR", str(e)) from None
    if copy is None:
        raise ApiError("OPERATION_NOT_ALLOWED", "this host has no copy of the pool's database yet")
    try:
        objects = check_snapshot(copy["rows"], store.get("host", ctx.host)["uuid"])
    except SnapshotError as e:
        raise ApiError("INTERNAL_ERROR", f"cannot take the pool's database: {e}") from None
    if ("host", ctx.host) not in objects:
        raise ApiError("INTERNAL_ERROR", "the pool's database names this host by another ref")
    old = m.role.master_host
    await install_copy(ctx, objects, copy["generation"], dead=old)
    m.become_master(keep_secret=True)
    await m.run_blocking(lambda: replica.drop_copy(m.state_dir))
    log.warning("emergency: took the pool's database (copy of generation %d, %d objects): "
                "this host is the master", copy["generation"], len(objects))
    return ""


async def recover_slaves(ctx):
    """New master: tell every other member to follow this host; the hosts told."""
    m, store = ctx.rt.pool, ctx.store
    if m.is_slave:
        raise ApiError("HOST_IS_SLAVE", m.role.master_address)
    if not m.endpoint:
        raise ApiError("OPERATION_NOT_ALLOWED",
                       "this host has no TLS listener (--tls-listen): the pool's members reach it there")
    me = store.get("host", ctx.host)
    recovered = []
    for ref, rec in list(store.all("host").items()):
        if ref == ctx.host:
            continue
        private = store.private_of("host", ref)
        if not private.get("pool_endpoint") or not private.get("pool_cert"):
            continue
        try:
            await m.call(private["pool_endpoint"], "repoint",
                         {"master_address": m.endpoint, "master_host": ctx.host, "master_uuid": me["uuid"],
                          "master_cert": m.identity.cert_pem},
                         pinned=private["pool_cert"], host=ref, timeout=REPOINT_TIMEOUT)
        except ApiError as e:
            log.warning("host %s not recovered: %s", rec["uuid"], " ".join(e.description))
            continue
        recovered.append(ref)
    return recovered


async def emergency_reset_master(ctx, master_address):
    """Member: follow the master at `master_address`, which must present the certificate
    recorded for that host in this member's copy of the pool database (or its master's)."""
    m = ctx.rt.pool
    if not m.is_slave:
        raise ApiError("OPERATION_NOT_ALLOWED", "this host is a master: call this on a pool member")
    try:
        split_address(master_address)
    except ValueError:
        raise ApiError("CANNOT_CONTACT_HOST", master_address) from None
    answer = await m.call(master_address, "identity", {}, pinned=None, host=master_address, secret=None)
    info = answer.value if isinstance(answer.value, dict) else {}
    uuid = info.get("host_uuid")
    known = await _recorded_certs(m)
    try:
        same = uuid in known and fingerprint(known[uuid][1]) == fingerprint(answer.peer_cert)
    except IdentityError:
        same = False
    if not same:
        log.warning("emergency_reset_master: %s is not a member this host knows (or shows another "
                    "certificate)", master_address)
        raise ApiError("CANNOT_CONTACT_HOST", master_address)
    if not info.get("master"):
        raise ApiError("HOST_IS_SLAVE", str(info.get("master_address", "")))
    m.become_slave(master_address, known[uuid][0], uuid, answer.peer_cert, m.secret)
    log.warning("emergency: the pool's master is now %s (%s)", uuid, master_address)
    return ""


async def _recorded_certs(m) -> dict:
    """{host uuid: (ref, certificate PEM)} of the pool's members as this member knows them:
    its copy of the pool database, and its master as recorded in its role."""
    out = {}
    try:
        copy = await m.run_blocking(lambda: replica.load_copy(m.state_dir))
    except replica.CopyError as e:
        log.warning("the copy of the pool database is unusable: %s", e)
        copy = None
    for (cls, ref), blob in (_objects(copy) if copy else {}).items():
        if cls == "host" and blob["p"].get("pool_cert"):
            out[blob["r"].get("uuid")] = (ref, blob["p"]["pool_cert"])
    if m.role.master_uuid and m.role.master_cert:
        out[m.role.master_uuid] = (m.role.master_host, m.role.master_cert)
    return out


def _objects(copy) -> dict:
    try:
        objects = {}
        for cls, ref, data in copy["rows"]:
            blob = json.loads(data)
            objects[(cls, ref)] = {"r": blob.get("r", {}), "p": blob.get("p", {})}
        return objects
    except (ValueError, TypeError, AttributeError):
        return {}


def serve_identity(ctx, payload):
    """Who this host is and whether it is a master (no secret: a member checks the
    certificate this host presents against the one it recorded)."""
    m = ctx.rt.pool
    return {"host_uuid": ctx.store.get("host", ctx.host)["uuid"], "master": not m.is_slave,
            "master_address": m.role.master_address if m.is_slave else ""}


HANDLERS = {
    "pool.emergency_reset_master": emergency_reset_master,
    "pool.emergency_transition_to_master": emergency_transition_to_master,
    "pool.recover_slaves": recover_slaves,
}
