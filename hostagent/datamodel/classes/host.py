"""host, host_metrics, host_cpu: the physical machine and what it reports about
itself."""

from ..decl import (
    RW, RO_CONSTRUCTOR as RC, RO_RUNTIME as RO, DEPRECATED, PROTOTYPED, REMOVED, cls, field, message, param,
)
from ..enums import (
    HOST_ALLOWED_OPERATIONS, HOST_DISPLAY, HOST_NUMA_AFFINITY_POLICY,
    LATEST_SYNCED_UPDATES_APPLIED_STATE, UPDATE_GUIDANCES,
)
from ..types import BOOL, DATETIME, FLOAT, INT, STRING, MapOf, Ref, SetOf, EPOCH, NULL_REF

SMAP = MapOf(STRING, STRING)


HOST = cls(
    "host",
    "A physical machine running Xen with this agent in its dom0.",
    by_name_label=True,
    fields=[
        field("uuid", STRING, RO),
        field("name_label", STRING, RW, ""),
        field("name_description", STRING, RW, ""),
        field("memory_overhead", INT, RO, 0,
              doc="Bytes of host memory used by virtualisation itself."),
        field("allowed_operations", SetOf(HOST_ALLOWED_OPERATIONS), RO, []),
        field("current_operations", MapOf(STRING, HOST_ALLOWED_OPERATIONS), RO, {}),

        # software
        field("API_version_major", INT, RO, doc="Major version of the API this host speaks."),
        field("API_version_minor", INT, RO),
        field("API_version_vendor", STRING, RO),
        field("API_version_vendor_implementation", SMAP, RO),
        field("enabled", BOOL, RO),
        field("software_version", SMAP, RC,
              doc="Component name -> version string (product, xen, ...)."),
        field("other_config", SMAP, RW),
        field("capabilities", SetOf(STRING), RC),
        field("cpu_configuration", SMAP, RO),
        field("sched_policy", STRING, RO, doc="The Xen scheduler in use (e.g. credit)."),
        field("supported_bootloaders", SetOf(STRING), RO),

        # owned objects
        field("resident_VMs", SetOf(Ref("VM")), RO,
              doc="VMs whose domain lives on this host (running, paused or suspended in memory)."),
        field("logging", SMAP, RW),
        field("PIFs", SetOf(Ref("PIF")), RO),
        field("suspend_image_sr", Ref("SR"), RW),
        field("crash_dump_sr", Ref("SR"), RW),
        field("crashdumps", SetOf(Ref("host_crashdump")), RO),
        field("patches", SetOf(Ref("host_patch")), RO, lifecycle=DEPRECATED),
        field("updates", SetOf(Ref("pool_update")), RO),
        field("PBDs", SetOf(Ref("PBD")), RO),
        field("host_CPUs", SetOf(Ref("host_cpu")), RO),

        # hardware, identity
        field("cpu_info", SMAP, RO, {}),
        field("hostname", STRING, RW, doc="The host's name in DNS."),
        field("address", STRING, RW,
              doc="The address other hosts and clients reach this host on."),
        field("metrics", Ref("host_metrics"), RO),
        field("license_params", SMAP, RO),

        # HA, client data, auth, licensing, power-on
        field("ha_statefiles", SetOf(STRING), RO, []),
        field("ha_network_peers", SetOf(STRING), RO, []),
        field("blobs", MapOf(STRING, Ref("blob")), RO, {}),
        field("tags", SetOf(STRING), RW, []),
        field("external_auth_type", STRING, RO, ""),
        field("external_auth_service_name", STRING, RO, ""),
        field("external_auth_configuration", SMAP, RO, {}),
        field("edition", STRING, RO, ""),
        field("license_server", SMAP, RW, {"address": "localhost", "port": "27000"},
              doc="Where licences are checked out: address and port."),
        field("bios_strings", SMAP, RO, {}),
        field("power_on_mode", STRING, RO, ""),
        field("power_on_config", SMAP, RO, {}),
        field("local_cache_sr", Ref("SR"), RC, NULL_REF),
        field("chipset_info", SMAP, RO, {}),

        # devices, platform
        field("PCIs", SetOf(Ref("PCI")), RO),
        field("PGPUs", SetOf(Ref("PGPU")), RO),
        field("PUSBs", SetOf(Ref("PUSB")), RO),
        field("ssl_legacy", BOOL, RC, True, lifecycle=DEPRECATED),
        field("guest_VCPUs_params", SMAP, RW, {}),
        field("display", HOST_DISPLAY, RW, "enabled",
              doc="Whether the physical console shows output, now and after reboot."),
        field("virtual_hardware_platform_versions", SetOf(INT), RO, [0],
              doc="Guest hardware platform versions this host can run."),
        field("control_domain", Ref("VM"), RO, NULL_REF, doc="The VM record standing for dom0."),
        field("updates_requiring_reboot", SetOf(Ref("pool_update")), RO),
        field("features", SetOf(Ref("Feature")), RO),
        field("iscsi_iqn", STRING, RC, ""),
        field("multipathing", BOOL, RC, False, doc="Whether storage multipathing is enabled."),
        field("uefi_certificates", STRING, RC, "", lifecycle=DEPRECATED),
        field("certificates", SetOf(Ref("Certificate")), RO),
        field("editions", SetOf(STRING), RO, []),

        # updates
        field("pending_guidances", SetOf(UPDATE_GUIDANCES), RO, []),
        field("tls_verification_enabled", BOOL, RO, False),
        field("last_software_update", DATETIME, RO, EPOCH, lifecycle=PROTOTYPED),
        field("https_only", BOOL, RO, False, lifecycle=PROTOTYPED),
        field("latest_synced_updates_applied", LATEST_SYNCED_UPDATES_APPLIED_STATE, RO, "unknown",
              lifecycle=PROTOTYPED),
        field("numa_affinity_policy", HOST_NUMA_AFFINITY_POLICY, RO, "default_policy",
              lifecycle=PROTOTYPED),
        field("pending_guidances_recommended", SetOf(UPDATE_GUIDANCES), RO, [],
              lifecycle=PROTOTYPED),
        field("pending_guidances_full", SetOf(UPDATE_GUIDANCES), RO, [], lifecycle=PROTOTYPED),
        field("last_update_hash", STRING, RO, "", lifecycle=PROTOTYPED),
    ],
    messages=[
        message("destroy", [param("self", Ref("host"))],
                errors=["HOST_CANNOT_DESTROY_SELF", "HOST_IS_LIVE", "HOST_HAS_RESIDENT_VMS"],
                doc="Forget a pool member that is not live (one that cannot be ejected): its records "
                    "leave the pool's database; the host itself is not told."),
        message("disable", [param("host", Ref("host"))],
                doc="Puts the host into a state in which no new VMs are started (VM.start skips it, "
                    "VM.start_on and resume_on answer HOST_DISABLED); its running VMs go on. Kept "
                    "until host.enable, across restarts."),
        message("enable", [param("host", Ref("host"))],
                doc="Puts the host into a state in which new VMs can be started."),
        message("evacuate", [param("host", Ref("host")), param("network", Ref("network"), NULL_REF),
                             param("evacuate_batch_size", INT, 0)],
                errors=["VM_MIGRATE_FAILED", "NO_HOSTS_AVAILABLE", "HOST_NOT_ENOUGH_FREE_MEMORY",
                        "VM_REQUIRES_SR", "VM_BAD_POWER_STATE"],
                doc="Migrate every VM running on the host to other hosts of the pool, one at a time; "
                    "refused before any moves when one of them could not go anywhere (its own "
                    "error, as get_vms_which_prevent_evacuation lists). `network` and "
                    "`evacuate_batch_size` are taken and ignored."),
        message("get_vms_which_prevent_evacuation", [param("self", Ref("host"))],
                MapOf(Ref("VM"), SetOf(STRING)),
                doc="The VMs running on the host that could not be migrated to another host now, "
                    "each with the error that says why (code first)."),
        message("assert_can_evacuate", [param("host", Ref("host"))],
                errors=["CANNOT_EVACUATE_HOST"],
                doc="Fail with CANNOT_EVACUATE_HOST when a VM running on the host could not be "
                    "migrated to another host now."),
        message("management_reconfigure", [param("pif", Ref("PIF"))],
                errors=["PIF_HAS_NO_NETWORK_CONFIGURATION", "PIF_CONFIGURATION_ERROR"],
                doc="Make `pif` the host's management interface: its address is put on its "
                    "bridge and must answer before the old management interface gives up the "
                    "role."),
    ],
)


HOST_METRICS = cls(
    "host_metrics",
    "Memory totals and liveness of a host.",
    fields=[
        field("uuid", STRING, RO),
        field("memory_total", INT, RO, doc="Bytes of physical memory."),
        field("memory_free", INT, RO, 0, lifecycle=REMOVED,
              doc="Bytes of memory the hypervisor has free, refreshed every few seconds "
                  "(deprecated in xapi, still read by clients)."),
        field("live", BOOL, RO, doc="True while the host keeps heartbeating to the master."),
        field("last_updated", DATETIME, RO),
        field("other_config", SMAP, RW, {}),
    ],
)


HOST_CPU = cls(
    "host_cpu",
    "One physical CPU of a host.",
    fields=[
        field("uuid", STRING, RO),
        field("host", Ref("host"), RO),
        field("number", INT, RO, doc="Index of the CPU in the host, from 0."),
        field("vendor", STRING, RO),
        field("speed", INT, RO, doc="Clock speed in MHz."),
        field("modelname", STRING, RO),
        field("family", INT, RO),
        field("model", INT, RO),
        field("stepping", STRING, RO),
        field("flags", STRING, RO, doc="CPU feature names, space separated."),
        field("features", STRING, RO, doc="CPU feature bitmap, as hex words."),
        field("utilisation", FLOAT, RO, doc="Fraction of time busy, from 0.0 to 1.0."),
        field("other_config", SMAP, RW, {}),
    ],
)
