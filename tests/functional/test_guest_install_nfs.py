"""eliloader from an NFS repository: Debian's nfs-kernel-server, started by the test on this host,
exports a CentOS tree read-only to 127.0.0.1; the agent (test driver) mounts it read-only, copies
the installer and boots it, or fails with BOOTLOADER_FAILED when the kernel is missing.

Needs root and a kernel with the NFS server and client (`nfsd` and `nfs` in /proc/filesystems,
or loadable); skipped with the reason otherwise. The daemons this test starts, it stops.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import XenAPI

from .agent import AgentProcess
from .storage_util import MiB, failure

PACKAGE = "nfs-kernel-server"  # exportfs, rpc.nfsd, rpc.mountd; its nfs-common brings mount.nfs


def _filesystems():
    try:
        return {line.split()[-1] for line in Path("/proc/filesystems").read_text().splitlines() if line.strip()}
    except OSError:
        return set()


def _kernel_nfs() -> str:
    """Why this kernel cannot serve and mount NFS, or ''."""
    if "nfsd" not in _filesystems() or "nfs" not in _filesystems():
        if shutil.which("modprobe"):
            for module in ("nfsd", "nfs"):
                subprocess.run(["modprobe", module], capture_output=True)
    have = _filesystems()
    missing = [name for name in ("nfsd", "nfs") if name not in have]
    return f"the kernel has no {' and no '.join(missing)} file system (NFS server/client)" if missing else ""


def _run(*argv):
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done


@pytest.fixture(scope="module")
def nfs_export(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("an NFS server needs root")
    why = _kernel_nfs()
    if why:
        pytest.skip(why)
    if not shutil.which("exportfs"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        done = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", PACKAGE],
                              capture_output=True, text=True, env=env)
        if done.returncode != 0:
            pytest.skip(f"cannot install {PACKAGE}: {done.stderr.strip()[-300:]}")
    root = Path(tmp_path_factory.mktemp("nfs")) / "centos"
    for relative in ("images/xen/vmlinuz", "images/xen/initrd.img"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(os.urandom(128 << 10))
    (root.parent / "empty").mkdir()
    os.chmod(root.parent, 0o755)
    daemons, nfsd = [], False  # what this test started: stopped again by handle
    try:
        if subprocess.run(["pgrep", "-x", "rpcbind"], capture_output=True).returncode != 0:
            daemons.append(subprocess.Popen(["rpcbind", "-f", "-w"], stderr=subprocess.DEVNULL))
        if not os.path.ismount("/proc/fs/nfsd"):
            _run("mount", "-t", "nfsd", "nfsd", "/proc/fs/nfsd")
        for path in (root, root.parent / "empty"):
            _run("exportfs", "-o", "ro,insecure,no_subtree_check,no_root_squash", f"127.0.0.1:{path}")
        daemons.append(subprocess.Popen(["rpc.mountd", "-F"], stderr=subprocess.DEVNULL))
        _run("rpc.nfsd", "4")
        nfsd = True
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        _stop(daemons, nfsd, root)
        pytest.skip(f"the NFS server did not start: {e}")
    yield root
    _stop(daemons, nfsd, root)


def _stop(daemons, nfsd, root):
    for path in (root, root.parent / "empty"):
        subprocess.run(["exportfs", "-u", f"127.0.0.1:{path}"], capture_output=True)
    if nfsd:
        subprocess.run(["rpc.nfsd", "0"], capture_output=True)
    for proc in reversed(daemons):
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def x(nfs_export, tmp_path_factory):
    agent = AgentProcess(str(tmp_path_factory.mktemp("nfs-agent") / "state")).start()
    s = XenAPI.Session(agent.url)
    s.xenapi.login_with_password("root", agent.password, "1.0", "eliloader-nfs")
    yield s.xenapi, agent
    agent.cleanup()


def centos(x, name, repository):
    [t] = [v for v in x.VM.get_by_name_label("CentOS 5.0") if x.VM.get_is_default_template(v)]
    vm = x.VM.clone(t, name)
    other = x.VM.get_other_config(vm)
    other["disks"] = other["disks"].replace('size="8589934592"', f'size="{16 * MiB}"')
    other["install-repository"] = repository
    x.VM.set_other_config(vm, other)
    x.VM.provision(vm)
    return vm


def test_install_round_from_nfs(nfs_export, x):
    x, agent = x
    vm = centos(x, "from nfs", f"nfs://127.0.0.1{nfs_export}")
    x.VM.start(vm, False, False)
    assert x.VM.get_power_state(vm) == "Running"
    assert x.VM.get_PV_bootloader(vm) == "pygrub" and x.VM.get_other_config(vm)["install-round"] == "2"
    assert not os.path.exists(os.path.join(agent.state_dir, "boot", x.VM.get_uuid(vm)))
    x.VM.hard_shutdown(vm)


def test_nfs_export_without_the_kernel(nfs_export, x):
    x, agent = x
    vm = centos(x, "empty nfs", f"nfs:127.0.0.1:{nfs_export.parent / 'empty'}")
    details = failure(x.VM.start, vm, False, False)
    assert details[:2] == ["BOOTLOADER_FAILED", vm] and "no installer kernel found" in details[2]
    assert x.VM.get_power_state(vm) == "Halted"
    assert not os.path.exists(os.path.join(agent.state_dir, "boot", x.VM.get_uuid(vm)))
