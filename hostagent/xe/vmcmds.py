"""Hand-written VM commands, where XenServer's xe differs from the API.

VMs are chosen by `vm=<name-label or uuid>`, `uuid=` or any field filter
(`power-state=running`); when several match, `--multiple` is needed. Templates
and the control domain are never chosen. Lifecycle operations run as tasks with
a progress bar on a terminal.
"""

import contextlib

from . import generic as G
from .command import SELECTOR_HELP, Command
from .errors import UsageError, XeError
from .tasks import run_message

VM_HIDDEN = {"is_a_template": False, "is_control_domain": False}
ASYNC = {"async": True}


def select_vms(ctx, consumed=(), allow_templates=False):
    """(ref, record) of the VMs the selector parameters name."""
    vm = ctx.model.cls("VM")
    params = ctx.opts.params
    skip = set(consumed) | {"vm", "multiple", "force", "paused"}
    filters = [(k, v) for k, v in params.items() if k not in skip]
    hidden = {} if allow_templates else VM_HIDDEN
    found = G.select(ctx, vm, hidden, filters)
    if "vm" in params:
        want = params["vm"]
        found = [(r, rec) for r, rec in found if want in (rec.get("uuid"), rec.get("name_label"))]
    if not filters and "vm" not in params:
        raise UsageError("Required parameter not found: vm (or uuid=, or a field filter)")
    if not found:
        raise XeError("No matching VMs found")
    if len(found) > 1 and not ctx.flag("multiple"):
        raise XeError(f"{len(found)} VMs match the selection: add --multiple to act on all of them")
    return found


def _op(name, wire_for, extra=(), flags=(), help=""):
    def run(ctx):
        for ref, rec in select_vms(ctx, consumed=extra + flags):
            wire, args = wire_for(ctx, ref)
            run_message(ctx, wire, args, ASYNC)
    return Command(name, run, optional=("vm",) + extra, flags=("multiple",) + flags, open=True, group="vm",
                   fields=True, help=f"{help} Select with {SELECTOR_HELP}.")


def _host(ctx, param="on"):
    on = ctx.param(param)
    if on is None:
        return None
    hosts = [r for r, rec in ctx.resolver.all("host").items() if on in (rec["uuid"], rec["name_label"])]
    if not hosts:
        raise XeError(f"No host named {on}")
    return hosts[0]


def _migrate(ctx, ref):
    host = _host(ctx, "host")
    if host is None:
        raise UsageError("vm-migrate needs host=<host uuid or name> (the pool member to move the VM to)")
    return "VM.pool_migrate", [ref, host, {"live": ctx.param("live") or "true"}]


def _start(ctx, ref):
    paused, force = ctx.flag("paused"), ctx.flag("force")
    host = _host(ctx)
    if host:
        return "VM.start_on", [ref, host, paused, force]
    return "VM.start", [ref, paused, force]


def _resume(ctx, ref):
    host = _host(ctx)
    if host:
        return "VM.resume_on", [ref, host, False, ctx.flag("force")]
    return "VM.resume", [ref, False, ctx.flag("force")]


def _copy_like(name, wire, optional=(), help=""):
    def run(ctx):
        new_name = ctx.param("new-name-label")
        for ref, _ in select_vms(ctx, consumed=("new-name-label", "new-name-description") + optional):
            args = [ref, new_name]
            if wire == "VM.copy":
                sr = ctx.param("sr-uuid")
                args.append(ctx.call("SR.get_by_uuid", sr) if sr else "OpaqueRef:NULL")
            new = run_message(ctx, wire, args, ASYNC)
            if ctx.param("new-name-description") is not None:
                ctx.call("VM.set_name_description", new, ctx.param("new-name-description"))
            ctx.write(ctx.call("VM.get_uuid", new) + "\n")
    return Command(name, run, required=("new-name-label",),
                   optional=("vm", "new-name-description") + optional,
                   flags=("multiple",), open=True, group="vm", fields=True,
                   help=f"{help} Select with {SELECTOR_HELP}.")


def vm_install(ctx):
    want = ctx.param("template")
    templates = [(r, rec) for r, rec in ctx.resolver.all("VM").items()
                 if rec["is_a_template"] and want in (rec["uuid"], rec["name_label"])]
    if not templates:
        raise XeError(f"No template named {want}")
    if len(templates) > 1:
        raise XeError(f"{len(templates)} templates are named {want}: give its uuid")
    template, trec = templates[0]
    sr = ctx.param("sr-uuid")
    if sr is None and ctx.param("sr-name-label") is not None:
        srs = [rec["uuid"] for rec in ctx.resolver.all("SR").values()
               if rec["name_label"] == ctx.param("sr-name-label")]
        if not srs:
            raise XeError(f"No SR named {ctx.param('sr-name-label')}")
        sr = srs[0]
    if sr is not None:
        ctx.call("SR.get_by_uuid", sr)  # an unknown uuid fails here, before anything is made
    new = run_message(ctx, "VM.clone", [template, ctx.param("new-name-label")], ASYNC)
    try:
        disks = (trec.get("other_config") or {}).get("disks")
        if sr is not None and disks:
            ctx.call("VM.remove_from_other_config", new, "disks")
            ctx.call("VM.add_to_other_config", new, "disks", disks.replace('sr=""', f'sr="{sr}"'))
        run_message(ctx, "VM.provision", [new], ASYNC)
        if ctx.call("VM.get_is_a_template", new):
            ctx.call("VM.set_is_a_template", new, False)
    except BaseException:
        _remove(ctx, new)  # no half-installed VM is left behind
        raise
    ctx.write(ctx.call("VM.get_uuid", new) + "\n")


def _remove(ctx, vm):
    """Destroy a VM this command made and the disks only it uses, as far as possible."""
    from .errors import ConnectError, Failure
    with contextlib.suppress(Failure, ConnectError):  # the failure that got us here is what xe reports
        vdis = [ctx.call("VBD.get_VDI", vbd) for vbd in ctx.call("VM.get_VBDs", vm)]
        ctx.call("VM.destroy", vm)
        for vdi in vdis:
            if vdi != "OpaqueRef:NULL" and not ctx.call("VDI.get_VBDs", vdi):
                ctx.call("VDI.destroy", vdi)


def vm_uninstall(ctx):
    for ref, rec in select_vms(ctx, consumed=()):
        if not ctx.flag("force"):
            ctx.write(f"About to uninstall VM {rec['uuid']} ({rec['name_label']}) and destroy its disks.\n"
                      "Type 'yes' to continue\n")
            ctx.out.flush()
            import sys
            if sys.stdin.readline().strip() != "yes":
                raise XeError("Aborted")
        vdis = []
        for vbd in rec.get("VBDs", []):
            vrec = ctx.call("VBD.get_record", vbd)
            if vrec.get("type") != "CD" and vrec.get("VDI") not in (None, "", "OpaqueRef:NULL"):
                vdis.append(vrec["VDI"])
        if rec.get("power_state") != "Halted":
            run_message(ctx, "VM.hard_shutdown", [ref], ASYNC)
        ctx.call("VM.destroy", ref)
        for vdi in vdis:
            if not ctx.call("VDI.get_VBDs", vdi):
                ctx.call("VDI.destroy", vdi)


def vm_disk_add(ctx):
    sr_uuid = ctx.param("sr-uuid")
    if sr_uuid is None:
        pool = next(iter(ctx.resolver.all("pool").values()))
        sr = pool["default_SR"]
        if sr == "OpaqueRef:NULL":
            raise XeError("The pool has no default SR: give sr-uuid=")
    else:
        sr = ctx.call("SR.get_by_uuid", sr_uuid)
    from .storagecmds import size as bytes_of
    size = bytes_of(ctx.param("disk-size"), "disk-size")
    for ref, rec in select_vms(ctx, consumed=("disk-size", "device", "sr-uuid")):
        vdi = ctx.call("VDI.create", {
            "name_label": f"{rec['name_label']} disk {ctx.param('device')}", "name_description": "",
            "SR": sr, "virtual_size": size, "type": "user", "sharable": False, "read_only": False,
            "other_config": {}, "xenstore_data": {}, "sm_config": {}, "tags": []})
        try:
            ctx.call("VBD.create", {
                "VM": ref, "VDI": vdi, "userdevice": ctx.param("device"), "bootable": False, "mode": "RW",
                "type": "Disk", "empty": False, "unpluggable": True, "other_config": {},
                "qos_algorithm_type": "", "qos_algorithm_params": {}})
        except BaseException:
            ctx.call("VDI.destroy", vdi)  # no disk is left that nothing uses
            raise


def vm_disk_list(ctx):
    vbd_cls, vdi_cls = ctx.model.cls("VBD"), ctx.model.cls("VDI")
    vbd_cols = _cols(vbd_cls, ctx.param("vbd-params", "uuid,vm-name-label,userdevice"))
    vdi_cols = _cols(vdi_cls, ctx.param("vdi-params", "uuid,name-label,sr-name-label,virtual-size"))
    minimal = []  # --minimal: the first field of every record, on one line
    for ref, rec in select_vms(ctx, consumed=("vbd-params", "vdi-params")):
        vbds = sorted((ctx.resolver.record("VBD", v) for v in rec.get("VBDs", [])),
                      key=lambda r: r.get("userdevice", ""))
        for vbd in vbds:
            if vbd is None or vbd.get("type") == "CD":
                continue
            n = vbd.get("userdevice")
            vdi = ctx.resolver.record("VDI", vbd.get("VDI"))
            parts = [(f"Disk {n} VBD:", vbd_cls, vbd, vbd_cols)]
            if vdi is not None:
                parts.append((f"Disk {n} VDI:", vdi_cls, vdi, vdi_cols))
            for title, cls, record, cols in parts:
                if ctx.opts.minimal:
                    minimal.append(G.text_of(ctx, cls, cols[0], record))
                else:
                    ctx.write(title + "\n")
                    G.show_record(ctx, cls, record, cols)
    if ctx.opts.minimal:
        from .render import minimal_text
        ctx.write(minimal_text(minimal))


def vm_vif_list(ctx):
    vif_cls = ctx.model.cls("VIF")
    cols = _cols(vif_cls, ctx.param("params", "uuid,vm-name-label,device,MAC,network-uuid"))
    for ref, rec in select_vms(ctx, consumed=("params",)):
        for vif in rec.get("VIFs", []):
            vrec = ctx.resolver.record("VIF", vif)
            if vrec is not None:
                G.show_record(ctx, vif_cls, vrec, cols)


def _cols(cls, spec):
    cols = []
    for name in spec.split(","):
        col = G.column(cls, name.strip())
        if col is None:
            raise UsageError(f"Unknown field: {name} (not a field of {cls.cli})")
        cols.append(col)
    return cols


def register(reg, model):
    reg.add(_op("vm-start", _start, extra=("on",), flags=("force", "paused"),
                help="Start the selected VMs (on=<host> to choose the host)."))
    reg.add(_op("vm-shutdown", lambda ctx, ref: ("VM.hard_shutdown" if ctx.flag("force")
                                                 else "VM.clean_shutdown", [ref]),
                flags=("force",), help="Shut the selected VMs down (--force: at once)."))
    reg.add(_op("vm-reboot", lambda ctx, ref: ("VM.hard_reboot" if ctx.flag("force")
                                               else "VM.clean_reboot", [ref]),
                flags=("force",), help="Reboot the selected VMs (--force: at once)."))
    reg.add(_op("vm-migrate", _migrate, extra=("host", "live"),
                help="Move the selected running VMs to host=<host> of the pool while they run "
                     "(VM.pool_migrate; always live)."))
    reg.add(_op("vm-suspend", lambda ctx, ref: ("VM.suspend", [ref]), help="Suspend the selected VMs."))
    reg.add(_op("vm-resume", _resume, extra=("on",), flags=("force",), help="Resume the selected VMs."))
    reg.add(_op("vm-pause", lambda ctx, ref: ("VM.pause", [ref]), help="Pause the selected VMs."))
    reg.add(_op("vm-unpause", lambda ctx, ref: ("VM.unpause", [ref]), help="Unpause the selected VMs."))
    reg.add(_copy_like("vm-clone", "VM.clone", help="Clone the VM (fast disk clones); prints the new uuid."))
    reg.add(_copy_like("vm-copy", "VM.copy", optional=("sr-uuid",),
                       help="Copy the VM with full disk copies (into sr-uuid=); prints the new uuid."))
    reg.add(_copy_like("vm-snapshot", "VM.snapshot", help="Snapshot the VM; prints the snapshot's uuid."))
    reg.add(Command("vm-install", vm_install, required=("template", "new-name-label"),
                    optional=("sr-uuid", "sr-name-label"), group="vm",
                    help="Install a VM from a template (name or uuid), its disks on sr-uuid= or the "
                         "default SR; prints the new uuid."))
    reg.add(Command("vm-uninstall", vm_uninstall, optional=("vm",), flags=("multiple", "force"), open=True,
                    group="vm", fields=True,
                    help=f"Destroy the VM and its disks (asks first unless --force). Select with {SELECTOR_HELP}."))
    reg.add(Command("vm-disk-add", vm_disk_add, required=("disk-size", "device"), optional=("vm", "sr-uuid"),
                    flags=("multiple",), open=True, group="vm", fields=True,
                    help=f"Add a new disk of disk-size bytes at device (userdevice). Select with {SELECTOR_HELP}."))
    reg.add(Command("vm-disk-list", vm_disk_list, optional=("vm", "vbd-params", "vdi-params"),
                    flags=("multiple",), open=True, group="vm", fields=True,
                    help=f"List the VM's disks: VBD and VDI records. Select with {SELECTOR_HELP}."))
    reg.add(Command("vm-vif-list", vm_vif_list, optional=("vm", "params"), flags=("multiple",), open=True,
                    group="vm", fields=True, help=f"List the VM's VIFs. Select with {SELECTOR_HELP}."))
