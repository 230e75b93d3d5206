"""nbdkit processes serving VHD chains: one per attachment, found again from the state dir.

The files of the server named IDENT, all in one directory (``<state_dir>/datapath``):

    IDENT.sock   its Unix socket (``nbd+unix:///?socket=<path>``)
    IDENT.pid    written by nbdkit once it accepts connections (``-P``)
    IDENT.log    what it logs once running (errors of reads and writes)

A server must outlive the agent that started it (guests keep running while the
agent restarts). Debian's nbdkit 1.32 arms a parent-death signal at start-up
whether or not ``--exit-with-parent`` is given, and the parent that counts is
the thread that started it, so a server run in the foreground (``-f``) dies
with the agent's worker thread. It therefore runs as nbdkit's own daemon: the
command returns once the socket listens and the plugin opened the chain (its
errors until then are the command's stderr), and the forked server, whose
fork cleared that signal, belongs to init. The plugin points the server's
stderr at IDENT.log (``--log=stderr``). An agent finds a server again by its pid
file; since its command line names its socket, a pid reused by another process
is never taken for it. Run through ``sm.runner`` (argv only, C locale, its own
session); failures are ``sm.errors`` naming the table entry VDIUnavailable.
"""

import os
import signal
import time

from sm.errors import BackendFailure, ToolFailed
from sm.runner import Runner

PLUGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugin.py")
SM_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(PLUGIN)))  # holds the sm package
SOCKET_PATH_MAX = 107  # a Unix socket address holds 108 bytes, NUL included
ERROR = "VDIUnavailable"
INSTALL_HINT = "Debian: apt-get install nbdkit nbdkit-plugin-python"


def plugin_env() -> dict:
    """nbdkit's embedded Python adds nothing to sys.path: the plugin finds sm this way."""
    path = [SM_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"PYTHONPATH": os.pathsep.join(path)}


class NbdServers:
    """Starts, finds and stops the nbdkit servers whose files live in ``directory``."""

    def __init__(self, directory: str, runner: Runner | None = None, binary: str = "nbdkit",
                 start_timeout: float = 30.0, stop_timeout: float = 10.0):
        self.dir = directory
        self.runner = runner or Runner(timeout=start_timeout, env=plugin_env())
        self.binary = binary
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout

    def _file(self, ident: str, ext: str) -> str:
        return os.path.join(self.dir, f"{ident}.{ext}")

    def socket(self, ident: str) -> str:
        return self._file(ident, "sock")

    def uri(self, ident: str) -> str:
        return f"nbd+unix:///?socket={self.socket(ident)}"

    def log(self, ident: str) -> str:
        return self._file(ident, "log")

    def check_socket_path(self, ident: str) -> None:
        sock = self.socket(ident)
        if len(os.fsencode(sock)) > SOCKET_PATH_MAX:
            raise BackendFailure(ERROR, f"NBD socket path {sock} is longer than a Unix socket "
                                        f"address allows ({SOCKET_PATH_MAX} bytes): use a "
                                        f"shorter state directory")

    def argv(self, ident: str, image: str, writable: bool) -> list[str]:
        return [self.binary, "-U", self.socket(ident), "-P", self._file(ident, "pid"),
                "--log=stderr", *([] if writable else ["-r"]), "python", PLUGIN,
                f"file={image}", f"writable={int(writable)}", f"log={self.log(ident)}"]

    def start(self, ident: str, image: str, writable: bool) -> int:
        """Serve the VHD chain whose leaf is ``image``; returns the server's pid once it
        accepts connections."""
        self.check_socket_path(ident)
        os.makedirs(self.dir, exist_ok=True)
        self._remove_files(ident, "sock", "pid")  # left by a server that died
        argv = self.argv(ident, image, writable)
        try:
            self.runner.run(argv, timeout=self.start_timeout, error=ERROR)
        except ToolFailed as exc:
            if exc.rc == 127:
                raise ToolFailed(argv, 127, "", f"{self.binary}: command not found "
                                                f"({INSTALL_HINT})", ERROR) from None
            raise
        # The server forked into the background once listening; its pid file comes next.
        deadline = time.monotonic() + self.start_timeout
        while (pid := self.serving(ident)) is None:
            if time.monotonic() > deadline:
                raise BackendFailure(ERROR, f"nbdkit for {image} wrote no pid file in "
                                            f"{self.start_timeout:g}s: {self.log_tail(ident)}")
            time.sleep(0.002)
        # the hypervisor's processes connect through the group of the directory (see the
        # agent's hypervisor access); nobody else may
        os.chmod(self.socket(ident), 0o660)
        return pid

    def serving(self, ident: str) -> int | None:
        """The pid of the live server named ident, else None."""
        pid = self._pid_file(ident)
        if pid is None or not _alive(pid):
            return None
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            return None
        return pid if os.fsencode(self.socket(ident)) in argv else None

    def stop(self, ident: str) -> None:
        """Stop the server (SIGTERM, then SIGKILL after stop_timeout) and remove its
        files; nothing to do if it is not running."""
        pid = self.serving(ident)
        if pid is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                if _wait_gone(pid, self.stop_timeout):
                    break
            else:
                raise BackendFailure(ERROR, f"nbdkit (pid {pid}) survived SIGKILL")
        self._remove_files(ident, "sock", "pid", "log")

    def _pid_file(self, ident: str) -> int | None:
        try:
            with open(self._file(ident, "pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):  # absent, or nbdkit is writing it right now
            return None

    def log_tail(self, ident: str, lines: int = 20) -> str:
        try:
            with open(self.log(ident), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def _remove_files(self, ident: str, *exts: str) -> None:
        for ext in exts:
            try:
                os.unlink(self._file(ident, ext))
            except FileNotFoundError:
                pass


def _alive(pid: int) -> bool:
    """Whether pid is a running process (a zombie, dead but not yet reaped, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:][:1] not in ("Z", "X")


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
