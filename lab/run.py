#!/usr/bin/env python3
"""The lab end to end: build dom0 if needed, boot it, install the agent, run the `xen` tests.

    python3 lab/run.py [--keep] [PYTEST ARGS...]      (make lab-test)

1. lab/build.py (cached image), a wheelhouse of this checkout and its dependencies built with
   the checkout's .venv (dom0 has no network: everything it installs comes from here), and
   the lab's PV guest (lab/guest.py; its initramfs copied into dom0's /var/lib/hostagent-lab/guest)
2. lab/boot.py's Dom0: QEMU + Xen + dom0, ssh and the agent's port forwarded to loopback
3. scripts/install-dom0 --offline in dom0 over ssh, as an administrator would run it
4. pytest -m "xen or lab" over tests/lab and the functional files with `lab` tests, with
   HOSTAGENT_LAB_URL, HOSTAGENT_LAB_PASSWORD, HOSTAGENT_LAB_SSH
5. artefacts into build/lab/artefacts/: the journal (agent, libvirtd, xen), libvirt's libxl
   logs, xl info/dmesg, `hostagent doctor`'s report, the serial log, QEMU's command line
6. power-off; prints each phase's time, the total, and QEMU's peak RSS

Exit status: pytest's, or 1 when dom0 crashed (the serial log's crash lines are printed and
pytest is stopped at once). Exits 0 with a "SKIPPED: reason" line when the machine cannot run
the lab: no root, no QEMU, not enough free memory, or no image yet and no network to build one.
"""

import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from boot import MEMORY_MIB, OUT, ROOT, Dom0  # noqa: E402
from build import image_current, mirror_reachable  # noqa: E402
import guest  # noqa: E402

VENV_PY = ROOT / ".venv/bin/python"
WHEELHOUSE = OUT / "wheelhouse"
ARTEFACTS = OUT / "artefacts"
REMOTE = "/root/hostagent-install"
GUEST_DIR = "/var/lib/hostagent-lab/guest"   # the guest kit in dom0, for PV_kernel / PV_ramdisk
# Functional test files with tests marked `lab` (API only), run against the agent in dom0 too
# (tests/functional/lab_agent.py)
LAB_FUNCTIONAL = ("test_errors.py", "test_xenapi_client.py", "test_tasks_events_xenapi.py",
                  "test_storage_file.py")
NEEDED_MIB = MEMORY_MIB + 1536  # QEMU's guest RAM, its translation cache and its own overhead


def log(msg):
    print(f"lab-run: {msg}", flush=True)


def skip(reason):
    """Not a pass: the lab did not run, and says why (make lab-test exits 0 for CI)."""
    print(f"lab-run: SKIPPED: {reason}", flush=True)
    sys.exit(0)


def available_mib():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


class Phases:
    def __init__(self):
        self.t0 = self.last = time.monotonic()
        self.rows = []

    def done(self, name):
        now = time.monotonic()
        self.rows.append((name, now - self.last))
        log(f"{name}: {now - self.last:.1f} s")
        self.last = now

    def summary(self):
        return ", ".join(f"{n} {t:.0f} s" for n, t in self.rows)


def wheelhouse():
    """This checkout's wheel plus every dependency's, for pip --no-index in dom0."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    for old in WHEELHOUSE.glob("hostagent-*"):
        old.unlink()
    r = subprocess.run([str(VENV_PY), "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
                        "--find-links", str(WHEELHOUSE), "-w", str(WHEELHOUSE), str(ROOT)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"lab-run: pip wheel failed:\n{r.stdout}{r.stderr}")


def guest_kit():
    """tests/kvm's guest kit (kernel + busybox initramfs), built or taken from its cache."""
    r = subprocess.run([str(VENV_PY), "-c", "from tests.kvm.guestkit import build; "
                        "k = build(log=lambda m: None); print(k.kernel); print(k.initrd)"],
                       cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"lab-run: the guest kit failed:\n{r.stdout}{r.stderr}")
    kernel, initrd = r.stdout.split()
    return Path(kernel), Path(initrd)


def collect(lab):
    if ARTEFACTS.exists():
        shutil.rmtree(ARTEFACTS)
    ARTEFACTS.mkdir(parents=True)
    if not lab.responsive():
        (ARTEFACTS / "dom0-unreachable.txt").write_text("dom0 did not answer ssh at collection time\n")
    else:
        for name, command in (
                ("journal-hostagent.txt", "journalctl -b -u hostagent --no-pager -o short-precise"),
                ("journal.txt", "journalctl -b --no-pager -o short-precise"),
                ("xl-info.txt", "xl info; echo; xl list"),
                ("xl-dmesg.txt", "xl dmesg"),
                ("hostagent.conf", "cat /etc/hostagent/hostagent.conf"),
                ("libxl-logs.txt", "tail -n 300 /var/log/libvirt/libxl/*.log 2>&1 || true"),
                ("install.txt", f"cat {REMOTE}/install.log 2>/dev/null || true")):
            try:
                r = lab.ssh(command, check=False, timeout=60)
                (ARTEFACTS / name).write_text(r.stdout + r.stderr)
            except subprocess.TimeoutExpired:
                (ARTEFACTS / name).write_text(f"timed out: {command}\n")


def run_tests(lab, env, pytest_args):
    """pytest -m "xen or lab" over tests/lab and LAB_FUNCTIONAL; stopped as soon as the serial
    log shows dom0 or Xen crashed."""
    tests = subprocess.Popen([str(VENV_PY), "-m", "pytest", "-m", "xen or lab", "-p", "no:cacheprovider",
                              "--timeout=240", str(ROOT / "tests/lab"),
                              *(str(ROOT / "tests/functional" / f) for f in LAB_FUNCTIONAL),
                              *pytest_args], cwd=ROOT, env=env)
    while tests.poll() is None:
        time.sleep(2)
        lab.sample_rss()
        if lab.crash_lines():
            log("the serial log shows a crash: stopping pytest")
            tests.terminate()
            tests.wait()
            return 1
    return tests.returncode


def install(lab, guest_initrd):
    lab.put([ROOT / "scripts/install-dom0", ROOT / "scripts/xen-qemu-depriv"], f"{REMOTE}/scripts")
    lab.put(ROOT / "systemd", REMOTE)
    lab.put(WHEELHOUSE, REMOTE)
    lab.put(guest_initrd, GUEST_DIR)
    r = lab.ssh(f"{REMOTE}/scripts/install-dom0 --offline --no-compile --listen 0.0.0.0:8080 "
                f"{REMOTE}/wheelhouse > {REMOTE}/install.log 2>&1; rc=$?; "
                f"cat {REMOTE}/install.log; exit $rc", check=False)
    print(r.stdout, end="")
    if r.returncode != 0:
        log(f"install-dom0 failed ({r.returncode}){r.stderr}")
        raise SystemExit(1)
    return lab.ssh("cat /var/lib/hostagent/root-password").stdout.strip()


def stop_on_sigterm(signum, frame):
    """SIGTERM (a CI time limit's `timeout`) unwinds like an error: QEMU, in its own session,
    is killed on the way out rather than left running."""
    raise SystemExit(f"lab-run: stopped by signal {signum}")


def main():
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    pytest_args = sys.argv[1:]
    keep = "--keep" in pytest_args
    if keep:
        pytest_args.remove("--keep")
    if os.geteuid() != 0:
        skip("the lab needs root (debootstrap, chroot)")
    for tool in ("qemu-system-x86_64", "qemu-img", "debootstrap", "ssh"):
        if not shutil.which(tool):
            skip(f"{tool} is missing (make deps installs qemu-system-x86, qemu-utils, debootstrap, openssh-client)")
    if available_mib() < NEEDED_MIB:
        skip(f"{available_mib()} MiB of memory available, the lab needs about {NEEDED_MIB} MiB")
    if not VENV_PY.exists():
        sys.exit("lab-run: no .venv: run `make venv` first")
    if not image_current():
        why = mirror_reachable()
        if why:
            skip(f"no dom0 image built yet and its Debian mirror cannot be reached ({why})")
    phases = Phases()
    subprocess.run([sys.executable, str(ROOT / "lab/build.py")], check=True)
    phases.done("build (image)")
    wheelhouse()
    _kit_kernel, kit_initrd = guest_kit()
    lab_initrd = OUT / "guest-initrd.gz"
    guest_kernel = guest.build((OUT / "current").resolve(), kit_initrd, lab_initrd)
    phases.done("build (wheelhouse, guest)")
    lab = Dom0()
    status = 1
    try:
        lab.start()
        lab.wait_ssh()
        phases.done("boot to ssh")
        log(f"dom0: {lab.ssh_command()}")
        password = install(lab, lab_initrd)
        phases.done("install")
        env = dict(os.environ, HOSTAGENT_LAB_URL=lab.api_url, HOSTAGENT_LAB_PASSWORD=password,
                   HOSTAGENT_LAB_SSH=shlex.join(lab.ssh_argv()),
                   HOSTAGENT_LAB_GUEST_KERNEL=guest_kernel,
                   HOSTAGENT_LAB_GUEST_RAMDISK=f"{GUEST_DIR}/{lab_initrd.name}")
        status = run_tests(lab, env, pytest_args)
        phases.done("tests")
        lab.sample_rss()
        collect(lab)
        r = lab.ssh("hostagent doctor", check=False, timeout=120)
        (ARTEFACTS / "doctor.txt").write_text(r.stdout + r.stderr)
        if keep:
            log(f"--keep: dom0 stays up until Enter: {lab.ssh_command()}  (agent: {lab.api_url})")
            input()
        lab.poweroff()
        phases.done("artefacts and power-off")
    finally:
        lab.sample_rss()
        lab.kill()
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        for f in (lab.serial_log, lab.run_dir / "qemu.argv", lab.run_dir / "qemu.out"):
            if f.exists():
                shutil.copy(f, ARTEFACTS / f.name)
    crashes = lab.crash_lines()
    if crashes:
        log("DOM0 CRASHED (the serial log, " + str(ARTEFACTS / "serial.log") + "):\n  "
            + "\n  ".join(crashes[:10]))
        status = status or 1
    total = time.monotonic() - phases.t0
    children_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    log(f"{phases.summary()}")
    log(f"total {total:.0f} s ({total / 60:.1f} min); peak memory: qemu {lab.peak_rss_kib / 1024:.0f} MiB "
        f"(largest process of the run {max(children_mib, lab.peak_rss_kib / 1024):.0f} MiB); "
        f"{'PASSED' if status == 0 else 'FAILED'} (pytest exit {status}); artefacts in {ARTEFACTS}")
    return status


if __name__ == "__main__":
    sys.exit(main())
