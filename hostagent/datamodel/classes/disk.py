"""VDI, VBD, VBD_metrics: virtual disks and their attachment to VMs."""

from ..decl import RW, RO_CONSTRUCTOR as RC, RO_RUNTIME as RO, DEPRECATED, REMOVED, cls, field
from ..enums import ON_BOOT, VBD_MODE, VBD_OPERATIONS, VBD_TYPE, VDI_OPERATIONS, VDI_TYPE
from ..types import BOOL, DATETIME, FLOAT, INT, STRING, MapOf, Ref, SetOf, EPOCH, NULL_REF

SMAP = MapOf(STRING, STRING)


VDI = cls(
    "VDI",
    "A virtual disk image held in an SR.",
    constructor=True,
    by_name_label=True,
    fields=[
        field("uuid", STRING, RO),
        field("name_label", STRING, RC, ""),
        field("name_description", STRING, RC, ""),
        field("allowed_operations", SetOf(VDI_OPERATIONS), RO, []),
        field("current_operations", MapOf(STRING, VDI_OPERATIONS), RO, {}),
        field("SR", Ref("SR"), RC),
        field("VBDs", SetOf(Ref("VBD")), RO),
        field("crash_dumps", SetOf(Ref("crashdump")), RO),
        field("virtual_size", INT, RC, doc="Bytes the guest sees."),
        field("physical_utilisation", INT, RO, doc="Bytes the image takes in its SR."),
        field("type", VDI_TYPE, RC),
        field("sharable", BOOL, RC, doc="May be attached to several running VMs at once."),
        field("read_only", BOOL, RC),
        field("other_config", SMAP, RW),
        field("storage_lock", BOOL, RO, doc="True while a host holds the storage lock on it."),
        field("location", STRING, RO, "", doc="Driver-specific address of the image in its SR."),
        field("managed", BOOL, RO,
              doc="False for images clients must not use directly (e.g. parents)."),
        field("missing", BOOL, RO, doc="True when the last scan did not find the image."),
        field("parent", Ref("VDI"), RO, lifecycle=DEPRECATED),
        field("xenstore_data", SMAP, RW, {}),
        field("sm_config", SMAP, RW, {}),

        # snapshots
        field("is_a_snapshot", BOOL, RO, False),
        field("snapshot_of", Ref("VDI"), RO, NULL_REF),
        field("snapshots", SetOf(Ref("VDI")), RO),
        field("snapshot_time", DATETIME, RO, EPOCH),
        field("tags", SetOf(STRING), RW, []),
        field("allow_caching", BOOL, RO, False),
        field("on_boot", ON_BOOT, RO, "persist",
              doc="reset discards the guest's writes at each boot; persist keeps them."),
        field("metadata_of_pool", Ref("pool"), RO, NULL_REF,
              doc="The pool whose metadata this VDI holds, if any."),
        field("metadata_latest", BOOL, RO, False),
        field("is_tools_iso", BOOL, RO, False),
        field("cbt_enabled", BOOL, RO, False, doc="Whether changed-block tracking is on."),
    ],
)


VBD = cls(
    "VBD",
    "A virtual block device: a VDI, or an empty drive, plugged into a VM.",
    constructor=True,
    fields=[
        field("uuid", STRING, RO),
        field("allowed_operations", SetOf(VBD_OPERATIONS), RO, []),
        field("current_operations", MapOf(STRING, VBD_OPERATIONS), RO, {}),
        field("VM", Ref("VM"), RC),
        field("VDI", Ref("VDI"), RC),
        field("device", STRING, RC, "", doc="Device name in the guest once attached (e.g. xvda)."),
        field("userdevice", STRING, RW,
              doc="Requested slot, as a decimal string (\"0\", \"1\", ...)."),
        field("bootable", BOOL, RW),
        field("mode", VBD_MODE, RC, doc="RO or RW access to the VDI."),
        field("type", VBD_TYPE, RW),
        field("unpluggable", BOOL, RW, True, doc="Whether the guest lets it be hot-unplugged."),
        field("storage_lock", BOOL, RO),
        field("empty", BOOL, RC, doc="True for a removable drive with nothing in it."),
        field("other_config", SMAP, RW),
        field("currently_attached", BOOL, RC, False),
        field("status_code", INT, RO, doc="Error code of the last failed attach, else 0."),
        field("status_detail", STRING, RO),
        field("runtime_properties", SMAP, RO),
        field("qos_algorithm_type", STRING, RW),
        field("qos_algorithm_params", SMAP, RW),
        field("qos_supported_algorithms", SetOf(STRING), RO),
        field("metrics", Ref("VBD_metrics"), RO, NULL_REF, lifecycle=REMOVED),
    ],
)


VBD_METRICS = cls(
    "VBD_metrics",
    "I/O figures of a VBD (all removed; kept for old clients).",
    fields=[
        field("uuid", STRING, RO),
        field("io_read_kbs", FLOAT, RO, 0.0, lifecycle=REMOVED),
        field("io_write_kbs", FLOAT, RO, 0.0, lifecycle=REMOVED),
        field("last_updated", DATETIME, RO, EPOCH, lifecycle=REMOVED),
        field("other_config", SMAP, RW, {}, lifecycle=REMOVED),
    ],
)
