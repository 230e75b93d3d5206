"""Files copied out of an NFS export, mounted read-only for the copy: the agent's only
`mount -t nfs` (sm's NFS SR mounts its own, apart).

Blocking; call in a worker thread. The export is mounted on a fresh directory under
`work_dir`, the files copied, and the export unmounted whatever happened. Failures are
fetch.FetchError, like the other repositories'.
"""

import errno
import os
import shutil
import stat
import subprocess
import tempfile
from typing import List

from .fetch import CHUNK, FetchCancelled, FetchError, Progress

MOUNT_TIMEOUT = 60.0
# Read-only, and nothing on the export is a device, setuid program or executable to us.
MOUNT_OPTIONS = "ro,nosuid,nodev,noexec,nolock,soft,timeo=100,retrans=2"


class NfsExport:
    """`server:/export` mounted read-only while the `with` block runs."""

    def __init__(self, server: str, export: str, work_dir: str):
        self.source = f"{server}:{export}"
        self.work_dir = work_dir
        self.mountpoint = ""

    def __enter__(self) -> "NfsExport":
        os.makedirs(self.work_dir, mode=0o700, exist_ok=True)
        self.mountpoint = tempfile.mkdtemp(prefix=".nfs-", dir=self.work_dir)
        try:
            _run(["mount", "-t", "nfs", "-o", MOUNT_OPTIONS, "--", self.source, self.mountpoint],
                 f"mounting {self.source}")
        except BaseException:
            os.rmdir(self.mountpoint)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            _run(["umount", "-f", "-l", self.mountpoint], f"unmounting {self.source}")
        finally:
            try:
                os.rmdir(self.mountpoint)
            except OSError:
                pass

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


def _run(argv: List[str], what: str) -> None:
    if shutil.which(argv[0]) is None:
        raise FetchError(f"{what}: no {argv[0]} command on this host")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=MOUNT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise FetchError(f"{what}: no answer in {MOUNT_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        raise FetchError(f"{what}: {(done.stderr or done.stdout).strip() or f'exit {done.returncode}'}")
