"""VM: virtual machines, templates and snapshots."""

from ..decl import (
    RW, RO_CONSTRUCTOR as RC, RO_RUNTIME as RO, DEPRECATED, PROTOTYPED, REMOVED, cls, field,
)
from ..enums import (
    DOMAIN_TYPE, ON_CRASH_BEHAVIOUR, ON_NORMAL_EXIT, ON_SOFTREBOOT_BEHAVIOR, UPDATE_GUIDANCES,
    VM_OPERATIONS, VM_POWER_STATE,
)
from ..types import BOOL, DATETIME, FLOAT, INT, STRING, MapOf, Ref, SetOf, EPOCH, NULL_REF
from .vm_messages import VM_MESSAGES

SMAP = MapOf(STRING, STRING)


VM = cls(
    "VM",
    "A virtual machine; also used for templates and snapshots.",
    constructor=True,
    by_name_label=True,
    fields=[
        field("uuid", STRING, RO),
        field("allowed_operations", SetOf(VM_OPERATIONS), RO, []),
        field("current_operations", MapOf(STRING, VM_OPERATIONS), RO, {}),

        # identity and power state
        field("name_label", STRING, RW, ""),
        field("name_description", STRING, RW, ""),
        field("power_state", VM_POWER_STATE, RC, "Halted",
              doc="Changed only by lifecycle calls, never set directly."),
        field("user_version", INT, RW,
              doc="Counter the client bumps on each edit of the configuration."),
        field("is_a_template", BOOL, RW, doc="Templates cannot start; they are cloned into VMs."),
        field("is_default_template", BOOL, RO, False),
        field("suspend_VDI", Ref("VDI"), RC, NULL_REF),
        field("resident_on", Ref("host"), RO,
              doc="The host running the domain; NULL when halted."),
        field("scheduled_to_be_resident_on", Ref("host"), RO, NULL_REF),
        field("affinity", Ref("host"), RW, doc="The host to prefer when starting."),

        # memory, bytes
        field("memory_overhead", INT, RO, 0,
              doc="Bytes Xen needs on top of the guest's own memory."),
        field("memory_target", INT, RC, 0, lifecycle=DEPRECATED),
        field("memory_static_max", INT, RC, doc="Bytes; the ceiling for the whole boot."),
        field("memory_dynamic_max", INT, RC),
        field("memory_dynamic_min", INT, RC,
              doc="Bytes; invariant static_min <= dynamic_min <= dynamic_max <= static_max."),
        field("memory_static_min", INT, RC),

        # VCPUs and actions
        field("VCPUs_params", SMAP, RW),
        field("VCPUs_max", INT, RC, doc="Upper bound on VCPUs; fixed while running."),
        field("VCPUs_at_startup", INT, RC,
              doc="VCPUs at boot; 1 <= VCPUs_at_startup <= VCPUs_max."),
        field("actions_after_softreboot", ON_SOFTREBOOT_BEHAVIOR, RW, "soft_reboot",
              lifecycle=PROTOTYPED),
        field("actions_after_shutdown", ON_NORMAL_EXIT, RW),
        field("actions_after_reboot", ON_NORMAL_EXIT, RW),
        field("actions_after_crash", ON_CRASH_BEHAVIOUR, RC),

        # devices
        field("consoles", SetOf(Ref("console")), RO),
        field("VIFs", SetOf(Ref("VIF")), RO),
        field("VBDs", SetOf(Ref("VBD")), RO),
        field("VUSBs", SetOf(Ref("VUSB")), RO),
        field("crash_dumps", SetOf(Ref("crashdump")), RO),
        field("VTPMs", SetOf(Ref("VTPM")), RO),

        # boot
        field("PV_bootloader", STRING, RW),
        field("PV_kernel", STRING, RW),
        field("PV_ramdisk", STRING, RW),
        field("PV_args", STRING, RW),
        field("PV_bootloader_args", STRING, RW),
        field("PV_legacy_args", STRING, RW),
        field("HVM_boot_policy", STRING, RC, lifecycle=DEPRECATED),
        field("HVM_boot_params", SMAP, RW),
        field("HVM_shadow_multiplier", FLOAT, RC, 1.0,
              doc="Scale factor for shadow page-table memory."),
        field("platform", SMAP, RW),
        field("PCI_bus", STRING, RW, lifecycle=DEPRECATED),
        field("other_config", SMAP, RW),

        # runtime
        field("domid", INT, RO, doc="Xen domain id while the VM has a domain, else -1."),
        field("domarch", STRING, RO),
        field("last_boot_CPU_flags", SMAP, RC, {}),
        field("is_control_domain", BOOL, RO, doc="True for the record standing for dom0."),
        field("metrics", Ref("VM_metrics"), RO),
        field("guest_metrics", Ref("VM_guest_metrics"), RO),
        field("last_booted_record", STRING, RC, "",
              doc="The configuration the running domain was started from."),
        field("recommendations", STRING, RW),
        field("xenstore_data", SMAP, RW, {}),
        field("ha_always_run", BOOL, RC, False, lifecycle=DEPRECATED),
        field("ha_restart_priority", STRING, RC, ""),

        # snapshots, tags, lineage
        field("is_a_snapshot", BOOL, RO, False),
        field("snapshot_of", Ref("VM"), RO, NULL_REF, doc="The VM this snapshot was taken from."),
        field("snapshots", SetOf(Ref("VM")), RO),
        field("snapshot_time", DATETIME, RO, EPOCH),
        field("transportable_snapshot_id", STRING, RO, ""),
        field("blobs", MapOf(STRING, Ref("blob")), RO, {}),
        field("tags", SetOf(STRING), RW, []),
        field("blocked_operations", MapOf(VM_OPERATIONS, STRING), RW, {}),
        field("snapshot_info", SMAP, RO, {}),
        field("snapshot_metadata", STRING, RO, ""),
        field("parent", Ref("VM"), RO, NULL_REF,
              doc="The VM or snapshot this one was cloned or reverted from."),
        field("children", SetOf(Ref("VM")), RO),
        field("bios_strings", SMAP, RO, {}),

        # protection, appliances
        field("protection_policy", Ref("VMPP"), RC, NULL_REF, lifecycle=DEPRECATED),
        field("is_snapshot_from_vmpp", BOOL, RC, False, lifecycle=REMOVED),
        field("snapshot_schedule", Ref("VMSS"), RC, NULL_REF),
        field("is_vmss_snapshot", BOOL, RC, False),
        field("appliance", Ref("VM_appliance"), RC, NULL_REF),
        field("start_delay", INT, RC, 0,
              doc="Seconds to wait after starting this VM in an appliance."),
        field("shutdown_delay", INT, RC, 0),
        field("order", INT, RC, 0,
              doc="Position in an appliance's start sequence (lower starts first)."),

        # platform
        field("VGPUs", SetOf(Ref("VGPU")), RO),
        field("attached_PCIs", SetOf(Ref("PCI")), RO),
        field("suspend_SR", Ref("SR"), RW, NULL_REF),
        field("version", INT, RC, 0),
        field("generation_id", STRING, RC, "0:0",
              doc="Changes when the VM is cloned or reverted; visible to the guest."),
        field("hardware_platform_version", INT, RW, 0),
        field("has_vendor_device", BOOL, RC, False,
              doc="Whether the guest sees the Xen platform PCI device."),
        field("requires_reboot", BOOL, RO, False),
        field("reference_label", STRING, RC, ""),
        field("domain_type", DOMAIN_TYPE, RC, "unspecified"),
        field("NVRAM", SMAP, RC, {}, doc="Firmware variable store (e.g. UEFI variables)."),
        field("pending_guidances", SetOf(UPDATE_GUIDANCES), RO, []),
        field("pending_guidances_recommended", SetOf(UPDATE_GUIDANCES), RO, [],
              lifecycle=PROTOTYPED),
        field("pending_guidances_full", SetOf(UPDATE_GUIDANCES), RO, [], lifecycle=PROTOTYPED),
    ],
    messages=VM_MESSAGES,
)
