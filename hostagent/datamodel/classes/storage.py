"""SR, SM, PBD: storage repositories, their drivers and their attachment to
hosts."""

from ..decl import RW, RO_CONSTRUCTOR as RC, RO_RUNTIME as RO, DEPRECATED, cls, field
from ..enums import STORAGE_OPERATIONS
from ..types import BOOL, INT, STRING, MapOf, Ref, SetOf, NULL_REF

SMAP = MapOf(STRING, STRING)


SR = cls(
    "SR",
    "A storage repository: a container of virtual disks.",
    by_name_label=True,
    fields=[
        field("uuid", STRING, RO),
        field("name_label", STRING, RC, ""),
        field("name_description", STRING, RC, ""),
        field("allowed_operations", SetOf(STORAGE_OPERATIONS), RO, []),
        field("current_operations", MapOf(STRING, STORAGE_OPERATIONS), RO, {}),
        field("VDIs", SetOf(Ref("VDI")), RO),
        field("PBDs", SetOf(Ref("PBD")), RO),
        field("virtual_allocation", INT, RO,
              doc="Bytes promised to VDIs (sum of their virtual sizes)."),
        field("physical_utilisation", INT, RO, doc="Bytes actually used on the storage."),
        field("physical_size", INT, RC, doc="Bytes of capacity."),
        field("type", STRING, RC, doc="Driver name (ext, lvm, nfs, iso, ...)."),
        field("content_type", STRING, RC, doc="Free text; \"iso\" marks an ISO library."),
        field("shared", BOOL, RO, doc="True when all hosts may attach it at once."),
        field("other_config", SMAP, RW),
        field("tags", SetOf(STRING), RW, []),
        field("sm_config", SMAP, RW, {}, doc="Driver-private settings."),
        field("blobs", MapOf(STRING, Ref("blob")), RO, {}),
        field("local_cache_enabled", BOOL, RO, False),
        field("introduced_by", Ref("DR_task"), RO, NULL_REF),
        field("clustered", BOOL, RO, False),
        field("is_tools_sr", BOOL, RO, False, doc="True for the SR holding the guest tools ISO."),
    ],
)


SM = cls(
    "SM",
    "A storage driver that can back SRs of one type.",
    by_name_label=True,
    fields=[
        field("uuid", STRING, RO),
        field("name_label", STRING, RO, ""),
        field("name_description", STRING, RO, ""),
        field("type", STRING, RO, doc="The SR type this driver serves."),
        field("vendor", STRING, RO),
        field("copyright", STRING, RO),
        field("version", STRING, RO),
        field("required_api_version", STRING, RO),
        field("configuration", SMAP, RO,
              doc="device_config keys the driver accepts -> their meaning."),
        field("capabilities", SetOf(STRING), RO, [], lifecycle=DEPRECATED),
        field("features", MapOf(STRING, INT), RO, {},
              doc="Capability name -> version of it the driver offers."),
        field("other_config", SMAP, RW, {}),
        field("driver_filename", STRING, RO, "", doc="Path of the driver's executable."),
        field("required_cluster_stack", SetOf(STRING), RO, []),
    ],
)


PBD = cls(
    "PBD",
    "The connection of an SR to one host.",
    constructor=True,
    fields=[
        field("uuid", STRING, RO),
        field("host", Ref("host"), RC),
        field("SR", Ref("SR"), RC),
        field("device_config", SMAP, RC,
              doc="Driver arguments for reaching the storage (server, path, ...)."),
        field("currently_attached", BOOL, RO),
        field("other_config", SMAP, RW, {}),
    ],
)
