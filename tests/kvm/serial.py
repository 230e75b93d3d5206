"""Talking to the test guest over its serial console: markers, block-device reports, commands.

The guest (guest_init.sh) prints `READY <kernel>`, `BLOCK <devs>` and `POWEROFF` lines and answers
`<id> <command> <args>` with `OK <id> ...` or `ERR <id> ...`; kernel messages may come in between
and are kept in the transcript but otherwise ignored. A console is a Unix socket (the chardev in
server mode, as the kit's own XML has it) or a pty (libvirt's usual `<serial type='pty'>`);
`Console.of_domain` picks whichever the running domain's XML names.
"""

import itertools
import os
import select
import socket
import termios
import time
import tty
import xml.etree.ElementTree as ET


class ConsoleError(AssertionError):
    """A marker or answer did not come in time, the console closed, or the guest answered ERR."""


class Console:
    """A line-oriented view of one guest serial console; every line read stays in `lines`."""

    def __init__(self, fd: int, closer, name: str):
        self._fd = fd
        self._closer = closer
        self.name = name
        self.lines = []
        self._partial = b""
        self._eof = False
        self._ids = itertools.count(1)

    @classmethod
    def connect_unix(cls, path, timeout: float = 10.0) -> "Console":
        """Connects to a chardev listening on `path`, retrying while qemu has not bound it yet."""
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                sock.close()
                if time.monotonic() > deadline:
                    raise ConsoleError(f"no console listening on {path}: {exc}") from exc
                time.sleep(0.05)
        return cls(sock.fileno(), sock.close, str(path))

    @classmethod
    def open_pty(cls, path) -> "Console":
        """Opens the host side of a pty console, raw, so nothing is echoed or translated."""
        fd = os.open(str(path), os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd, termios.TCSANOW)
        return cls(fd, lambda: os.close(fd), str(path))

    @classmethod
    def of_domain(cls, dom, timeout: float = 10.0) -> "Console":
        """The first serial console of a running libvirt domain, unix or pty."""
        serial = ET.fromstring(dom.XMLDesc(0)).find("./devices/serial")
        if serial is None:
            raise ConsoleError(f"domain {dom.name()} has no serial device")
        source = serial.find("source")
        kind = serial.get("type")
        if kind == "unix" and source is not None and source.get("mode") == "bind":
            return cls.connect_unix(source.get("path"), timeout)
        if kind == "pty" and source is not None and source.get("path"):
            return cls.open_pty(source.get("path"))
        raise ConsoleError(f"domain {dom.name()}: cannot read a serial console of type {kind!r}")

    def close(self) -> None:
        if self._closer:
            self._closer()
            self._closer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- reading

    def wait_line(self, predicate, timeout: float, what: str) -> str:
        """The first line of the whole transcript for which predicate(line) holds."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for line in self.lines[checked:]:
                if predicate(line):
                    return line
            checked = len(self.lines)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._eof:
                why = "the console closed" if self._eof else f"timed out after {timeout} s"
                raise ConsoleError(f"{self.name}: {why} waiting for {what}; "
                                   f"last lines: {self.lines[-15:]!r}")
            self._read(remaining)

    def wait_for(self, prefix: str, timeout: float = 30.0) -> str:
        """The first line starting with `prefix` (READY, POWEROFF, ...)."""
        return self.wait_line(lambda line: line.startswith(prefix), timeout, repr(prefix))

    def wait_ready(self, timeout: float = 60.0) -> str:
        """The kernel version from the guest's READY line."""
        return self.wait_for("READY ", timeout).split()[1]

    def blocks(self):
        """The block devices of the guest's last BLOCK report, or None before any."""
        self._read(0)
        reports = [line for line in self.lines if line.split()[:1] == ["BLOCK"]]
        return reports[-1].split()[1:] if reports else None

    def wait_blocks(self, expected, timeout: float = 30.0) -> list:
        """Waits until the guest's latest BLOCK report lists exactly `expected` (in any order)."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.blocks()
            if current is not None and sorted(current) == sorted(expected):
                return current
            if time.monotonic() > deadline or self._eof:
                raise ConsoleError(f"{self.name}: block devices {current} never became "
                                   f"{sorted(expected)} within {timeout} s; "
                                   f"last lines: {self.lines[-15:]!r}")
            self._read(min(0.2, max(0.0, deadline - time.monotonic())))

    # -- commands

    def command(self, *words, timeout: float = 30.0) -> str:
        """Sends one command and returns what follows `OK <id>`; ERR raises ConsoleError."""
        ident = f"c{next(self._ids)}"
        self.send(" ".join([ident, *map(str, words)]))
        line = self.wait_line(lambda text: text.split()[:2] in (["OK", ident], ["ERR", ident]),
                              timeout, f"the answer to {' '.join(map(str, words))!r}")
        status, _, rest = line.partition(" ")
        result = rest[len(ident):].strip()
        if status == "ERR":
            raise ConsoleError(f"guest refused {' '.join(map(str, words))!r}: {result}")
        return result

    def ping(self, timeout: float = 30.0) -> str:
        """The guest's kernel version, proving it reads and answers commands."""
        return self.command("ping", timeout=timeout).split()[1]

    def uptime(self, timeout: float = 30.0) -> float:
        """Seconds since the guest's kernel started (its /proc/uptime)."""
        return float(self.command("uptime", timeout=timeout))

    def sha256(self, device: str, length: int, offset: int = 0, timeout: float = 60.0) -> str:
        return self.command("sha256", device, length, offset, timeout=timeout)

    def write(self, device: str, offset: int, count: int, pattern: str,
              timeout: float = 60.0) -> None:
        if not pattern or any(ch.isspace() for ch in pattern):
            raise ValueError("the pattern must be non-empty and without spaces")
        self.command("write", device, offset, count, pattern, timeout=timeout)

    def sync(self, timeout: float = 30.0) -> None:
        self.command("sync", timeout=timeout)

    def send(self, text: str) -> None:
        data = (text + "\n").encode()
        while data:
            data = data[os.write(self._fd, data):]

    # -- the byte stream

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout))
        if not ready:
            return
        try:
            chunk = os.read(self._fd, 65536)
        except OSError:  # a pty whose other side went away reads EIO
            chunk = b""
        if not chunk:
            self._eof = True
            return
        self._partial += chunk.replace(b"\r", b"")
        *complete, self._partial = self._partial.split(b"\n")
        self.lines.extend(line.decode(errors="replace") for line in complete)
