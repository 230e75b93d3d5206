"""PIF, PIF_metrics, VLAN, Bond: host interfaces and how they are combined."""

from ..decl import RW, RO_CONSTRUCTOR as RC, RO_RUNTIME as RO, REMOVED, cls, field, message, param
from ..enums import (
    BOND_MODE, IPV6_CONFIGURATION_MODE, IP_CONFIGURATION_MODE, PIF_IGMP_STATUS,
    PRIMARY_ADDRESS_TYPE,
)
from ..types import BOOL, DATETIME, FLOAT, INT, STRING, MapOf, Ref, SetOf, NULL_REF

SMAP = MapOf(STRING, STRING)


PIF = cls(
    "PIF",
    "A network interface of a host: a NIC, a bond or a VLAN.",
    fields=[
        field("uuid", STRING, RO),
        field("device", STRING, RC, doc="Interface name in dom0 (e.g. eth0)."),
        field("network", Ref("network"), RC),
        field("host", Ref("host"), RC),
        field("MAC", STRING, RC),
        field("MTU", INT, RC, doc="Bytes."),
        field("VLAN", INT, RC, doc="VLAN tag, or -1 for an untagged interface."),
        field("metrics", Ref("PIF_metrics"), RO),
        field("physical", BOOL, RO, False, doc="True for real NICs; false for bonds and VLANs."),
        field("currently_attached", BOOL, RO, True),

        # IPv4
        field("ip_configuration_mode", IP_CONFIGURATION_MODE, RO, "None"),
        field("IP", STRING, RO, ""),
        field("netmask", STRING, RO, ""),
        field("gateway", STRING, RO, ""),
        field("DNS", STRING, RO, ""),

        # bonds and VLANs
        field("bond_slave_of", Ref("Bond"), RO, NULL_REF),
        field("bond_master_of", SetOf(Ref("Bond")), RO),
        field("VLAN_master_of", Ref("VLAN"), RO, NULL_REF),
        field("VLAN_slave_of", SetOf(Ref("VLAN")), RO),

        # management, tunnels
        field("management", BOOL, RO, False,
              doc="True on the interface carrying the management API."),
        field("other_config", SMAP, RW, {}),
        field("disallow_unplug", BOOL, RO, False,
              doc="Refuse PIF.unplug (for interfaces storage or HA rely on)."),
        field("tunnel_access_PIF_of", SetOf(Ref("tunnel")), RO),
        field("tunnel_transport_PIF_of", SetOf(Ref("tunnel")), RO),

        # IPv6
        field("ipv6_configuration_mode", IPV6_CONFIGURATION_MODE, RO, "None"),
        field("IPv6", SetOf(STRING), RO, []),
        field("ipv6_gateway", STRING, RO, ""),
        field("primary_address_type", PRIMARY_ADDRESS_TYPE, RO, "IPv4",
              doc="Which address family the management interface uses."),
        field("managed", BOOL, RC, True, doc="False for interfaces the agent must leave alone."),
        field("properties", SMAP, RO, {}, doc="Tunables of the interface (e.g. gro -> on)."),
        field("capabilities", SetOf(STRING), RO, []),
        field("igmp_snooping_status", PIF_IGMP_STATUS, RO, "unknown"),
        field("sriov_physical_PIF_of", SetOf(Ref("network_sriov")), RO),
        field("sriov_logical_PIF_of", SetOf(Ref("network_sriov")), RO),
        field("PCI", Ref("PCI"), RO, NULL_REF),
    ],
    messages=[
        message("scan", [param("host", Ref("host"))],
                doc="Make a PIF record (on a network of its own) for each NIC of the host that has "
                    "none, and refresh the metrics of those that have one."),
        message("plug", [param("self", Ref("PIF"))],
                errors=["CANNOT_PLUG_BOND_SLAVE", "PIF_CONFIGURATION_ERROR"],
                doc="Bring the interface up on its network's bridge (making the VLAN link first "
                    "for a VLAN PIF)."),
        message("unplug", [param("self", Ref("PIF"))],
                errors=["PIF_DOES_NOT_ALLOW_UNPLUG", "PIF_CONFIGURATION_ERROR"],
                doc="Take the interface off its bridge (removing a VLAN link and an emptied "
                    "bridge)."),
        message("introduce",
                [param("host", Ref("host")), param("MAC", STRING), param("device", STRING),
                 param("managed", BOOL, True)],
                Ref("PIF"), ["MAC_INVALID", "DUPLICATE_PIF_DEVICE_NAME", "PIF_DEVICE_NOT_FOUND"],
                doc="Make a PIF record for one NIC of the host (on a network of its own)."),
        message("forget", [param("self", Ref("PIF"))],
                errors=["PIF_IS_MANAGEMENT_INTERFACE", "PIF_IS_VLAN", "PIF_VLAN_STILL_EXISTS",
                        "PIF_ALREADY_BONDED"],
                doc="Unplug the interface and forget its record (its network stays)."),
        message("reconfigure_ip",
                [param("self", Ref("PIF")), param("mode", IP_CONFIGURATION_MODE), param("IP", STRING),
                 param("netmask", STRING), param("gateway", STRING), param("DNS", STRING)],
                errors=["INVALID_IP_ADDRESS_SPECIFIED"],
                doc="Record the interface's IPv4 configuration (None, DHCP or Static) and put a "
                    "static address on its bridge when it is plugged and not the management one."),
    ],
)


PIF_METRICS = cls(
    "PIF_metrics",
    "Link state and hardware identity of a PIF.",
    fields=[
        field("uuid", STRING, RO),
        field("io_read_kbs", FLOAT, RO, 0.0, lifecycle=REMOVED),
        field("io_write_kbs", FLOAT, RO, 0.0, lifecycle=REMOVED),
        field("carrier", BOOL, RO, doc="True when a link is detected."),
        field("vendor_id", STRING, RO),
        field("vendor_name", STRING, RO),
        field("device_id", STRING, RO),
        field("device_name", STRING, RO),
        field("speed", INT, RO, doc="Link speed in Mbit/s."),
        field("duplex", BOOL, RO, doc="True for full duplex."),
        field("pci_bus_path", STRING, RO, doc="PCI address of the NIC."),
        field("last_updated", DATETIME, RO),
        field("other_config", SMAP, RW, {}),
    ],
)


VLAN = cls(
    "VLAN",
    "An 802.1Q VLAN carried on a tagged PIF.",
    fields=[
        field("uuid", STRING, RO),
        field("tagged_PIF", Ref("PIF"), RC, NULL_REF,
              doc="The PIF the tagged frames travel over."),
        field("untagged_PIF", Ref("PIF"), RO, NULL_REF,
              doc="The PIF on which the VLAN's traffic appears untagged."),
        field("tag", INT, RC, -1, doc="VLAN id, 0 to 4094 (-1 before it is set)."),
        field("other_config", SMAP, RW, {}),
    ],
    messages=[
        message("create",
                [param("tagged_PIF", Ref("PIF")), param("tag", INT), param("network", Ref("network"))],
                Ref("VLAN"), ["VLAN_TAG_INVALID", "PIF_VLAN_EXISTS", "PIF_IS_VLAN",
                              "CANNOT_ADD_VLAN_TO_BOND_SLAVE", "NETWORK_ALREADY_CONNECTED",
                              "PIF_CONFIGURATION_ERROR"],
                doc="Carry `tag` over the tagged PIF: a new VLAN PIF on `network`, plugged."),
        message("destroy", [param("self", Ref("VLAN"))],
                doc="Unplug and forget the VLAN's PIF and the VLAN."),
    ],
)


BOND = cls(
    "Bond",
    "Several PIFs of one host combined into one logical interface.",
    fields=[
        field("uuid", STRING, RO),
        field("master", Ref("PIF"), RC, NULL_REF, doc="The bond's own PIF."),
        field("slaves", SetOf(Ref("PIF")), RO, doc="The member PIFs."),
        field("other_config", SMAP, RW, {}),
        field("primary_slave", Ref("PIF"), RO, NULL_REF,
              doc="The member carrying traffic in active-backup mode."),
        field("mode", BOND_MODE, RO, "balance-slb"),
        field("properties", SMAP, RO, {}, doc="Mode-specific settings (e.g. hashing_algorithm)."),
        field("links_up", INT, RO, 0, doc="Number of members with a link."),
        field("auto_update_mac", BOOL, RO, True, doc="Follow the primary member's MAC address."),
    ],
    messages=[
        message("create",
                [param("network", Ref("network")), param("members", SetOf(Ref("PIF"))),
                 param("MAC", STRING), param("mode", BOND_MODE, "balance-slb"),
                 param("properties", SMAP, {})],
                Ref("Bond"), ["PIF_BOND_NEEDS_MORE_MEMBERS", "PIF_CANNOT_BOND_CROSS_HOST",
                              "PIF_ALREADY_BONDED", "PIF_IS_VLAN", "NETWORK_ALREADY_CONNECTED",
                              "PIF_CONFIGURATION_ERROR"],
                doc="Combine the member PIFs into one bond PIF on `network`, plugged; the members "
                    "leave their own bridges."),
        message("destroy", [param("self", Ref("Bond"))], errors=["PIF_VLAN_STILL_EXISTS"],
                doc="Unplug and forget the bond PIF; the members are left unplugged."),
    ],
)
