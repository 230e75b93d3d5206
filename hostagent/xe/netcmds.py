"""Networking commands whose xe form differs from the API: pif-scan, vlan-create,
network-create, bond-create."""

from .command import Command
from .errors import UsageError
from .values import parse


def pif_scan(ctx):
    ctx.call("PIF.scan", ctx.call("host.get_by_uuid", ctx.param("host-uuid")))


def vlan_create(ctx):
    pif = ctx.call("PIF.get_by_uuid", ctx.param("pif-uuid"))
    network = ctx.call("network.get_by_uuid", ctx.param("network-uuid"))
    tag = parse(["int"], ctx.param("vlan"), ctx.session, ctx.model, "vlan")
    vlan = ctx.call("VLAN.create", pif, tag, network)
    ctx.write(ctx.call("PIF.get_uuid", ctx.call("VLAN.get_untagged_PIF", vlan)) + "\n")


def network_create(ctx):
    record = {"name_label": ctx.param("name-label"), "name_description": ctx.param("name-description", ""),
              "other_config": {k.split(":", 1)[1]: v for k, v in ctx.opts.params.items()
                               if k.startswith("other-config:")}}
    for key in ctx.opts.params:
        if key not in ("name-label", "name-description", "MTU", "bridge") and \
                not key.startswith("other-config:"):
            raise UsageError(f"Unknown parameter: {key}")
    if ctx.param("MTU") is not None:
        record["MTU"] = parse(["int"], ctx.param("MTU"), ctx.session, ctx.model, "MTU")
    if ctx.param("bridge") is not None:
        record["bridge"] = ctx.param("bridge")
    ref = ctx.call("network.create", record)
    ctx.write(ctx.call("network.get_uuid", ref) + "\n")


def bond_create(ctx):
    network = ctx.call("network.get_by_uuid", ctx.param("network-uuid"))
    pifs = [ctx.call("PIF.get_by_uuid", u.strip()) for u in ctx.param("pif-uuids").split(",") if u.strip()]
    properties = {k.split(":", 1)[1]: v for k, v in ctx.opts.params.items() if k.startswith("properties:")}
    for key in ctx.opts.params:
        if key not in ("network-uuid", "pif-uuids", "mac", "mode") and not key.startswith("properties:"):
            raise UsageError(f"Unknown parameter: {key}")
    bond = ctx.call("Bond.create", network, pifs, ctx.param("mac", ""), ctx.param("mode", "balance-slb"),
                    properties)
    ctx.write(ctx.call("Bond.get_uuid", bond) + "\n")


def register(reg, model):
    reg.add(Command("pif-scan", pif_scan, required=("host-uuid",), group="pif",
                    help="Look for NICs on the host that have no PIF yet and record them."))
    reg.add(Command("vlan-create", vlan_create, required=("pif-uuid", "vlan", "network-uuid"), group="vlan",
                    help="Put VLAN tag vlan= on the PIF, on the network; prints the new VLAN PIF's uuid."))
    reg.add(Command("network-create", network_create, required=("name-label",),
                    optional=("name-description", "MTU", "bridge"), open=True, group="network",
                    help="Create a network (other-config:k=v taken); prints its uuid."))
    reg.add(Command("bond-create", bond_create, required=("network-uuid", "pif-uuids"),
                    optional=("mac", "mode"), open=True, group="bond",
                    help="Bond the PIFs (comma-separated uuids) on the network, mode balance-slb, "
                         "active-backup or lacp (properties:k=v); prints the bond's uuid."))
