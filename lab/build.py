#!/usr/bin/env python3
"""Build the lab's dom0 image: Debian bookworm + Xen + libvirt's xen driver, no loop mounts.

    python3 lab/build.py [--out build/lab] [--force]

Makes, under build/lab/ (see docs/lab.md):
  id_ed25519{,.pub}            the key that logs into dom0 as root (made once, kept)
  dom0-<hash>/dom0.img         a sparse raw ext4 image (mkfs.ext4 -d from a debootstrap tree)
  dom0-<hash>/xen              the hypervisor, gunzipped (QEMU's multiboot loader wants an ELF)
  dom0-<hash>/vmlinuz, initrd  dom0's kernel and initramfs
  dom0-<hash>/image.json       versions and the recipe
  current -> dom0-<hash>

<hash> covers the recipe: the package lists, the files written into the image, the functions
that build it, the mirror, the ssh public key (not comments or this script's other code). An
image whose recipe did not change is reused at once; older images are removed. Needs root
(debootstrap, chroot), debootstrap and e2fsprogs. Prints how long each phase took.
"""

import argparse
import contextlib
import hashlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = "bookworm"
# debootstrap's own set (minbase) plus what boots and logs in.
BASE_INCLUDE = ["systemd-sysv", "udev", "kmod", "iproute2", "busybox", "ca-certificates"]
# Installed in the chroot without recommends (xen-lab-notes.md), plus what the agent needs at
# run time in dom0 (scripts/install-dom0's DEB_DEPS: dom0 has no network in the lab, so the
# installer finds them already there).
PACKAGES = ["linux-image-amd64", "xen-system-amd64", "qemu-system-xen", "libvirt-daemon-system",
            "libvirt-daemon-driver-xen", "libvirt-clients", "openssh-server", "bridge-utils",
            "xenstore-utils", "python3", "python3-venv", "libpam-modules", "qemu-utils",
            "nbdkit", "nbdkit-plugin-python", "nbd-client", "lvm2", "procps", "less"]
IMAGE_SIZE = "4G"
HOSTNAME = "xenlab"

# libvirt 9.0's xen driver refuses to start under TCG ("Cannot find suitable CPU model for
# given data"): Xen's CPU flags there lack `sep`, which every stock model requires.
CPU_MODEL_NAME = "qemu64-nosep"
CPU_MAP_DIR = "usr/share/libvirt/cpu_map"

NETWORK = """[Match]
Name=en* eth*

[Network]
DHCP=yes
"""
AUTOLOGIN = """[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,38400,9600 %I $TERM
"""
FSTAB = "/dev/vda / ext4 rw,errors=remount-ro 0 1\n"
NO_DAEMONS = "#!/bin/sh\nexit 101\n"


def log(msg):
    print(f"lab-build: {msg}", flush=True)


class Phases:
    def __init__(self):
        self.t0 = self.last = time.monotonic()

    def done(self, name):
        now = time.monotonic()
        log(f"{name}: {now - self.last:.1f} s")
        self.last = now

    def total(self):
        return time.monotonic() - self.t0


def run(*argv, **kw):
    return subprocess.run(argv, check=True, **kw)


def mirror():
    """The Debian mirror the host's apt uses (deb822 or one-line sources)."""
    for path in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")) + [Path("/etc/apt/sources.list")]:
        if not path.exists():
            continue
        text = path.read_text()
        for m in re.finditer(r"^URIs:\s*(\S+)", text, re.M):
            if "security" not in m.group(1):
                return m.group(1)
        for m in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            if "security" not in m.group(1):
                return m.group(1)
    return "http://deb.debian.org/debian"


def ssh_key(out):
    key = out / "id_ed25519"
    if not key.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hostagent-lab", "-f", str(key))
    return key


def recipe(out):
    pub = (out / "id_ed25519.pub").read_text()
    code = "".join(inspect.getsource(f) for f in (build, configure, cpu_map_workaround, in_chroot))
    parts = {"code": code, "suite": SUITE, "mirror": mirror(),
             "include": BASE_INCLUDE, "packages": PACKAGES, "size": IMAGE_SIZE, "pub": pub,
             "files": [HOSTNAME, NETWORK, AUTOLOGIN, FSTAB, NO_DAEMONS, CPU_MODEL_NAME]}
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return digest, parts


@contextlib.contextmanager
def chroot_mounts(tree):
    """/proc, /sys and /dev for package scripts in the chroot; always unmounted again."""
    mounted = []
    try:
        for src, dst, args in (("proc", "proc", ["-t", "proc"]), ("sysfs", "sys", ["-t", "sysfs"]),
                               ("/dev", "dev", ["--bind"]), ("devpts", "dev/pts", ["-t", "devpts"])):
            target = tree / dst
            target.mkdir(exist_ok=True)
            run("mount", *args, src, str(target))
            mounted.append(target)
        yield
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "-l", str(target)], check=False)


def in_chroot(tree, *argv, **kw):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
           "LANG": "C.UTF-8", "HOME": "/root"}
    run("chroot", str(tree), *argv, env=env, **kw)


def cpu_map_workaround(tree):
    cpu_dir = tree / CPU_MAP_DIR
    src = (cpu_dir / "x86_qemu64.xml").read_text()
    model = src.replace("name='qemu64'", f"name='{CPU_MODEL_NAME}'")
    model = model.replace("    <feature name='sep'/>\n", "")
    assert CPU_MODEL_NAME in model and "'sep'" not in model, "unexpected x86_qemu64.xml"
    (cpu_dir / f"x86_{CPU_MODEL_NAME}.xml").write_text(model)
    index = (cpu_dir / "index.xml").read_text()
    line = "    <include filename='x86_qemu64.xml'/>\n"
    assert line in index, "unexpected cpu_map/index.xml"
    index = index.replace(line, line + f"    <include filename='x86_{CPU_MODEL_NAME}.xml'/>\n", 1)
    (cpu_dir / "index.xml").write_text(index)


def configure(tree, pub):
    (tree / "etc/hostname").write_text(HOSTNAME + "\n")
    (tree / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n")
    (tree / "etc/fstab").write_text(FSTAB)
    (tree / "etc/systemd/network/20-wired.network").write_text(NETWORK)
    dropin = tree / "etc/systemd/system/serial-getty@hvc0.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "autologin.conf").write_text(AUTOLOGIN)
    ssh = tree / "root/.ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "authorized_keys").write_text(pub)
    os.chmod(ssh / "authorized_keys", 0o600)
    in_chroot(tree, "systemctl", "enable", "systemd-networkd.service", "ssh.service")
    # An empty machine-id: systemd makes one at first boot.
    (tree / "etc/machine-id").write_text("")
    cpu_map_workaround(tree)


def build(out, digest, parts, phases):
    work = out / f"dom0-{digest}.tmp"
    if work.exists():
        shutil.rmtree(work)
    tree = work / "tree"
    tree.mkdir(parents=True)
    run("debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_INCLUDE),
        SUITE, str(tree), parts["mirror"], stdout=subprocess.DEVNULL)
    phases.done("debootstrap")
    (tree / "usr/sbin/policy-rc.d").write_text(NO_DAEMONS)
    os.chmod(tree / "usr/sbin/policy-rc.d", 0o755)
    with chroot_mounts(tree):
        with open(work / "apt.log", "wb") as apt_log:
            in_chroot(tree, "apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES,
                      stdout=apt_log)
        in_chroot(tree, "apt-get", "clean")
    (tree / "usr/sbin/policy-rc.d").unlink()
    phases.done("packages")
    configure(tree, parts["pub"])
    boot = tree / "boot"
    xen_gz = sorted(boot.glob("xen-*-amd64.gz"))[-1]
    vmlinuz = sorted(boot.glob("vmlinuz-*"))[-1]
    initrd = sorted(boot.glob("initrd.img-*"))[-1]
    with open(work / "xen", "wb") as f:
        run("gunzip", "-c", str(xen_gz), stdout=f)
    shutil.copy(vmlinuz, work / "vmlinuz")
    shutil.copy(initrd, work / "initrd")
    versions = subprocess.run(["chroot", str(tree), "dpkg-query", "-W", "-f", "${Package} ${Version}\n",
                               "xen-hypervisor-common", "libvirt0", "qemu-system-xen", "python3"],
                              check=False, capture_output=True, text=True).stdout
    phases.done("configure")
    run("mkfs.ext4", "-q", "-F", "-L", "dom0", "-d", str(tree), str(work / "dom0.img"), IMAGE_SIZE)
    shutil.rmtree(tree)
    phases.done("mkfs.ext4 -d")
    (work / "image.json").write_text(json.dumps({
        "hash": digest, "xen": xen_gz.name, "kernel": vmlinuz.name, "initrd": initrd.name,
        "versions": versions.split("\n"), "recipe": {k: v for k, v in parts.items() if k != "code"},
    }, indent=1) + "\n")
    final = out / f"dom0-{digest}"
    work.rename(final)
    return final


def image_current(out=ROOT / "build/lab") -> bool:
    """The image of today's recipe is built already (no debootstrap, no network needed)."""
    out = Path(out).resolve()
    if not (out / "id_ed25519.pub").exists():
        return False
    digest, _ = recipe(out)
    return (out / f"dom0-{digest}" / "dom0.img").exists()


def mirror_reachable(timeout=10.0):
    """None when the mirror answers, else why not (debootstrap and apt need it)."""
    import urllib.request
    url = f"{mirror().rstrip('/')}/dists/{SUITE}/Release"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return None
    except Exception as e:  # noqa: BLE001 - any failure means no image can be built
        return f"{url}: {e}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "build/lab"))
    ap.add_argument("--force", action="store_true", help="rebuild even if the recipe did not change")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("lab-build: needs root (debootstrap, chroot)")
    for tool in ("debootstrap", "mkfs.ext4", "ssh-keygen", "gunzip"):
        if not shutil.which(tool):
            sys.exit(f"lab-build: {tool} is missing (apt-get install debootstrap e2fsprogs openssh-client gzip)")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    phases = Phases()
    ssh_key(out)
    digest, parts = recipe(out)
    final = out / f"dom0-{digest}"
    if final.exists() and not args.force:
        log(f"image up to date: {final}")
    else:
        if final.exists():
            shutil.rmtree(final)
        log(f"building {final.name} from {parts['mirror']} ({SUITE})")
        build(out, digest, parts, phases)
    for old in out.glob("dom0-*"):
        if old.name not in (final.name,):
            shutil.rmtree(old, ignore_errors=True)
    current = out / "current"
    if current.is_symlink() or current.exists():
        current.unlink()
    current.symlink_to(final.name)
    log(f"total {phases.total():.1f} s; image in {current}")


if __name__ == "__main__":
    main()
