"""Helpers for the vncterm tests: a pty pair we own, a running hostagent-vncterm on its slave
side, a minimal raw RFB client (for handshakes and hostile cases) and the vncdotool client."""

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from tests.support import wait_for

VNCTERM = [sys.executable, "-m", "hostagent.vncterm"]
REPO = Path(__file__).resolve().parents[2]


def empty_root(tmp_path) -> str:
    """A fresh root-owned empty directory for --root (vncterm creates it 0555)."""
    return str(tmp_path / "empty-root")


class Vncterm:
    """hostagent-vncterm serving the slave side of an os.openpty() pair held by the test."""

    def __init__(self, tmp_path, *extra, pty=True, cols=80, rows=25):
        self.master = None
        self.port_file = tmp_path / f"port-{time.monotonic_ns()}"
        args = ["--port-file", str(self.port_file), "--root", empty_root(tmp_path),
                "--cols", str(cols), "--rows", str(rows), *extra]
        slave = None
        if pty:
            self.master, slave = os.openpty()
            args = ["--pty", os.ttyname(slave), *args]
        self.stderr_path = tmp_path / f"vncterm-{time.monotonic_ns()}.log"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 (open while the process runs)
        self.proc = subprocess.Popen(VNCTERM + args, cwd=REPO, stderr=self._stderr,
                                     stdin=subprocess.DEVNULL)
        if slave is not None:
            os.close(slave)
        wait_for(lambda: self.port_file.exists() or self.proc.poll() is not None, 20,
                 "the port file")
        if self.proc.poll() is not None:
            raise AssertionError(f"vncterm exited {self.proc.returncode}: {self.stderr()}")
        self.port = int(self.port_file.read_text())
        if self.master is not None:
            os.set_blocking(self.master, False)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def write(self, data: bytes) -> None:
        """Write to the pty master (as the guest would), waiting while its buffer is full."""
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            view = view[n:]

    def read_input(self, want: bytes, timeout=10) -> bytes:
        """Read what vncterm wrote into the pty until ``want`` has been seen."""
        got = bytearray()

        def seen():
            with contextlib.suppress(BlockingIOError):
                got.extend(os.read(self.master, 65536))
            return want in got
        wait_for(seen, timeout, f"{want!r} from the pty (got {bytes(got)!r})")
        return bytes(got)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.close(self.master)
            self.master = None
        self._stderr.close()
        return self.proc.returncode


def rfb_connect(port, version=b"RFB 003.008\n", timeout=10) -> socket.socket:
    """A raw client through the handshake (security None, shared); returns (socket, init)
    after ServerInit, init being (width, height, pixel format bytes, desktop name)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    assert recv_exact(s, 12) == b"RFB 003.008\n"
    s.sendall(version)
    minor = int(version[8:11])
    minor = 8 if minor >= 8 else 7 if minor == 7 else 3      # what the server settles on
    if minor == 3:
        assert struct.unpack(">I", recv_exact(s, 4))[0] == 1
    else:
        n = recv_exact(s, 1)[0]
        assert 1 in recv_exact(s, n)
        s.sendall(b"\x01")
        if minor >= 8:
            assert struct.unpack(">I", recv_exact(s, 4))[0] == 0
    s.sendall(b"\x01")
    w, h = struct.unpack(">HH", recv_exact(s, 4))
    pf = recv_exact(s, 16)
    name = recv_exact(s, struct.unpack(">I", recv_exact(s, 4))[0])
    return s, (w, h, pf, name)


def recv_exact(s, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def request_update(s, incremental, x=0, y=0, w=65535, h=65535) -> None:
    s.sendall(struct.pack(">BBHHHH", 3, int(incremental), x, y, w, h))


def read_update(s, bytes_per_pixel=4):
    """Read one FramebufferUpdate of raw rectangles: list of (x, y, w, h, pixel bytes); a
    CopyRect rectangle comes as (x, y, w, h, ("copy", src_x, src_y))."""
    while True:
        kind = recv_exact(s, 1)[0]
        if kind == 2:          # Bell
            continue
        if kind == 1:          # SetColourMapEntries
            _pad, _first, n = struct.unpack(">BHH", recv_exact(s, 5))
            recv_exact(s, 6 * n)
            continue
        assert kind == 0, f"unexpected server message {kind}"
        break
    _pad, n = struct.unpack(">BH", recv_exact(s, 3))
    rects = []
    for _ in range(n):
        x, y, w, h, enc = struct.unpack(">HHHHi", recv_exact(s, 12))
        if enc == 1:
            rects.append((x, y, w, h, ("copy", *struct.unpack(">HH", recv_exact(s, 4)))))
            continue
        assert enc == 0, f"encoding {enc} where raw was expected"
        rects.append((x, y, w, h, recv_exact(s, w * h * bytes_per_pixel)))
    return rects


def full_screen_rgb(s, width, height):
    """Ask for a full update in the default 32-bit format and return it as RGB bytes."""
    request_update(s, False, 0, 0, width, height)
    (x, y, w, h, data), = read_update(s)
    assert (x, y, w, h) == (0, 0, width, height)
    out = bytearray(w * h * 3)
    out[0::3] = data[2::4]
    out[1::3] = data[1::4]
    out[2::3] = data[0::4]
    return bytes(out)


def write_and_sync(v, sock, data: bytes, marker: str = "synced", timeout=15) -> None:
    """Write data, then a marker on the bottom row, and wait (with full updates on ``sock``)
    until the marker shows: vncterm has then taken all of data and ``sock`` has no damage."""
    from hostagent.vncterm.render import read_text
    v.write(data + b"\x1b7\x1b[25;1H" + marker.encode() + b"\x1b8")
    wait_for(lambda: read_text(full_screen_rgb(sock, 640, 400), 640, 400)[24] == marker,
             timeout, f"{marker} on the screen")


def listening_sockets(port: int) -> list:
    """Local addresses listening on ``port``, from /proc/net/tcp and tcp6 (state 0A)."""
    found = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            addr, p = local.rsplit(":", 1)
            if state == "0A" and int(p, 16) == port:
                found.append(addr)
    return found


def have_vncdotool() -> bool:
    try:
        import vncdotool.api  # noqa: F401
    except ImportError:
        return False
    return True


def login_available() -> bool:
    return bool(shutil.which("agetty") or shutil.which("login"))
