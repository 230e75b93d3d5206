"""libvirtd and virtlogd for the KVM tests: installed if missing, started as plain daemons (no
systemd needed), stopped again when the last test session using them ends.

A libvirtd that already answers on qemu:///system is used as it is and never stopped. Daemons the
kit starts carry its own pid files under STATE_DIR; test sessions register there too, so one
pytest run does not stop the daemons under another, and the last one out stops them (and
destroys the domains left on them).
"""

import contextlib
import fcntl
import grp
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.kvm.timing import terminal_log

URI = "qemu:///system"
# Installed with --no-install-recommends when missing (also listed in the Makefile's APT_PACKAGES):
# the daemons with their configuration and users (libvirt-daemon-system pulls in libvirtd,
# virtlogd and the qemu driver) and the emulator itself.
PACKAGES = ("libvirt-daemon-system", "qemu-system-x86")
BINARIES = {"libvirtd": "/usr/sbin/libvirtd", "virtlogd": "/usr/sbin/virtlogd",
            "qemu-system-x86_64": "/usr/bin/qemu-system-x86_64"}
RUN_DIR = Path("/run/libvirt")
LIBVIRT_SOCKET = RUN_DIR / "libvirt-sock"
VIRTLOGD_SOCKET = RUN_DIR / "virtlogd-sock"
# What a daemon killed without cleaning up leaves behind; each daemon binds its own anew anyway.
SOCKETS = ("libvirt-sock", "libvirt-sock-ro", "libvirt-admin-sock", "virtlogd-sock",
           "virtlogd-admin-sock")
STATE_DIR = Path("/run/hostagent-kvm-tests")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class DaemonsUnavailable(Exception):
    """libvirtd cannot be had here; the message is the reason the tests are skipped."""


@pytest.fixture(scope="session")
def libvirtd(request):
    """The URI of a running libvirtd with the qemu driver (qemu:///system), for the session."""
    daemons = Daemons(log=terminal_log(request.config))
    try:
        daemons.start()
    except DaemonsUnavailable as exc:
        daemons.stop()
        pytest.skip(f"no libvirtd for the KVM tests: {exc}")
    try:
        yield URI
    finally:
        daemons.stop()


class Daemons:
    """The kit's share of libvirtd and virtlogd: start() registers a user, stop() unregisters."""

    def __init__(self, state_dir: Path = STATE_DIR, log=print):
        self.state_dir = state_dir
        self.log = log
        self.user = state_dir / "users" / str(os.getpid())
        self.children = {}
        self.registered = False

    def start(self) -> None:
        started = time.monotonic()
        if os.geteuid() != 0:
            raise DaemonsUnavailable("needs root (libvirtd runs qemu:///system as root)")
        if not os.path.exists("/dev/kvm"):
            raise DaemonsUnavailable("/dev/kvm is missing")
        self._install()
        self._open_kvm_to_its_group()
        self.user.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self.user.touch()
            self.registered = True
            if _answers(LIBVIRT_SOCKET):
                owner = "the kit's" if self._ours("libvirtd") else "an already running"
                self.log(f"libvirtd: using {owner} libvirtd on {URI}")
            else:
                self._launch()
                self.log(f"libvirtd: started {' and '.join(self.children_names())} in "
                         f"{time.monotonic() - started:.1f} s")
        self._check_driver()

    def children_names(self):
        return [Path(child.args[0]).name for child in self.children.values()]

    def stop(self) -> None:
        """Unregisters this session; the last one out stops the daemons the kit started (also
        after a failed start, which leaves them for nobody)."""
        if not self.registered:
            return
        self.registered = False
        with self._locked():
            self.user.unlink(missing_ok=True)
            users = [path for path in self.user.parent.iterdir() if _pid_alive(int(path.name))]
            for path in set(self.user.parent.iterdir()) - set(users):
                path.unlink(missing_ok=True)  # sessions that died without stopping
            ours = [name for name in ("libvirtd", "virtlogd") if self._ours(name)]
            if not users and ours:
                if "libvirtd" in ours:
                    self._destroy_leftovers()
                self._stop_ours()
                self.log(f"libvirtd: stopped the kit's {' and '.join(ours)}")

    # -- installing and launching

    def _install(self) -> None:
        missing = [name for name, path in BINARIES.items() if not os.access(path, os.X_OK)]
        if not missing:
            return
        self.log(f"libvirtd: {', '.join(missing)} missing, installing {' '.join(PACKAGES)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
        result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:  # stale package lists: fetch them once and try again
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            result = subprocess.run(install, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise DaemonsUnavailable(f"apt-get install {' '.join(PACKAGES)} failed: "
                                     f"{result.stderr.strip()[-1000:]}")

    def _open_kvm_to_its_group(self) -> None:
        """Gives /dev/kvm to the kvm group, mode 0660, as udev's rule does on Debian.

        Without udev the node stays root-only; qemu then runs as libvirt-qemu (in group kvm) without
        access, and libvirt 9.0 finds its cached qemu capabilities ("KVM was enabled when
        probing") stale at every lookup: every domain start re-probes qemu, about 50 s under TCG.
        """
        try:
            kvm_gid = grp.getgrnam("kvm").gr_gid
        except KeyError:
            return
        st = os.stat("/dev/kvm")
        if st.st_gid != kvm_gid or st.st_mode & 0o060 != 0o060:
            self.log(f"libvirtd: /dev/kvm was {stat.filemode(st.st_mode)} gid {st.st_gid}; "
                     "giving it to group kvm, 0660, as udev would")
            os.chown("/dev/kvm", -1, kvm_gid)
            os.chmod("/dev/kvm", stat.S_IMODE(st.st_mode) | 0o660)

    def _launch(self) -> None:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        for name in SOCKETS:
            path = RUN_DIR / name
            if path.is_socket() and not _answers(path):
                path.unlink()
        if not _answers(VIRTLOGD_SOCKET):
            self._spawn("virtlogd")
            _wait(lambda: _answers(VIRTLOGD_SOCKET), "virtlogd's socket", self._log_tail)
        self._spawn("libvirtd")
        _wait(lambda: _answers(LIBVIRT_SOCKET), "libvirtd's socket", self._log_tail)

    def _spawn(self, name: str) -> None:
        """Starts `name` in the foreground as our child (so that we reap it), in its own session
        so that it outlives this process if another test session still uses it."""
        pidfile = self._pidfile(name)
        pidfile.unlink(missing_ok=True)
        log = self.state_dir / f"{name}.log"
        env = dict(os.environ, LIBVIRT_LOG_OUTPUTS=f"3:file:{log}")
        with open(log, "wb") as output:
            child = subprocess.Popen([BINARIES[name], "--pid-file", str(pidfile)], env=env,
                                     stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                     start_new_session=True)
        self.children[child.pid] = child
        _wait(lambda: child.poll() is not None or self._ours(name), f"{name}'s pid file",
              self._log_tail)
        if child.poll() is not None:
            raise DaemonsUnavailable(f"{name} exited with {child.returncode}{self._log_tail()}")

    def _check_driver(self) -> None:
        import libvirt

        try:
            conn = libvirt.open(URI)
        except libvirt.libvirtError as exc:
            raise DaemonsUnavailable(f"cannot open {URI}: {exc}{self._log_tail()}") from exc
        try:
            if conn.getType() != "QEMU":
                raise DaemonsUnavailable(f"{URI} answers with driver {conn.getType()}")
        finally:
            conn.close()

    # -- stopping

    def _destroy_leftovers(self) -> None:
        import libvirt

        try:
            conn = libvirt.open(URI)
        except libvirt.libvirtError:
            return
        try:
            for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                self.log(f"libvirtd: destroying domain {dom.name()} left running by a test")
                with contextlib.suppress(libvirt.libvirtError):
                    dom.destroy()
        finally:
            conn.close()

    def _stop_ours(self) -> None:
        for name in ("libvirtd", "virtlogd"):  # libvirtd first: it holds virtlogd's socket
            pid = self._ours(name)
            if pid:
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + STOP_TIMEOUT
                while _pid_alive(pid, name) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if _pid_alive(pid, name):
                    self.log(f"libvirtd: {name} ignored SIGTERM for {STOP_TIMEOUT} s, killing it")
                    os.kill(pid, signal.SIGKILL)
                if pid in self.children:
                    self.children.pop(pid).wait()
            self._pidfile(name).unlink(missing_ok=True)

    # -- state

    def _pidfile(self, name: str) -> Path:
        return self.state_dir / f"{name}.pid"

    def _ours(self, name: str):
        """The pid of the daemon the kit started, if it still runs."""
        try:
            pid = int(self._pidfile(name).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_alive(pid, name) else None

    @contextlib.contextmanager
    def _locked(self):
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _log_tail(self) -> str:
        tails = []
        for name in ("virtlogd", "libvirtd"):
            path = self.state_dir / f"{name}.log"
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-8:]
                tails.append(f"\n--- {path} (last lines):\n" + "\n".join(lines))
        return "".join(tails)


def _answers(path: Path) -> bool:
    """Whether something accepts connections on the Unix socket `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _pid_alive(pid: int, name: str = None) -> bool:
    """Whether `pid` runs (a zombie does not), and is `name` when one is given."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    comm, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
    return state != "Z" and (name is None or comm == name)


def _wait(predicate, what: str, detail) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise DaemonsUnavailable(f"{what} did not answer within {START_TIMEOUT} s{detail()}")
        time.sleep(0.05)

