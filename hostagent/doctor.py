"""`hostagent doctor`: what this machine lacks to be the agent's Xen dom0.

Each check prints one line, `ok`, `warn` or `FAIL`, with what it found; the exit status is 1
when any check fails (the agent cannot run domains here as it is), else 0. Warnings name what
only some features need (bridges for VIFs, the users that keep device models off root). It
reads, it never changes anything, and it needs no running agent.

`System` is every question asked of the machine, so that tests can answer them.
"""

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import List, Optional, Tuple

OK, WARN, FAIL = "ok", "warn", "FAIL"
GUEST_MIB = 128      # the smallest useful guest (the lab's busybox guests)
DOM0_MIB = 256       # what dom0 should keep available for the agent, libvirt and nbdkit
XENSTORE_TOOLS = ("xenstore-read", "xenstore-write", "xenstore-ls")
QEMU_USERS = ("xen-qemuuser-range-base", "xen-qemuuser-shared")


@dataclass(frozen=True)
class Result:
    status: str
    name: str
    detail: str


class System:
    """The machine as the checks see it."""

    def read(self, path: str) -> Optional[str]:
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return None

    def which(self, name: str) -> Optional[str]:
        return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")

    def run(self, argv: List[str], timeout: float = 10.0) -> Tuple[int, str]:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            return 127, str(e)
        return done.returncode, (done.stdout + done.stderr).strip()

    def listdir(self, path: str) -> List[str]:
        try:
            return sorted(os.listdir(path))
        except OSError:
            return []

    def user_exists(self, name: str) -> bool:
        try:
            pwd.getpwnam(name)
            return True
        except KeyError:
            return False

    def libvirt(self, uri: str, timeout: float = 15.0) -> Tuple[str, int]:
        """(driver type, hypervisor's free memory in bytes); raises with libvirt's reason."""
        out: dict = {}

        def ask():
            try:
                import libvirt
                libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # no stderr lines
                conn = libvirt.openReadOnly(uri)
                try:
                    out["facts"] = (conn.getType(), conn.getFreeMemory())
                finally:
                    conn.close()
            except Exception as e:  # noqa: BLE001 - reported as the check's detail
                out["error"] = e

        worker = threading.Thread(target=ask, daemon=True)
        worker.start()
        worker.join(timeout)
        if "facts" in out:
            return out["facts"]
        raise RuntimeError(out.get("error") or f"no answer in {timeout:.0f} s")


def _meminfo(system: System, key: str) -> int:
    for line in (system.read("/proc/meminfo") or "").splitlines():
        name, _, value = line.partition(":")
        if name == key and value.split():
            return int(value.split()[0]) << 10
    return 0


def check_xen(system: System) -> Result:
    kind = (system.read("/sys/hypervisor/type") or "").strip()
    if kind != "xen":
        return Result(FAIL, "Xen", f"not running under Xen (/sys/hypervisor/type: {kind or 'absent'})")
    caps = system.read("/proc/xen/capabilities")
    if caps is not None and "control_d" not in caps:
        return Result(FAIL, "Xen", "running under Xen, but not in dom0 (no control_d in /proc/xen/capabilities)")
    major, minor, extra = ((system.read(f"/sys/hypervisor/version/{p}") or "?").strip()
                           for p in ("major", "minor", "extra"))
    return Result(OK, "Xen", f"Xen {major}.{minor}{extra}, this is dom0")


def check_libvirt(system: System, uri: str) -> Tuple[Result, Optional[int]]:
    try:
        driver, free = system.libvirt(uri)
    except Exception as e:  # noqa: BLE001 - the reason is the finding
        return Result(FAIL, "libvirt", f"{uri} cannot be opened: {e}"), None
    if driver != "Xen":
        return Result(FAIL, "libvirt", f"{uri} is libvirt's {driver} driver, not its xen driver"), None
    return Result(OK, "libvirt", f"{uri} answers (xen driver)"), free


def check_xenstore(system: System) -> Result:
    missing = [t for t in XENSTORE_TOOLS if not system.which(t)]
    if missing:
        return Result(FAIL, "xenstore", f"missing {', '.join(missing)} (Debian: xenstore-utils)")
    rc, out = system.run(["xenstore-read", "domid"])
    if rc != 0:
        return Result(FAIL, "xenstore", f"xenstore-read domid failed: {out or rc}")
    return Result(OK, "xenstore", f"tools present, xenstored answers (domid {out})")


def check_bridges(system: System) -> Result:
    bridges = [n for n in system.listdir("/sys/class/net") if system.listdir(f"/sys/class/net/{n}/bridge")]
    if not bridges:
        return Result(WARN, "bridges", "none: a VIF has no network to join (make one, or serve with "
                                       "--manage-network)")
    return Result(OK, "bridges", ", ".join(bridges))


def check_memory(system: System, hypervisor_free: Optional[int]) -> List[Result]:
    out = []
    if hypervisor_free is None:
        out.append(Result(WARN, "memory", "Xen's free memory unknown (libvirt unreachable)"))
    elif hypervisor_free < GUEST_MIB << 20:
        out.append(Result(FAIL, "memory", f"Xen has {hypervisor_free >> 20} MiB free: not even one "
                                          f"{GUEST_MIB} MiB guest fits"))
    else:
        out.append(Result(OK, "memory", f"Xen has {hypervisor_free >> 20} MiB free for guests"))
    available = _meminfo(system, "MemAvailable")
    if available < DOM0_MIB << 20:
        out.append(Result(WARN, "dom0 memory", f"{available >> 20} MiB available in dom0 "
                                               f"(less than {DOM0_MIB} MiB)"))
    else:
        out.append(Result(OK, "dom0 memory", f"{available >> 20} MiB available in dom0"))
    return out


def check_datapath(system: System) -> List[Result]:
    out = []
    if not system.which("nbdkit"):
        out.append(Result(FAIL, "nbdkit", "missing: VHD chains cannot be served (Debian: nbdkit "
                                          "nbdkit-plugin-python)"))
    else:
        rc, text = system.run(["nbdkit", "python", "--version"])
        out.append(Result(OK, "nbdkit", "with its python plugin") if rc == 0 else
                   Result(FAIL, "nbdkit", f"its python plugin does not load: {text.splitlines()[-1:] or rc}"))
    if not system.which("nbd-client"):
        out.append(Result(FAIL, "nbd-client", "missing: Xen takes a VHD chain as the /dev/nbdN it "
                                              "makes (Debian: nbd-client)"))
    else:
        out.append(Result(OK, "nbd-client", system.which("nbd-client")))
    return out


def check_nfs(system: System) -> Result:
    if not system.which("mount.nfs"):
        return Result(WARN, "nfs", "no mount.nfs: nfs:// install repositories and NFS SRs cannot be "
                                   "mounted (Debian: nfs-common)")
    return Result(OK, "nfs", system.which("mount.nfs"))


def check_qemu_users(system: System) -> Result:
    missing = [u for u in QEMU_USERS if not system.user_exists(u)]
    if missing:
        return Result(WARN, "qemu users", f"missing {', '.join(missing)}: device models run as root "
                                          "(scripts/install-dom0 creates them)")
    return Result(OK, "qemu users", "device models can run without root")


def diagnose(system: System, uri: str) -> List[Result]:
    libvirt_result, free = check_libvirt(system, uri)
    return [check_xen(system), libvirt_result, check_xenstore(system), check_bridges(system),
            *check_memory(system, free), *check_datapath(system), check_nfs(system),
            check_qemu_users(system)]


def main(argv=None, system: Optional[System] = None, out=sys.stdout) -> int:
    p = argparse.ArgumentParser(prog="hostagent doctor", description=__doc__.split("\n")[0])
    p.add_argument("--libvirt-uri", default="xen:///system", metavar="URI")
    args = p.parse_args(argv)
    results = diagnose(system or System(), args.libvirt_uri)
    for r in results:
        print(f"{r.status:<5} {r.name:<12} {r.detail}", file=out)
    failed = [r.name for r in results if r.status == FAIL]
    print(f"doctor: {'missing: ' + ', '.join(failed) if failed else 'this dom0 has what the agent needs'}",
          file=out)
    return 1 if failed else 0
