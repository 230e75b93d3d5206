"""VM's explicit messages: lifecycle, copies, memory and VCPU changes, checks."""

from ..decl import DEPRECATED, message, param
from ..enums import VM_OPERATIONS
from ..types import BOOL, INT, STRING, MapOf, RecordOf, Ref, SetOf, VOID

VM = Ref("VM")
_STATE = ["VM_BAD_POWER_STATE", "OTHER_OPERATION_IN_PROGRESS", "OPERATION_NOT_ALLOWED", "VM_IS_TEMPLATE"]
_PLACED = ["HOST_OFFLINE", "HOST_DISABLED", "VM_REQUIRES_SR", "VM_REQUIRES_NETWORK", "HOST_NOT_ENOUGH_FREE_MEMORY"]


def _life(name, doc, extra=(), errors=_STATE):
    return message(name, [param("vm", VM), *extra], VOID, errors, doc)


START_ARGS = [param("start_paused", BOOL), param("force", BOOL)]

VM_MESSAGES = [
    # copies
    message("clone", [param("vm", VM), param("new_name", STRING)], VM,
            ["VM_BAD_POWER_STATE", "SR_FULL", "OPERATION_NOT_ALLOWED"],
            "A new VM (a template if this is one) whose disks are fast clones of these."),
    message("copy", [param("vm", VM), param("new_name", STRING), param("sr", Ref("SR"))], VM,
            ["VM_BAD_POWER_STATE", "SR_FULL", "OPERATION_NOT_ALLOWED"],
            "A new VM whose disks are full copies, into `sr` (NULL: each disk's own SR)."),
    message("provision", [param("vm", VM)], VOID,
            ["VM_BAD_POWER_STATE", "SR_FULL", "OPERATION_NOT_ALLOWED"],
            "Make the disks other_config:disks describes and turn the template into a VM."),
    message("snapshot", [param("vm", VM), param("new_name", STRING),
                         param("ignore_vdis", SetOf(Ref("VDI")), [])], VM,
            ["VM_BAD_POWER_STATE", "SR_FULL", "OPERATION_NOT_ALLOWED"],
            "A snapshot of the VM (a template with is_a_snapshot set) with snapshots of its disks."),
    message("revert", [param("snapshot", VM)], VOID,
            ["VM_BAD_POWER_STATE", "OPERATION_NOT_ALLOWED", "SR_FULL", "VM_REVERT_FAILED"],
            "Bring the snapshot's VM back to the snapshot: its disks and settings."),
    message("import", [param("url", STRING), param("sr", Ref("SR")), param("full_restore", BOOL),
                       param("force", BOOL)], SetOf(VM),
            ["IMPORT_ERROR", "IMPORT_ERROR_PREMATURE_EOF", "IMPORT_ERROR_SOME_CHECKSUMS_FAILED",
             "IMPORT_ERROR_UNEXPECTED_FILE", "DEFAULT_SR_NOT_FOUND", "SR_FULL"],
            "Fetch the XVA at `url` (http or https) and import it as PUT /import does, its disks "
            "onto `sr` (NULL: the pool's default SR); `full_restore` keeps its UUIDs and MACs, "
            "`force` takes chunks whose checksum fails. The new VMs, the archive's own first."),
    # power
    _life("start", "Halted to Running (or Paused), on a host placement chooses (docs/pools.md).", START_ARGS,
          _STATE + ["NO_HOSTS_AVAILABLE", "HOST_NOT_ENOUGH_FREE_MEMORY", "BOOTLOADER_FAILED",
                    "UNKNOWN_BOOTLOADER"]),
    _life("start_on", "Start on the given host.", [param("host", Ref("host")), *START_ARGS],
          _STATE + _PLACED),
    _life("pause", "Running to Paused."),
    _life("unpause", "Paused to Running."),
    _life("suspend", "Running to Suspended: memory into a suspend VDI."),
    _life("resume", "Suspended to Running (or Paused), on a host placement chooses.", START_ARGS,
          _STATE + ["NO_HOSTS_AVAILABLE", "HOST_NOT_ENOUGH_FREE_MEMORY"]),
    _life("resume_on", "Resume on the given host.", [param("host", Ref("host")), *START_ARGS], _STATE + _PLACED),
    _life("clean_shutdown", "Ask the guest to shut down; Halted when it has."),
    _life("hard_shutdown", "Stop the domain at once (a Suspended VM loses its image)."),
    _life("shutdown", "Clean shutdown, falling back to hard."),
    _life("clean_reboot", "Ask the guest to reboot."),
    _life("hard_reboot", "Stop the domain and start it again."),
    message("power_state_reset", [param("vm", VM)], VOID, [],
            "Record the VM as Halted without touching any domain (after a host died)."),
    message("pool_migrate", [param("vm", VM), param("host", Ref("host")), param("options", MapOf(STRING, STRING))],
            VOID, _STATE + ["VM_MIGRATE_FAILED", "HOST_OFFLINE", "HOST_DISABLED", "VM_REQUIRES_SR",
                            "VM_REQUIRES_NETWORK", "HOST_NOT_ENOUGH_FREE_MEMORY"],
            "Move the running VM to another host of the pool while it runs (libvirt live migration, "
            "where both hosts' hypervisors can; VM_MIGRATE_FAILED otherwise). `options` are taken "
            "and ignored: migrations are always live."),
    # memory and VCPUs
    message("set_memory_limits", [param("self", VM), param("static_min", INT), param("static_max", INT),
                                  param("dynamic_min", INT), param("dynamic_max", INT)], VOID,
            ["MEMORY_CONSTRAINT_VIOLATION"], "All four memory limits at once."),
    message("set_memory_static_range", [param("self", VM), param("min", INT), param("max", INT)], VOID,
            ["MEMORY_CONSTRAINT_VIOLATION"], "Static limits; the VM must be halted."),
    message("set_memory_dynamic_range", [param("self", VM), param("min", INT), param("max", INT)], VOID,
            ["MEMORY_CONSTRAINT_VIOLATION"], "Dynamic limits; a running VM's target follows."),
    message("set_memory", [param("self", VM), param("value", INT)], VOID,
            ["MEMORY_CONSTRAINT_VIOLATION"], "Set the dynamic range to [value, value]."),
    message("set_memory_static_max", [param("self", VM), param("value", INT)], VOID,
            ["MEMORY_CONSTRAINT_VIOLATION"], ""),
    message("set_memory_static_min", [param("self", VM), param("value", INT)], VOID,
            ["MEMORY_CONSTRAINT_VIOLATION"], ""),
    message("set_memory_dynamic_max", [param("self", VM), param("value", INT)], VOID,
            ["MEMORY_CONSTRAINT_VIOLATION"], ""),
    message("set_memory_dynamic_min", [param("self", VM), param("value", INT)], VOID,
            ["MEMORY_CONSTRAINT_VIOLATION"], ""),
    message("set_VCPUs_max", [param("self", VM), param("value", INT)], VOID, ["VM_BAD_POWER_STATE"],
            "The most VCPUs the VM may have; the VM must be halted."),
    message("set_VCPUs_at_startup", [param("self", VM), param("value", INT)], VOID, ["INVALID_VALUE"],
            "VCPUs at start, at most VCPUs_max."),
    message("set_VCPUs_number_live", [param("self", VM), param("nvcpu", INT)], VOID,
            ["OPERATION_NOT_ALLOWED", "INVALID_VALUE"], "Change a running VM's VCPUs."),
    # checks and queries
    message("get_allowed_VBD_devices", [param("vm", VM)], SetOf(STRING), [],
            "Free disk slots.", async_=False),
    message("get_allowed_VIF_devices", [param("vm", VM)], SetOf(STRING), [],
            "Free network interface slots.", async_=False),
    message("assert_operation_valid", [param("self", VM), param("op", VM_OPERATIONS)], VOID, [],
            "Fail as the operation would, if it would."),
    message("update_allowed_operations", [param("self", VM)], VOID, [],
            "Recompute allowed_operations (they are kept current anyway)."),
    message("get_possible_hosts", [param("vm", VM)], SetOf(Ref("host")), [],
            "The hosts the VM could start on now."),
    message("assert_can_boot_here", [param("self", VM), param("host", Ref("host"))], VOID,
            _PLACED + ["MEMORY_CONSTRAINT_VIOLATION"],
            "Fail if the VM could not start on the host now."),
    message("get_boot_record", [param("self", VM)], RecordOf("VM"), [],
            "The record as the VM was started (its current record while halted).",
            async_=False, lifecycle=DEPRECATED),
]
