"""The test guest's kernel and initramfs, built once per machine and cached under build/guestkit/.

The kernel is Debian's, taken out of its package with `apt-get download` and `dpkg-deb -x` (nothing
is installed on the host); the initramfs is busybox (Debian's `busybox-static`), the kernel
modules the guest needs from that same package, and guest_init.sh as /init. The cache is keyed by
a hash of every input (package versions, the init script, the module list, the kit's own code),
so a change to any of them builds a new kit beside the old one.
"""

import dataclasses
import fcntl
import hashlib
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.kvm.cpio import Archive
from tests.kvm.timing import terminal_log

HERE = Path(__file__).resolve().parent
CACHE_ROOT = HERE.parents[1] / "build" / "guestkit"
KERNEL_META_PACKAGE = "linux-image-amd64"
BUSYBOX_PACKAGE = "busybox-static"
# What the guest loads, dependencies added from the modules' own .modinfo: PCI virtio transport,
# disks, NICs (for the VIF tests), and the ACPI power button with the event device acpid reads.
MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "button", "evdev")
CMDLINE = "console=ttyS0,115200 quiet"
POWER_BUTTON_SCRIPT = b"#!/bin/sh\necho POWEROFF >/dev/ttyS0\nsync\npoweroff -f\n"


class KitError(Exception):
    """The kit could not be built; the message says which step failed and why."""


@dataclasses.dataclass(frozen=True)
class GuestKit:
    """A built kit: boot `kernel` with `initrd` and `cmdline` (direct kernel boot)."""

    kernel: Path
    initrd: Path
    kernel_version: str
    cmdline: str
    modules: tuple


@pytest.fixture(scope="session")
def guest_kit(request):
    """The machine's guest kit, built on first use (about 10 s), then read from the cache."""
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        pytest.skip("the guest kit needs Debian's apt-get and dpkg-deb")
    return build(log=terminal_log(request.config))


def build(cache_root: Path = CACHE_ROOT, log=print) -> GuestKit:
    """The kit for today's package versions: from the cache, or built and cached now."""
    started = time.monotonic()
    inputs = _inputs()
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    target = cache_root / key
    kit = _load(target)
    if kit:
        log(f"guestkit: cached kit {target} (kernel {kit.kernel_version}), "
            f"{time.monotonic() - started:.1f} s")
        return kit
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent test run builds it once, not twice
        kit = _load(target)
        if not kit:
            _build_into(target, inputs, log)
            kit = _load(target)
            _remove_other_kits(cache_root, keep=target)
    log(f"guestkit: built {target} (kernel {kit.kernel_version}) in "
        f"{time.monotonic() - started:.1f} s")
    return kit


def _load(target: Path):
    try:
        facts = json.loads((target / "kit.json").read_text())
    except FileNotFoundError:
        return None
    return GuestKit(kernel=target / "vmlinuz", initrd=target / "initrd.gz",
                    kernel_version=facts["kernel_version"], cmdline=facts["cmdline"],
                    modules=tuple(facts["modules"]))


def _remove_other_kits(cache_root: Path, keep: Path) -> None:
    """Kits of older inputs go, and builds that were killed half-way (called under the lock, so
    none is running); a domain booted from an old kit has its own copy (domain.stage_kit)."""
    for path in cache_root.iterdir():
        if path.is_dir() and path != keep:
            shutil.rmtree(path, ignore_errors=True)


def _inputs() -> dict:
    records = _apt_show([KERNEL_META_PACKAGE, BUSYBOX_PACKAGE])
    found = re.search(r"(linux-image-[^\s,()]+)(?: \(= ([^)\s]+)\))?",
                      records.get(KERNEL_META_PACKAGE, {}).get("Depends", ""))
    if not found:
        raise KitError(f"apt-cache names no kernel image that {KERNEL_META_PACKAGE} depends on")
    kernel_version = found.group(2) or records[KERNEL_META_PACKAGE]["Version"]
    busybox_version = _installed_version(BUSYBOX_PACKAGE) or records[BUSYBOX_PACKAGE]["Version"]
    return {
        "kernel": [found.group(1), kernel_version],
        "busybox": [BUSYBOX_PACKAGE, busybox_version],
        "modules": list(MODULES),
        "cmdline": CMDLINE,
        "power_button": POWER_BUTTON_SCRIPT.decode(),
        "code": {name: hashlib.sha256((HERE / name).read_bytes()).hexdigest()
                 for name in ("guest_init.sh", "guestkit.py", "cpio.py")},
    }


def _build_into(target: Path, inputs: dict, log) -> None:
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        phase = time.monotonic()
        debs = work / "debs"
        debs.mkdir()
        wanted = [inputs["kernel"]]
        busybox = Path("/bin/busybox")
        if not _busybox_installed():
            wanted.append(inputs["busybox"])
        _run(["apt-get", "download", "-q"] + [f"{name}={version}" for name, version in wanted],
             cwd=debs, what="apt-get download")
        log(f"guestkit: downloaded {', '.join(name for name, _ in wanted)} in "
            f"{time.monotonic() - phase:.1f} s")

        phase = time.monotonic()
        root = work / "root"
        for deb in debs.glob("*.deb"):
            _run(["dpkg-deb", "-x", str(deb), str(root)], what=f"dpkg-deb -x {deb.name}")
        if not _busybox_installed():
            busybox = root / "bin" / "busybox"
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        if len(kernels) != 1:
            raise KitError(f"expected one kernel in {inputs['kernel'][0]}, found {kernels}")
        version = kernels[0].name[len("vmlinuz-"):]
        log(f"guestkit: extracted kernel {version} in {time.monotonic() - phase:.1f} s")

        phase = time.monotonic()
        modules = _with_dependencies(root / "lib" / "modules" / version, MODULES)
        initrd = _initramfs(busybox.read_bytes(), modules)
        out = work / "kit"
        out.mkdir()
        shutil.copyfile(kernels[0], out / "vmlinuz")
        (out / "initrd.gz").write_bytes(initrd)
        facts = {"kernel_version": version, "cmdline": CMDLINE,
                 "modules": [name for name, _ in modules], "inputs": inputs}
        (out / "kit.json").write_text(json.dumps(facts, indent=2) + "\n")
        out.chmod(0o755)  # qemu runs as libvirt-qemu and must read the kernel and initramfs
        out.rename(target)
        log(f"guestkit: initramfs {len(initrd) >> 10} KiB with {len(modules)} modules in "
            f"{time.monotonic() - phase:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _initramfs(busybox: bytes, modules: list) -> bytes:
    archive = Archive()
    for path in ("/bin", "/dev", "/etc", "/etc/guestkit", "/etc/acpi", "/etc/acpi/PWRF", "/lib",
                 "/lib/modules", "/proc", "/sys", "/tmp", "/root"):
        archive.directory(path)
    archive.char_device("/dev/console", 5, 1)
    archive.file("/bin/busybox", busybox, mode=0o755)
    archive.symlink("/bin/sh", "busybox")
    archive.file("/init", (HERE / "guest_init.sh").read_bytes(), mode=0o755)
    archive.file("/etc/acpi/PWRF/00000080", POWER_BUTTON_SCRIPT, mode=0o755)
    order = []
    for name, data in modules:
        archive.file(f"/lib/modules/{name}.ko", data)
        order.append(f"{name}.ko\n")
    archive.file("/etc/guestkit/modules", "".join(order).encode())
    return archive.gzipped()


def _with_dependencies(module_dir: Path, wanted) -> list:
    """[(name, uncompressed .ko bytes)] for `wanted` and what they depend on, dependencies first.

    Debian's package ships no modules.dep (depmod runs at install), so the `depends=` field of
    each module's .modinfo section is read instead.
    """
    files = {}
    for path in module_dir.joinpath("kernel").rglob("*.ko*"):
        name = path.name.split(".ko")[0].replace("-", "_")
        files[name] = path
    ordered, seen = [], set()

    def visit(name, chain):
        if name in seen:
            return
        if name not in files:
            raise KitError(f"module {name} (needed by {' <- '.join(chain) or 'the guest'}) is "
                           f"not in {module_dir}; is it built in to this kernel?")
        data = _module_bytes(files[name])
        for dependency in _modinfo(data).get("depends", "").split(","):
            if dependency:
                visit(dependency.replace("-", "_"), [name] + chain)
        seen.add(name)
        ordered.append((name, data))

    for name in wanted:
        visit(name, [])
    return ordered


def _module_bytes(path: Path) -> bytes:
    if path.name.endswith(".ko"):
        return path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(path.read_bytes())
    raise KitError(f"cannot decompress {path}: busybox insmod needs a plain .ko")


def _modinfo(elf: bytes) -> dict:
    """The key=value strings of an ELF64 module's .modinfo section."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise KitError("not a little-endian ELF64 kernel module")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    strtab_offset = sections[shstrndx][4]
    for name_offset, _, _, _, offset, size in sections:
        end = elf.index(b"\0", strtab_offset + name_offset)
        if elf[strtab_offset + name_offset:end] == b".modinfo":
            pairs = (item.split(b"=", 1) for item in elf[offset:offset + size].split(b"\0") if b"=" in item)
            return {key.decode(): value.decode(errors="replace") for key, value in pairs}
    return {}


def _busybox_installed() -> bool:
    return _installed_version(BUSYBOX_PACKAGE) is not None and Path("/bin/busybox").exists()


def _installed_version(package: str):
    result = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", package],
                            capture_output=True, text=True)
    status, _, version = result.stdout.partition(" ")
    return version if result.returncode == 0 and status == "installed" else None


def _apt_show(packages) -> dict:
    """{package: {field: value}} of the candidate versions, in one apt-cache call (each costs
    about a second where apt keeps no binary cache); the package lists are fetched once when
    they lack a package."""
    for attempt in range(2):
        result = subprocess.run(["apt-cache", "show", "--no-all-versions", *packages],
                                capture_output=True, text=True)
        records = {}
        for block in result.stdout.split("\n\n"):
            fields = dict(re.findall(r"^([\w-]+): (.*)$", block, re.M))
            if "Package" in fields:
                records.setdefault(fields["Package"], fields)
        if all(name in records for name in packages):
            return records
        if attempt == 0:
            _run(["apt-get", "update", "-q"], what="apt-get update")
    raise KitError(f"apt-cache knows none of {sorted(set(packages) - set(records))}: "
                   f"{result.stderr.strip()[-500:]}")


def _run(argv, what, cwd=None) -> str:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise KitError(f"{what} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result.stdout
