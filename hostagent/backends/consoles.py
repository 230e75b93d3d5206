"""vncterm processes: one per text console, started, watched, stopped and adopted here.

This adapter is the only user of the `hostagent-vncterm` program. Each terminal has a key
(`vm-<VM uuid>` for a guest's text console, `host` for the host's login console) and a
state file `<state-dir>/consoles/<key>.json` (pid, pty, port, VM uuid) written atomically
once the program has written its port file, so a restarted agent adopts the terminals that
still run instead of starting second ones. A pid is trusted only while `/proc/<pid>/cmdline`
is a vncterm's with this terminal's own port file: a recycled pid is never adopted or killed.

Terminals run in their own session (they outlive an agent killed with SIGKILL; a guest's
ends when its pty hangs up). Every method blocks: the `ConsolePort` runs them in a worker
thread owned by the server.
"""

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional

log = logging.getLogger("hostagent.consoles")

START_TIMEOUT = 15.0  # seconds a vncterm may take to listen
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
HOST_KEY = "host"
UNPRIVILEGED_USER = "nobody"
NICE = 10  # vncterms run this much below the agent's priority while their console floods


class ConsoleError(Exception):
    """A vncterm could not be started (the message says why)."""


@dataclass(frozen=True)
class Terminal:
    """A running vncterm: what its state file holds."""

    key: str
    pid: int
    pty: str  # the pty it serves, or "login" for the host console
    port: int  # its RFB port on 127.0.0.1
    vm: str  # the VM's uuid ("" for the host console)


def vm_key(vm_uuid: str) -> str:
    return f"vm-{vm_uuid}"


def default_program() -> List[str]:
    """`hostagent-vncterm` beside this interpreter (the virtualenv's), else the module."""
    beside = os.path.join(os.path.dirname(sys.executable), "hostagent-vncterm")
    if os.access(beside, os.X_OK):
        return [beside]
    return [sys.executable, "-m", "hostagent.vncterm"]


class Vncterms:
    def __init__(self, state_dir: str, program: Optional[List[str]] = None, user: str = UNPRIVILEGED_USER,
                 clock: Callable[[], float] = time.monotonic):
        self.dir = os.path.join(state_dir, "consoles")
        self.root = os.path.join(self.dir, "empty")  # where terminals are chrooted: empty, root's, 0555
        self.program = program or default_program()
        self.user = user
        self.clock = clock
        self.running: Dict[str, Terminal] = {}
        self._children: Dict[int, subprocess.Popen] = {}  # those this process started (reaped here)

    # ------------------------------------------------------------ start/stop
    def start(self, key: str, vm: str, pty: str = "", login: bool = False, title: str = "") -> Terminal:
        """Start a vncterm for `pty` (or a login prompt) and wait until it listens."""
        self._prepare()
        self.stop(key)  # a dead one's files, or a live one being replaced
        port_file = self._path(key, "port")
        argv = [*self.program, *(["--login"] if login else ["--pty", pty]), "--listen", "127.0.0.1",
                "--port", "0", "--port-file", port_file, "--user", self.user, "--root", self.root,
                "--nice", str(NICE)]
        if title:
            argv += ["--title", title]
        try:
            with open(self._path(key, "log"), "ab") as errors:  # its own log, kept beside its state
                child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=errors, start_new_session=True, close_fds=True)
        except OSError as e:
            raise ConsoleError(f"cannot run {argv[0]}: {e}") from None
        self._children[child.pid] = child
        port = self._wait_port(child, port_file, self._path(key, "log"))
        term = Terminal(key, child.pid, "login" if login else pty, port, vm)
        self._write_state(term)
        self.running[key] = term
        log.info("console %s: vncterm %d serves %s on 127.0.0.1:%d", key, term.pid, term.pty, port)
        return term

    def _wait_port(self, child: subprocess.Popen, port_file: str, log_file: str) -> int:
        deadline = self.clock() + START_TIMEOUT
        while self.clock() < deadline:
            if child.poll() is not None:
                self._children.pop(child.pid, None)
                raise ConsoleError(f"vncterm exited with {child.returncode}: {_tail(log_file) or 'no message'}")
            port = _read_port(port_file)
            if port:
                return port
            time.sleep(0.02)
        self._kill(child.pid)
        raise ConsoleError(f"vncterm did not listen within {START_TIMEOUT:.0f}s")

    def stop(self, key: str) -> None:
        """Stop the terminal `key` (if it runs) and forget it; idempotent."""
        term = self.running.pop(key, None) or self._read_state(key)
        if term is not None and self._is_ours(term):
            self._kill(term.pid)
            log.info("console %s: vncterm %d stopped", key, term.pid)
        for ext in ("json", "port", "log"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path(key, ext))

    def _kill(self, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = self.clock() + STOP_TIMEOUT
        while self.clock() < deadline and self._exists(pid):
            time.sleep(0.02)
        if self._exists(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._reap(pid, wait=True)

    # --------------------------------------------------------------- liveness
    def dead(self) -> List[Terminal]:
        """The terminals that stopped by themselves (forgotten here, files removed)."""
        out = []
        for key, term in list(self.running.items()):
            if not self._is_ours(term):
                log.warning("console %s: vncterm %d is gone: %s", key, term.pid,
                            _tail(self._path(key, "log")) or "it left no message")
                out.append(term)
                self.running.pop(key, None)
                self.stop(key)
        return out

    def adopt(self) -> List[Terminal]:
        """Terminals a previous run of the agent left running; stale state files are removed."""
        self._prepare()
        for name in sorted(os.listdir(self.dir)):
            if not name.endswith(".json"):
                continue
            key = name[:-len(".json")]
            term = self._read_state(key)
            if term is not None and self._is_ours(term):
                self.running[key] = term
                log.info("console %s: adopted vncterm %d on port %d", key, term.pid, term.port)
            else:
                self.stop(key)
        return list(self.running.values())

    def _is_ours(self, term: Terminal) -> bool:
        """Whether `term.pid` is still that vncterm (not a zombie, not a recycled pid)."""
        self._reap(term.pid)
        try:
            with open(f"/proc/{term.pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            return False
        want = self._path(term.key, "port").encode()
        return any(b"vncterm" in a for a in argv) and any(
            a == b"--port-file" and b == want for a, b in zip(argv, argv[1:], strict=False))

    def _exists(self, pid: int) -> bool:
        self._reap(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
        except (OSError, IndexError):
            return False

    def _reap(self, pid: int, wait: bool = False) -> None:
        child = self._children.get(pid)
        if child is not None and (child.wait(STOP_TIMEOUT) if wait else child.poll()) is not None:
            self._children.pop(pid, None)

    # ------------------------------------------------------------------ files
    def _prepare(self) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        os.makedirs(self.root, mode=0o555, exist_ok=True)
        if os.listdir(self.root):
            raise ConsoleError(f"{self.root} must be empty: vncterms are chrooted there")
        os.chmod(self.root, 0o555)

    def _path(self, key: str, ext: str) -> str:
        return os.path.join(self.dir, f"{key}.{ext}")

    def _write_state(self, term: Terminal) -> None:
        path = self._path(term.key, "json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(term), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _read_state(self, key: str) -> Optional[Terminal]:
        try:
            with open(self._path(key, "json")) as f:
                data = json.load(f)
            return Terminal(key, int(data["pid"]), str(data["pty"]), int(data["port"]), str(data["vm"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _read_port(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def _tail(path: str, size: int = 500) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - size))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


class ConsolePort:
    """The terminals as actions use them: each call runs in a worker thread (`run_blocking`,
    owned by the server); `on_change()` asks the server to settle the terminals soon, and
    `on_vm_gone` callbacks (the /console relays) hear of VMs whose consoles went away."""

    def __init__(self, terms: Vncterms, run_blocking: Callable, host_console: bool = False):
        self.terms = terms
        self.run_blocking = run_blocking
        self.host_console = host_console  # whether this host's own console gets a login terminal
        self.on_change: Optional[Callable[[], None]] = None
        self.on_vm_gone: List[Callable[[str], None]] = []
        self.suspect: set = set()  # VM uuids whose domain may have changed: check their pty again
        # a pool member: {VM uuid: name} of its domains the master wants terminals for (None:
        # not told since this start, or not a member)
        self.pool_wanted: dict[str, str] | None = None
        self.members_told: set = set()  # a master: the members' VM uuids it last said want one
        self.members_sent: dict = {}  # a master: member host -> (what it was told, its run, when)

    def running(self) -> Dict[str, Terminal]:
        return dict(self.terms.running)

    def port_of(self, key: str) -> int:
        term = self.terms.running.get(key)
        return term.port if term is not None else 0

    async def start(self, key: str, vm: str, pty: str = "", login: bool = False, title: str = "") -> Terminal:
        return await self.run_blocking(self.terms.start, key, vm, pty, login, title)

    async def stop(self, key: str) -> None:
        await self.run_blocking(self.terms.stop, key)

    async def dead(self) -> List[Terminal]:
        return await self.run_blocking(self.terms.dead)

    async def adopt(self) -> List[Terminal]:
        return await self.run_blocking(self.terms.adopt)

    def changed(self, vm_uuid: str = "") -> None:
        """A VM started or stopped (or something else moved): settle soon."""
        if vm_uuid:
            self.suspect.add(vm_uuid)
        if self.on_change is not None:
            self.on_change()

    def vm_gone(self, vm_uuid: str) -> None:
        for cb in list(self.on_vm_gone):
            cb(vm_uuid)
