"""other_config keys of PIFs and VIFs that configure a link (seed §5.5): checked, then applied.

`check(config)` refuses the first key whose value it does not take with
INVALID_VALUE [other_config:<key>, value], before anything is applied or
recorded. `apply(links, name, config, mtu, originals)` makes link `name`
carry the config: `mtu` (else the record's MTU), `promiscuous` (else off),
and the ethtool keys. A driver that cannot take an ethtool setting (a veth
has no settable speed; no kernel since 4.14 has UDP fragmentation offload)
is logged and the rest goes on, as xapi does with what ethtool refuses.

ethtool settings have no "unset": a key removed from other_config puts back
what the link had before the agent first changed it. Those first values are
the `originals` (kept by the caller with the PIF or VIF: {short key: value});
`apply` returns them updated.
"""

import logging
from typing import Optional

from ..datamodel.errors import ApiError

log = logging.getLogger("hostagent.network")

ON, OFF = ("on", "true"), ("off", "false")
# other_config key -> the links port's ethtool key
SWITCHES = {"ethtool-rx": "rx", "ethtool-tx": "tx", "ethtool-sg": "sg", "ethtool-tso": "tso",
            "ethtool-ufo": "ufo", "ethtool-gso": "gso", "ethtool-autoneg": "autoneg"}
CHOICES = {**{k: ON + OFF for k in SWITCHES}, "promiscuous": ON + OFF,
           "ethtool-speed": ("10", "100", "1000"), "ethtool-duplex": ("half", "full")}
ETHTOOL_KEYS = (*SWITCHES.values(), "speed", "duplex")


def _norm(value) -> str:
    return str(value).strip().lower()


def check(config: dict) -> None:
    """INVALID_VALUE for the first key of seed §5.5 whose value is not one it takes."""
    for key, value in config.items():
        v = _norm(value)
        if key in CHOICES:
            ok = v in CHOICES[key]
        elif key == "mtu":
            ok = v.isdigit() and 68 <= int(v) <= 65535
        else:
            continue
        if not ok:
            raise ApiError("INVALID_VALUE", f"other_config:{key}", value)


def ethtool_wanted(config: dict) -> dict:
    """The ethtool settings a (checked) config asks for, in the links port's keys."""
    out = {}
    for key, short in SWITCHES.items():
        if key in config:
            out[short] = _norm(config[key]) in ON
    if "ethtool-speed" in config:
        out["speed"] = int(_norm(config["ethtool-speed"]))
    if "ethtool-duplex" in config:
        out["duplex"] = _norm(config["ethtool-duplex"])
    return out


def mtu_of(config: dict, recorded_mtu: int) -> int:
    return int(_norm(config["mtu"])) if config.get("mtu") else int(recorded_mtu or 1500)


async def apply(links, name: str, config: dict, mtu: int, originals: Optional[dict] = None) -> dict:
    """Make link `name` carry `config` (see the module doc); returns the originals to keep."""
    originals = dict(originals or {})
    await links.set_mtu(name, mtu_of(config, mtu))
    await links.set_promiscuous(name, _norm(config.get("promiscuous", "")) in ON)
    wanted = ethtool_wanted(config)
    restore = {k: v for k, v in originals.items() if k not in wanted}
    if not wanted and not restore:
        return originals
    result = await links.apply_ethtool(name, {**restore, **wanted})
    for key, why in sorted(result["refused"].items()):
        log.warning("link %s: ethtool %s=%s not applied: %s", name, key, {**restore, **wanted}[key], why)
    kept = {k: v for k, v in originals.items() if k in wanted}
    for key in wanted:
        if key not in kept and result["before"].get(key) is not None:
            kept[key] = result["before"][key]
    return kept
