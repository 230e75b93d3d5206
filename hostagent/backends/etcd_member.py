"""An etcd member run by the agent (Debian's etcd-server, the `etcd` command): the only
module that runs it.

A member keeps everything under its home directory (in the agent's state dir):
`data/` (etcd's data dir), `etcd.pid` and `etcd.log` (its output, the previous
one kept as `etcd.log.1`). It runs in a session of its own, so it outlives an
agent killed with SIGKILL (the pool keeps its quorum meanwhile); the next start
stops that leftover member first (found by its pid file, checked against its
command line) and starts a new one on the same data.

The flags in `TUNING` are what a pool's database needs beyond etcd's defaults;
the journal is given the same limits (`MAX_TXN_OPS`, `MAX_REQUEST_BYTES`).
Client and peer traffic is plain HTTP for now: TLS from the pool's
certificates comes with the next slice, so members listen on addresses only
the pool can reach. Blocking: call it from worker threads.
"""

import errno
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from typing import NamedTuple

log = logging.getLogger("hostagent.etcd")

ETCD = "etcd"
MAX_TXN_OPS = 1024  # etcd's default 128: a group commit of many calls fits in one transaction
MAX_REQUEST_BYTES = 4 * 1024 * 1024  # etcd's default 1.5 MiB; larger writes go in steps anyway
TUNING = (
    f"--max-txn-ops={MAX_TXN_OPS}",
    f"--max-request-bytes={MAX_REQUEST_BYTES}",
    # every write makes a revision: keep the last 100000, or the members' store grows to its
    # quota and refuses writes (a watcher further behind than that loads everything again)
    "--auto-compaction-mode=revision",
    "--auto-compaction-retention=100000",
    "--snapshot-count=10000",  # etcd 3.4's 100000 keeps that many entries in memory
    # hosts share their cores with guests: heartbeats every 200 ms, an election after 2 s
    # without one (etcd's 100 ms / 1 s flap under load)
    "--heartbeat-interval=200",
    "--election-timeout=2000",
)
LOG_KEPT = 8 * 1024 * 1024  # bytes of etcd.log before it becomes etcd.log.1


class EtcdMemberError(Exception):
    """The member cannot be started, or did not come up."""


class MemberSpec(NamedTuple):
    name: str  # unique in the cluster (the host's uuid)
    home: str  # directory of its own: data/, etcd.pid, etcd.log
    client_url: str  # where clients (agents) reach it: http://ADDRESS:PORT
    peer_url: str  # where the other members reach it
    initial_cluster: dict[str, str]  # name -> peer URL of every member at bootstrap
    cluster_state: str = "new"  # "new" at bootstrap, "existing" for a member added later
    cluster_token: str = "hostagent"  # a pool's own (its uuid), so two pools never merge


class EtcdMember:
    def __init__(self, spec: MemberSpec, command: str = ETCD):
        if spec.cluster_state not in ("new", "existing"):
            raise ValueError(f"cluster_state {spec.cluster_state!r}: 'new' or 'existing'")
        self.spec = spec
        self.command = command
        self.data_dir = os.path.join(spec.home, "data")
        self.pid_file = os.path.join(spec.home, "etcd.pid")
        self.log_file = os.path.join(spec.home, "etcd.log")
        self.process: subprocess.Popen | None = None

    def argv(self) -> list:
        s = self.spec
        cluster = ",".join(f"{name}={url}" for name, url in sorted(s.initial_cluster.items()))
        return [self.command, f"--name={s.name}", f"--data-dir={self.data_dir}",
                f"--listen-client-urls={s.client_url}", f"--advertise-client-urls={s.client_url}",
                f"--listen-peer-urls={s.peer_url}", f"--initial-advertise-peer-urls={s.peer_url}",
                f"--initial-cluster={cluster}", f"--initial-cluster-state={s.cluster_state}",
                f"--initial-cluster-token={s.cluster_token}", *TUNING]

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        """Start the member (a leftover one on the same data is stopped first)."""
        os.makedirs(self.spec.home, mode=0o700, exist_ok=True)
        self._stop_leftover()
        self._rotate_log()
        out = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            self.process = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        except FileNotFoundError:
            raise EtcdMemberError(f"{self.command} is not installed (Debian: apt-get install etcd-server)") from None
        except OSError as e:
            raise EtcdMemberError(f"cannot start {self.command}: {e}") from None
        finally:
            os.close(out)
        tmp = self.pid_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{self.process.pid}\n")
        os.replace(tmp, self.pid_file)
        log.info("etcd member %s started (pid %d, clients %s)", self.spec.name, self.process.pid,
                 self.spec.client_url)

    def exited(self) -> int | None:
        """The member's exit status once it has ended, None while it runs (or never ran)."""
        return None if self.process is None else self.process.poll()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 30.0, quorum: bool = True) -> None:
        """Wait until the member answers (`quorum`: and its cluster has a leader)."""
        url = self.spec.client_url.rstrip("/") + ("/health" if quorum else "/version")
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.running():
                raise EtcdMemberError(f"etcd member {self.spec.name} exited ({self.exited()}): {self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    body = r.read().decode(errors="replace")
                if not quorum or '"true"' in body:
                    return
                last = body.strip()
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            time.sleep(0.1)
        raise EtcdMemberError(f"etcd member {self.spec.name} not ready after {timeout:g} s ({last}): "
                              f"{self.log_tail()}")

    def signal(self, sig: int) -> None:
        """Send the member a signal (SIGKILL, SIGSTOP, SIGCONT)."""
        if self.running():
            os.kill(self.process.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the member: SIGTERM, then SIGKILL after `timeout` seconds."""
        p = self.process
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)  # a stopped (SIGSTOP) member could not act on SIGTERM
            p.terminate()
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("etcd member %s did not stop in %g s: killed", self.spec.name, timeout)
                p.kill()
                p.wait()
        self.process = None
        _remove(self.pid_file)

    def log_tail(self, size: int = 2000) -> str:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - size))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _rotate_log(self) -> None:
        try:
            if os.path.getsize(self.log_file) > LOG_KEPT:
                os.replace(self.log_file, self.log_file + ".1")
        except FileNotFoundError:
            pass

    def _stop_leftover(self, timeout: float = 10.0) -> None:
        """A member a killed agent left running on this data dir: stop it."""
        try:
            with open(self.pid_file) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return
        if not _is_member(pid, self.data_dir):
            _remove(self.pid_file)
            return
        log.warning("stopping the etcd member left running by an earlier agent (pid %d)", pid)
        for sig, wait in ((signal.SIGCONT, 0), (signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while _is_member(pid, self.data_dir) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _is_member(pid, self.data_dir):
                break
        _remove(self.pid_file)


def _is_member(pid: int, data_dir: str) -> bool:
    """Whether process `pid` is an etcd running on `data_dir` (and not a zombie)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except OSError:
        return False
    return state != b"Z" and f"--data-dir={data_dir}".encode() in argv


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
