"""VM_metrics, VM_guest_metrics, console: what a running VM reports, and how
to reach its display."""

from ..decl import RW, RO_RUNTIME as RO, DEPRECATED, REMOVED, cls, field
from ..enums import CONSOLE_PROTOCOL, DOMAIN_TYPE, TRISTATE_TYPE
from ..types import BOOL, DATETIME, FLOAT, INT, STRING, MapOf, Ref, SetOf

SMAP = MapOf(STRING, STRING)


VM_METRICS = cls(
    "VM_metrics",
    "Figures Xen reports about a VM's domain.",
    fields=[
        field("uuid", STRING, RO),
        field("memory_actual", INT, RO, doc="Bytes the domain holds right now."),
        field("VCPUs_number", INT, RO),
        field("VCPUs_utilisation", MapOf(INT, FLOAT), RO, {}, lifecycle=REMOVED),
        field("VCPUs_CPU", MapOf(INT, INT), RO, doc="VCPU number -> physical CPU it last ran on."),
        field("VCPUs_params", SMAP, RO),
        field("VCPUs_flags", MapOf(INT, SetOf(STRING)), RO,
              doc="VCPU number -> Xen's state flags for it."),
        field("state", SetOf(STRING), RO, doc="Xen's domain state flags (running, blocked, ...)."),
        field("start_time", DATETIME, RO, doc="When the domain was last started."),
        field("install_time", DATETIME, RO, doc="When the VM was created."),
        field("last_updated", DATETIME, RO),
        field("other_config", SMAP, RW, {}),
        field("hvm", BOOL, RO, False),
        field("nested_virt", BOOL, RO, False),
        field("nomigrate", BOOL, RO, False),
        field("current_domain_type", DOMAIN_TYPE, RO, "unspecified"),
    ],
)


VM_GUEST_METRICS = cls(
    "VM_guest_metrics",
    "What the agent inside a guest reports about it.",
    fields=[
        field("uuid", STRING, RO),
        field("os_version", SMAP, RO,
              doc="Distribution, version and kernel, as the guest reports them."),
        field("PV_drivers_version", SMAP, RO,
              doc="major, minor, micro and build of the guest's drivers."),
        field("PV_drivers_up_to_date", BOOL, RO, lifecycle=DEPRECATED),
        field("memory", SMAP, RO, {}, lifecycle=REMOVED),
        field("disks", SMAP, RO, {}, lifecycle=REMOVED),
        field("networks", SMAP, RO,
              doc="Interface/key -> address, e.g. \"0/ip\" -> \"10.0.0.5\"."),
        field("other", SMAP, RO),
        field("last_updated", DATETIME, RO),
        field("other_config", SMAP, RW, {}),
        field("live", BOOL, RO, False, doc="True while the guest agent keeps reporting."),
        field("can_use_hotplug_vbd", TRISTATE_TYPE, RO, "unspecified"),
        field("can_use_hotplug_vif", TRISTATE_TYPE, RO, "unspecified"),
        field("PV_drivers_detected", BOOL, RO, False),
    ],
)


CONSOLE = cls(
    "console",
    "An endpoint for a VM's text or graphical console.",
    constructor=True,
    fields=[
        field("uuid", STRING, RO),
        field("protocol", CONSOLE_PROTOCOL, RO),
        field("location", STRING, RO, doc="URL to connect to, over the agent's HTTP(S) port."),
        field("VM", Ref("VM"), RO),
        field("other_config", SMAP, RW),
    ],
)
