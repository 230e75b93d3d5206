"""Run the agent as a real process for functional tests.

`AgentProcess(state_dir).start()` runs `python -m hostagent serve` on a free
loopback port and a Unix socket (in a directory without underscores, since
XenAPI.py's UDSTransport turns '_' back into '/'), waits for its banner and
reads the URL and the generated root password from it.
"""

import contextlib
import glob
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

BANNER_TIMEOUT = 30.0


class AgentProcess:
    def __init__(self, state_dir: str, extra_args=(), env=None):
        self.state_dir = state_dir
        self.sock_dir = os.path.join(tempfile.gettempdir(), "ha-" + secrets.token_hex(6))
        os.makedirs(self.sock_dir, mode=0o700, exist_ok=True)
        self.socket = os.path.join(self.sock_dir, "xapi.sock")
        self.extra_args = list(extra_args)
        self.env = env
        self.proc = None
        self.url = None
        self.port = None
        self.tls_url = None  # the first https:// listener, with --tls-listen
        self.log_lines = []

    @property
    def password(self) -> str:
        with open(os.path.join(self.state_dir, "root-password")) as f:
            return f.read().strip()

    def start(self, port: int = 0) -> "AgentProcess":
        cmd = [sys.executable, "-m", "hostagent", "serve", "--state-dir", self.state_dir,
               "--listen", f"127.0.0.1:{port}", "--unix-socket", self.socket,
               "--auth-failure-delay", "0", *self.extra_args]
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        self.log_lines = []
        self.banner = []
        self.tls_url = None
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()
        deadline = time.monotonic() + BANNER_TIMEOUT
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("agent exited before listening:\n" + "".join(self.log_lines[-40:]))
            self.banner.append(line)
            m = re.match(r"hostagent listening on (https://\S+)", line)
            if m and self.tls_url is None:
                self.tls_url = m.group(1)
            m = re.match(r"hostagent listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                self.port = int(self.url.rsplit(":", 1)[1].strip("/"))
            if line.startswith("Log in"):
                threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()
                return self
        raise RuntimeError("agent did not print its banner in time")

    def _drain(self, stream):
        for line in stream:
            self.log_lines.append(line)

    def log_text(self) -> str:
        return "".join(self.log_lines)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        self.stop()
        stop_datapaths(self.state_dir)
        shutil.rmtree(self.sock_dir, ignore_errors=True)


def stop_datapaths(state_dir: str) -> None:
    """End the NBD servers (nbdkit) the agent left serving disks from `state_dir`: they outlive
    the agent by design (a running guest keeps its disks across an agent restart), but not the
    test that made them."""
    for pid_file in glob.glob(os.path.join(state_dir, "datapath", "*.pid")):
        try:
            with open(pid_file) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                mine = state_dir.encode() in f.read()
        except (OSError, ValueError):
            continue  # gone already, or not a pid
        if mine:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
