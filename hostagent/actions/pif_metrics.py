"""PIF_metrics following the links: NICs that appear, go or are renamed (udev), carrier changes.

Two adapters report here, each through the feed onto the reactor:

- udev's monitor of the `net` subsystem (`nic` reports: add, remove, move): a NIC
  that appears and has a PIF gets its metrics (carrier, speed, duplex, vendor, ...)
  and its MAC and MTU refreshed, as PIF.scan would; one with no PIF is only logged.
  xapi does the same: it makes PIFs for new NICs only in PIF.scan (which
  XenServer's tools and admins call after adding a card), never on hot-plug, so
  a record appears only when someone asks for it. A NIC that goes has its PIF's
  metrics show no carrier, speed 0 and half duplex (the link monitor records a
  plugged PIF unplugged); a renamed one is a removal of the old name and the
  appearance of the new.
- the link monitor (pif.link_changed): when a NIC appears or its carrier changes,
  its carrier, speed and duplex are read again (the kernel emits no uevent for
  these, and a NIC's speed and duplex follow its carrier).

Each change is one transaction on the PIF_metrics (or PIF), so clients see the
usual `mod` events; a refresh that finds nothing changed writes nothing.
"""

import logging

from ..datamodel.errors import ApiError
from ..rpc.coerce import now_text
from .network import link_errors

log = logging.getLogger("hostagent.pif")

GONE = {"carrier": False, "speed": 0, "duplex": False}
METRIC_KEYS = ("carrier", "speed", "duplex", "vendor_id", "vendor_name", "device_id", "device_name",
               "pci_bus_path")


def nic_pif(ctx, name: str):
    """This host's PIF of the NIC `name` (no VLAN), or None."""
    for ref in ctx.store.get("host", ctx.host)["PIFs"]:
        rec = ctx.store.get("PIF", ref)
        if rec["device"] == name and rec["VLAN"] < 0 and not rec["bond_master_of"]:
            return ref
    return None


def write_metrics(ctx, pif: str, values: dict) -> bool:
    """The PIF's metrics set to those of `values` that differ (one transaction); whether any did."""
    store = ctx.store
    metrics = store.get("PIF", pif)["metrics"]
    if not store.exists("PIF_metrics", metrics):
        return False
    old = store.get("PIF_metrics", metrics)
    changed = {k: values[k] for k in METRIC_KEYS if k in values and old[k] != values[k]}
    if not changed:
        return False
    with store.transaction():
        store.update("PIF_metrics", metrics, **changed, last_updated=now_text(ctx.clock()))
    return True


async def refresh(ctx, pif: str, name: str, record: bool = False) -> None:
    """The PIF's metrics read again from its NIC `name` (and, with `record`, for a NIC that
    appeared, its MAC and MTU as PIF.scan would); the NIC gone: GONE."""
    with link_errors(pif):
        nic = await ctx.ports.links.nic(name)
    if nic is None:
        write_metrics(ctx, pif, GONE)
        return
    values = dict(nic, speed=int(nic["speed"]), duplex=bool(nic["duplex"]), carrier=bool(nic["carrier"]))
    write_metrics(ctx, pif, values)
    if not record:  # the link's MTU may be other_config's, which is no change of the record
        return
    rec = ctx.store.get("PIF", pif)
    mac = (nic.get("mac") or "").lower()
    if mac and (rec["MAC"] != mac or rec["MTU"] != nic["mtu"]):
        with ctx.store.transaction():
            ctx.store.update("PIF", pif, MAC=mac, MTU=nic["mtu"])


def might_be_nic(ctx, value: dict) -> bool:
    """Whether a link udev reports could be a NIC, from the event alone (no bridge, VLAN or bond;
    hardware, or inside a namespace, where veths stand in for NICs)."""
    if value.get("devtype"):
        return False
    return bool(ctx.ports.links.netns) or not value.get("virtual", True)


async def nic_changed(ctx, value: dict) -> None:
    """A `nic` report of udev's monitor (see the module doc)."""
    if ctx.ports.links is None:
        return
    action, name = value["action"], value["name"]
    if action == "move" and value.get("old_name"):
        await nic_changed(ctx, {"action": "remove", "name": value["old_name"]})
        action = "add"
    pif = nic_pif(ctx, name)
    try:
        if action == "remove":
            if pif is not None and write_metrics(ctx, pif, GONE):
                log.info("NIC %s went: PIF %s shows no carrier", name, ctx.store.get("PIF", pif)["uuid"])
        elif action == "add":
            if pif is not None:
                await refresh(ctx, pif, name, record=True)
                log.info("NIC %s appeared: PIF %s refreshed", name, ctx.store.get("PIF", pif)["uuid"])
            elif might_be_nic(ctx, value):
                log.info("NIC %s appeared with no PIF: PIF.scan records it", name)
    except ApiError as e:
        log.warning("cannot follow NIC %s (%s): %s", name, action, e.description)


async def link_changed(ctx, value: dict) -> None:
    """A link monitor's report: a PIF's NIC that appeared or whose carrier changed is read again."""
    if value["deleted"] or ctx.ports.links is None:
        return
    pif = nic_pif(ctx, value["name"])
    if pif is None:
        return
    rec = ctx.store.get("PIF", pif)
    if not ctx.store.exists("PIF_metrics", rec["metrics"]):
        return
    if not value.get("new") and ctx.store.get("PIF_metrics", rec["metrics"])["carrier"] == value["carrier"]:
        return  # a master or up/down change: carrier, speed and duplex stay what they were
    try:
        await refresh(ctx, pif, value["name"])
    except ApiError as e:
        log.warning("cannot read NIC %s: %s", value["name"], e.description)
