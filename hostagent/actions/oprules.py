"""Which operations each object allows, as one table per class.

An operation appears in `allowed_operations` only when its message is
implemented and its checks pass now; the same checks refuse a call. Facts
(power states, overlaps, template and snapshot rules) follow xapi as in
xapi-protocol.md §2 and §3.
"""

from ..datamodel.errors import ApiError
from ..rpc.oplocks import Op, OpTable

HALTED, PAUSED, RUNNING, SUSPENDED = "Halted", "Paused", "Running", "Suspended"
ANY = None


def _states(*names):
    return frozenset(names)


def _vm_state_error(ref, expected, actual):
    order = [HALTED, PAUSED, RUNNING, SUSPENDED]
    want = ", ".join(s.lower() for s in order if s in expected)
    return ApiError("VM_BAD_POWER_STATE", ref, want, actual.lower())


# ----------------------------------------------------------------------- VM
TEMPLATE_OPS = frozenset({"clone", "copy", "export", "metadata_export", "provision", "destroy",
                          "changing_memory_live", "changing_dynamic_range", "changing_static_range",
                          "changing_memory_limits", "changing_VCPUs", "changing_NVRAM", "make_into_template"})
SNAPSHOT_OPS = frozenset({"clone", "copy", "export", "metadata_export", "destroy", "revert"})
CONTROL_DOMAIN_OPS = frozenset({"changing_memory_live", "changing_dynamic_range", "metadata_export",
                                "changing_VCPUs_live", "send_sysrq"})


def _is_template(store, ref, rec, op):
    return rec["is_a_template"] and not rec["is_a_snapshot"] and op not in TEMPLATE_OPS


def _is_snapshot(store, ref, rec, op):
    return rec["is_a_snapshot"] and op not in SNAPSHOT_OPS


def _is_control_domain(store, ref, rec, op):
    return rec["is_control_domain"] and op not in CONTROL_DOMAIN_OPS


def _default_template(store, ref, rec):
    return rec["is_a_template"] and (rec["is_default_template"]
                                     or rec["other_config"].get("default_template") == "true")


VM_EARLY = (
    (_is_control_domain, lambda store, ref, rec, op: ApiError(
        "OPERATION_NOT_ALLOWED", f"{op} is not possible on a control domain")),
    (_is_template, lambda store, ref, rec, op: ApiError("VM_IS_TEMPLATE", ref, op)),
    (_is_snapshot, lambda store, ref, rec, op: ApiError("VM_IS_SNAPSHOT", ref, op)),
)

# the hypervisors whose domains migrate live (backends/hypervisor Capabilities.migrate), by the
# key a host's software_version has for its driver
MIGRATING_DRIVERS = ("xen", "qemu")


def _no_migration(store, ref, rec, op):
    """pool_migrate is offered only on a host whose hypervisor migrates domains; a call is let
    through anyway, to be answered VM_MIGRATE_FAILED naming both hosts (actions/vm_migrate.py)."""
    if op != "pool_migrate":
        return False
    host = store.tables["host"].get(rec["resident_on"])
    return host is None or not any(key in host["software_version"] for key in MIGRATING_DRIVERS)


COPYING = frozenset({"clone", "copy", "export"})
SNAPSHOTTING = frozenset({"snapshot", "checkpoint"})


def _vm(name, states, overlap=frozenset(), refuse=()):
    return Op(name, f"VM.{name}", states, frozenset(overlap), tuple(refuse))


_ALL_VM_OPS = ("snapshot", "clone", "copy", "create_template", "revert", "checkpoint", "provision", "start",
               "start_on", "pause", "unpause", "clean_shutdown", "clean_reboot", "hard_shutdown",
               "power_state_reset", "hard_reboot", "suspend", "resume", "resume_on", "pool_migrate",
               "migrate_send", "send_sysrq", "send_trigger", "shutdown", "call_plugin", "export",
               "metadata_export", "destroy")

VM = OpTable(
    "VM",
    (
        _vm("start", _states(HALTED)),
        _vm("start_on", _states(HALTED)),
        _vm("provision", _states(HALTED),
            refuse=[(lambda s, r, rec: not rec["is_a_template"], lambda s, r, rec, op: ApiError("PROVISION_ONLY_ALLOWED_ON_TEMPLATE"))]),
        _vm("unpause", _states(PAUSED)),
        _vm("resume", _states(SUSPENDED)),
        _vm("resume_on", _states(SUSPENDED)),
        _vm("clean_shutdown", _states(RUNNING)),
        _vm("clean_reboot", _states(RUNNING)),
        _vm("pause", _states(RUNNING)),
        _vm("suspend", _states(RUNNING)),
        _vm("pool_migrate", _states(RUNNING)),
        _vm("send_sysrq", _states(RUNNING)),
        _vm("send_trigger", _states(RUNNING)),
        _vm("hard_reboot", _states(PAUSED, RUNNING), overlap={op for op in _ALL_VM_OPS} - {"hard_shutdown", "hard_reboot"}),
        _vm("hard_shutdown", _states(PAUSED, SUSPENDED, RUNNING), overlap=set(_ALL_VM_OPS) - {"hard_shutdown"}),
        _vm("shutdown", _states(PAUSED, SUSPENDED, RUNNING)),
        _vm("checkpoint", _states(PAUSED, SUSPENDED, RUNNING), overlap=SNAPSHOTTING),
        _vm("clone", _states(HALTED, SUSPENDED), overlap=COPYING),
        _vm("copy", _states(HALTED, SUSPENDED), overlap=COPYING),
        _vm("export", _states(HALTED, SUSPENDED), overlap=COPYING),
        _vm("snapshot", ANY, overlap=SNAPSHOTTING),
        _vm("revert", ANY,
            refuse=[(lambda s, r, rec: not rec["is_a_snapshot"], lambda s, r, rec, op: ApiError("ONLY_REVERT_SNAPSHOT"))]),
        _vm("power_state_reset", ANY),
        _vm("destroy", _states(HALTED, SUSPENDED),
            refuse=[(_default_template, lambda s, r, rec, op: ApiError("VM_CANNOT_DELETE_DEFAULT_TEMPLATE", r))]),
    ),
    state_field="power_state",
    state_error=_vm_state_error,
    blocked=True,
    early=VM_EARLY,
    hidden=_no_migration,
)


# ---------------------------------------------------------------- devices
def _vdi_attached(store, ref, rec):
    vbds = store.tables["VBD"]
    return any(vbds[v]["currently_attached"] for v in rec["VBDs"] if v in vbds)


def _in_use(store, ref, rec, op):
    return ApiError("VDI_IN_USE", ref, op)


def _sr_lacks(capability):
    """The VDI's SR has a driver (an SM record of its type) that lacks `capability`."""
    def pred(store, ref, rec):
        sr = store.tables["SR"].get(rec["SR"])
        if sr is None:
            return False
        for sm in store.tables["SM"].values():
            if sm["type"] == sr["type"]:
                return capability not in sm["features"] and capability not in sm["capabilities"]
        return False
    return pred


def _not_supported(store, ref, rec, op):
    return ApiError("SR_OPERATION_NOT_SUPPORTED", rec["SR"])


# the driver capability each VDI operation needs (as xapi's check_sm_feature_error)
VDI_CAPABILITY = {"clone": "VDI_CLONE", "snapshot": "VDI_SNAPSHOT", "resize": "VDI_RESIZE",
                  "destroy": "VDI_DELETE"}


def _vdi_refusals(name):
    out = ((_vdi_attached, _in_use),) if name in ("destroy", "resize", "forget") else ()
    if name in VDI_CAPABILITY:
        out += ((_sr_lacks(VDI_CAPABILITY[name]), _not_supported),)
    return out


VDI = OpTable("VDI", tuple(
    Op(name, f"VDI.{name}", refuse=_vdi_refusals(name))
    for name in ("clone", "copy", "resize", "snapshot", "destroy", "forget", "update")),
    watch=(("VBD", "VDI"),))


def _attached(store, ref, rec):
    return rec["currently_attached"]


def _vm_not_running(store, ref, rec):
    vm = store.tables["VM"].get(rec["VM"])
    return vm is None or vm["power_state"] != RUNNING


def _vm_power(store, ref, rec, op):
    vm = store.tables["VM"].get(rec["VM"])
    return ApiError("VM_BAD_POWER_STATE", rec["VM"], "running", vm["power_state"].lower() if vm else "halted")


def _not_cd(store, ref, rec):
    return rec["type"] != "CD"


VBD = OpTable("VBD", (
    Op("insert", "VBD.insert", refuse=(
        (_not_cd, lambda s, r, rec, op: ApiError("VBD_NOT_REMOVABLE_MEDIA", r)),
        (lambda s, r, rec: not rec["empty"], lambda s, r, rec, op: ApiError("VBD_NOT_EMPTY", r)))),
    Op("eject", "VBD.eject", refuse=(
        (_not_cd, lambda s, r, rec, op: ApiError("VBD_NOT_REMOVABLE_MEDIA", r)),
        (lambda s, r, rec: rec["empty"], lambda s, r, rec, op: ApiError("VBD_IS_EMPTY", r)))),
    Op("plug", "VBD.plug", refuse=(
        (_attached, lambda s, r, rec, op: ApiError("DEVICE_ALREADY_ATTACHED", r)),
        (_vm_not_running, _vm_power))),
    Op("unplug", "VBD.unplug", refuse=(
        (lambda s, r, rec: not rec["currently_attached"], lambda s, r, rec, op: ApiError("DEVICE_ALREADY_DETACHED", r)),
        (lambda s, r, rec: not rec["unpluggable"], lambda s, r, rec, op: ApiError("VBD_NOT_UNPLUGGABLE", r)))),
    Op("unplug_force", "VBD.unplug_force", refuse=(
        (lambda s, r, rec: not rec["currently_attached"], lambda s, r, rec, op: ApiError("DEVICE_ALREADY_DETACHED", r)),)),
), watch=(("VM", "VBDs"),))

VIF = OpTable("VIF", (
    Op("plug", "VIF.plug", refuse=(
        (_attached, lambda s, r, rec, op: ApiError("DEVICE_ALREADY_ATTACHED", r)),
        (_vm_not_running, _vm_power))),
    Op("unplug", "VIF.unplug", refuse=(
        (lambda s, r, rec: not rec["currently_attached"], lambda s, r, rec, op: ApiError("DEVICE_ALREADY_DETACHED", r)),)),
), watch=(("VM", "VIFs"),))


# ------------------------------------------------------------ host and pool
def _has_attached_pbd(store, ref, rec):
    pbds = store.tables["PBD"]
    return any(pbds[p]["currently_attached"] for p in rec["PBDs"] if p in pbds)


def _has_managed_vdis(store, ref, rec):
    vdis = store.tables["VDI"]
    return any(vdis[v]["managed"] for v in rec["VDIs"] if v in vdis)


def _sr_unplugged(store, ref, rec):
    return not _has_attached_pbd(store, ref, rec)


def _no_pbds(store, ref, rec, op):
    return ApiError("SR_HAS_NO_PBDS", ref)


# storage operations that no SR message guards: what they need of the SR's driver and its
# PBDs, and the message that performs them (listed only while implemented)
SR_WORK = (
    ("vdi_create", "VDI.create", "VDI_CREATE", True),
    ("vdi_destroy", "VDI.destroy", "VDI_DELETE", True),
    ("vdi_resize", "VDI.resize", "VDI_RESIZE", True),
    ("vdi_clone", "VDI.clone", "VDI_CLONE", True),
    ("vdi_snapshot", "VDI.snapshot", "VDI_SNAPSHOT", True),
    ("vdi_introduce", "VDI.introduce", "VDI_INTRODUCE", True),
    ("pbd_create", "PBD.create", None, False),
    ("pbd_destroy", "PBD.destroy", None, False),
)


def _sr_work(store, ref, rec, implemented):
    """SR allowed_operations beyond its own messages: VDI work while a PBD is plugged and
    the driver can do it (as xapi's SM feature checks), plug while a PBD is unplugged,
    unplug while one is plugged."""
    caps = None
    for sm in store.tables["SM"].values():
        if sm["type"] == rec["type"]:
            caps = set(sm["features"]) | set(sm["capabilities"])
    plugged = _has_attached_pbd(store, ref, rec)
    pbds = store.tables["PBD"]
    out = []
    for op, message, capability, needs_plug in SR_WORK:
        if not implemented(message) or (needs_plug and not plugged):
            continue
        if capability and caps is not None and capability not in caps:
            continue
        out.append(op)
    if implemented("PBD.plug") and any(not pbds[p]["currently_attached"] for p in rec["PBDs"] if p in pbds):
        out.append("plug")
    if implemented("PBD.unplug") and plugged:
        out.append("unplug")
    return out


SR = OpTable("SR", (
    Op("scan", "SR.scan", refuse=((_sr_unplugged, _no_pbds),)),
    Op("update", "SR.update", refuse=((_sr_unplugged, _no_pbds),)),
    # as xapi: destroy needs a PBD (for the storage's address), none plugged, no managed VDIs
    Op("destroy", "SR.destroy", refuse=(
        (_has_attached_pbd, lambda s, r, rec, op: ApiError("SR_HAS_PBD", r)),
        (lambda s, r, rec: not rec["PBDs"], lambda s, r, rec, op: ApiError("SR_HAS_NO_PBDS", r)),
        (_has_managed_vdis, lambda s, r, rec, op: ApiError("SR_NOT_EMPTY")))),
    Op("forget", "SR.forget", refuse=((_has_attached_pbd, lambda s, r, rec, op: ApiError("SR_HAS_PBD", r)),)),
), watch=(("PBD", "SR"), ("VDI", "SR")), extra_allowed=_sr_work)

# as xapi: host.enable is refused only while updates are applied (not implemented here)
HOST_OPS = ("provision", "evacuate", "shutdown", "reboot", "power_on", "vm_start", "vm_resume", "vm_migrate",
            "enable")

HOST = OpTable("host", (
    Op("enable", "host.enable", overlap=frozenset(HOST_OPS)),
    Op("evacuate", "host.evacuate"),
    Op("shutdown", "host.shutdown"),
    Op("reboot", "host.reboot"),
    Op("power_on", "host.power_on"),
))

def _pool_handover(store, ref, rec, implemented):
    # pool.designate_new_master names a host, not the pool: not locked through this table
    # (a second handover is refused by the freeze, pool/handover.py)
    return ["designate_new_master"] if implemented("pool.designate_new_master") and not rec["current_operations"] \
        else []


POOL = OpTable("pool", (
    Op("ha_enable", "pool.enable_ha"),
    Op("ha_disable", "pool.disable_ha"),
), extra_allowed=_pool_handover)

NETWORK = OpTable("network", (Op("attaching", "network.attach"),))


def _task_cancellable(store, ref, rec, implemented):
    priv = store.private["task"].get(ref, {})
    return ["cancel"] if rec["status"] == "pending" and priv.get("cancellable") else []


TASK = OpTable("task", (), extra_allowed=_task_cancellable)

TABLES = (VM, VDI, VBD, VIF, SR, HOST, POOL, NETWORK, TASK)
