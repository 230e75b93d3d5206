"""PIF: the host's interfaces. Scan finds NICs; plug and unplug put them on their bridges.

`PIF.scan(host)` asks the links port for this host's NICs (netlink for the
links, udev for what is physical and its vendor, speed and duplex) and makes
a PIF for each NIC with none, on a network of its own whose bridge is
`xenbr<N>` (N from the device's number, eth0 -> xenbr0, else the first free
one); PIFs already known get their MAC, MTU and metrics refreshed. A new PIF
is not plugged. `PIF.plug` makes the network's bridge, enslaves the NIC (for
a VLAN PIF: the 802.1Q link made on the tagged PIF's device, see vlan.py; for
a bond PIF: the bond with its members, see bond.py) and brings both up; a
bond's member is refused (CANNOT_PLUG_BOND_SLAVE). `PIF.unplug` releases the
NIC (a VLAN link or a bond is removed) and removes the bridge once nothing is
left on it. Without `--manage-network` there is no links port: scan finds
nothing and plug/unplug only change the records.
Work for another host's PIF is refused with HOST_OFFLINE.

other_config (seed §5.5, see link_config.py) is checked whenever it changes
(INVALID_VALUE [other_config:key, value] before anything is applied or
recorded): `mtu`, `promiscuous` and the ethtool-* keys take effect on the
PIF's link when it is plugged and again on every change of a plugged PIF.

The link monitor's reports (`link_changed`) keep each NIC's carrier, speed and duplex current and
record a PIF unplugged when its link or bridge is removed behind the agent's back.
"""

import logging
import re

from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from ..rpc.coerce import now_text
from . import link_config as LC
from . import pif_metrics, vif_links
from .network import link_errors, remove_bridge_if_empty
from .pool_network import on_given_host, on_pif_host
from .storage_records import require_this_host, to_completion

log = logging.getLogger("hostagent.pif")

IFNAMSIZ = 15  # longest Linux interface name


def vlan_link_name(device: str, tag: int) -> str:
    """The 802.1Q link carrying `tag` on `device`: eth0.42, shortened to fit IFNAMSIZ."""
    name = f"{device}.{tag}"
    return name if len(name) <= IFNAMSIZ else f"{device[:IFNAMSIZ - len(str(tag)) - 1]}.{tag}"


def link_name(ctx, rec: dict) -> str:
    """The Linux link a PIF record stands for."""
    return rec["device"] if rec["VLAN"] < 0 else vlan_link_name(rec["device"], rec["VLAN"])


def _metrics(ctx, nic: dict) -> dict:
    return {"carrier": bool(nic.get("carrier")), "speed": int(nic.get("speed", 0)),
            "duplex": bool(nic.get("duplex", False)), "vendor_id": nic.get("vendor_id", ""),
            "vendor_name": nic.get("vendor_name", ""), "device_id": nic.get("device_id", ""),
            "device_name": nic.get("device_name", ""), "pci_bus_path": nic.get("pci_bus_path", ""),
            "last_updated": now_text(ctx.clock())}


def _bridge_for(store, device: str) -> str:
    taken = {rec["bridge"] for rec in store.all("network").values()}
    m = re.search(r"(\d+)$", device)
    if m and f"xenbr{m.group(1)}" not in taken:
        return f"xenbr{m.group(1)}"
    n = 0
    while f"xenbr{n}" in taken:
        n += 1
    return f"xenbr{n}"


@on_given_host
async def scan(ctx, host):
    ctx.need("host", host)
    require_this_host(ctx, host, "PIF.scan")
    links = ctx.ports.links
    if links is None:
        log.info("PIF.scan: the agent does not manage networking here (--manage-network is off)")
        return ""
    with link_errors():
        found = await links.scan()
    store = ctx.store
    known = {store.get("PIF", p)["device"]: p for p in store.get("host", host)["PIFs"]
             if store.get("PIF", p)["VLAN"] < 0}
    with store.transaction():
        for nic in sorted(found, key=lambda n: n["name"]):
            mac = nic["mac"].lower()
            pif = known.get(nic["name"])
            if pif is not None:
                rec = store.get("PIF", pif)
                if rec["MAC"] != mac or rec["MTU"] != nic["mtu"]:
                    store.update("PIF", pif, MAC=mac, MTU=nic["mtu"])
                if store.exists("PIF_metrics", rec["metrics"]):
                    store.update("PIF_metrics", rec["metrics"], **_metrics(ctx, nic))
                continue
            record_nic(ctx, host, dict(nic, mac=mac))
    return ""


def record_nic(ctx, host: str, nic: dict) -> str:
    """A PIF (not plugged) and its metrics for `nic`, on a new network with its xenbr<N>
    (inside the caller's transaction)."""
    store = ctx.store
    bridge = _bridge_for(store, nic["name"])
    network = store.create("network", {
        "name_label": f"Pool-wide network associated with {nic['name']}",
        "bridge": bridge, "MTU": nic["mtu"], "other_config": {}})
    metrics = store.create("PIF_metrics", _metrics(ctx, nic))
    ref = store.create("PIF", {"device": nic["name"], "network": network, "host": host, "MAC": nic["mac"],
                               "MTU": nic["mtu"], "VLAN": -1, "metrics": metrics, "physical": True,
                               "currently_attached": False, "managed": True})
    log.info("new NIC %s (%s) on bridge %s", nic["name"], nic["mac"], bridge)
    return ref


@on_pif_host
@to_completion
async def plug(ctx, self):
    rec = ctx.need("PIF", self)
    require_this_host(ctx, rec["host"], "PIF.plug")
    if rec["bond_slave_of"] != NULL_REF:
        raise ApiError("CANNOT_PLUG_BOND_SLAVE", self)
    if not rec["currently_attached"]:
        await mark(ctx, self, plugging=True)
    await attach(ctx, self)
    return ""


async def mark(ctx, pif: str, **flags) -> None:
    """Durably note work on the PIF's links before it starts (plugging, creating: see
    settle_interrupted), so a start after a kill knows what to undo."""
    with ctx.store.transaction():
        ctx.store.set_private("PIF", pif, **flags)
    await ctx.durable()


async def settle_interrupted(ctx) -> None:
    """Links work an earlier run was killed in the middle of is undone, so that links and
    records agree: a VLAN or bond being created is removed with its records (vlan.py,
    bond.py), and a PIF being plugged is taken off its bridge again (it is recorded
    unplugged: the call never answered)."""
    from . import bond, vlan
    for pif in list(ctx.store.get("host", ctx.host)["PIFs"]):
        if not ctx.store.exists("PIF", pif):
            continue
        rec, flags = ctx.store.get("PIF", pif), ctx.store.private_of("PIF", pif)
        if flags.get("creating"):
            log.warning("undoing the interrupted creation of %s (PIF %s)", link_name(ctx, rec), rec["uuid"])
            if rec["VLAN"] >= 0 and rec["VLAN_master_of"] != NULL_REF:
                await vlan.undo_create(ctx, rec["VLAN_master_of"])
            elif rec["bond_master_of"]:
                await bond.undo_create(ctx, rec["bond_master_of"][0])
        elif flags.get("plugging") and not rec["currently_attached"]:
            log.warning("undoing the interrupted plug of PIF %s (%s)", rec["device"], rec["uuid"])
            await detach(ctx, pif)
            with ctx.store.transaction():
                ctx.store.set_private("PIF", pif, plugging=False)


async def attach(ctx, pif: str) -> None:
    """Make the PIF's links match its record (idempotent), then record it attached."""
    rec = ctx.store.get("PIF", pif)
    links = ctx.ports.links
    if links is not None and rec["managed"]:
        bridge = ctx.store.get("network", rec["network"])["bridge"]
        name = link_name(ctx, rec)
        with link_errors(pif, bridge):
            if rec["VLAN"] >= 0:
                await links.ensure_vlan(name, rec["device"], rec["VLAN"])
            elif rec["bond_master_of"]:
                bond = ctx.store.get("Bond", rec["bond_master_of"][0])
                members = sorted(ctx.store.get("PIF", m)["device"] for m in bond["slaves"])
                await links.ensure_bond(name, bond["mode"], members)
            await links.ensure_bridge(bridge)
            await links.enslave(name, bridge)
            await links.set_up(name, True)
            await configure(ctx, pif, name, rec["other_config"])
    if not rec["currently_attached"] or ctx.store.private_of("PIF", pif).get("plugging"):
        with ctx.store.transaction():
            ctx.store.update("PIF", pif, currently_attached=True)
            ctx.store.set_private("PIF", pif, plugging=False)
    await pif_config.apply_ip(ctx, pif)


@on_pif_host
@to_completion
async def unplug(ctx, self):
    rec = ctx.need("PIF", self)
    require_this_host(ctx, rec["host"], "PIF.unplug")
    if rec["disallow_unplug"]:
        raise ApiError("PIF_DOES_NOT_ALLOW_UNPLUG", self)
    await detach(ctx, self)
    return ""


async def detach(ctx, pif: str) -> None:
    """Take the PIF's links down (a VLAN link and an emptied bridge go), record it detached."""
    rec = ctx.store.get("PIF", pif)
    links = ctx.ports.links
    if links is not None and rec["managed"]:
        network = ctx.store.get("network", rec["network"])
        name = link_name(ctx, rec)
        with link_errors(pif):
            if rec["VLAN"] >= 0 or rec["bond_master_of"]:
                await links.remove(name)  # a bond's members are released with it
            else:
                await links.release(name)
        if network["managed"]:
            await remove_bridge_if_empty(links, network["bridge"])
    if rec["currently_attached"]:
        with ctx.store.transaction():
            ctx.store.update("PIF", pif, currently_attached=False)


async def configure(ctx, pif: str, name: str, config: dict) -> None:
    """Link `name` made to carry the PIF's other_config `config` (see link_config.py); the
    ethtool values it had before the agent first changed them are kept with the PIF."""
    rec = ctx.store.get("PIF", pif)
    originals = ctx.store.private_of("PIF", pif).get("ethtool_originals") or {}
    kept = await LC.apply(ctx.ports.links, name, config, rec["MTU"], originals)
    if kept != originals:
        with ctx.store.transaction():
            ctx.store.set_private("PIF", pif, ethtool_originals=kept)


async def _change_other_config(ctx, pif: str, config: dict) -> str:
    rec = ctx.need("PIF", pif)
    LC.check(config)
    links = ctx.ports.links
    if links is not None and rec["managed"] and rec["currently_attached"]:
        require_this_host(ctx, rec["host"], "PIF other_config")
        with link_errors(pif):
            await configure(ctx, pif, link_name(ctx, rec), config)
    with ctx.store.transaction():
        ctx.store.set("PIF", pif, "other_config", config)
    return ""


@on_pif_host
async def set_other_config(ctx, self, value):
    return await _change_other_config(ctx, self, dict(value))


@on_pif_host
async def add_to_other_config(ctx, self, key, value):
    old = ctx.need("PIF", self)["other_config"]
    if key in old:
        raise ApiError("MAP_DUPLICATE_KEY", "PIF", "other_config", self, key)
    return await _change_other_config(ctx, self, {**old, key: value})


@on_pif_host
async def remove_from_other_config(ctx, self, key):
    old = ctx.need("PIF", self)["other_config"]
    if key not in old:
        return ""
    return await _change_other_config(ctx, self, {k: v for k, v in old.items() if k != key})


async def first_start(ctx) -> None:
    """A host with no PIFs yet gets one (and a network with its xenbr<N>) per NIC, and the
    NIC the default route leaves by is marked the management PIF. Nothing is plugged: moving
    the management address onto a bridge is host.management_reconfigure's work."""
    if ctx.store.get("host", ctx.host)["PIFs"]:
        return
    await scan(ctx, ctx.host)
    with link_errors():
        device = await ctx.ports.links.default_route_link()
    for ref in ctx.store.get("host", ctx.host)["PIFs"]:
        if ctx.store.get("PIF", ref)["device"] == device:
            with ctx.store.transaction():
                ctx.store.update("PIF", ref, management=True)
            log.info("management interface: %s", device)


async def at_start(ctx) -> None:
    """Start-up: on a first start, PIFs for the NICs (see first_start); then this host's PIFs
    recorded attached are plugged again (links already there are adopted: every step is an
    ensure); a failure is logged and the PIF recorded detached."""
    if ctx.ports.links is None:
        log.info("networking is not managed here: networks and PIFs are records only "
                 "(--manage-network turns it on)")
        return
    try:
        await settle_interrupted(ctx)
    except ApiError as e:
        log.warning("cannot undo interrupted links work: %s", e.description)
    try:
        await first_start(ctx)
    except ApiError as e:
        log.warning("cannot list this host's NICs: %s", e.description)
    for pif in list(ctx.store.get("host", ctx.host)["PIFs"]):
        rec = ctx.store.get("PIF", pif)
        if not rec["currently_attached"]:
            continue
        try:
            await attach(ctx, pif)
        except ApiError as e:
            log.warning("cannot re-plug PIF %s (%s): %s", rec["device"], rec["uuid"], e.description)
            with ctx.store.transaction():
                ctx.store.update("PIF", pif, currently_attached=False)
    try:
        await vif_links.at_start(ctx)
    except ApiError as e:
        log.warning("cannot put the VIFs' bridges and backends back: %s", e.description)


async def link_changed(ctx, value: dict) -> None:
    """A report of the link monitor: a NIC's carrier, speed and duplex go to its PIF_metrics
    (pif_metrics.py); a PIF whose link (or whose network's bridge) was removed behind the
    agent's back is recorded unplugged, once the kernel confirms the link is still gone (our
    own removals and re-plugs race it)."""
    store, name = ctx.store, value["name"]
    await pif_metrics.link_changed(ctx, value)
    for ref in list(store.get("host", ctx.host)["PIFs"]):
        rec = store.get("PIF", ref)
        mine = link_name(ctx, rec) == name
        if not (value["deleted"] and rec["currently_attached"] and rec["managed"]):
            continue
        network = store.all("network").get(rec["network"])
        bridge = network["bridge"] if network else ""
        if (mine or name == bridge) and ctx.ports.links is not None:
            with link_errors(ref):
                if await ctx.ports.links.link(name) is not None:
                    continue
            if not store.exists("PIF", ref) or not store.get("PIF", ref)["currently_attached"]:
                continue  # the agent's own unplug, finished meanwhile
            log.warning("link %s of PIF %s was removed behind the agent's back: recorded unplugged",
                        name, rec["uuid"])
            with store.transaction():
                store.update("PIF", ref, currently_attached=False)
    await vif_links.link_changed(ctx, value)


from . import pif_config

HANDLERS = {**pif_config.HANDLERS, "PIF.scan": scan, "PIF.plug": plug, "PIF.unplug": unplug,
            "PIF.set_other_config": set_other_config, "PIF.add_to_other_config": add_to_other_config,
            "PIF.remove_from_other_config": remove_from_other_config}


def create_virtual(ctx, values: dict) -> str:
    """A PIF no NIC stands behind (a VLAN's untagged PIF, a bond's master) with blank
    PIF_metrics; inside the caller's transaction."""
    store = ctx.store
    metrics = store.create("PIF_metrics", {
        "carrier": False, "speed": 0, "duplex": False, "vendor_id": "", "vendor_name": "",
        "device_id": "", "device_name": "", "pci_bus_path": "", "last_updated": now_text(ctx.clock())})
    return store.create("PIF", {**values, "metrics": metrics, "physical": False, "currently_attached": False})


def delete_record(store, pif: str) -> None:
    """The PIF and its PIF_metrics gone, inside the caller's transaction."""
    metrics = store.get("PIF", pif)["metrics"]
    store.delete("PIF", pif)
    if store.exists("PIF_metrics", metrics):
        store.delete("PIF_metrics", metrics)
