"""SR, SM, PBD: storage repositories, their drivers and their attachment to
hosts."""

from ..decl import RW, RO_CONSTRUCTOR as RC, RO_RUNTIME as RO, DEPRECATED, cls, field, message, param
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
    messages=[
        message("create",
                [param("host", Ref("host")), param("device_config", SMAP), param("physical_size", INT),
                 param("name_label", STRING), param("name_description", STRING), param("type", STRING),
                 param("content_type", STRING), param("shared", BOOL), param("sm_config", SMAP)],
                Ref("SR"), ["SR_UNKNOWN_DRIVER"],
                "Make new storage of the given driver type, record it, and plug it on the host "
                "through a new PBD; content_type \"\" takes the driver's."),
        message("introduce",
                [param("uuid", STRING), param("name_label", STRING), param("name_description", STRING),
                 param("type", STRING), param("content_type", STRING), param("shared", BOOL),
                 param("sm_config", SMAP)],
                Ref("SR"), ["SR_UUID_EXISTS"],
                "Record an SR that already exists on storage (no storage is touched); give it a PBD "
                "and plug that to use it."),
        message("forget", [param("sr", Ref("SR"))], errors=["SR_HAS_PBD"],
                doc="Drop the records of the SR, its PBDs and VDIs; the storage is left as it is."),
        message("destroy", [param("sr", Ref("SR"))], errors=["SR_HAS_PBD", "SR_NOT_EMPTY"],
                doc="Delete the SR's storage and its records; every PBD must be unplugged and every "
                    "managed VDI destroyed first."),
        message("scan", [param("sr", Ref("SR"))],
                doc="Make the SR's VDI records match its storage: new volumes appear, vanished ones "
                    "are forgotten, sizes are refreshed."),
        message("update", [param("sr", Ref("SR"))],
                doc="Refresh the SR's size fields from its storage."),
        message("probe",
                [param("host", Ref("host")), param("device_config", SMAP), param("type", STRING),
                 param("sm_config", SMAP)],
                STRING, ["SR_UNKNOWN_DRIVER"],
                "Report, as an XML document, the SRs (or other storage) the device_config points at."),
        message("get_supported_types", [], SetOf(STRING),
                doc="The SR types this host has drivers for.", async_=False),
        message("set_name_label", [param("sr", Ref("SR")), param("value", STRING)],
                doc="Rename the SR.", sets="name_label"),
        message("set_name_description", [param("sr", Ref("SR")), param("value", STRING)],
                doc="Change the SR's description.", sets="name_description"),
        message("set_shared", [param("sr", Ref("SR")), param("value", BOOL)],
                errors=["SR_HAS_MULTIPLE_PBDS"],
                doc="Mark the SR as shared by the pool's hosts, or not (only with at most one PBD)."),
        message("set_physical_size", [param("self", Ref("SR")), param("value", INT)],
                doc="Record the SR's capacity in bytes (the next scan or update replaces it).", sets="physical_size"),
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
    messages=[
        message("plug", [param("self", Ref("PBD"))], errors=["SR_UNKNOWN_DRIVER"],
                doc="Attach the SR on the PBD's host with the PBD's device_config, then scan it."),
        message("unplug", [param("self", Ref("PBD"))], errors=["VDI_IN_USE"],
                doc="Detach the SR from the PBD's host; refused while its VDIs are attached to VMs."),
        message("set_device_config", [param("self", Ref("PBD")), param("value", SMAP)],
                doc="Replace the driver arguments used at the next plug."),
    ],
)
