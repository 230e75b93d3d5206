"""Storage back-end error table: name -> (number, message), as data.

A driver failure reaches clients as ``SR_BACKEND_FAILURE_<number>`` with the
parameters ``["", message, stderr]``, which is what xapi makes of an SMAPIv1
driver fault (``ocaml/xapi/sm_exec.ml``: status is always empty there).

Numbers and messages are facts taken from xapi-project/sm
``drivers/XE_SR_ERRORCODES.xml``, the file xapi itself reads to name these
errors; clients (XenCenter, Xen Orchestra) match on the numbers. Only the
entries our drivers can raise, plus the handful with fixed meanings, are kept.
Note that 37 is LockErr and 38 Unimplemented there: the missing-server and
missing-serverpath errors are 102 and 101.
"""

BACKEND_FAILURE = "SR_BACKEND_FAILURE"

CODES: dict[str, tuple[int, str]] = {
    # numbers xapi fixes for specific uses
    "SRInUse": (16, "The SR device is currently in use"),
    "VDIInUse": (24, "The VDI is currently in use"),
    "LockErr": (37, "The lock/unlock request failed"),
    "Unimplemented": (38, "The requested method is not supported/implemented"),
    "SRNotEmpty": (39, "The SR is not empty"),
    # generic arguments
    "InvalidArg": (1, "Invalid argument"),
    "BadCharacter": (2, "A bad character was detected in the dconf string"),
    "InvalidDev": (19, "No such device"),
    # SR and VDI life cycle
    "SRScan": (40, "The SR scan failed "),
    "SRExists": (42, "The SR already exists"),
    "VDIExists": (43, "The VDI already exists"),
    "SRNoSpace": (44, "There is insufficient space"),
    "VDIUnavailable": (46, "The VDI is not available"),
    "SRUnavailable": (47, "The SR is not available"),
    "SRUnknownType": (48, "Unknown repository type"),
    # LVM
    "LVMCreate": (50, "Logical Volume creation error"),
    "LVMDelete": (51, "Logical Volume deletion error"),
    "LVMMount": (52, "Logical Volume mount/activate error"),
    "LVMUnMount": (53, "Logical Volume unmount/deactivate error"),
    "LVMWrite": (54, "Logical Volume write error"),
    "LVMPartCreate": (55, "Logical Volume partition creation error"),
    "LVMPartInUse": (56, "Logical Volume partition in use"),
    "LVMFilesystem": (57, "Logical Volume filesystem creation error"),
    "LVMResize": (59, "Logical Volume resize failed"),
    "LVMSize": (60, "Logical Volume invalid size"),
    "LVMGroupCreate": (77, "Logical Volume group creation failed"),
    "PVSfailed": (93, "pvs failed"),
    "LVMNoVolume": (100, "Cannot find volume"),
    # file-based SRs
    "FileSRCreate": (61, "File SR creation error"),
    "FileSRRmDir": (62, "File SR failed to remove directory"),
    "FileSRDelete": (63, "File SR deletion error"),
    # VDIs
    "VDIRemove": (64, "Failed to remove VDI"),
    "VDILoad": (65, "Failed to load VDI"),
    "VDIType": (66, "Invalid VDI type"),
    "VDICreate": (78, "VDI Creation failed"),
    "VDISize": (79, "VDI Invalid size"),
    "VDIDelete": (80, "Failed to mark VDI hidden"),
    "VDIClone": (81, "Failed to clone VDI"),
    "VDISnapshot": (82, "Failed to snapshot VDI"),
    "VolNotFound": (92, "The volume cannot be found"),
    "SnapshotChainTooLong": (109, "The snapshot chain is too long"),
    "VDIResize": (110, "VDI resize failed"),
    "VDIMissing": (144, "VDI could not be found"),
    # NFS
    "NFSVersion": (72, "Required NFS server version unsupported"),
    "NFSMount": (73, "NFS mount error"),
    "NFSUnMount": (74, "NFS unmount error"),
    "NFSAttached": (75, "NFS mount point already attached"),
    "NFSDelete": (76, "Failed to remove NFS mount point"),
    "NFSCreate": (88, "NFS SR creation error"),
    "NFSTarget": (108, "Unable to detect an NFS service on this target."),
    # device_config keys
    "ConfigDeviceMissing": (90, "The request is missing the device parameter"),
    "ConfigDeviceInvalid": (91, "The device is not a valid path"),
    "ConfigLocationMissing": (94, "The request is missing the location parameter"),
    "ConfigServerPathMissing": (101, "The request is missing the serverpath parameter"),
    "ConfigServerMissing": (102, "The request is missing the server parameter"),
    "ConfigServerPathBad": (103, "The serverpath argument is not valid"),
    "ConfigParamsMissing": (115, "Not all required parameters specified."),
    # ISO
    "ISODconfMissingLocation": (
        220, "'Location' parameter must be specified in Device Configuration"),
    "ISOMustHaveISOExtension": (221, "ISO name must have .iso extension"),
    "ISOMountFailure": (222, "Could not mount the directory specified in Device Configuration"),
    "ISOUnmountFailure": (
        223, "Could not unmount the directory specified in Device Configuration"),
    "ISOLocalPath": (226, "Invalid local path"),
    # catch-alls
    "EIO": (200, "General IO error"),
    "EGAIN": (201, "Currently unavailable, try again"),
    "SMGeneral": (202, "General backend error"),
    "GenericException": (1200, "SM has thrown a generic python exception"),
}


def lookup(name: str) -> tuple[int, str]:
    """The (number, message) of a table entry; KeyError names a programming error."""
    return CODES[name]


def xenapi_code(name: str) -> str:
    """The XenAPI error code of a table entry, e.g. ``SR_BACKEND_FAILURE_73``."""
    return f"{BACKEND_FAILURE}_{CODES[name][0]}"


def message(name: str, opterr: str | None = None) -> str:
    """The message clients see, with xapi sm's ``[opterr=...]`` suffix when given."""
    text = CODES[name][1]
    return f"{text} [opterr={opterr}]" if opterr else text
