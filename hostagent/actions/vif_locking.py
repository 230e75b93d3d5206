"""VIF locking_mode: which frames a VIF's backend may put on its bridge (xapi's semantics).

A VIF's `locking_mode` is `locked`, `unlocked`, `disabled`, or
`network_default`, which means its network's `default_locking_mode`
(`unlocked` or `disabled`):

- locked: only frames from the VIF's MAC pass, and of those only ARP, IPv4 and
  IPv6 from the addresses in `ipv4_allowed`/`ipv6_allowed` (a locked VIF with
  no address passes nothing, as xapi documents);
- disabled: nothing passes, either way;
- unlocked: no filter.

With `--manage-network` the filter (backends/nftables.py: bridge netfilter
rules) is put on the backend link `vif<domid>.<device>` before the agent puts
it on its bridge (vif_links.attach_backend: VIF.plug, VM start once the backend
appears, VIF.move, restart), and changed at once on `VIF.set_locking_mode`,
`set/add/remove_ipv4_allowed` (and ipv6) and `network.set_default_locking_mode`
while the VM runs; a backend whose VIF is gone loses its filter. Addresses are
checked as xapi does: `INVALID_VALUE [ipv4_allowed, address]` for one that is
not an IPv4 address (likewise IPv6). When the kernel cannot take a change the
call fails with INTERNAL_ERROR and nothing changes (nft applies a batch whole or
not at all); a locked or disabled backend whose filter cannot be made is kept
off its bridge (the log says why).
"""

import ipaddress
import logging

from ..backends.nftables import FilterError
from ..datamodel.errors import ApiError

log = logging.getLogger("hostagent.network")


def effective_mode(ctx, rec: dict) -> str:
    """The VIF record's mode with network_default resolved through its network."""
    mode = rec["locking_mode"]
    if mode == "network_default":
        net = ctx.store.all("network").get(rec["network"])
        mode = net["default_locking_mode"] if net else "unlocked"
    return mode


def check_address(family: int, field: str, value: str) -> str:
    """`value` as the canonical text of an address of IP version `family`, else INVALID_VALUE."""
    try:
        addr = ipaddress.ip_address(str(value))
    except ValueError:
        addr = None
    if addr is None or addr.version != family:
        raise ApiError("INVALID_VALUE", field, value)
    return str(addr)


def check_record(values: dict) -> None:
    """A VIF.create record's allowed addresses checked (INVALID_VALUE, as the setters)."""
    for family, field in ((4, "ipv4_allowed"), (6, "ipv6_allowed")):
        for value in values.get(field) or ():
            check_address(family, field, value)


async def apply(ctx, vif: str, name: str, rec: dict | None = None) -> None:
    """Backend link `name` filtered as the VIF record `rec` (default: the stored one) says;
    FilterError passes to the caller."""
    filters = ctx.ports.filters
    if filters is None:
        return
    rec = rec or ctx.store.get("VIF", vif)
    mode = effective_mode(ctx, rec)
    await filters.apply(name, mode, rec["MAC"], sorted(rec["ipv4_allowed"]), sorted(rec["ipv6_allowed"]))
    log.info("VIF %s: %s filtered %s", rec["uuid"], name, mode)


async def remove(ctx, name: str) -> None:
    """No filter on backend link `name` any more (logged when that fails)."""
    if ctx.ports.filters is None:
        return
    try:
        await ctx.ports.filters.remove(name)
    except FilterError as e:
        log.warning("cannot take the filter off %s: %s", name, e)


async def _change(ctx, vif: str, **changes) -> str:
    """The VIF's record changed, its running backend's filter first (nothing recorded when the
    kernel refuses)."""
    from .vif_links import backend_of, managed
    rec = ctx.need("VIF", vif)
    new = {**rec, **changes}
    name = backend_of(ctx, vif)
    if name is not None and managed(ctx, rec["network"]) is not None:
        try:
            await apply(ctx, vif, name, new)
        except FilterError as e:
            raise ApiError("INTERNAL_ERROR", f"cannot filter the traffic of {name}: {e}") from None
    with ctx.store.transaction():
        ctx.store.update("VIF", vif, **changes)
    return ""


async def set_locking_mode(ctx, self, value):
    return await _change(ctx, self, locking_mode=value)


def _setters(family: int):
    field = f"ipv{family}_allowed"

    async def set_allowed(ctx, self, value):
        ctx.need("VIF", self)
        return await _change(ctx, self, **{field: sorted({check_address(family, field, v) for v in value})})

    async def add_allowed(ctx, self, value):
        have = ctx.need("VIF", self)[field]
        value = check_address(family, field, value)
        return await _change(ctx, self, **{field: sorted(set(have) | {value})})

    async def remove_allowed(ctx, self, value):
        have = ctx.need("VIF", self)[field]
        try:
            value = str(ipaddress.ip_address(str(value)))
        except ValueError:
            pass  # not an address: removed if it is there verbatim
        if value not in have:
            return ""
        return await _change(ctx, self, **{field: [a for a in have if a != value]})
    return {f"VIF.set_{field}": set_allowed, f"VIF.add_{field}": add_allowed,
            f"VIF.remove_{field}": remove_allowed}


async def set_default_locking_mode(ctx, network, value):
    """The network's default, re-applied at once to the running VIFs that follow it."""
    from .vif_links import backend_of, managed
    net = ctx.need("network", network)
    if net["default_locking_mode"] == value:
        return ""
    applied = []
    if managed(ctx, network) is not None and ctx.ports.filters is not None:
        for vif in net["VIFs"]:
            rec = ctx.store.get("VIF", vif)
            name = backend_of(ctx, vif)
            if name is None or rec["locking_mode"] != "network_default":
                continue
            try:
                await ctx.ports.filters.apply(name, value, rec["MAC"], [], [])
            except FilterError as e:
                for done, done_rec in applied:  # put back those changed before
                    try:
                        await apply(ctx, done, backend_of(ctx, done), done_rec)
                    except FilterError as again:
                        log.warning("cannot put back the filter of VIF %s: %s", done_rec["uuid"], again)
                raise ApiError("INTERNAL_ERROR", f"cannot filter the traffic of {name}: {e}") from None
            applied.append((vif, rec))
    with ctx.store.transaction():
        ctx.store.update("network", network, default_locking_mode=value)
    return ""


HANDLERS = {"VIF.set_locking_mode": set_locking_mode, "network.set_default_locking_mode": set_default_locking_mode,
            **_setters(4), **_setters(6)}
