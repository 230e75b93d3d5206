"""ethtool settings (pyroute2's ethtool ioctls): offloads, speed, duplex and autoneg of a link.

pyroute2's ethtool module opens its socket in the caller's network namespace
and has no namespace argument, so with a namespace the work runs in a thread
of its own that enters the namespace first (setns affects only the calling
thread; the thread ends with the call, so no worker thread is left inside).

`ethtool_state(name)` reads: the offloads rx, tx, sg, tso, ufo, gso (True,
False, or None where the kernel has no such feature: ufo since 4.14; each
is a group of the kernel's features, as `ethtool -K` groups them), speed in Mb/s, duplex "half"/"full" and autoneg (None when unknown).
`apply_ethtool(name, wanted)` changes only what differs from `wanted` (a
subset of the same keys) and reports what the driver refused, rather than
failing, because a driver that cannot do one setting (a veth has no settable
speed) must not stop the others: {"before", "after", "refused": {key: why}}.
"""

import ctypes
import re
from typing import Optional

from pyroute2.ethtool.ioctl import EthtoolError, IoctlEthtool, NoSuchDevice, NotSupportedError

from .errors import ERRORS, LinkError, LinkNotFound, LinkNotSupported, in_netns

# XenAPI's short names onto the kernel's feature names (ETH_SS_FEATURES) each switches, as
# `ethtool -K` groups them; tso includes every TCP segmentation feature the kernel has
OFFLOADS = {
    "rx": re.compile(r"rx-checksum$"),
    "tx": re.compile(r"tx-checksum-(ipv4|ip-generic|ipv6|fcoe-crc|sctp)$"),
    "sg": re.compile(r"tx-scatter-gather(-fraglist)?$"),
    "tso": re.compile(r"tx-tcp6?(-[a-z]+)?-segmentation$"),
    "ufo": re.compile(r"tx-udp-fragmentation$"),
    "gso": re.compile(r"tx-generic-segmentation$"),
}
# sg first: the kernel drops TSO and GSO from a link without scatter-gather
ORDER = ("sg", "rx", "tx", "tso", "ufo", "gso")
ETHTOOL_SLINKSETTINGS = 0x4D
DUPLEX = {0: "half", 1: "full"}


def _translate(e: Exception, what: str, name: str) -> LinkError:
    if isinstance(e, NoSuchDevice):
        return LinkNotFound(f"{what} {name}: no such link", name)
    if isinstance(e, NotSupportedError):
        return LinkNotSupported(f"{what} {name}: not supported by its driver", name)
    if isinstance(e, OSError):
        return ERRORS.get(e.errno, LinkError)(f"{what} {name}: {e.strerror or e}", name, e.errno or 0)
    return LinkError(f"{what} {name}: {e}", name)


def _why(e: Exception) -> str:
    if isinstance(e, NotSupportedError):
        return "not supported by the link's driver"
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e)


def _members(features, short: str) -> list:
    return [name for name in features.keys() if OFFLOADS[short].match(name)]


def _offloads(features) -> dict:
    """Each switch: on when any of its features that the driver can change (else any at all) is
    active; None when the kernel has none of its features (UFO since 4.14)."""
    out = {}
    for short in OFFLOADS:
        names = _members(features, short)
        changeable = [n for n in names if features.is_available(n)] or names
        out[short] = any(features.is_active(n) for n in changeable) if changeable else None
    return out


def _set_offloads(tool: IoctlEthtool, wanted: dict, refused: dict) -> None:
    """One ETHTOOL_SFEATURES with every changeable feature of each wanted switch set."""
    features = tool.get_features()
    changed = False
    for short in ORDER:
        if short not in wanted:
            continue
        names = [n for n in _members(features, short) if features.is_available(n)]
        if not names:
            refused[short] = "the link's driver cannot change it" if _members(features, short) \
                else "this kernel has no such offload"
            continue
        for name in names:
            if features.is_active(name) != bool(wanted[short]):
                features.set_value(name, bool(wanted[short]))
                changed = True
    if changed:
        tool.set_features(features)


def _link_mode(tool: IoctlEthtool) -> dict:
    try:
        settings = tool.get_link_settings()
    except NotSupportedError:
        return {"speed": None, "duplex": None, "autoneg": None}
    speed = settings.speed
    return {"speed": None if speed in (0, 0xFFFFFFFF) else int(speed), "duplex": DUPLEX.get(settings.duplex),
            "autoneg": bool(settings.autoneg)}


def _state(tool: IoctlEthtool) -> dict:
    return {**_offloads(tool.get_features()), **_link_mode(tool)}


def _set_link_mode(tool: IoctlEthtool, wanted: dict) -> None:
    settings = tool.get_link_settings()
    if "speed" in wanted:
        settings.speed = int(wanted["speed"])
    if "duplex" in wanted:
        settings.duplex = {v: k for k, v in DUPLEX.items()}[wanted["duplex"]]
    if "autoneg" in wanted:
        settings.autoneg = 1 if wanted["autoneg"] else 0
    settings.cmd = ETHTOOL_SLINKSETTINGS
    tool.ifreq.glinksettings = ctypes.pointer(settings)
    tool.ioctl()


def ethtool_state(name: str, netns: Optional[str] = None) -> dict:
    """What the link's driver says now (see the module doc for the keys)."""
    def work():
        tool = IoctlEthtool(name)
        try:
            return _state(tool)
        except (EthtoolError, OSError) as e:
            raise _translate(e, "read ethtool settings of", name) from None
        finally:
            tool.close()
    return in_netns(netns, work)


def apply_ethtool(name: str, wanted: dict, netns: Optional[str] = None) -> dict:
    """Make the link's offloads and link mode what `wanted` says, changing only what differs;
    a setting the driver cannot take (or silently does not take) is in "refused"."""
    def work():
        tool = IoctlEthtool(name)
        try:
            before = _state(tool)
            refused = {}
            switches = {k: v for k, v in wanted.items() if k in OFFLOADS}
            if switches:
                try:
                    _set_offloads(tool, switches, refused)
                except (NotSupportedError, OSError) as e:
                    for k in switches:
                        refused.setdefault(k, _why(e))
            mode = {k: wanted[k] for k in ("speed", "duplex", "autoneg") if k in wanted and wanted[k] != before[k]}
            if mode:
                try:
                    _set_link_mode(tool, mode)
                except (NotSupportedError, OSError) as e:
                    for k in mode:
                        refused[k] = _why(e)
            after = _state(tool)
            for key in wanted:
                if key not in refused and after.get(key) is not None and after[key] != wanted[key]:
                    refused[key] = f"the driver kept {after[key]}"
            return {"before": before, "after": after, "refused": refused}
        except (EthtoolError, OSError) as e:
            raise _translate(e, "change ethtool settings of", name) from None
        finally:
            tool.close()
    return in_netns(netns, work)
