"""Consoles of a pool member's VMs (docs/consoles.md, "In a pool").

A member runs the vncterms of its own domains (it has their ptys), but holds no record of
the pool's VMs. So the master, after each look at its own terminals, tells every live member
which of its VMs want a terminal (`tell_members`: `{VM uuid: name}` through the member's
internal `consoles` op, pinned TLS and the pool secret). The member keeps that set in its
console port, never in its database (`serve_wanted`), settles its terminals soon, and answers
the VM uuids whose vncterm runs; the master gives those a vt100 console record. A member is
told again only when its set changed, its agent restarted, one of its VMs still awaits its
vt100 record, or RETELL seconds went by. A VM that
leaves the set (it stopped, moved, or got `disable_pv_vnc`) has its vncterm stopped on the
member and its relays on the master closed. Guests' console locations name the master; a new
master (after a handover) rewrites those that name another host (`relocate`).

`CONNECT /console` for a member's VM is relayed by the master to the member's internal
`console` op (server/console_pool.py), which reaches `consoles.local_target` there.
"""

import logging
import re

from ..backends.consoles import HOST_KEY
from ..datamodel.errors import ApiError
from .consoles import ensure_vt100, is_member, wants_terminal

log = logging.getLogger("hostagent.consoles")

TELL_TIMEOUT = 10.0  # seconds a member may take to answer which terminals it runs
RETELL = 30.0  # seconds after which a member is told its set again though nothing changed
UUID = re.compile(r"[0-9a-fA-F-]{1,64}")  # a VM uuid: also a file name of the member's terminal
MAX_TITLE = 256
PROTOCOLS = ("vt100", "rfb")


def live_members(ctx) -> list[str]:
    store = ctx.store
    out = []
    for host, rec in store.all("host").items():
        metrics = rec["metrics"]
        if host != ctx.host and store.exists("host_metrics", metrics) and store.get("host_metrics", metrics)["live"]:
            out.append(host)
    return out


def member_address(ctx, host: str) -> tuple[str, str]:
    """(HOST:PORT of the member's pool endpoint, its pinned certificate); HOST_OFFLINE when it
    is not live, CANNOT_CONTACT_HOST when its endpoint is not known."""
    store = ctx.store
    metrics = store.get("host", host)["metrics"]
    if not (store.exists("host_metrics", metrics) and store.get("host_metrics", metrics)["live"]):
        raise ApiError("HOST_OFFLINE", host)
    private = store.private_of("host", host)
    address, cert = private.get("pool_endpoint", ""), private.get("pool_cert", "")
    if not address or not cert:
        raise ApiError("CANNOT_CONTACT_HOST", host)
    return address, cert


def member_wants(ctx, host: str) -> dict[str, str]:
    """{VM uuid: name} of the VMs resident on `host` that want a terminal."""
    return {rec["uuid"]: rec["name_label"] for rec in ctx.store.all("VM").values() if wants_terminal(ctx, rec, host)}


async def tell_members(ctx) -> None:
    """The master: each live member hears which of its VMs want a terminal; those it serves
    get a vt100 console; relays of a member's VM that no longer wants one close."""
    pool = getattr(ctx.rt, "pool", None)
    port = ctx.ports.consoles
    if pool is None or port is None or is_member(ctx):
        return
    told, sent, now = port.members_told, port.members_sent, ctx.clock()
    seen = set()
    for host in live_members(ctx):
        want = member_wants(ctx, host)
        seen.update(want)
        instance = pool.instances.get(ctx.store.get("host", host)["uuid"], "")  # its agent's run
        last = sent.get(host)
        if (last is not None and last[:2] == (want, instance) and now - last[2] < RETELL
                and all(_has_vt100(ctx, uuid) for uuid in want)):
            continue  # told already, and nothing awaits its answer
        try:
            address, cert = member_address(ctx, host)
            running = (await pool.call(address, "consoles", {"wanted": want}, pinned=cert, host=host,
                                       timeout=TELL_TIMEOUT)).value
        except ApiError as e:
            log.info("host %s not told which consoles it serves: %s", host, " ".join(e.description))
            sent.pop(host, None)
            continue
        sent[host] = (want, instance, now)
        for uuid in running if isinstance(running, list) else []:
            vm = ctx.store.by_uuid("VM", uuid) if isinstance(uuid, str) else None
            if vm is not None and wants_terminal(ctx, ctx.store.get("VM", vm), host):
                ensure_vt100(ctx, vm)
    relocate(ctx)
    # a VM of a member that wanted a terminal and does not now (stopped, moved here, disabled)
    for uuid in told - seen - set(_resident_here(ctx)):
        port.vm_gone(uuid)
    port.members_told = seen


def relocate(ctx) -> int:
    """Guests' consoles whose location names another host (made before a handover made this
    host the master, or by an older agent that named the VM's host) name this one again. The
    number changed."""
    store = ctx.store
    address = store.get("host", ctx.host)["address"]
    stale = []
    for ref, rec in store.all("console").items():
        if (not rec["location"].startswith(f"https://{address}/console?") and store.exists("VM", rec["VM"])
                and not store.get("VM", rec["VM"])["is_control_domain"]):
            stale.append((ref, rec["uuid"]))
    if stale:
        with store.transaction():
            for ref, uuid in stale:
                if store.exists("console", ref):
                    store.set("console", ref, "location", f"https://{address}/console?uuid={uuid}")
    return len(stale)


def _has_vt100(ctx, uuid: str) -> bool:
    vm = ctx.store.by_uuid("VM", uuid)
    return vm is not None and any(ctx.store.get("console", c)["protocol"] == "vt100"
                                  for c in ctx.store.get("VM", vm)["consoles"] if ctx.store.exists("console", c))


def _resident_here(ctx) -> list[str]:
    return [rec["uuid"] for rec in ctx.store.all("VM").values() if rec["resident_on"] == ctx.host]


def serve_wanted(ctx, payload) -> list[str]:
    """A member: the master's {VM uuid: name} of this host's domains that want a terminal.
    Kept in memory; the terminals follow at the next settle. Answers the VM uuids whose
    vncterm runs now."""
    if not is_member(ctx):
        raise ApiError("OPERATION_NOT_ALLOWED", "this host is not a pool member: it serves no pool consoles")
    wanted = payload.get("wanted")
    if not isinstance(wanted, dict) or not all(
            isinstance(k, str) and UUID.fullmatch(k) and isinstance(v, str) for k, v in wanted.items()):
        raise ApiError("INTERNAL_ERROR", "consoles: 'wanted' maps VM uuids to names")
    port = ctx.ports.consoles
    if port is None:
        return []
    wanted = {k.lower(): v[:MAX_TITLE] for k, v in wanted.items()}
    if wanted != port.pool_wanted:
        port.pool_wanted = wanted
        port.changed()
    return sorted(t.vm for key, t in port.running().items() if key != HOST_KEY and t.vm in wanted)


def check_relay(ctx, query) -> tuple[str, str]:
    """A member: (VM uuid, protocol) of the master's relay request (ApiError if malformed)."""
    if not is_member(ctx):
        raise ApiError("OPERATION_NOT_ALLOWED", "this host is not a pool member")
    uuid, protocol = query.get("uuid", "").lower(), query.get("protocol", "")
    if not UUID.fullmatch(uuid) or protocol not in PROTOCOLS:
        raise ApiError("INTERNAL_ERROR", "a console relay names a VM uuid and vt100 or rfb")
    return uuid, protocol
