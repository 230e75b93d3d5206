"""hostagent-vncterm --login: the host console shows a login prompt (never a shell), asks for a
password, refuses a wrong one, and exits when the login program does."""

import os
import signal
from pathlib import Path

import pytest

from tests.contract.test_vncterm import vnc_client, wait_screen
from tests.contract.vncterm_support import Vncterm, have_vncdotool, login_available
from tests.support import wait_for

pytestmark = [
    pytest.mark.skipif(not have_vncdotool(), reason="vncdotool is not installed"),
    pytest.mark.skipif(not login_available(), reason="neither agetty nor login is installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="login needs root to run and authenticate"),
    pytest.mark.root,
]


@pytest.fixture
def host_console(tmp_path):
    v = Vncterm(tmp_path, "--login", "--title", "host console", pty=False)
    yield v
    v.stop()


def children(pid: int) -> list:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def is_login_prompt(lines) -> bool:
    return any(line.rstrip().endswith("login:") for line in lines)


def test_host_console_shows_a_login_prompt_not_a_shell(host_console, tmp_path):
    client = vnc_client(host_console.port)
    try:
        _rgb, _size, lines = wait_screen(client, tmp_path, is_login_prompt, "the login prompt")
        assert not any(line.rstrip().endswith(("#", "$")) for line in lines), lines
        for key in "root":
            client.keyPress(key)
        client.keyPress("enter")
        wait_screen(client, tmp_path, lambda ls: any("Password:" in x for x in ls),
                    "the password prompt")
        for key in "not-the-password":
            client.keyPress("minus" if key == "-" else key)
        client.keyPress("enter")
        _rgb, _size, lines = wait_screen(client, tmp_path,
                                         lambda ls: any("Login incorrect" in x for x in ls),
                                         "the refusal", timeout=30)
        assert not any(line.rstrip().endswith(("#", "$")) for line in lines), lines
    finally:
        client.disconnect()


def test_vncterm_is_unprivileged_while_login_runs_as_root(host_console):
    pid = host_console.proc.pid
    wait_for(lambda: children(pid), 10, "the login program")
    wait_for(lambda: "running as" in host_console.stderr(), 10, "the privilege drop")
    (child,) = children(pid)
    uid_of = {p: Path(f"/proc/{p}/status").read_text().split("Uid:")[1].split()[0]
              for p in (pid, child)}
    assert uid_of[child] == "0"
    assert uid_of[pid] == str(__import__("pwd").getpwnam("nobody").pw_uid)


def test_sigterm_ends_the_login_session_too(host_console):
    pid = host_console.proc.pid
    wait_for(lambda: children(pid), 10, "the login program")
    (child,) = children(pid)
    host_console.proc.terminate()
    assert host_console.proc.wait(10) == 0

    def gone():
        status = Path(f"/proc/{child}/status")
        return not status.exists() or "State:\tZ" in status.read_text()
    wait_for(gone, 10, "the login program to end with the pty")


def test_exits_0_when_the_login_program_exits(host_console):
    pid = host_console.proc.pid
    wait_for(lambda: children(pid), 10, "the login program")
    for child in children(pid):
        os.kill(child, signal.SIGKILL)
    assert host_console.proc.wait(10) == 0
    assert "login program exited" in host_console.stderr() or "hung up" in host_console.stderr()
