"""Files copied out of an NFS export, mounted read-only for the copy, through sm's mount
helper (sm/drivers/mounts.py: the one module that runs `mount`).

Blocking; call in a worker thread. The export is mounted on a fresh directory under
`work_dir`, the files copied, and the export unmounted whatever happened. Failures are
fetch.FetchError, like the other repositories'.
"""

import errno
import os
import stat
import tempfile
from contextlib import contextmanager

from sm.drivers import mounts
from sm.errors import SMError, Timeout, ToolFailed
from sm.runner import Runner

from .fetch import CHUNK, FetchCancelled, FetchError, Progress

MOUNT_TIMEOUT = 60.0
# Read-only, and nothing on the export is a device, setuid program or executable to us.
MOUNT_OPTIONS = "ro,nosuid,nodev,noexec,nolock,soft,timeo=100,retrans=2"


class NfsExport:
    """`server:/export` mounted read-only while the `with` block runs."""

    def __init__(self, server: str, export: str, work_dir: str, runner: Runner | None = None):
        self.source = f"{server}:{export}"
        self.work_dir = work_dir
        self.mountpoint = ""
        self.runner = runner or Runner(timeout=MOUNT_TIMEOUT)

    def __enter__(self) -> "NfsExport":
        os.makedirs(self.work_dir, mode=0o700, exist_ok=True)
        self.mountpoint = tempfile.mkdtemp(prefix=".nfs-", dir=self.work_dir)
        try:
            with _translated(f"mounting {self.source}"):
                mounts.mount(self.runner, self.source, self.mountpoint, "nfs", MOUNT_OPTIONS, "NFSMount")
        except BaseException:
            os.rmdir(self.mountpoint)
            raise
        return self

    def __exit__(self, *exc) -> None:
        # sm's umount is a clean one and removes the (then empty) mount point.
        with _translated(f"unmounting {self.source}"):
            mounts.umount(self.runner, self.mountpoint, "NFSMount")

    def describe(self, relative: str) -> str:
        return f"nfs:{self.source.rstrip('/')}/{relative.lstrip('/')}"

    def copy(self, relative: str, dest: str, progress: Progress) -> int:
        """One file of the export to `dest` (written whole or not at all)."""
        where = self.describe(relative)
        part = dest + ".part"
        try:
            src_fd = open_beneath(self.mountpoint, relative)
            with os.fdopen(src_fd, "rb") as src, \
                    os.fdopen(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
                while True:
                    if progress.cancel:
                        raise FetchCancelled(f"{where}: cancelled")
                    chunk = src.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    progress.done += len(chunk)
            os.replace(part, dest)
            return os.path.getsize(dest)
        except FileNotFoundError:
            raise FetchError(f"{where}: no such file", missing=True) from None
        except UnsafePath as e:
            raise FetchError(f"{where}: {e}") from None
        except OSError as e:
            raise FetchError(f"{where}: {e.strerror or e}") from None
        finally:
            if os.path.exists(part):
                os.unlink(part)


class UnsafePath(Exception):
    """A path on the export that leads off it (a symbolic link, `..`) or to a non-file."""


def open_beneath(top: str, relative: str) -> int:
    """A read-only descriptor of the regular file `relative` under directory `top`, walked one
    component at a time with O_NOFOLLOW: a link anywhere on the way (the export's server
    chooses them, and could point one at /etc/shadow) is refused, never followed."""
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UnsafePath(f"{relative!r} is not a plain path beneath the export")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(top, flags | os.O_DIRECTORY)
    try:
        for name in parts[:-1]:
            try:
                step = os.open(name, flags | os.O_DIRECTORY, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath(f"{name!r} is a symbolic link or not a directory") from None
                raise
            os.close(fd)
            fd = step
        try:
            leaf = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UnsafePath(f"{parts[-1]!r} is a symbolic link") from None
            raise
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(leaf).st_mode):
        os.close(leaf)
        raise UnsafePath(f"{parts[-1]!r} is not a regular file")
    os.set_blocking(leaf, True)
    return leaf


@contextmanager
def _translated(what: str):
    """sm's mount errors as this module's FetchError."""
    try:
        yield
    except Timeout:
        raise FetchError(f"{what}: no answer in {MOUNT_TIMEOUT:.0f} s") from None
    except ToolFailed as e:
        if e.rc == 127:
            raise FetchError(f"{what}: no {e.cmd[0]} command on this host") from None
        raise FetchError(f"{what}: {(e.stderr or e.stdout).strip() or f'exit {e.rc}'}") from None
    except SMError as e:
        raise FetchError(f"{what}: {e}") from None
