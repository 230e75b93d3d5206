"""hostagent-vncterm as a real process on a real pty, seen through a real VNC client (vncdotool):
the screen it draws, the keys it types, its privilege drop, its socket and its exit."""

import atexit
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hostagent.vncterm.render import read_text, render_lines
from tests.contract.vncterm_support import (
    VNCTERM,
    Vncterm,
    full_screen_rgb,
    have_vncdotool,
    listening_sockets,
    rfb_connect,
)
from tests.support import wait_for

pytestmark = pytest.mark.skipif(not have_vncdotool(), reason="vncdotool is not installed")


@pytest.fixture
def vncterm(tmp_path):
    v = Vncterm(tmp_path, "--title", "test console")
    yield v
    v.stop()


def vnc_client(port, encoding=None):
    """vncdotool connected to vncterm; ``encoding`` (e.g. rfb.Encoding.ZRLE) replaces raw."""
    from vncdotool import api
    from vncdotool.client import VNCDoToolClient, VNCDoToolFactory
    atexit.register(api.shutdown)
    factory = VNCDoToolFactory
    if encoding is not None:    # vncdotool offers its protocol class's one encoding
        protocol = type("Client", (VNCDoToolClient,), {"encoding": encoding})
        factory = type("Factory", (VNCDoToolFactory,), {"protocol": protocol})
    return api.connect(f"127.0.0.1::{port}", timeout=30, factory_class=factory)


def capture(client, tmp_path):
    from PIL import Image
    path = tmp_path / f"shot-{time.monotonic_ns()}.png"
    client.captureScreen(str(path))
    img = Image.open(path).convert("RGB")
    return img.tobytes(), img.size


def wait_screen(client, tmp_path, predicate, what, timeout=15):
    """Capture until the screen's text satisfies predicate; returns (rgb, size, lines)."""
    shot = {}

    def check():
        rgb, size = capture(client, tmp_path)
        lines = read_text(rgb, *size)
        shot.update(rgb=rgb, size=size, lines=lines)
        return predicate(lines)
    try:
        wait_for(check, timeout, what, pause=0.1)
    except AssertionError as e:
        raise AssertionError(f"{e}; screen was {shot.get('lines')}") from None
    return shot["rgb"], shot["size"], shot["lines"]


def test_screen_matches_rendering_of_expected_text(vncterm, tmp_path):
    vncterm.write(b"\x1b[2J\x1b[Hhello, console\r\n"
                  b"second line\r\n\x1b[5;10Hat row 5 col 10\x1b[3;1Hthird")
    expected = ["hello, console", "second line", "third", "", "         at row 5 col 10"]
    client = vnc_client(vncterm.port)
    try:
        rgb, size, _lines = wait_screen(client, tmp_path, lambda ls: ls[:5] == expected,
                                       "the written text")
        assert size == (640, 400)
        # Pixel for pixel the same as the font's rendering, cursor (after "third") included.
        assert rgb == render_lines(expected, 80, 25, cursor=(5, 2))
    finally:
        client.disconnect()


def test_zrle_updates_decode_to_the_same_pixels(vncterm, tmp_path):
    from vncdotool import rfb
    text = [f"line {i:02d} " + "".join(chr(33 + (i * 7 + j) % 90) for j in range(60))
            for i in range(24)]
    vncterm.write(b"\x1b[2J\x1b[H" + "\r\n".join(text).encode()
                  + b"\r\n\x1b[32mgreen\x1b[0m \x1b[45mmagenta\x1b[0m")
    client = vnc_client(vncterm.port, encoding=rfb.Encoding.ZRLE)
    try:
        rgb, _size, lines = wait_screen(client, tmp_path, lambda ls: ls[24:] == ["green magenta"],
                                        "the text over ZRLE")
        assert lines[:24] == text
        vncterm.write(b"\x1b[2J\x1b[Hplain again")
        rgb, _size, lines = wait_screen(client, tmp_path, lambda ls: ls[0] == "plain again",
                                        "an incremental ZRLE update")
        assert rgb == render_lines(["plain again"], 80, 25, cursor=(11, 0))
    finally:
        client.disconnect()
    assert "encoding" not in vncterm.stderr()


def test_colours_bold_and_reverse_are_drawn(vncterm, tmp_path):
    vncterm.write(b"\x1b[2J\x1b[H\x1b[31mred\x1b[0m \x1b[1;34mbold blue\x1b[0m "
                  b"\x1b[7mreverse\x1b[0m\r\n\x1b[?25l")
    client = vnc_client(vncterm.port)
    try:
        rgb, (width, _h), _lines = wait_screen(client, tmp_path,
                                              lambda ls: ls[0] == "red bold blue reverse",
                                              "the coloured text")
    finally:
        client.disconnect()

    def colours_of_cell(cx, cy):
        seen = set()
        for r in range(16):
            for c in range(8):
                i = ((cy * 16 + r) * width + cx * 8 + c) * 3
                seen.add(rgb[i:i + 3])
        return seen
    assert colours_of_cell(0, 0) == {b"\x00\x00\x00", b"\xaa\x00\x00"}        # red on black
    assert colours_of_cell(4, 0) == {b"\x00\x00\x00", b"\x55\x55\xff"}        # bright blue
    assert colours_of_cell(14, 0) == {b"\xaa\xaa\xaa", b"\x00\x00\x00"}       # reverse
    assert b"\xaa\xaa\xaa" in colours_of_cell(14, 0)
    assert colours_of_cell(0, 1) == {b"\x00\x00\x00"}                       # hidden cursor


def test_keys_typed_in_the_viewer_reach_the_pty(vncterm, tmp_path):
    client = vnc_client(vncterm.port)
    try:
        for key in ("l", "s", "space", "-", "l", "enter"):
            client.keyPress(key)
        assert b"ls -l\r" in vncterm.read_input(b"ls -l\r")
        for key in ("ctrl-c", "bsp", "tab", "esc", "up", "down", "right", "left", "ctrl-d"):
            client.keyPress(key)
        expected = b"\x03\x7f\t\x1b\x1b[A\x1b[B\x1b[C\x1b[D\x04"
        assert vncterm.read_input(expected).endswith(expected)
        # Application cursor mode (DECCKM), as less/vi set it, changes the arrows.
        vncterm.write(b"\x1b[?1hDECCKM set")
        wait_screen(client, tmp_path, lambda ls: "DECCKM set" in ls[0], "the mode change")
        client.keyPress("up")
        assert vncterm.read_input(b"\x1bOA").endswith(b"\x1bOA")
        client.paste("pasted\ntext")
        assert vncterm.read_input(b"pasted\rtext").endswith(b"pasted\rtext")
    finally:
        client.disconnect()


def test_typed_command_output_appears(vncterm, tmp_path):
    """A round trip as a shell would do it: keys in, echo and output back on the screen."""
    client = vnc_client(vncterm.port)
    try:
        for key in "echo hi":
            client.keyPress("space" if key == " " else key)
        client.keyPress("enter")
        typed = vncterm.read_input(b"\r")
        vncterm.write(typed.replace(b"\r", b"\r\n") + b"hi\r\n$ ")
        wait_screen(client, tmp_path, lambda ls: ls[:3] == ["echo hi", "hi", "$"],
                    "the echoed command")
    finally:
        client.disconnect()


def test_privileges_dropped_to_nobody_in_an_empty_root(vncterm, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges")
    wait_for(lambda: "running as" in vncterm.stderr(), 10, "the privilege drop")
    status = Path(f"/proc/{vncterm.proc.pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    gids = next(line for line in status.splitlines() if line.startswith("Gid:")).split()[1:]
    groups = next(line for line in status.splitlines() if line.startswith("Groups:")).split()[1:]
    nobody = __import__("pwd").getpwnam("nobody")
    assert uids == [str(nobody.pw_uid)] * 4
    assert gids == [str(nobody.pw_gid)] * 4
    assert groups == []
    root = os.readlink(f"/proc/{vncterm.proc.pid}/root")
    cwd = os.readlink(f"/proc/{vncterm.proc.pid}/cwd")
    assert root == str(tmp_path / "empty-root") and cwd == root
    st = os.stat(root)
    assert os.listdir(root) == []
    assert st.st_uid == 0 and st.st_mode & 0o222 & ~0o200 == 0     # writable by root only
    assert "NoNewPrivs:\t1" in status


def nice_of(pid) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def flood_until_lowered(vncterm) -> int:
    """Idle, vncterm runs at the priority it was started with (ours); a lasting flood (about
    12 KiB/s, cheap to draw) brings it --nice (default 10) steps lower for as long as it lasts.
    Returns the base priority, once the flood has stopped."""
    base = os.getpriority(os.PRIO_PROCESS, 0)
    wait_for(lambda: "running as" in vncterm.stderr(), 10, "the privilege drop")
    assert nice_of(vncterm.proc.pid) == base
    stop = threading.Event()

    def flood():
        i = 0
        while not stop.is_set():
            vncterm.write(b"".join(b"%010d\r\n" % ((i + k) * 1111111) for k in range(40)))
            i += 40
            time.sleep(0.04)
    writer = threading.Thread(target=flood, daemon=True)
    writer.start()
    try:
        wait_for(lambda: nice_of(vncterm.proc.pid) == min(19, base + 10), 10, "nice +10 in the flood")
        time.sleep(1.5)
        assert nice_of(vncterm.proc.pid) == min(19, base + 10)
    finally:
        stop.set()
        writer.join(10)
    return base


def cannot_return(vncterm) -> bool:
    return "cannot raise RLIMIT_NICE" in vncterm.stderr()


def test_lowers_its_priority_only_while_the_console_floods(vncterm, tmp_path):
    """Typing never lowers it; a flood does, and it returns to its base when the flood ends
    (or, where it could not raise RLIMIT_NICE before dropping root, stays lowered and says so
    once)."""
    vncterm.write(b"".join(b"$ ls\r\nfile%d\r\n" % i for i in range(20)))  # a little output
    base = flood_until_lowered(vncterm)
    if cannot_return(vncterm):
        time.sleep(2.0)
        assert nice_of(vncterm.proc.pid) == min(19, base + 10)
        assert vncterm.stderr().count("cannot return to nice") == 1
    else:
        wait_for(lambda: nice_of(vncterm.proc.pid) == base, 2.5, "the base priority after the flood")
    level = Vncterm(tmp_path, "--nice", "0")
    try:
        assert nice_of(level.proc.pid) == base
    finally:
        level.stop()
    result = subprocess.run(VNCTERM + ["--pty", "/dev/null", "--nice", "20"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 2 and "--nice" in result.stderr


def test_returns_to_its_base_priority_after_each_flood(vncterm):
    wait_for(lambda: "running as" in vncterm.stderr(), 10, "the privilege drop")
    if os.geteuid() == 0 and cannot_return(vncterm):
        pytest.skip("this root lacks CAP_SYS_RESOURCE: vncterm cannot raise RLIMIT_NICE's hard "
                    "limit before dropping privileges, so it cannot return after a flood")
    for _ in range(2):
        base = flood_until_lowered(vncterm)
        started = time.monotonic()
        wait_for(lambda b=base: nice_of(vncterm.proc.pid) == b, 5, "the base priority after the flood")
        assert time.monotonic() - started < 2.5
    assert vncterm.stderr().count("back at nice") == 1


def test_listens_on_loopback_only(vncterm):
    assert listening_sockets(vncterm.port) == ["0100007F"]          # 127.0.0.1


def test_ipv6_loopback(tmp_path):
    if not Path("/proc/net/tcp6").exists():
        pytest.skip("no IPv6")
    v = Vncterm(tmp_path, "--listen", "::1")
    try:
        assert listening_sockets(v.port) == ["00000000000000000000000001000000"]
    finally:
        v.stop()


@pytest.mark.slow
def test_a_silent_connection_is_dropped_after_the_handshake_timeout(vncterm):
    from hostagent.vncterm.client import HANDSHAKE_TIMEOUT
    s = socket.create_connection(("127.0.0.1", vncterm.port), timeout=HANDSHAKE_TIMEOUT + 10)
    started = time.monotonic()
    assert s.recv(12) == b"RFB 003.008\n"
    assert s.recv(1) == b""
    assert time.monotonic() - started >= HANDSHAKE_TIMEOUT - 1
    s.close()


@pytest.mark.parametrize("listen", ["0.0.0.0", "192.0.2.1", "::", "example.org"])
def test_non_loopback_listen_address_is_refused(listen, tmp_path):
    master, slave = os.openpty()
    try:
        p = subprocess.run(VNCTERM + ["--pty", os.ttyname(slave), "--listen", listen],
                           capture_output=True, text=True, timeout=30, check=False)
    finally:
        os.close(master)
        os.close(slave)
    assert p.returncode == 2
    assert "loopback" in p.stderr


def test_unopenable_pty_is_a_clear_error(tmp_path):
    p = subprocess.run(VNCTERM + ["--pty", str(tmp_path / "no-such-pty"),
                                  "--port-file", str(tmp_path / "port")],
                       capture_output=True, text=True, timeout=30, check=False)
    assert p.returncode == 1
    assert "cannot open" in p.stderr and "no-such-pty" in p.stderr
    assert not (tmp_path / "port").exists()


def test_bad_arguments_exit_2(tmp_path):
    for argv in ([], ["--pty", "/dev/null", "--login"], ["--login", "--cols", "3"],
                 ["--pty", "/dev/null", "--port", "70000"]):
        p = subprocess.run(VNCTERM + argv, capture_output=True, text=True, timeout=30, check=False)
        assert p.returncode == 2, argv
        assert "usage:" in p.stderr


def test_help_explains_the_contract():
    p = subprocess.run(VNCTERM + ["--help"], capture_output=True, text=True, timeout=30, check=False)
    assert p.returncode == 0
    for word in ("--pty", "--login", "--port-file", "--user", "--root", "loopback", "chroot",
                 "Exit status"):
        assert word in p.stdout


def test_exits_0_when_the_pty_master_closes(vncterm):
    sock, _init = rfb_connect(vncterm.port)
    os.close(vncterm.master)
    vncterm.master = None
    assert vncterm.proc.wait(10) == 0
    assert "hung up" in vncterm.stderr()
    sock.close()


def test_exits_0_on_sigterm_with_a_client_connected(vncterm):
    sock, _init = rfb_connect(vncterm.port)
    full_screen_rgb(sock, 640, 400)
    vncterm.proc.send_signal(signal.SIGTERM)
    assert vncterm.proc.wait(10) == 0
    assert sock.recv(100) == b""            # the client is disconnected, not left hanging
    sock.close()
