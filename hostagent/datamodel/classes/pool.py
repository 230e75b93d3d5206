"""pool: the pool-wide settings object (exactly one per pool)."""

from ..decl import (RW, RO_CONSTRUCTOR as RC, RO_RUNTIME as RO, DEPRECATED, PROTOTYPED, cls, field, message,
                    param)
from ..enums import POOL_ALLOWED_OPERATIONS, TELEMETRY_FREQUENCY, UPDATE_SYNC_FREQUENCY
from ..types import BOOL, DATETIME, INT, STRING, MapOf, Ref, SetOf, EPOCH, NULL_REF

SMAP = MapOf(STRING, STRING)


POOL = cls(
    "pool",
    "Settings shared by all hosts of the pool, and who its master is.",
    fields=[
        field("uuid", STRING, RO),
        field("name_label", STRING, RW),
        field("name_description", STRING, RW),
        field("master", Ref("host"), RO,
              doc="The host that answers API calls for the whole pool."),
        field("default_SR", Ref("SR"), RW, doc="Where new disks go when the client names no SR."),
        field("suspend_image_SR", Ref("SR"), RW),
        field("crash_dump_SR", Ref("SR"), RW),
        field("other_config", SMAP, RW),

        # high availability
        field("ha_enabled", BOOL, RO, False),
        field("ha_configuration", SMAP, RO, {}),
        field("ha_statefiles", SetOf(STRING), RO, []),
        field("ha_host_failures_to_tolerate", INT, RO, 0,
              doc="Host failures HA must survive while keeping protected VMs running."),
        field("ha_plan_exists_for", INT, RO, 0,
              doc="Host failures the current HA plan can absorb."),
        field("ha_allow_overcommit", BOOL, RW, False),
        field("ha_overcommitted", BOOL, RO, False),

        # client data
        field("blobs", MapOf(STRING, Ref("blob")), RO, {}),
        field("tags", SetOf(STRING), RW, []),
        field("gui_config", SMAP, RW, {}),
        field("health_check_config", SMAP, RW, {}),

        # workload balancing, redo log
        field("wlb_url", STRING, RO, ""),
        field("wlb_username", STRING, RO, ""),
        field("wlb_enabled", BOOL, RW, False),
        field("wlb_verify_cert", BOOL, RW, False, lifecycle=DEPRECATED),
        field("redo_log_enabled", BOOL, RO, False),
        field("redo_log_vdi", Ref("VDI"), RO, NULL_REF,
              doc="The VDI holding the database redo log, when enabled."),
        field("vswitch_controller", STRING, RO, "", lifecycle=DEPRECATED),

        # licensing, operations, features
        field("restrictions", SMAP, RO, {},
              doc="Licence-derived switches, e.g. \"restrict_vlan\" -> \"false\"."),
        field("metadata_VDIs", SetOf(Ref("VDI")), RO,
              doc="VDIs in which this pool's metadata is saved."),
        field("ha_cluster_stack", STRING, RO, ""),
        field("allowed_operations", SetOf(POOL_ALLOWED_OPERATIONS), RO, []),
        field("current_operations", MapOf(STRING, POOL_ALLOWED_OPERATIONS), RO, {}),
        field("guest_agent_config", SMAP, RO, {}),
        field("cpu_info", SMAP, RO, {}),
        field("policy_no_vendor_device", BOOL, RW, False),
        field("live_patching_disabled", BOOL, RW, False),
        field("igmp_snooping_enabled", BOOL, RO, False),
        field("uefi_certificates", STRING, RC, "",
              doc="Base64 tarball of the UEFI certificates given to guests."),
        field("custom_uefi_certificates", STRING, RC, "", lifecycle=PROTOTYPED),
        field("is_psr_pending", BOOL, RW, False),

        # certificates, updates, telemetry
        field("tls_verification_enabled", BOOL, RO, False),
        field("repositories", SetOf(Ref("Repository")), RO, []),
        field("client_certificate_auth_enabled", BOOL, RO, False),
        field("client_certificate_auth_name", STRING, RO, ""),
        field("repository_proxy_url", STRING, RO, ""),
        field("repository_proxy_username", STRING, RO, ""),
        field("repository_proxy_password", Ref("secret"), RO, NULL_REF),
        field("migration_compression", BOOL, RW, False, lifecycle=PROTOTYPED),
        field("coordinator_bias", BOOL, RW, True,
              doc="Prefer other hosts over the master when placing VMs."),
        field("local_auth_max_threads", INT, RC, 8, lifecycle=PROTOTYPED),
        field("ext_auth_max_threads", INT, RC, 1, lifecycle=PROTOTYPED),
        field("telemetry_uuid", Ref("secret"), RO, NULL_REF, lifecycle=PROTOTYPED),
        field("telemetry_frequency", TELEMETRY_FREQUENCY, RO, "weekly", lifecycle=PROTOTYPED),
        field("telemetry_next_collection", DATETIME, RO, EPOCH, lifecycle=PROTOTYPED),
        field("last_update_sync", DATETIME, RO, EPOCH, lifecycle=PROTOTYPED),
        field("update_sync_frequency", UPDATE_SYNC_FREQUENCY, RO, "weekly", lifecycle=PROTOTYPED),
        field("update_sync_day", INT, RO, 0, lifecycle=PROTOTYPED,
              doc="Weekday (0 is Sunday) of weekly update syncs; unused when daily."),
        field("update_sync_enabled", BOOL, RO, False, lifecycle=PROTOTYPED),
    ],
    messages=[
        message("join",
                [param("master_address", STRING), param("master_username", STRING),
                 param("master_password", STRING)],
                errors=["JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS", "JOINING_HOST_CANNOT_HAVE_RUNNING_VMS",
                        "JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS", "JOINING_HOST_CONNECTION_FAILED",
                        "POOL_JOINING_HOST_MUST_HAVE_SAME_API_VERSION", "SESSION_AUTHENTICATION_FAILED",
                        "HOST_IS_SLAVE", "OPERATION_NOT_ALLOWED"],
                doc="Called on a standalone host: make it a member of the pool whose master is at "
                    "`master_address` (HOST or HOST:PORT of its TLS listener), logging in there with "
                    "the given credentials. The host then answers clients with HOST_IS_SLAVE."),
        message("join_force",
                [param("master_address", STRING), param("master_username", STRING),
                 param("master_password", STRING)],
                errors=["JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS", "JOINING_HOST_CANNOT_HAVE_RUNNING_VMS",
                        "JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS", "JOINING_HOST_CONNECTION_FAILED"],
                doc="pool.join without the version checks."),
        message("eject", [param("host", Ref("host"))],
                errors=["CANNOT_CONTACT_HOST", "OPERATION_NOT_ALLOWED"],
                doc="Remove a member from the pool: it becomes the master of a new pool of its own "
                    "and its records leave this pool's database."),
        message("designate_new_master", [param("host", Ref("host"))],
                errors=["HOST_OFFLINE", "CANNOT_CONTACT_HOST", "OPERATION_NOT_ALLOWED",
                        "OTHER_OPERATION_IN_PROGRESS"],
                doc="Make a live member the pool's master, losing no acknowledged change: new calls "
                    "wait while the calls under way finish, the whole database goes to `host`, and "
                    "clients are then sent there with HOST_IS_SLAVE. Nothing changes if `host` does "
                    "not take it."),
        message("emergency_transition_to_master", [],
                errors=["OPERATION_NOT_ALLOWED"],
                doc="Called on a member whose master is dead (with a session from "
                    "session.slave_local_login_with_password): its copy of the pool's database, "
                    "which the master kept current, becomes the pool's and the member its master. "
                    "Changes made in the last seconds before the master died may be lost "
                    "(docs/pools.md, Emergencies)."),
        message("emergency_reset_master", [param("master_address", STRING)],
                errors=["CANNOT_CONTACT_HOST", "HOST_IS_SLAVE", "OPERATION_NOT_ALLOWED"],
                doc="Called on a member: follow the master at `master_address` (HOST:PORT of its TLS "
                    "listener) from now on. It must present the certificate recorded for it in the "
                    "pool's database (this member's copy)."),
        message("recover_slaves", [], SetOf(Ref("host")),
                ["HOST_IS_SLAVE", "OPERATION_NOT_ALLOWED"],
                doc="Called on a new master after pool.emergency_transition_to_master: every member "
                    "it can reach follows it from now on. Returns the hosts told."),
        message("create_VLAN_from_PIF",
                [param("pif", Ref("PIF")), param("network", Ref("network")), param("VLAN", INT)],
                SetOf(Ref("PIF")), ["VLAN_TAG_INVALID", "PIF_VLAN_EXISTS", "PIF_IS_VLAN",
                                    "NETWORK_ALREADY_CONNECTED", "PIF_CONFIGURATION_ERROR"],
                doc="VLAN.create with tag `VLAN` on `network` for the PIF of every live host that is on "
                    "`pif`'s network; all or none. Returns the new VLAN PIFs."),
        message("create_VLAN",
                [param("device", STRING), param("network", Ref("network")), param("VLAN", INT)],
                SetOf(Ref("PIF")), ["VLAN_TAG_INVALID", "INVALID_VALUE", "PIF_VLAN_EXISTS",
                                    "NETWORK_ALREADY_CONNECTED", "PIF_CONFIGURATION_ERROR"],
                doc="A VLAN with tag `VLAN` on `network` over the device `device` of every host "
                    "(INVALID_VALUE [device, name] where a host has none); all or none. Use "
                    "create_VLAN_from_PIF instead.", lifecycle=DEPRECATED),
    ],
)
