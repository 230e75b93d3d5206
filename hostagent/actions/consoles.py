"""Consoles: which vncterms run, and where a console record's bytes are.

`settle(ctx)` makes the running vncterms match the VMs: one per running guest of this host
whose domain has a text console (a PV console on Xen; the first serial port, on a pty, on
KVM) unless `other_config:disable_pv_vnc` is set; none for a VM that stopped; a new one
for one that died or whose pty changed (a reboot makes a new domain); and the host's login
console when the agent is configured to serve it. The server runs it at start-up (after
adopting the vncterms a previous run left), when a VM starts or stops, and every few seconds.

In a pool the master settles its own VMs' terminals and tells each live member which of its
VMs want one (actions/consoles_pool.py); a member's settle keeps that set (`pool_wanted`), and
holds no VM records for them.

`target(ctx, console)` is the 127.0.0.1 port that `CONNECT /console` relays to, or 0 (404):
a vt100 console's vncterm; an rfb console's is the domain's own VNC server (qemu) and,
where the domain has none, its vncterm, as XenServer serves PV guests' rfb consoles.
Targets are kept in memory, never in the records (docs/consoles.md).
"""

import logging
from typing import Dict

from ..backends.consoles import HOST_KEY, ConsoleError, vm_key
from ..backends.consoles_privilege import device_model_user
from ..backends.hypervisor import HypervisorError

log = logging.getLogger("hostagent.consoles")

DISABLE_KEY = "disable_pv_vnc"
TRUE = ("1", "true", "yes", "on")


def wants_terminal(ctx, rec: dict, host: str = "") -> bool:
    """Whether the VM should have a vncterm on `host` (this one by default)."""
    return (not rec["is_control_domain"] and not rec["is_a_template"]
            and rec["power_state"] in ("Running", "Paused") and rec["resident_on"] == (host or ctx.host)
            and str(rec["other_config"].get(DISABLE_KEY, "")).lower() not in TRUE)


def _wanted(ctx) -> Dict[str, str]:
    """Terminal key -> VM uuid, for the VMs that should have a vncterm."""
    return {vm_key(rec["uuid"]): rec["uuid"] for rec in ctx.store.all("VM").values() if wants_terminal(ctx, rec)}


def is_member(ctx) -> bool:
    pool = getattr(ctx.rt, "pool", None)
    return pool is not None and pool.is_slave


async def _text_pty(ctx, uuid: str) -> str:
    try:
        return (await ctx.ports.domains.call("consoles", uuid)).text_pty
    except HypervisorError as e:
        log.info("VM %s: cannot read its consoles: %s", uuid, e)
        return ""


async def settle(ctx) -> None:
    port = ctx.ports.consoles
    if port is None:
        return
    for term in await port.dead():
        log.warning("console %s: its vncterm (pid %d) stopped; starting another if still needed",
                    term.key, term.pid)
    try:
        guests = ctx.ports.domains is not None and (await ctx.ports.domains.capabilities()).consoles
    except HypervisorError as e:  # libvirt away: guests' terminals wait for the next settle
        log.warning("cannot settle guests' console terminals: %s", e)
        await _host_terminal(ctx, port)
        return
    member = is_member(ctx)
    if not member:
        port.pool_wanted = None
        want = _wanted(ctx) if guests else {}
    else:  # the master's word (none yet since this start: keep what runs)
        told = port.pool_wanted
        want = {vm_key(u): u for u in told} if guests and told is not None else {}
    suspect, port.suspect = port.suspect, set()
    for key, term in port.running().items():
        if key == HOST_KEY:
            continue
        if member and port.pool_wanted is None:
            continue
        if key not in want:
            await port.stop(key)
            port.vm_gone(term.vm)
        elif term.vm in suspect and await _text_pty(ctx, term.vm) != term.pty:
            log.info("console %s: the domain's text console moved; restarting its vncterm", key)
            await port.stop(key)
    running = port.running()
    for key, uuid in want.items():
        if key in running:
            continue
        pty = await _text_pty(ctx, uuid)
        if not pty:
            continue  # no text console on a pty (a socket-bound serial port, say)
        if member:  # the member holds no record of the pool's VMs
            if uuid not in (port.pool_wanted or {}):
                continue
            vm, title = None, port.pool_wanted[uuid]
        else:
            vm = ctx.store.by_uuid("VM", uuid)
            if vm is None or not wants_terminal(ctx, ctx.store.get("VM", vm)):
                continue  # it stopped while we looked
            title = ctx.store.get("VM", vm)["name_label"]
        try:
            await port.start(key, uuid, pty, title=title)
        except ConsoleError as e:
            log.error("VM %s: no text console terminal: %s", uuid, e)
            continue
        if vm is not None and ctx.store.exists("VM", vm):
            ensure_vt100(ctx, vm)
    await _host_terminal(ctx, port)


async def _host_terminal(ctx, port) -> None:
    """dom0's login terminal, when the agent serves the host console and it is not running."""
    if port.host_console and HOST_KEY not in port.running():
        try:
            await port.start(HOST_KEY, "", login=True, title=ctx.store.get("host", ctx.host)["hostname"])
        except ConsoleError as e:
            log.error("host console: no login terminal: %s", e)


def ensure_vt100(ctx, vm: str) -> None:
    """A guest whose text console is served has a vt100 console record: PV guests have had
    one since they started; an HVM guest's serial console (KVM) gets one now."""
    store = ctx.store
    if any(store.get("console", c)["protocol"] == "vt100" for c in store.get("VM", vm)["consoles"]):
        return
    address = store.get("host", ctx.rt.host)["address"]  # clients reach every console at the master
    with store.transaction():
        ref = store.create("console", {"protocol": "vt100", "VM": vm})
        store.set("console", ref, "location", f"https://{address}/console?uuid={store.get('console', ref)['uuid']}")


async def at_start(ctx) -> None:
    """Adopt the vncterms a previous run left (their VMs' ptys checked again), then settle."""
    port = ctx.ports.consoles
    if port is None:
        return
    for term in await port.adopt():
        if term.vm:
            port.suspect.add(term.vm)
    await settle(ctx)


async def target(ctx, console: str) -> int:
    """The 127.0.0.1 port of the VNC server behind `console`, or 0 when there is none."""
    store = ctx.store
    rec = store.get("console", console)
    vm = store.get("VM", rec["VM"])
    port = ctx.ports.consoles
    if vm["is_control_domain"]:
        return port.port_of(HOST_KEY) if port is not None and rec["protocol"] == "vt100" else 0
    return await local_target(ctx, vm["uuid"], rec["protocol"])


async def local_target(ctx, vm_uuid: str, protocol: str) -> int:
    """The 127.0.0.1 port of a guest's console on this host (vt100: its vncterm; rfb: the
    domain's own VNC server, else its vncterm), or 0: from the hypervisor, not the records
    (a member serves its domains' consoles to the master so)."""
    port = ctx.ports.consoles
    text = port.port_of(vm_key(vm_uuid)) if port is not None else 0
    if protocol == "vt100":
        return text
    if protocol != "rfb" or ctx.ports.domains is None:
        return 0
    try:
        if not (await ctx.ports.domains.capabilities()).consoles:
            return 0
        graphics = (await ctx.ports.domains.call("consoles", vm_uuid)).vnc_port
    except HypervisorError as e:
        log.info("VM %s: cannot read its consoles: %s", vm_uuid, e)
        return 0
    return graphics or text


async def report_device_model(ctx) -> None:
    """host.other_config:device-model-user (and -privileged), and the log, say who runs qemu."""
    if ctx.ports.domains is None:
        return
    try:
        driver = (await ctx.ports.domains.capabilities()).driver
    except HypervisorError as e:
        log.warning("cannot tell which user runs device models: %s", e)
        return
    # reads qemu.conf, walks /proc and looks users up: off the reactor where the agent runs one
    run = ctx.ports.run_blocking
    found = await run(device_model_user, driver) if run is not None else device_model_user(driver)
    store = ctx.store
    other = dict(store.get("host", ctx.host)["other_config"])
    if found.user:
        (log.warning if found.privileged else log.info)(
            "device models (qemu) run as %s%s (%s)", found.user, ", with root's privileges" if found.privileged
            else "", found.source)
        values = {"device-model-user": found.user, "device-model-privileged": str(found.privileged).lower()}
    else:
        values = {}
    updated = {k: v for k, v in other.items() if k not in ("device-model-user", "device-model-privileged")}
    updated.update(values)
    if updated != other:
        with store.transaction():
            store.set("host", ctx.host, "other_config", updated)
