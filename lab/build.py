#!/usr/bin/env python3
"""Build the lab's dom0 image: Debian bookworm + Xen + libvirt's xen driver, no loop mounts.

    python3 lab/build.py [--force]

Makes, in the image cache shared by every checkout on this machine ($HOSTAGENT_LAB_CACHE,
default /var/cache/hostagent-lab; see docs/lab.md):
  id_ed25519{,.pub}            the key that logs into dom0 as root (made once, kept)
  dom0-<hash>/dom0.img         a sparse raw ext4 image (mkfs.ext4 -d from a debootstrap tree)
  dom0-<hash>/xen              the hypervisor, gunzipped (QEMU's multiboot loader wants an ELF)
  dom0-<hash>/vmlinuz, initrd  dom0's kernel and initramfs
  dom0-<hash>/image.json       versions and the recipe
  wheels/, resolved/           every dependency wheel resolved so far (pip wheel, .venv), and
                               which of them setup.cfg's requirements took
and in this checkout's build/lab/:
  wheelhouse/                  this checkout's wheel (lab/run.py makes it)
  current -> the cache's dom0-<hash>

The image holds the agent's venv (/opt/hostagent, scripts/install-dom0's PREFIX) with every
dependency of the wheelhouse but the agent itself, installed and byte-compiled in the chroot at
native speed: install-dom0 in the booted dom0 then installs only the agent's wheel, as an
administrator's upgrade does. <hash> covers the recipe: the package lists, the files written
into the image, the functions that build it, the mirror, the ssh public key and the dependency
wheels' names and versions (not comments or this script's other code). An image whose recipe
did not change is reused at once; images unused for two days are removed, and all but the
newest MAX_IMAGES. Needs root (debootstrap, chroot), debootstrap and e2fsprogs. Prints how long
each phase took.
"""

import argparse
import contextlib
import fcntl
import hashlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import initramfs

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build/lab"
CACHE = Path(os.environ.get("HOSTAGENT_LAB_CACHE") or "/var/cache/hostagent-lab")
KEY = CACHE / "id_ed25519"
WHEELHOUSE = OUT / "wheelhouse"
VENV_PY = ROOT / ".venv/bin/python"
MAX_IMAGES = 3            # the cache keeps at most this many images (other checkouts' recipes)
MAX_IDLE_S = 2 * 86400    # ... and none unused for longer
# scripts/install-dom0's PREFIX: the installer finds this venv and installs only the agent.
AGENT_VENV = "/opt/hostagent"
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

AUTOLOGIN = """[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,38400,9600 %I $TERM
"""
FSTAB = "/dev/vda / ext4 rw,errors=remount-ro 0 1\n"
NO_DAEMONS = "#!/bin/sh\nexit 101\n"
# Units the lab's dom0 does not need, masked: periodic jobs (whose catch-up runs at boot under
# TCG cost seconds each), xendomains (saves/restores domains across reboots; the lab's domains
# are the tests'), and waiting for a network dom0 does not have.
MASKED = ["apt-daily.timer", "apt-daily-upgrade.timer", "man-db.timer", "e2scrub_all.timer",
          "e2scrub_reap.service", "fstrim.timer", "dpkg-db-backup.timer", "logrotate.timer",
          "systemd-tmpfiles-clean.timer", "xendomains.service", "libvirt-guests.service",
          "systemd-networkd-wait-online.service"]
# Devices of QEMU's PC the lab never uses; their drivers' probing is seconds under TCG.
BLACKLIST = "".join(f"blacklist {m}\n" for m in ("floppy", "ata_piix", "ata_generic", "pata_acpi",
                                                   "sr_mod", "cdrom", "pcspkr", "bochs"))
# No PAM for ssh sessions: no logind session, no per-login `systemd --user` (about 8 s each
# under TCG, started again after every pause in the lab's many short ssh commands).
SSHD_CONF = "UsePAM no\n"


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
        for m in re.finditer(r"^URIs:\s*(\S+)", text, re.MULTILINE):
            if "security" not in m.group(1):
                return m.group(1)
        for m in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.MULTILINE):
            if "security" not in m.group(1):
                return m.group(1)
    return "http://deb.debian.org/debian"


def ssh_key():
    """The lab's key, kept with the images it is baked into (a new key means a new image)."""
    if not KEY.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = CACHE / f"id_ed25519.{os.getpid()}"
        old = OUT / "id_ed25519"  # a checkout's key from before the shared cache: kept
        if old.is_file() and not old.is_symlink() and Path(f"{old}.pub").is_file():
            shutil.copy2(f"{old}.pub", f"{tmp}.pub")
            shutil.copy2(old, tmp)
        else:
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hostagent-lab", "-f", str(tmp))
        os.rename(f"{tmp}.pub", f"{KEY}.pub")
        os.rename(tmp, KEY)
    return KEY


def requirements():
    """setup.cfg's install_requires: what the agent's venv needs besides the agent."""
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    return [x.strip() for x in lines if x.strip() and not x.strip().startswith("#")]


def pip_wheel(*args):
    return subprocess.run([str(VENV_PY), "-m", "pip", "wheel", "-q", "--disable-pip-version-check", *args],
                          check=False, capture_output=True, text=True)


def dependency_wheels():
    """Every dependency's wheel, in the cache's wheels/ (dom0 has no network). Resolved from
    those wheels without the network when they satisfy setup.cfg (so the image, whose recipe
    names them, stays the same from run to run and in every checkout), else with the index,
    new wheels joining wheels/. A resolution is remembered under the requirements and the
    wheels there (resolved/), so an unchanged setup.cfg costs no pip run. Returns their paths."""
    if not VENV_PY.exists():
        sys.exit("lab-build: no .venv: run `make venv` first (the wheels are resolved with its pip)")
    shared = CACHE / "wheels"
    shared.mkdir(parents=True, exist_ok=True)
    reqs = requirements()
    memo = CACHE / "resolved" / f"{resolution_key(reqs, shared)}.json"
    if memo.exists():
        return [shared / name for name in json.loads(memo.read_text())]
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        r = pip_wheel("--no-index", "--find-links", str(shared), "-w", tmp, *reqs)
        if r.returncode != 0:
            log("the cached wheels do not satisfy setup.cfg: resolving with the index")
            shutil.rmtree(tmp)
            r = pip_wheel("--find-links", str(shared), "-w", tmp, *reqs)
            if r.returncode != 0:
                sys.exit(f"lab-build: pip wheel failed:\n{r.stdout}{r.stderr}")
        names = sorted(w.name for w in Path(tmp).glob("*.whl"))
        for name in names:
            if not (shared / name).exists():
                os.replace(Path(tmp) / name, shared / name)
    memo.parent.mkdir(exist_ok=True)
    memo.write_text(json.dumps(names))
    # new wheels change the listing: remembered under that one too
    (memo.parent / f"{resolution_key(reqs, shared)}.json").write_text(json.dumps(names))
    return [shared / name for name in names]


def resolution_key(reqs, shared):
    return hashlib.sha256(json.dumps([reqs, sorted(w.name for w in shared.glob("*.whl"))]).encode()).hexdigest()[:16]


def agent_wheel():
    """This checkout's wheel (pip wheel --no-deps), into build/lab/wheelhouse/."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WHEELHOUSE) as tmp:
        r = pip_wheel("--no-deps", "-w", tmp, str(ROOT))
        wheels = list(Path(tmp).glob("hostagent-*.whl"))
        if r.returncode != 0 or len(wheels) != 1:
            sys.exit(f"lab-build: pip wheel of {ROOT} failed:\n{r.stdout}{r.stderr}")
        for old in WHEELHOUSE.glob("*.whl"):
            old.unlink()
        final = WHEELHOUSE / wheels[0].name
        wheels[0].replace(final)
    return final


def recipe(deps):
    pub = (CACHE / "id_ed25519.pub").read_text()
    code = "".join(inspect.getsource(f) for f in (build, configure, cpu_map_workaround, in_chroot,
                                                  agent_venv, initramfs))
    parts = {"code": code, "suite": SUITE, "mirror": mirror(),
             "include": BASE_INCLUDE, "packages": PACKAGES, "size": IMAGE_SIZE, "pub": pub,
             "files": [HOSTNAME, AUTOLOGIN, FSTAB, NO_DAEMONS, CPU_MODEL_NAME,
                       BLACKLIST, SSHD_CONF],
             "masked": MASKED, "venv": AGENT_VENV, "wheels": sorted(w.name for w in deps)}
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
    dropin = tree / "etc/systemd/system/serial-getty@hvc0.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "autologin.conf").write_text(AUTOLOGIN)
    ssh = tree / "root/.ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "authorized_keys").write_text(pub)
    os.chmod(ssh / "authorized_keys", 0o600)
    # the network: lab/initramfs.py configures it (QEMU's user mode), no DHCP client here
    in_chroot(tree, "systemctl", "enable", "-q", "ssh.service")
    in_chroot(tree, "systemctl", "mask", "-q", *MASKED)
    (tree / "etc/ssh/sshd_config.d/lab.conf").write_text(SSHD_CONF)
    (tree / "etc/modprobe.d/lab-blacklist.conf").write_text(BLACKLIST)
    # An empty machine-id: systemd makes one at first boot.
    (tree / "etc/machine-id").write_text("")
    cpu_map_workaround(tree)


def agent_venv(tree, deps):
    """The installer's venv with the agent's dependencies, made and byte-compiled by dom0's own
    python3 in the chroot (native speed; under TCG the venv alone took about 70 s)."""
    wheels = tree / "tmp/lab-wheels"
    wheels.mkdir(parents=True)
    for w in deps:
        shutil.copy(w, wheels)
    in_chroot(tree, "python3", "-m", "venv", AGENT_VENV)
    in_chroot(tree, f"{AGENT_VENV}/bin/pip", "install", "-q", "--disable-pip-version-check",
              "--no-index", *(f"/tmp/lab-wheels/{w.name}" for w in deps))
    shutil.rmtree(wheels)


def build(out, digest, parts, phases, deps):
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
    with chroot_mounts(tree):
        agent_venv(tree, deps)
    phases.done(f"the agent's venv ({len(deps)} dependencies)")
    with chroot_mounts(tree):
        configure(tree, parts["pub"])
    boot = tree / "boot"
    xen_gz = max(boot.glob("xen-*-amd64.gz"))
    vmlinuz = max(boot.glob("vmlinuz-*"))
    with open(work / "xen", "wb") as f:
        run("gunzip", "-c", str(xen_gz), stdout=f)
    shutil.copy(vmlinuz, work / "vmlinuz")
    (work / "initrd").write_bytes(initramfs.build(tree, vmlinuz.name[len("vmlinuz-"):]))
    versions = subprocess.run(["chroot", str(tree), "dpkg-query", "-W", "-f", "${Package} ${Version}\n",
                               "xen-hypervisor-common", "libvirt0", "qemu-system-xen", "python3"],
                              check=False, capture_output=True, text=True).stdout
    phases.done("configure")
    run("mkfs.ext4", "-q", "-F", "-L", "dom0", "-d", str(tree), str(work / "dom0.img"), IMAGE_SIZE)
    shutil.rmtree(tree)
    phases.done("mkfs.ext4 -d")
    (work / "image.json").write_text(json.dumps({
        "hash": digest, "xen": xen_gz.name, "kernel": vmlinuz.name, "initrd": "lab/initramfs.py",
        "versions": versions.split("\n"), "recipe": {k: v for k, v in parts.items() if k != "code"},
    }, indent=1) + "\n")
    final = out / f"dom0-{digest}"
    work.rename(final)
    return final


def image_dir(digest) -> Path:
    return CACHE / f"dom0-{digest}"


@contextlib.contextmanager
def cache_lock():
    """One builder or pruner at a time across checkouts (CI's clone, a developer's tree)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def prune(keep):
    """Unfinished builds, and images unused for MAX_IDLE_S or beyond the newest MAX_IMAGES."""
    for tmp in CACHE.glob("dom0-*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)
    others = sorted((d for d in CACHE.glob("dom0-*") if d != keep and d.is_dir()),
                    key=lambda d: (d / "last-used").stat().st_mtime if (d / "last-used").exists() else 0,
                    reverse=True)
    now = time.time()
    for n, d in enumerate(others):
        used = d / "last-used"
        idle = now - used.stat().st_mtime if used.exists() else MAX_IDLE_S + 1
        if n >= MAX_IMAGES - 1 or idle > MAX_IDLE_S:
            log(f"removing {d.name} from the cache (unused for {idle / 3600:.0f} h)")
            shutil.rmtree(d, ignore_errors=True)


def prepare():
    """The key and the dependencies' wheels, then the recipe: (dependency wheels, digest, parts)."""
    ssh_key()
    deps = dependency_wheels()
    digest, parts = recipe(deps)
    return deps, digest, parts


def ensure_image(deps, digest, parts, force=False) -> Path:
    """The image of this recipe, built unless the cache has it; build/lab/current links to it."""
    phases = Phases()
    final = image_dir(digest)
    with cache_lock():
        if (final / "dom0.img").exists() and not force:
            log(f"image up to date: {final}")
        else:
            if final.exists():
                shutil.rmtree(final)
            log(f"building {final} from {parts['mirror']} ({SUITE})")
            build(CACHE, digest, parts, phases, deps)
            log(f"built in {phases.total():.1f} s")
        (final / "last-used").touch()
        prune(keep=final)
    OUT.mkdir(parents=True, exist_ok=True)
    for link, target in ((OUT / "current", final), (OUT / "id_ed25519", KEY), (OUT / "id_ed25519.pub", f"{KEY}.pub")):
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    return final


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
    ap.add_argument("--force", action="store_true", help="rebuild even if the recipe did not change")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("lab-build: needs root (debootstrap, chroot)")
    for tool in ("debootstrap", "mkfs.ext4", "ssh-keygen", "gunzip"):
        if not shutil.which(tool):
            sys.exit(f"lab-build: {tool} is missing (apt-get install debootstrap e2fsprogs openssh-client gzip)")
    t0 = time.monotonic()
    deps, digest, parts = prepare()
    log(f"dependencies' wheels: {time.monotonic() - t0:.1f} s ({len(deps)})")
    ensure_image(deps, digest, parts, force=args.force)
    log(f"total {time.monotonic() - t0:.1f} s; image in {OUT / 'current'}")


if __name__ == "__main__":
    main()
