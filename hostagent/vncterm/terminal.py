"""The console's character device: an existing pty opened raw, or a new pty with a login prompt."""

import errno
import fcntl
import os
import shutil
import stat
import struct
import termios
import tty

# agetty first (it prints /etc/issue and the "host login:" prompt), then login itself.
LOGIN_PROGRAMS = ("/sbin/agetty", "/usr/sbin/agetty", "/bin/login", "/usr/bin/login")


class TerminalError(Exception):
    """The console device could not be opened or the login program not started."""


def open_pty(path: str) -> int:
    """Open a character device read/write, non-blocking, raw, never as our controlling tty."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise TerminalError(f"cannot open {path}: {e.strerror}") from None
    try:
        is_chr = stat.S_ISCHR(os.fstat(fd).st_mode)
        if is_chr and os.isatty(fd):
            tty.setraw(fd)
    except (OSError, termios.error) as e:
        os.close(fd)
        raise TerminalError(f"cannot set {path} to raw mode: {e}") from None
    if not is_chr:
        os.close(fd)
        raise TerminalError(f"{path} is not a character device")
    return fd


def set_window_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def login_command(term: str = "linux") -> list:
    """The argv of the login prompt run on the new pty (as root, so it can authenticate)."""
    for path in LOGIN_PROGRAMS:
        if os.access(path, os.X_OK):
            if path.endswith("agetty"):
                return [path, "--noclear", "--noreset", "-", term]
            return [path]
    found = shutil.which("agetty") or shutil.which("login")
    if not found:
        raise TerminalError("no login program (agetty or login) found")
    return [found] if found.endswith("login") else [found, "--noclear", "--noreset", "-", term]


def spawn_login(cols: int, rows: int, term: str = "linux"):
    """Make a pty, start a login prompt on its slave side in a new session; returns
    (master fd, child pid). Our copy of the slave is closed, so the master reads EIO once
    the login session is over."""
    argv = login_command(term)
    master, slave = os.openpty()
    try:
        set_window_size(master, cols, rows)
        env = {"TERM": term, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        pid = os.fork()
    except OSError as e:
        os.close(master)
        os.close(slave)
        raise TerminalError(f"cannot start {argv[0]}: {e.strerror}") from None
    if pid == 0:
        _child(master, slave, argv, env)
    os.close(slave)
    os.set_blocking(master, False)
    os.set_inheritable(master, False)
    return master, pid


def _child(master: int, slave: int, argv: list, env: dict) -> None:
    """In the forked child: the pty's slave becomes stdin/out/err and controlling terminal."""
    try:
        os.close(master)
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        if slave > 2:
            os.close(slave)
        os.closerange(3, 65536)
        os.chdir("/")
        os.execve(argv[0], argv, env)
    except OSError as e:
        os.write(2, f"hostagent-vncterm: cannot run {argv[0]}: {e.strerror}\r\n".encode())
    finally:
        os._exit(127)


def read_chunk(fd: int, size: int):
    """Read what is there: bytes, b'' when nothing is ready, None when the other side hung up."""
    try:
        data = os.read(fd, size)
    except BlockingIOError:
        return b""
    except OSError as e:
        if e.errno in (errno.EIO, errno.EBADF, errno.ENXIO):
            return None
        raise
    return data if data else None
