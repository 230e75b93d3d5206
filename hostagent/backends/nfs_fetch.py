"""Files copied out of an NFS export, mounted read-only for the copy: the agent's only
`mount -t nfs` (sm's NFS SR mounts its own, apart).

Blocking; call in a worker thread. The export is mounted on a fresh directory under
`work_dir`, the files copied, and the export unmounted whatever happened. Failures are
fetch.FetchError, like the other repositories'.
"""

import os
import shutil
import subprocess
import tempfile
from typing import List

from .fetch import CHUNK, FetchCancelled, FetchError, Progress

MOUNT_TIMEOUT = 60.0


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
            _run(["mount", "-t", "nfs", "-o", "ro,nolock,soft,timeo=100,retrans=2", self.source, self.mountpoint],
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
        path = os.path.join(self.mountpoint, relative.lstrip("/"))
        where = self.describe(relative)
        part = dest + ".part"
        try:
            with open(path, "rb") as src, open(part, "wb") as out:
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
        except OSError as e:
            raise FetchError(f"{where}: {e.strerror or e}") from None
        finally:
            if os.path.exists(part):
                os.unlink(part)


def _run(argv: List[str], what: str) -> None:
    if shutil.which(argv[0]) is None:
        raise FetchError(f"{what}: no {argv[0]} command on this host")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=MOUNT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise FetchError(f"{what}: no answer in {MOUNT_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        raise FetchError(f"{what}: {(done.stderr or done.stdout).strip() or f'exit {done.returncode}'}")
