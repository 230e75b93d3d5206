"""eliloader: the PV install rounds of seed §5.2, played at VM.start.

A PV VM whose PV_bootloader is `eliloader` and whose other_config names an
install-repository goes through its distribution's rounds (install_rules.json):
the install round fetches the installer's kernel and initrd (http, https, ftp,
nfs, or the ISO in the VM's CD drive for `cdrom`) into `<boot_dir>/<vm uuid>/`
and boots them with the installer's command line; a second round (SLES) finds
the installed kernel on the VM's disk and names it in PV_bootloader_args. After
the last round PV_bootloader is `pygrub`.

pygrub runs in dom0 on Xen (libxl). libvirt's qemu driver has none, so on KVM
the agent does pygrub's job itself at each start of a `pygrub` VM: it reads the
boot disk's file system (backends/guest_fs.py), takes the kernel named by
PV_bootloader_args or the default entry of the GRUB menu, and boots it
directly. Everything fetched or extracted for a start is removed once the
domain has its copy (qemu and libxl load the kernel at domain build), and on
any failure: then VM.start fails with BOOTLOADER_FAILED and the VM stays Halted.
"""

import dataclasses
import logging
import os
import platform
import shutil
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

from ..backends import domain as D
from ..backends.fetch import FetchCancelled, FetchError, Progress, UrlTree
from ..backends.guest_fs import GuestDisk, GuestFsError
from ..backends.iso_files import IsoTree
from ..backends.nfs_fetch import NfsExport
from ..backends.storage import StorageError
from ..backends.volume_file import VolumeFile
from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from . import domain_policy as policy
from . import grub_menu
from . import install_rules as rules
from . import storage_records as R

log = logging.getLogger("hostagent.eliloader")

ELILOADER, PYGRUB = "eliloader", "pygrub"
POLL = 0.25  # seconds between two looks at a download's progress


@dataclass
class Prepared:
    """What one start boots, and what follows once its domain runs."""

    boot: D.Boot
    directory: str  # the VM's files for this start
    keep: bool = False  # an install round before the last: the downloads stay until then
    fields: Dict[str, object] = field(default_factory=dict)  # VM fields to set after the start
    other_config: Dict[str, str] = field(default_factory=dict)  # other_config keys to set after it
    installer: bool = False  # an install round: the installer's closing reboot halts the VM

    def apply(self, description: D.Domain) -> D.Domain:
        """The domain description with this start's boot. An installer reboots when it is done;
        the hypervisor would boot the same installer again, so that reboot halts the VM instead,
        and the next VM.start runs the next round."""
        changes = {"boot": self.boot}
        if self.installer:
            changes["on_reboot"] = D.DESTROY
        return dataclasses.replace(description, **changes)


def failed(vm: str, message: str) -> ApiError:
    return ApiError("BOOTLOADER_FAILED", vm, message)


async def prepare(ctx, vm: str, driver: str) -> Optional[Prepared]:
    """The boot eliloader (or, on KVM, the agent's pygrub) chooses for this start, or None
    when the VM boots as its records say. Raises BOOTLOADER_FAILED."""
    rec = ctx.store.get("VM", vm)
    if policy.boot_kind(rec) != D.PV or rec["PV_kernel"]:
        return None
    loader = rec["PV_bootloader"]
    if loader == ELILOADER and rec["other_config"].get("install-repository"):
        try:
            plan = rules.plan(rules.load(), rec["other_config"], rec["PV_args"], platform.machine())
        except rules.InstallError as e:
            raise failed(vm, str(e)) from None
        if plan.step == rules.INSTALL:
            return await _install_round(ctx, vm, rec, plan)
        if plan.step == rules.FIND_KERNEL:
            await _find_installed(ctx, vm, rec, plan)
        loader = PYGRUB
        rec = ctx.store.get("VM", vm)
    if loader == PYGRUB and driver == "QEMU":
        return await _pygrub_on_kvm(ctx, vm, rec)
    return None


async def started(ctx, vm: str, prepared: Optional[Prepared]) -> None:
    """The domain runs: advance the round, and drop what it no longer needs."""
    if prepared is None:
        return
    if prepared.fields or prepared.other_config:
        with ctx.store.transaction():
            if prepared.fields:
                ctx.store.update("VM", vm, **prepared.fields)
            if prepared.other_config:
                other = dict(ctx.store.get("VM", vm)["other_config"])
                other.update(prepared.other_config)
                ctx.store.set("VM", vm, "other_config", other)
    if not prepared.keep:
        await _remove_off_reactor(ctx, prepared.directory)


async def abandon(ctx, vm: str, prepared: Optional[Prepared]) -> None:
    """The start failed after prepare: nothing of it stays in the cache."""
    if prepared is not None:
        await _remove_off_reactor(ctx, prepared.directory)


def forget(ctx, uuid: str) -> None:
    """A VM is gone (VM.destroy): its cached installer files go too (a few files: quick)."""
    if ctx.ports.boot_dir:
        directory = _child(ctx.ports.boot_dir, uuid)
        if directory is not None:
            _remove(directory)


# ------------------------------------------------------------------ the install round
async def _install_round(ctx, vm: str, rec: dict, plan: rules.Plan) -> Prepared:
    directory = _directory(ctx, rec)
    repo = plan.repository
    io = None
    try:
        if repo.scheme == rules.CDROM:
            io, size, name = await _open_volume(ctx, vm, rec, cdrom=True)
            source = IsoTree(VolumeFile(io.read, size), name)
        elif repo.scheme == "nfs":
            source = NfsExport(repo.host, repo.path, directory)
        else:
            source = UrlTree(repo.url)
        kernel, initrd = await _blocking(ctx, _gather, source, plan.candidates, directory)
    except (FetchError, GuestFsError) as e:
        await _remove_off_reactor(ctx, directory)
        if isinstance(e, FetchCancelled):
            raise ApiError("TASK_CANCELLED", ctx.task or "") from None
        raise failed(vm, f"{plan.distro} install round {plan.round}: {e}") from None
    except BaseException:
        await _remove_off_reactor(ctx, directory)
        raise
    finally:
        if io is not None:
            await ctx.ports.run_blocking(io.close)
    nxt = {"install-round": str(plan.round + 1)}
    fields = {"PV_bootloader": PYGRUB} if plan.last else {}
    log.info("VM %s: %s install round %d boots %s", rec["uuid"], plan.distro, plan.round, source.describe(""))
    return Prepared(D.Boot(D.PV, kernel=kernel, ramdisk=initrd, cmdline=plan.cmdline), directory,
                    keep=not plan.last, fields=fields, other_config=nxt, installer=True)


def _gather(source, candidates, directory: str, progress: Progress) -> Tuple[str, str]:
    """In a worker thread: the first (kernel, initrd) pair the source holds, copied."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    os.chmod(directory, 0o755)  # qemu (libvirt-qemu) reads the kernel from here
    kernel, initrd = os.path.join(directory, "vmlinuz"), os.path.join(directory, "initrd")
    tried = []
    with source:
        for k, i in candidates:
            try:
                source.copy(k, kernel, progress)
            except FetchError as e:
                if not e.missing:
                    raise
                tried.append(str(e))  # where, and what the source said
                continue
            source.copy(i, initrd, progress)
            for path in (kernel, initrd):
                os.chmod(path, 0o644)
            return kernel, initrd
    raise FetchError(f"no installer kernel found; looked for {'; '.join(tried)}", missing=True)


# ------------------------------------------------------------------ the installed kernel
async def _find_installed(ctx, vm: str, rec: dict, plan: rules.Plan) -> None:
    """SLES's second round: name the installed kernel in PV_bootloader_args, switch to pygrub."""
    io, size, name = await _open_volume(ctx, vm, rec, cdrom=False)
    try:
        kernel, ramdisk = await _blocking(ctx, _installed_pair, io, size, name, plan.installed)
    except GuestFsError as e:
        raise failed(vm, f"{plan.distro} round {plan.round}: {e}") from None
    finally:
        await ctx.ports.run_blocking(io.close)
    other = dict(rec["other_config"], **{"install-round": str(plan.round + 1)})
    with ctx.store.transaction():
        ctx.store.update("VM", vm, PV_bootloader=PYGRUB, PV_bootloader_args=rules.bootloader_args(kernel, ramdisk),
                         other_config=other)
    await _remove_off_reactor(ctx, _directory(ctx, rec))  # the last round: the installer's files are done with
    log.info("VM %s: installed kernel %s, initrd %s", rec["uuid"], kernel, ramdisk)


def _installed_pair(io, size: int, name: str, pairs, progress: Progress) -> Tuple[str, str]:
    disk = GuestDisk(VolumeFile(io.read, size), size, name)
    for kernel, ramdisk in pairs:
        if disk.exists(kernel):
            return kernel, ramdisk if disk.exists(ramdisk) else ""
    raise GuestFsError(f"{name}: no installed kernel; looked for {', '.join(k for k, _ in pairs)}", missing=True)


async def _pygrub_on_kvm(ctx, vm: str, rec: dict) -> Prepared:
    try:
        options = rules.parse_bootloader_args(rec["PV_bootloader_args"])
    except rules.InstallError as e:
        raise failed(vm, str(e)) from None
    directory = _directory(ctx, rec)
    io, size, name = await _open_volume(ctx, vm, rec, cdrom=False)
    try:
        kernel, initrd, args = await _blocking(ctx, _extract_installed, io, size, name, options, directory)
    except GuestFsError as e:
        await _remove_off_reactor(ctx, directory)
        raise failed(vm, f"pygrub: {e}") from None
    except BaseException:
        await _remove_off_reactor(ctx, directory)
        raise
    finally:
        await ctx.ports.run_blocking(io.close)
    extra = " ".join(a for a in (rec["PV_legacy_args"], rec["PV_args"]) if a)
    cmdline = " ".join(a for a in (args, extra) if a)
    return Prepared(D.Boot(D.PV, kernel=kernel, ramdisk=initrd, cmdline=cmdline), directory)


def _extract_installed(io, size: int, name: str, options: dict, directory: str, progress: Progress):
    """In a worker thread: the kernel, initrd and arguments pygrub would boot, copied out."""
    disk = GuestDisk(VolumeFile(io.read, size), size, name)
    if options.get("kernel"):
        entry = grub_menu.Entry("PV_bootloader_args", options["kernel"], options.get("ramdisk", ""),
                                options.get("args", ""))
    else:
        entry = None
        for path in grub_menu.CONFIG_PATHS:
            if disk.exists(path):
                entry = grub_menu.parse(path, disk.read_text(path))
                if entry is not None:
                    break
        if entry is None:
            raise GuestFsError(f"{name}: no GRUB menu with a kernel entry ({', '.join(grub_menu.CONFIG_PATHS)})")
        if "args" in options:
            entry = grub_menu.Entry(entry.title, entry.kernel, entry.initrd, options["args"])
    os.makedirs(directory, mode=0o755, exist_ok=True)
    os.chmod(directory, 0o755)
    kernel = os.path.join(directory, "installed-kernel")
    disk.copy(entry.kernel, kernel)
    initrd = ""
    if entry.initrd:
        initrd = os.path.join(directory, "installed-initrd")
        disk.copy(entry.initrd, initrd)
    for path in (kernel, initrd):
        if path:
            os.chmod(path, 0o644)
    return kernel, initrd, entry.args


# ------------------------------------------------------------------ helpers
async def _open_volume(ctx, vm: str, rec: dict, cdrom: bool):
    """(VolumeIO, size, name) of the VM's CD (cdrom) or boot disk, opened for reading."""
    store = ctx.store
    vbds = [store.get("VBD", v) for v in rec["VBDs"]]
    wanted = [v for v in vbds if (v["type"] == "CD") == cdrom and not v["empty"] and v["VDI"] != NULL_REF
              and store.exists("VDI", v["VDI"])]
    if not cdrom:
        wanted.sort(key=lambda v: (not v["bootable"], int(v["userdevice"])))
    else:
        wanted.sort(key=lambda v: int(v["userdevice"]))
    if not wanted:
        what = "no ISO in its CD drive (install-repository is cdrom)" if cdrom else "no disk to boot from"
        raise failed(vm, f"the VM has {what}")
    vbd = wanted[0]
    vdi = store.get("VDI", vbd["VDI"])
    name = f"VDI {vdi['uuid']} ({vdi['name_label']})"
    try:
        io = await ctx.ports.storage.open_io(R.plugged_driver(ctx, vdi["SR"]), R.volume_of(store, vbd["VDI"]),
                                             False)
    except StorageError as e:
        raise failed(vm, f"{name} cannot be read: {e}") from None
    size = io.size if io.size is not None else vdi["virtual_size"]
    return io, size, name


async def _blocking(ctx, fn: Callable, *args):
    """Run fn(*args, progress) in a worker thread, reporting its progress on the call's task
    and stopping it when the task is cancelled."""
    progress = Progress()
    finished = []

    def work():
        try:
            return fn(*args, progress)
        finally:
            finished.append(True)
    pending = ctx.ports.run_blocking(work)
    ctx.cancellable()
    try:
        while not finished:
            await ctx.sleep(POLL)
            if progress.total:
                ctx.progress(min(0.99, progress.done / progress.total))
            if ctx.task and ctx.tasks.cancel_requested(ctx.task):
                progress.cancel = True
        return await pending
    finally:
        ctx.cancellable(False)  # the domain's start that follows runs to its end


def _directory(ctx, rec: dict) -> str:
    if not ctx.ports.boot_dir:
        raise ApiError("INTERNAL_ERROR", "the agent has no directory for boot files")
    directory = _child(ctx.ports.boot_dir, rec["uuid"])
    if directory is None:
        raise ApiError("INTERNAL_ERROR", f"the VM uuid {rec['uuid']!r} names no directory of its own")
    return directory


def _child(parent: str, name: str) -> str | None:
    """`parent`/`name` when that is a direct child of `parent` (no `/`, `.`, `..`), else None."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        return None
    path = os.path.join(parent, name)
    return path if os.path.dirname(os.path.normpath(path)) == os.path.normpath(parent) else None


async def _remove_off_reactor(ctx, directory: str) -> None:
    """_remove in a worker thread: an rmtree of a VM's boot files must not block the reactor."""
    await ctx.ports.run_blocking(_remove, directory)


def _remove(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)
