"""The enumerations our classes use, with their values in xapi's order.

A field's default, when it has none of its own, is the first value listed here
(see `types.zero`), so the order is part of the model."""

from .types import Enum

# task, event
TASK_ALLOWED_OPERATIONS = Enum("task_allowed_operations", ("cancel", "destroy"))
TASK_STATUS_TYPE = Enum("task_status_type", (
    "pending", "success", "failure", "cancelling", "cancelled",
))
EVENT_OPERATION = Enum("event_operation", ("add", "del", "mod"))

# pool
POOL_ALLOWED_OPERATIONS = Enum("pool_allowed_operations", (
    "ha_enable", "ha_disable", "cluster_create", "designate_new_master", "configure_repositories",
    "sync_updates", "get_updates", "apply_updates", "tls_verification_enable", "cert_refresh",
    "exchange_certificates_on_join", "exchange_ca_certificates_on_join", "copy_primary_host_certs",
    "eject",
))
TELEMETRY_FREQUENCY = Enum("telemetry_frequency", ("daily", "weekly", "monthly"))
UPDATE_SYNC_FREQUENCY = Enum("update_sync_frequency", ("daily", "weekly"))

# host
HOST_ALLOWED_OPERATIONS = Enum("host_allowed_operations", (
    "provision", "evacuate", "shutdown", "reboot", "power_on", "vm_start", "vm_resume",
    "vm_migrate", "apply_updates", "enable",
))
HOST_DISPLAY = Enum("host_display", (
    "enabled", "disable_on_reboot", "disabled", "enable_on_reboot",
))
UPDATE_GUIDANCES = Enum("update_guidances", (
    "reboot_host", "reboot_host_on_livepatch_failure", "reboot_host_on_kernel_livepatch_failure",
    "reboot_host_on_xen_livepatch_failure", "restart_toolstack", "restart_device_model",
    "restart_vm",
))
LATEST_SYNCED_UPDATES_APPLIED_STATE = Enum("latest_synced_updates_applied_state", (
    "yes", "no", "unknown",
))
HOST_NUMA_AFFINITY_POLICY = Enum("host_numa_affinity_policy", (
    "any", "best_effort", "default_policy",
))

# VM and its metrics
VM_OPERATIONS = Enum("vm_operations", (
    "snapshot", "clone", "copy", "create_template", "revert", "checkpoint",
    "snapshot_with_quiesce", "provision", "start", "start_on", "pause", "unpause",
    "clean_shutdown", "clean_reboot", "hard_shutdown", "power_state_reset", "hard_reboot",
    "suspend", "csvm", "resume", "resume_on", "pool_migrate", "migrate_send", "get_boot_record",
    "send_sysrq", "send_trigger", "query_services", "shutdown", "call_plugin",
    "changing_memory_live", "awaiting_memory_live", "changing_dynamic_range",
    "changing_static_range", "changing_memory_limits", "changing_shadow_memory",
    "changing_shadow_memory_live", "changing_VCPUs", "changing_VCPUs_live", "changing_NVRAM",
    "assert_operation_valid", "data_source_op", "update_allowed_operations", "make_into_template",
    "import", "export", "metadata_export", "reverting", "destroy", "create_vtpm",
))
VM_POWER_STATE = Enum("vm_power_state", ("Halted", "Paused", "Running", "Suspended"))
ON_SOFTREBOOT_BEHAVIOR = Enum("on_softreboot_behavior", (
    "soft_reboot", "destroy", "restart", "preserve",
))
ON_NORMAL_EXIT = Enum("on_normal_exit", ("destroy", "restart"))
ON_CRASH_BEHAVIOUR = Enum("on_crash_behaviour", (
    "destroy", "coredump_and_destroy", "restart", "coredump_and_restart", "preserve",
    "rename_restart",
))
DOMAIN_TYPE = Enum("domain_type", ("hvm", "pv", "pv_in_pvh", "pvh", "unspecified"))
TRISTATE_TYPE = Enum("tristate_type", ("yes", "no", "unspecified"))
CONSOLE_PROTOCOL = Enum("console_protocol", ("vt100", "rfb", "rdp"))

# storage
STORAGE_OPERATIONS = Enum("storage_operations", (
    "scan", "destroy", "forget", "plug", "unplug", "update", "vdi_create", "vdi_introduce",
    "vdi_destroy", "vdi_resize", "vdi_clone", "vdi_snapshot", "vdi_mirror", "vdi_enable_cbt",
    "vdi_disable_cbt", "vdi_data_destroy", "vdi_list_changed_blocks", "vdi_set_on_boot",
    "pbd_create", "pbd_destroy",
))
VDI_OPERATIONS = Enum("vdi_operations", (
    "clone", "copy", "resize", "resize_online", "snapshot", "mirror", "destroy", "forget",
    "update", "force_unlock", "generate_config", "enable_cbt", "disable_cbt", "data_destroy",
    "list_changed_blocks", "set_on_boot", "blocked",
))
VDI_TYPE = Enum("vdi_type", (
    "system", "user", "ephemeral", "suspend", "crashdump", "ha_statefile", "metadata", "redo_log",
    "rrd", "pvs_cache", "cbt_metadata",
))
ON_BOOT = Enum("on_boot", ("reset", "persist"))
VBD_OPERATIONS = Enum("vbd_operations", (
    "attach", "eject", "insert", "plug", "unplug", "unplug_force", "pause", "unpause",
))
VBD_MODE = Enum("vbd_mode", ("RO", "RW"))
VBD_TYPE = Enum("vbd_type", ("CD", "Disk", "Floppy"))

# networking
NETWORK_OPERATIONS = Enum("network_operations", ("attaching",))
NETWORK_DEFAULT_LOCKING_MODE = Enum("network_default_locking_mode", ("unlocked", "disabled"))
NETWORK_PURPOSE = Enum("network_purpose", ("nbd", "insecure_nbd"))
VIF_OPERATIONS = Enum("vif_operations", ("attach", "plug", "unplug"))
VIF_LOCKING_MODE = Enum("vif_locking_mode", ("network_default", "locked", "unlocked", "disabled"))
VIF_IPV4_CONFIGURATION_MODE = Enum("vif_ipv4_configuration_mode", ("None", "Static"))
VIF_IPV6_CONFIGURATION_MODE = Enum("vif_ipv6_configuration_mode", ("None", "Static"))
IP_CONFIGURATION_MODE = Enum("ip_configuration_mode", ("None", "DHCP", "Static"))
IPV6_CONFIGURATION_MODE = Enum("ipv6_configuration_mode", ("None", "DHCP", "Static", "Autoconf"))
PRIMARY_ADDRESS_TYPE = Enum("primary_address_type", ("IPv4", "IPv6"))
PIF_IGMP_STATUS = Enum("pif_igmp_status", ("enabled", "disabled", "unknown"))
BOND_MODE = Enum("bond_mode", ("balance-slb", "active-backup", "lacp"))

# messages
CLS = Enum("cls", ("VM", "Host", "SR", "Pool", "VMPP", "VMSS", "PVS_proxy", "VDI", "Certificate"))
