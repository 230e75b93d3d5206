"""The vncterm adapter (backends/consoles.py) with the real hostagent-vncterm on real ptys:
start, the state file, adoption by a second adapter, a recycled pid never trusted, deaths
noticed, stop, and a start that fails with the program's own message."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from hostagent.backends.consoles import ConsoleError, Terminal, Vncterms

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="vncterm drops to nobody and chroots: needs root")


@pytest.fixture
def pty():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    yield master, path
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.fixture
def terms(tmp_path):
    t = Vncterms(str(tmp_path))
    yield t
    for key in list(t.running):
        t.stop(key)


def greeting(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        return s.recv(12)


def gone(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_start_adopt_stop(terms, pty, tmp_path):
    _master, path = pty
    term = terms.start("vm-abc", "abc", path, title="guest")
    assert term.port > 0 and term.pty == path and term.vm == "abc"
    assert greeting(term.port) == b"RFB 003.008\n"
    # told to run 10 steps below the agent's priority while its console floods; idle, it runs
    # at the agent's priority (ps's NI column)
    with open(f"/proc/{term.pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert argv[argv.index(b"--nice") + 1] == b"10"
    with open(f"/proc/{term.pid}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[16]) == os.getpriority(os.PRIO_PROCESS, 0)
    with open(tmp_path / "consoles" / "vm-abc.json") as f:
        assert Terminal(**json.load(f)) == term
    # a second adapter (the agent restarted) adopts it: same process, nothing started
    again = Vncterms(str(tmp_path))
    assert again.adopt() == [term]
    assert terms.dead() == []
    again.stop("vm-abc")
    assert gone(term.pid)
    assert not (tmp_path / "consoles" / "vm-abc.json").exists()
    terms.running.clear()


def test_a_recycled_pid_is_neither_adopted_nor_killed(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.makedirs(tmp_path / "consoles")
        (tmp_path / "consoles" / "vm-old.json").write_text(json.dumps(
            {"pid": other.pid, "pty": "/dev/pts/99", "port": 5999, "vm": "old"}))
        t = Vncterms(str(tmp_path))
        assert t.adopt() == []
        assert other.poll() is None  # still running: it was never ours
        assert not (tmp_path / "consoles" / "vm-old.json").exists()
    finally:
        other.kill()
        other.wait()


def test_deaths_are_noticed(terms, pty):
    master, path = pty
    killed = terms.start("vm-k", "k", path)
    os.kill(killed.pid, signal.SIGKILL)
    assert gone(killed.pid)
    assert [t.key for t in terms.dead()] == ["vm-k"]
    assert "vm-k" not in terms.running
    # a console that hangs up (the guest stopped) ends its vncterm
    hung = terms.start("vm-h", "h", path)
    os.close(master)
    assert gone(hung.pid)
    assert [t.key for t in terms.dead()] == ["vm-h"]


def test_a_start_that_fails_says_why(terms, tmp_path):
    with pytest.raises(ConsoleError, match="vncterm exited with 1"):
        terms.start("vm-x", "x", str(tmp_path / "no-such-pty"))
    assert terms.running == {}
    assert not (tmp_path / "consoles" / "vm-x.json").exists()


def test_the_chroot_must_stay_empty(terms, pty, tmp_path):
    _master, path = pty
    terms.start("vm-a", "a", path)
    (tmp_path / "consoles" / "empty").chmod(0o755)
    (tmp_path / "consoles" / "empty" / "planted").write_text("x")
    with pytest.raises(ConsoleError, match="must be empty"):
        terms.start("vm-b", "b", path)
