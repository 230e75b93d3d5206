"""A second qemu:///system-like libvirtd on this machine, as if it were another host: for the
migration tests (two hosts' libvirtds, one machine).

It runs in a mount namespace of its own (`unshare --mount`) where /run/libvirt, /var/lib/libvirt,
/var/cache/libvirt, /var/log/libvirt and /etc/libvirt are private copies, so it keeps its own
domains, state, pid files and sockets; its libvirtd.conf gives it a `host_uuid` of its own (libvirt
refuses a migration to the host it comes from, which it tells by that uuid) and puts its Unix
sockets in a directory outside those private ones, which clients and the kit's libvirtd reach from
outside: `uri` (qemu+unix:///system?socket=...). Inside the namespace the kit's own /run/libvirt is
bound to `first_socket`'s directory, so this daemon can migrate guests back to the kit's libvirtd
(`first_uri`, meaningful to this daemon only). It writes guests' stdio to files itself (no
virtlogd in its namespace) and starts no networks or pools of the copied configuration.

Needs root; the kit's libvirtd (tests/kvm/libvirtd.py) must run already. Stopped with stop(),
which destroys the domains left on it.
"""

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.kvm.libvirtd import (
    RUN_DIR,
    STATE_DIR,
    DaemonsUnavailable,
    _answers,
    _pid_alive,
)

PRIVATE = {"/run/libvirt": "run", "/var/lib/libvirt": "lib", "/var/cache/libvirt": "cache",
           "/var/log/libvirt": "log", "/etc/libvirt": "etc"}
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


def _special_files(directory, names):
    """copytree's ignore: sockets, fifos and devices (copying one fails), kept out of the copy."""
    out = []
    for name in names:
        try:
            mode = os.lstat(os.path.join(directory, name)).st_mode
        except OSError:
            out.append(name)  # gone while we looked (a guest stopping)
            continue
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            out.append(name)
    return out


class SecondLibvirtd:
    def __init__(self, parent: Path = STATE_DIR, log=print, binds=None):
        """`binds`: {path: directory}, directories this daemon (and its guests) see at `path`
        instead of what everyone else sees there (a guest's serial socket, say, which the
        daemon it leaves removes at the path it bound)."""
        self.log = log
        self.binds = dict(binds or {})
        parent.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="second-libvirtd-", dir=parent))
        self.dir.chmod(0o755)
        self.host_uuid = str(uuid.uuid4())
        self.sock_dir = self.dir / "sock"
        self.socket = self.sock_dir / "libvirt-sock"
        self.first_socket = self.dir / "first" / "libvirt-sock"
        self.uri = f"qemu+unix:///system?socket={self.socket}"
        self.first_uri = f"qemu+unix:///system?socket={self.first_socket}"
        self.pidfile = self.dir / "libvirtd.pid"
        self.logfile = self.dir / "libvirtd.log"
        self.child = None

    def start(self) -> "SecondLibvirtd":
        started = time.monotonic()
        if os.geteuid() != 0:
            raise DaemonsUnavailable("a second libvirtd needs root")
        if not shutil.which("unshare"):
            raise DaemonsUnavailable("unshare (util-linux) is missing")
        if not _answers(RUN_DIR / "libvirt-sock"):
            raise DaemonsUnavailable("the kit's libvirtd does not answer")
        self._prepare()
        script = self._script()
        env = dict(os.environ, LIBVIRT_LOG_OUTPUTS=f"3:file:{self.logfile}")
        with open(self.dir / "unshare.out", "wb") as out:
            self.child = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-ec", script],
                                          env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                          start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(self.socket):
            if self.child.poll() is not None:
                raise DaemonsUnavailable(f"the second libvirtd exited with {self.child.returncode}{self._tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise DaemonsUnavailable(f"the second libvirtd did not answer in {START_TIMEOUT} s{self._tail()}")
            time.sleep(0.05)
        self.log(f"second libvirtd: {self.uri} (host uuid {self.host_uuid}) in "
                 f"{time.monotonic() - started:.1f} s")
        return self

    def _prepare(self) -> None:
        for source, name in PRIVATE.items():
            target = self.dir / name
            if name in ("etc", "cache", "lib") and os.path.isdir(source):
                # not the sockets of the kit daemon's running guests (another test's, say)
                shutil.copytree(source, target, symlinks=True, ignore=_special_files)
            else:
                target.mkdir()
        for leftover in ("qemu/networks/autostart", "storage/autostart", "qemu/autostart"):
            path = self.dir / "etc" / leftover
            if path.is_dir():
                for entry in path.iterdir():
                    entry.unlink()
        for path in (self.dir / "etc" / "qemu").glob("*.xml"):
            path.unlink()  # domains defined on the kit's daemon are not this one's
        self.sock_dir.mkdir(mode=0o755)
        self.first_socket.parent.mkdir(mode=0o755)
        with open(self.dir / "etc" / "libvirtd.conf", "a") as conf:
            conf.write(f'\n# the second libvirtd of the migration tests\nhost_uuid = "{self.host_uuid}"\n'
                       f'unix_sock_dir = "{self.sock_dir}"\n')
        with open(self.dir / "etc" / "qemu.conf", "a") as conf:
            conf.write('\n# no virtlogd in this namespace; cgroups named by domain id would clash with the '
                       'kit daemon\'s\nstdio_handler = "file"\ncgroup_controllers = [ ]\n')

    def _script(self) -> str:
        lines = [f"mount --bind {RUN_DIR} {self.first_socket.parent}"]
        lines += [f"mount --bind {self.dir / name} {path}" for path, name in PRIVATE.items()]
        lines += [f"mount --bind {directory} {path}" for path, directory in self.binds.items()]
        lines.append(f"exec /usr/sbin/libvirtd --pid-file {self.pidfile}")
        return "\n".join(lines)

    def stop(self) -> None:
        if self.child is None:
            return
        with contextlib.suppress(Exception):
            self._destroy_leftovers()
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
            try:
                self.child.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.log("second libvirtd: ignored SIGTERM, killing it")
                self.child.kill()
                self.child.wait()
        self.child = None
        for pid in self._qemus():
            os.kill(pid, signal.SIGKILL)  # a guest its daemon left behind
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.dir.exists() and time.monotonic() < deadline:  # its guests' last writes may race
            shutil.rmtree(self.dir, ignore_errors=True)
            time.sleep(0.1)
        self.log("second libvirtd: stopped")

    def _destroy_leftovers(self) -> None:
        import libvirt

        conn = libvirt.open(self.uri)
        try:
            for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                self.log(f"second libvirtd: destroying domain {dom.name()} left running by a test")
                with contextlib.suppress(libvirt.libvirtError):
                    dom.destroy()
        finally:
            conn.close()

    def _qemus(self):
        """qemu processes whose pid files are in this daemon's private /run/libvirt."""
        pids = []
        for path in (self.dir / "run" / "qemu").glob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(path.read_text().strip())
                if _pid_alive(pid):
                    pids.append(pid)
        return pids

    def _tail(self) -> str:
        out = []
        for path in (self.dir / "unshare.out", self.logfile):
            if path.exists():
                out.append(f"\n--- {path}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-10:]))
        return "".join(out)
