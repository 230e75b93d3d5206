"""The links adapter (pyroute2): the only package that talks netlink and ethtool.

Stateless functions over `IPRoute` (or `NetNS` when a namespace is named, so
the whole agent can manage links inside one), returning plain dicts:
`read` (links, NICs, the default route's link, the management address),
`change` (bridges, 802.1Q VLAN links, bonds, enslaving, MTU, promiscuous,
up/down; every change an `ensure`), `ethtool` (offloads, speed, duplex,
autoneg), `errors` (our exceptions; netlink errno values translated in one
place), `port` (`NetworkPort`: the functions bound
to a namespace, run off the reactor for actions) and `monitor`
(`LinkEvents`: link notifications). The names below are the package's import surface.
"""

from .change import (BOND_MODES, addresses, enslave, ensure_bond, ensure_bridge, ensure_vlan, release, remove,
                     set_addresses, set_mtu, set_promiscuous, set_up)
from .ethtool import apply_ethtool, ethtool_state
from .errors import LinkBusy, LinkError, LinkExists, LinkNotFound, LinkNotSupported
from .monitor import LinkEvents
from .port import OPERATIONS, NetworkPort
from .read import (BOND_MODE_NAMES, address_answers, default_route_link, link, link_states, links,
                   management_address, nics, ports)

__all__ = [
    "BOND_MODES", "BOND_MODE_NAMES", "LinkBusy", "LinkError", "LinkEvents", "LinkExists", "LinkNotFound",
    "LinkNotSupported", "address_answers", "addresses", "apply_ethtool", "ethtool_state", "set_addresses", "NetworkPort", "OPERATIONS", "default_route_link", "enslave", "ensure_bond",
    "ensure_bridge", "ensure_vlan", "link", "link_states", "links", "management_address", "nics", "ports", "release", "remove",
    "set_mtu", "set_promiscuous", "set_up",
]
