"""A VIF's backend device on its network's bridge (with `--manage-network`).

A running VM's VIF has a backend link in dom0: Xen's netback device
`vif<domid>.<device>`, or the tap libvirt makes for a KVM guest. A KVM guest's
taps made at domain start are libvirt's `vnet<N>` (the domid, and so xapi's
name, is not known before the domain exists; the agent does not rename them):
when one appears the agent finds its VIF by MAC (libvirt gives the tap the
guest's MAC with the first byte fe) and records it as that VIF's backend for
the running domain. A VIF hot-plugged with VIF.plug gets `vif<domid>.<device>`
(the domain XML's target). The hypervisor's own scripts (Xen's vif-bridge,
libvirt's `<interface type='bridge'>`) usually enslave the backend; the agent
makes sure of it, filters its traffic as the VIF's locking_mode says
(vif_locking.py; before putting it on the bridge) and applies the VIF's
other_config (link_config.py) when the backend appears (the link monitor's
report), after VIF.plug, on VIF.move and on every other_config change. A
`vif<domid>.<device>` link of no attached VIF is taken off the agent's bridges
(a `vnet<N>` of no VIF is left to libvirt).

A network's bridge exists while it has VIFs (made at VIF.create and at
start-up), so that a hypervisor that wants the bridge at domain start finds
it; it goes with the last VIF when no PIF is plugged on it and nothing is on
it.
"""

import logging
import re
from typing import Optional

from ..backends.nftables import FilterError
from . import link_config as LC
from . import vif_locking
from .network import link_errors, remove_bridge_if_empty

log = logging.getLogger("hostagent.network")

BACKEND = re.compile(r"^vif(\d+)\.(\d+)$")
LIBVIRT_TAP = re.compile(r"^vnet\d+$")  # libvirt's names for the taps it makes at domain start
RUNNING = ("Running", "Paused")


def backend_name(domid: int, device: str) -> str:
    return f"vif{domid}.{device}"


def managed(ctx, network: str) -> Optional[dict]:
    """The network's record when the agent manages its links, else None."""
    if ctx.ports.links is None or not ctx.store.exists("network", network):
        return None
    rec = ctx.store.get("network", network)
    return rec if rec["managed"] and rec["bridge"] else None


async def ensure_network_bridge(ctx, network: str) -> None:
    net = managed(ctx, network)
    if net is not None:
        with link_errors(bridge=net["bridge"]):
            await ctx.ports.links.ensure_bridge(net["bridge"])


async def ensure_vm_bridges(ctx, vm: str) -> None:
    """The bridges of the VM's VIFs' networks, on the host it is about to run on (a pool
    member makes its own when a VM starts or arrives there, as xapi realises networks)."""
    store = ctx.store
    for vif in store.get("VM", vm)["VIFs"]:
        rec = store.all("VIF").get(vif)
        if rec is not None:
            await ensure_network_bridge(ctx, rec["network"])


async def drop_network_bridge(ctx, network: str) -> None:
    """The network's bridge removed when no VIF and no plugged PIF needs it and nothing is on it."""
    net = managed(ctx, network)
    if net is None or net["VIFs"] or any(ctx.store.get("PIF", p)["currently_attached"] for p in net["PIFs"]):
        return
    await remove_bridge_if_empty(ctx.ports.links, net["bridge"])


def _running_vifs(ctx):
    """(VIF, its record, its VM's domid) for the attached VIFs of this host's running VMs."""
    for rec in ctx.store.all("VM").values():
        if rec["domid"] >= 0 and rec["resident_on"] == ctx.host and rec["power_state"] in RUNNING:
            for vif in rec["VIFs"]:
                vif_rec = ctx.store.get("VIF", vif)
                if vif_rec["currently_attached"]:
                    yield vif, vif_rec, rec["domid"]


def backend_of(ctx, vif: str) -> Optional[str]:
    """The backend link name of an attached VIF of a running VM on this host, else None: the
    libvirt tap recorded for this domain (see claim_tap), else vif<domid>.<device>."""
    rec = ctx.store.get("VIF", vif)
    vm = ctx.store.get("VM", rec["VM"])
    if vm["power_state"] not in RUNNING or vm["resident_on"] != ctx.host or vm["domid"] < 0:
        return None
    if not rec["currently_attached"]:
        return None
    kept = ctx.store.private_of("VIF", vif)
    if kept.get("backend") and kept.get("backend_domid") == vm["domid"]:
        return kept["backend"]
    return backend_name(vm["domid"], rec["device"])


def owner(ctx, name: str) -> Optional[str]:
    """The attached VIF whose backend link is `name`, or None."""
    m = BACKEND.match(name)
    for vif, rec, domid in _running_vifs(ctx):
        kept = ctx.store.private_of("VIF", vif)
        if kept.get("backend") == name and kept.get("backend_domid") == domid:
            return vif
        if m and int(m.group(1)) == domid and rec["device"] == m.group(2):
            return vif
    return None


def tap_owner(ctx, mac: str) -> Optional[str]:
    """The attached VIF whose guest MAC this libvirt tap's MAC stands for: libvirt gives a KVM
    guest's tap the guest's MAC with the first byte fe (fa when the guest's begins with fe), so
    that the bridge never takes the guest's address as its own."""
    mac = (mac or "").lower()
    if len(mac) != 17 or mac[:2] not in ("fe", "fa"):
        return None
    for vif, rec, _ in _running_vifs(ctx):
        guest = rec["MAC"].lower()
        if guest[2:] == mac[2:] and ("fa" if guest[:2] == "fe" else "fe") == mac[:2]:
            return vif
    return None


def _forget_tap(ctx, name: str) -> None:
    """A recorded libvirt tap `name` that went (or left its VIF) is no VIF's backend any more."""
    for vif in list(ctx.store.all("VIF")):
        if ctx.store.private_of("VIF", vif).get("backend") == name:
            with ctx.store.transaction():
                ctx.store.set_private("VIF", vif, backend=None, backend_domid=None)


async def claim_tap(ctx, name: str) -> Optional[str]:
    """A libvirt tap (`vnet<N>`) that appeared: the VIF it carries, found by its MAC and recorded
    as that VIF's backend for the running domain, or None."""
    with link_errors():
        found = await ctx.ports.links.link(name)
    vif = tap_owner(ctx, found["mac"]) if found else None
    if vif is not None:
        domid = ctx.store.get("VM", ctx.store.get("VIF", vif)["VM"])["domid"]
        with ctx.store.transaction():
            ctx.store.set_private("VIF", vif, backend=name, backend_domid=domid)
        log.info("VIF %s: libvirt's tap %s is its backend", ctx.store.get("VIF", vif)["uuid"], name)
    return vif


async def configure(ctx, vif: str, name: str, config: dict, fresh: bool = False) -> None:
    """The backend link carries the VIF's other_config; its own ethtool values are kept with
    the VIF (a new backend, `fresh`, starts from its driver's)."""
    rec = ctx.store.get("VIF", vif)
    originals = {} if fresh else ctx.store.private_of("VIF", vif).get("ethtool_originals") or {}
    kept = await LC.apply(ctx.ports.links, name, config, rec["MTU"], originals)
    if kept != ctx.store.private_of("VIF", vif).get("ethtool_originals"):
        with ctx.store.transaction():
            ctx.store.set_private("VIF", vif, ethtool_originals=kept)


async def attach_backend(ctx, vif: str, fresh: bool = True) -> bool:
    """The VIF's backend enslaved to its network's bridge, up and configured; False when there
    is no backend link (yet) or the agent does not manage the network."""
    name = backend_of(ctx, vif)
    rec = ctx.store.get("VIF", vif)
    net = managed(ctx, rec["network"])
    if name is None or net is None:
        return False
    links = ctx.ports.links
    with link_errors(bridge=net["bridge"]):
        if await links.link(name) is None:
            return False
    try:  # filtered before the agent puts it on the bridge
        await vif_locking.apply(ctx, vif, name)
    except FilterError as e:
        if vif_locking.effective_mode(ctx, rec) != "unlocked":
            log.error("VIF %s: %s kept off bridge %s: its locking_mode filter cannot be made: %s",
                      rec["uuid"], name, net["bridge"], e)
            with link_errors():
                found = await links.link(name)
                if found is not None and found["master"] == net["bridge"]:
                    await links.release(name)
            return False
        log.warning("VIF %s: cannot take the filter off %s: %s", rec["uuid"], name, e)
    with link_errors(bridge=net["bridge"]):
        await links.ensure_bridge(net["bridge"])
        await links.enslave(name, net["bridge"])
        await links.set_up(name, True)
        await configure(ctx, vif, name, rec["other_config"], fresh=fresh)
    log.info("VIF %s: %s on bridge %s", rec["uuid"], name, net["bridge"])
    return True


async def release_backend(ctx, name: str) -> None:
    """A backend link left without its VIF taken off whichever of the agent's bridges holds it,
    and its traffic filter gone."""
    await vif_locking.remove(ctx, name)
    _forget_tap(ctx, name)
    links = ctx.ports.links
    with link_errors():
        found = await links.link(name)
        bridges = {rec["bridge"] for rec in ctx.store.all("network").values() if rec["managed"]}
        if found is not None and found["master"] in bridges:
            await links.release(name)
            log.info("%s (no attached VIF) taken off bridge %s", name, found["master"])


async def link_changed(ctx, value: dict) -> None:
    """A link monitor report about a `vif<domid>.<device>` link: a new backend of an attached
    VIF is put on its bridge; one of no VIF is taken off. A backend that appears while its VM
    is still starting (the domain exists before the records say so) is looked for again for
    a few seconds."""
    name = value["name"]
    tap = LIBVIRT_TAP.match(name) is not None
    if not (BACKEND.match(name) or tap) or ctx.ports.links is None:
        return
    if value["deleted"]:
        # A gone link's filter guards nothing, whoever owned it: the report of a domain's end can
        # come before the records say it halted. A link made again meanwhile (unplug, plug) keeps
        # the filter its plug just applied.
        with link_errors():
            back = await ctx.ports.links.link(name)
        if back is None:
            await vif_locking.remove(ctx, name)
        if owner(ctx, name) is None or tap:
            _forget_tap(ctx, name)
        return
    vif = owner(ctx, name) or (await claim_tap(ctx, name) if tap else None)
    tries = 20 if value.get("new") else 0
    while vif is None and tries:
        await ctx.sleep(0.25)
        tries -= 1
        vif = owner(ctx, name) or (await claim_tap(ctx, name) if tap else None)
    if vif is None:
        if not tap:  # a vnet<N> of no VIF is libvirt's own business (its networks, other guests)
            await release_backend(ctx, name)
        return
    net = managed(ctx, ctx.store.get("VIF", vif)["network"])
    if net is not None and (value.get("new") or value["master"] != net["bridge"]):
        await attach_backend(ctx, vif, fresh=bool(value.get("new")))


async def at_start(ctx) -> None:
    """Bridges for the networks that have VIFs; backends of running VMs put back on them."""
    if ctx.ports.links is None:
        return
    for network, rec in ctx.store.all("network").items():
        if rec["VIFs"]:
            await ensure_network_bridge(ctx, network)
    with link_errors():
        taps = [li["name"] for li in await ctx.ports.links.links() if LIBVIRT_TAP.match(li["name"] or "")]
    for name in taps:  # libvirt's taps of guests started before, not yet known as backends
        if owner(ctx, name) is None:
            await claim_tap(ctx, name)
    for vif in list(ctx.store.all("VIF")):
        await attach_backend(ctx, vif, fresh=False)
    if ctx.ports.filters is not None:  # filters of backends no attached VIF has any more
        try:
            stale = [name for name in await ctx.ports.filters.filtered() if owner(ctx, name) is None]
        except FilterError as e:
            log.warning("cannot read the VIF filters: %s", e)
            stale = []
        for name in stale:
            await vif_locking.remove(ctx, name)
