"""PIF.introduce, forget, reconfigure_ip and host.management_reconfigure: records and IPv4.

`introduce(host, MAC, device, managed)` records one NIC as PIF.scan would
(a network of its own with its xenbr<N>): an invalid MAC is MAC_INVALID, a
device the host already has a PIF for is DUPLICATE_PIF_DEVICE_NAME, and with
`--manage-network` a device the namespace has no NIC of is
PIF_DEVICE_NOT_FOUND (an empty MAC takes the NIC's; another MAC than the
NIC's is MAC_INVALID). `forget` unplugs the PIF and forgets it and its
metrics (its network stays): refused for the management PIF
(PIF_IS_MANAGEMENT_INTERFACE), a VLAN's PIF (PIF_IS_VLAN), a PIF VLANs ride
on (PIF_VLAN_STILL_EXISTS) and a bond's (PIF_ALREADY_BONDED).

`reconfigure_ip(self, mode, IP, netmask, gateway, DNS)` records None, DHCP or
Static (Static checks IP, netmask and gateway: INVALID_IP_ADDRESS_SPECIFIED
[field]). A static address goes on the PIF's bridge (where xapi puts it)
when the PIF is plugged, now and at every plug; setting None takes the
bridge's addresses away. The agent has no DHCP client: DHCP is recorded and logged.
The management PIF's link is never changed here: moving the address the
agent is reached by is `host.management_reconfigure(pif)`'s work, which
puts the new PIF's address up beside the old one and hands over the role
only once the new address answers.
"""

import ipaddress
import logging

from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from . import pif as P
from .network import link_errors
from .pool_network import on_given_host, on_pif_host
from .storage_records import require_this_host, to_completion
from .vif import MAC_RE

log = logging.getLogger("hostagent.pif")


@on_given_host
async def introduce(ctx, host, MAC, device, managed=True):
    ctx.need("host", host)
    require_this_host(ctx, host, "PIF.introduce")
    mac = str(MAC).strip().lower().replace("-", ":")
    if mac and not MAC_RE.match(mac):
        raise ApiError("MAC_INVALID", MAC)
    store = ctx.store
    for ref in store.get("host", host)["PIFs"]:
        rec = store.get("PIF", ref)
        if rec["device"] == device and rec["VLAN"] < 0:
            raise ApiError("DUPLICATE_PIF_DEVICE_NAME", device)
    nic = {"name": device, "mac": mac, "mtu": 1500}
    links = ctx.ports.links
    if links is not None:
        with link_errors():
            found = [n for n in await links.scan() if n["name"] == device]
        if not found:
            raise ApiError("PIF_DEVICE_NOT_FOUND")
        if mac and mac != found[0]["mac"].lower():
            raise ApiError("MAC_INVALID", MAC)
        nic = dict(found[0], mac=found[0]["mac"].lower())
    if not nic["mac"]:
        raise ApiError("MAC_INVALID", MAC)
    with store.transaction():
        ref = P.record_nic(ctx, host, nic)
        store.update("PIF", ref, managed=bool(managed))
    return ref


@on_pif_host
@to_completion
async def forget(ctx, self):
    rec = ctx.need("PIF", self)
    require_this_host(ctx, rec["host"], "PIF.forget")
    if rec["management"]:
        raise ApiError("PIF_IS_MANAGEMENT_INTERFACE", self)
    if rec["VLAN_master_of"] != NULL_REF:
        raise ApiError("PIF_IS_VLAN", self)
    if rec["VLAN_slave_of"]:
        raise ApiError("PIF_VLAN_STILL_EXISTS", self)
    if rec["bond_slave_of"] != NULL_REF or rec["bond_master_of"]:
        raise ApiError("PIF_ALREADY_BONDED", self)
    if rec["currently_attached"]:
        await P.detach(ctx, self)
    with ctx.store.transaction():
        P.delete_record(ctx.store, self)
    return ""


def _check_static(IP: str, netmask: str, gateway: str) -> str:
    """The address as "a.b.c.d/len", or INVALID_IP_ADDRESS_SPECIFIED [the field at fault]."""
    try:
        address = ipaddress.IPv4Address(IP.strip())
    except ValueError:
        raise ApiError("INVALID_IP_ADDRESS_SPECIFIED", "IP") from None
    try:
        length = ipaddress.IPv4Network(f"0.0.0.0/{netmask.strip()}").prefixlen
    except ValueError:
        raise ApiError("INVALID_IP_ADDRESS_SPECIFIED", "netmask") from None
    if gateway.strip():
        try:
            ipaddress.IPv4Address(gateway.strip())
        except ValueError:
            raise ApiError("INVALID_IP_ADDRESS_SPECIFIED", "gateway") from None
    return f"{address}/{length}"


@on_pif_host
@to_completion
async def reconfigure_ip(ctx, self, mode, IP, netmask, gateway, DNS):
    rec = ctx.need("PIF", self)
    require_this_host(ctx, rec["host"], "PIF.reconfigure_ip")
    if mode == "Static":
        _check_static(IP, netmask, gateway)
        values = {"IP": IP.strip(), "netmask": netmask.strip(), "gateway": gateway.strip(), "DNS": DNS.strip()}
    else:
        values = {"IP": "", "netmask": "", "gateway": "", "DNS": DNS.strip() if mode == "DHCP" else ""}
    with ctx.store.transaction():
        ctx.store.update("PIF", self, ip_configuration_mode=mode, **values)
    if mode == "DHCP":
        log.warning("PIF %s: DHCP recorded; the agent runs no DHCP client", rec["device"])
    await apply_ip(ctx, self, changed=True)
    return ""


async def apply_ip(ctx, pif: str, changed: bool = False) -> None:
    """The PIF's recorded IPv4 configuration on its bridge, when plugged and not management:
    a static address at every plug; None takes addresses away only when it was just set."""
    rec = ctx.store.get("PIF", pif)
    links = ctx.ports.links
    if links is None or not rec["managed"] or not rec["currently_attached"]:
        return
    if rec["management"]:
        log.info("PIF %s is the management interface: its address changes only through "
                 "host.management_reconfigure", rec["device"])
        return
    mode = rec["ip_configuration_mode"]
    if mode == "DHCP" or (mode == "None" and not changed):
        return
    bridge = ctx.store.get("network", rec["network"])["bridge"]
    wanted = [_check_static(rec["IP"], rec["netmask"], rec["gateway"])] if mode == "Static" else []
    with link_errors(pif, bridge):
        await links.set_addresses(bridge, wanted)


@on_pif_host
@to_completion
async def management_reconfigure(ctx, pif):
    """`pif` becomes the management interface. With `--manage-network` it is plugged, its
    static address put on its bridge beside whatever is there, and it must answer (a datagram
    from that address back to it) within a few seconds before the old management PIF gives up
    the role; if it does not, the address is taken away again and nothing else changes."""
    rec = ctx.need("PIF", pif)
    require_this_host(ctx, rec["host"], "host.management_reconfigure")
    if rec["ip_configuration_mode"] == "None":
        raise ApiError("PIF_HAS_NO_NETWORK_CONFIGURATION", pif)
    links = ctx.ports.links
    if links is not None and rec["managed"] and rec["ip_configuration_mode"] == "Static":
        if not rec["currently_attached"]:
            await P.attach(ctx, pif)
        bridge = ctx.store.get("network", rec["network"])["bridge"]
        cidr = _check_static(rec["IP"], rec["netmask"], rec["gateway"])
        with link_errors(pif, bridge):
            before = await links.addresses(bridge)
            await links.set_addresses(bridge, [cidr], True)  # the old address stays meanwhile
            answered = False
            for _ in range(10):
                if await links.address_answers(rec["IP"]):
                    answered = True
                    break
                await ctx.sleep(0.25)
            if not answered:
                if cidr not in before:
                    await links.set_addresses(bridge, before)
                raise ApiError("PIF_CONFIGURATION_ERROR", pif, f"{rec['IP']} does not answer on {bridge}")
    with ctx.store.transaction():
        for other in ctx.store.get("host", rec["host"])["PIFs"]:
            if other != pif and ctx.store.get("PIF", other)["management"]:
                ctx.store.update("PIF", other, management=False)
        ctx.store.update("PIF", pif, management=True)
        if rec["IP"]:
            ctx.store.update("host", rec["host"], address=rec["IP"])
    log.info("management interface: %s (%s)", rec["device"], rec["IP"] or rec["ip_configuration_mode"])
    return ""


HANDLERS = {"PIF.introduce": introduce, "PIF.forget": forget, "PIF.reconfigure_ip": reconfigure_ip,
            "host.management_reconfigure": management_reconfigure}
