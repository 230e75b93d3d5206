#!/usr/bin/env python3
"""The lab end to end: build dom0 if needed, boot it, install the agent, run the `xen` tests.

    python3 lab/run.py [--keep] [PYTEST ARGS...]      (make lab-test)

1. lab/build.py: the dependencies' wheels (resolved with the checkout's .venv, kept in the
   shared cache; dom0 has no network), then the image from the shared cache (built when its
   recipe, dependencies included, changed)
2. lab/boot.py's Dom0: QEMU + Xen + dom0, ssh and the agent's port forwarded to loopback; while
   it boots, this checkout's wheel and the lab's PV guest (lab/guest.py) are made
3. one copy into dom0 (the installer, systemd/, the agent's wheel and byte code, the guest's
   initramfs into /var/lib/hostagent-lab/guest), then scripts/install-dom0 --offline there over
   ssh, as an administrator upgrading would run it: the image's venv has every dependency
4. pytest -m "xen or lab" over tests/lab and the functional files with `lab` tests, with
   HOSTAGENT_LAB_URL, HOSTAGENT_LAB_PASSWORD, HOSTAGENT_LAB_SSH
5. artefacts into build/lab/artefacts/ in one ssh round trip: the journal (agent, libvirtd,
   xen), libvirt's libxl logs, xl info/dmesg, `hostagent doctor`'s report, the install log;
   the serial log and QEMU's command line
6. power-off (QEMU killed when dom0 is not down within POWEROFF_S: the overlay is thrown away);
   prints each phase's time, the total, and QEMU's peak RSS

Exit status: pytest's, or 1 when dom0 crashed (the serial log's crash lines are printed and
pytest is stopped at once). Exits 0 with a "SKIPPED: reason" line when the machine cannot run
the lab: no root, no QEMU, not enough free memory, or no image yet and no network to build one.
"""

import concurrent.futures
import io
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import guest
from boot import MEMORY_MIB, OUT, ROOT, Dom0

import build

VENV_PY = ROOT / ".venv/bin/python"
ARTEFACTS = OUT / "artefacts"
REMOTE = "/root/hostagent-install"
GUEST_DIR = "/var/lib/hostagent-lab/guest"   # the guest kit in dom0, for PV_kernel / PV_ramdisk
# Functional test files with tests marked `lab` (API only), run against the agent in dom0 too
# (tests/functional/lab_agent.py)
LAB_FUNCTIONAL = ("test_errors.py", "test_xenapi_client.py", "test_tasks_events_xenapi.py",
                  "test_storage_file.py")
NEEDED_MIB = MEMORY_MIB + 1536  # QEMU's guest RAM, its translation cache and its own overhead
POWEROFF_S = 30   # dom0's own shutdown; nothing of it is kept, so QEMU is killed after this
# What the artefacts are made of: file name, command in dom0 (run in one ssh session, each
# bounded by `timeout`, the whole sent back as a tar on stdout).
ARTEFACT_COMMANDS = (
    ("journal-hostagent.txt", "journalctl -b -u hostagent --no-pager -o short-precise"),
    ("journal.txt", "journalctl -b --no-pager -o short-precise"),
    ("xl-info.txt", "xl info; echo; xl list"),
    ("xl-dmesg.txt", "xl dmesg"),
    ("hostagent.conf", "cat /etc/hostagent/hostagent.conf"),
    ("libxl-logs.txt", "tail -n 300 /var/log/libvirt/libxl/*.log"),
    ("install.txt", f"cat {REMOTE}/install.log"),
    ("doctor.txt", "hostagent doctor"),
    ("systemd-analyze.txt", "systemd-analyze; systemd-analyze blame | head -n 30"),
)


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


def guest_kit():
    """tests/kvm's guest kit (kernel + busybox initramfs), built or taken from its cache."""
    code = ("from tests.kvm.guestkit import build; "
            "k = build(log=lambda m: None); print(k.kernel); print(k.initrd)")
    r = subprocess.run([str(VENV_PY), "-c", code], check=False, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"lab-run: the guest kit failed:\n{r.stdout}{r.stderr}")
    kernel, initrd = r.stdout.split()
    return Path(kernel), Path(initrd)


def collect(lab, then_poweroff):
    """Every artefact in one ssh round trip (a tar on stdout); with then_poweroff, dom0 is told
    to power off at the end of the same session."""
    if ARTEFACTS.exists():
        shutil.rmtree(ARTEFACTS)
    ARTEFACTS.mkdir(parents=True)
    if not lab.alive():
        (ARTEFACTS / "dom0-unreachable.txt").write_text("QEMU had exited at collection time\n")
        return
    script = ["d=/run/lab-artefacts", "rm -rf $d", "mkdir -p $d"]
    for name, command in ARTEFACT_COMMANDS:
        script.append(f"timeout 120 sh -c {shlex.quote(command)} > $d/{name} 2>&1")
    script.append("tar -C $d -cf - .")
    if then_poweroff:
        script.append("systemctl poweroff --no-block")
    try:
        r = subprocess.run(lab.ssh_argv() + ["; ".join(script)], check=False, capture_output=True,
                           timeout=600)
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
            tar.extractall(ARTEFACTS, filter="data")
    except (subprocess.TimeoutExpired, tarfile.TarError) as e:
        (ARTEFACTS / "dom0-unreachable.txt").write_text(f"collecting the artefacts failed: {e}\n")


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


def agent_bytecode(agent_wheel, dest):
    """The agent's modules (every package of its wheel) byte-compiled here (checked-hash .pyc: valid for the same source and
    Python minor version whatever the files' times), laid out as dom0's site-packages wants them.
    Under emulation the agent's first start spent minutes compiling them; dom0's python takes
    these instead (and compiles them itself should they not fit). Returns the site-packages path."""
    version = subprocess.run([str(VENV_PY), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    site = f"{build.AGENT_VENV}/lib/python{version}/site-packages"
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(agent_wheel) as wheel:
        wheel.extractall(tmp, [n for n in wheel.namelist()
                               if n.endswith(".py") and ".dist-info/" not in n and ".data/" not in n])
        subprocess.run([str(VENV_PY), "-m", "compileall", "-q", "--invalidation-mode", "checked-hash",
                        "-s", tmp, "-p", site, tmp], check=True)
        for pyc in Path(tmp).rglob("*.pyc"):
            target = dest / pyc.relative_to(tmp)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(pyc, target)
    return site


def install(lab, agent_wheel, guest_initrd):
    """One copy into dom0 and one ssh running the installer; returns the agent's root password.
    The wheelhouse sent holds the agent's wheel alone: the image's venv has its dependencies.
    The agent's byte code (agent_bytecode) is put in place first; the installer is unchanged."""
    with tempfile.TemporaryDirectory() as tmp:
        kit = Path(tmp) / "kit"
        (kit / "scripts").mkdir(parents=True)
        for name in ("install-dom0", "xen-qemu-depriv"):
            shutil.copy2(ROOT / "scripts" / name, kit / "scripts")
        shutil.copytree(ROOT / "systemd", kit / "systemd")
        (kit / "wheelhouse").mkdir()
        shutil.copy(agent_wheel, kit / "wheelhouse")
        (kit / "guest").mkdir()
        shutil.copy(guest_initrd, kit / "guest")
        site = agent_bytecode(agent_wheel, kit / "bytecode")
        lab.put([kit / "scripts", kit / "systemd", kit / "wheelhouse", kit / "guest", kit / "bytecode"], REMOTE)
    r = lab.ssh(f"mkdir -p {GUEST_DIR} {site} && mv {REMOTE}/guest/* {GUEST_DIR}/ && "
                f"cp -r {REMOTE}/bytecode/. {site}/ && "
                f"{REMOTE}/scripts/install-dom0 --offline --no-compile --listen 0.0.0.0:8080 "
                f"{REMOTE}/wheelhouse > {REMOTE}/install.log 2>&1; rc=$?; "
                f"cat {REMOTE}/install.log; [ $rc = 0 ] && echo PASSWORD=$(cat /var/lib/hostagent/root-password); "
                f"exit $rc", check=False)
    out = r.stdout
    password = None
    for line in out.splitlines():
        if line.startswith("PASSWORD="):
            password = line[len("PASSWORD="):]
        else:
            print(line)
    if r.returncode != 0 or not password:
        log(f"install-dom0 failed ({r.returncode}){r.stderr}")
        raise SystemExit(1)
    return password


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
    phases = Phases()
    deps, digest, parts = build.prepare()
    phases.done("dependencies' wheels")
    if not (build.image_dir(digest) / "dom0.img").exists():
        why = build.mirror_reachable()
        if why:
            skip(f"no dom0 image built yet and its Debian mirror cannot be reached ({why})")
    image = build.ensure_image(deps, digest, parts)
    phases.done("image")
    lab = Dom0(image_dir=image)
    status = 1
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        lab.start()
        lab_initrd = OUT / "guest-initrd.gz"
        made = pool.submit(lambda: (build.agent_wheel(), guest.build(image, guest_kit()[1], lab_initrd)))
        lab.wait_ssh()
        agent_wheel, guest_kernel = made.result()
        phases.done("boot to ssh (agent's wheel and guest made meanwhile)")
        log(f"dom0: {lab.ssh_command()}")
        password = install(lab, agent_wheel, lab_initrd)
        phases.done("install")
        env = dict(os.environ, HOSTAGENT_LAB_URL=lab.api_url, HOSTAGENT_LAB_PASSWORD=password,
                   HOSTAGENT_LAB_SSH=shlex.join(lab.ssh_argv()),
                   HOSTAGENT_LAB_GUEST_KERNEL=guest_kernel,
                   HOSTAGENT_LAB_GUEST_RAMDISK=f"{GUEST_DIR}/{lab_initrd.name}")
        status = run_tests(lab, env, pytest_args)
        phases.done("tests")
        lab.sample_rss()
        collect(lab, then_poweroff=not keep)
        if keep:
            log(f"--keep: dom0 stays up until Enter: {lab.ssh_command()}  (agent: {lab.api_url})")
            input()
            lab.poweroff(timeout=POWEROFF_S)
        elif lab.alive():
            try:
                lab.proc.wait(POWEROFF_S)
                log("dom0 powered off; qemu exited")
            except subprocess.TimeoutExpired:
                log(f"dom0 not down after {POWEROFF_S} s: killing qemu (its overlay is thrown away)")
        phases.done("artefacts and power-off")
    finally:
        pool.shutdown(cancel_futures=True)
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
