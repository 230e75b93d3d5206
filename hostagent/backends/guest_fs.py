"""Files read out of a guest's disk, the way pygrub finds a kernel: the only user of
dissect.extfs.

Blocking; call in a worker thread. The disk (a seekable file object over the volume's
bytes) is read as an ext2/3/4 file system as a whole, or in each primary partition of
an MBR partition table. Symbolic links inside the file system are followed. Failures
are GuestFsError; `missing` when no file system on the disk has the file.
"""

import os
import stat
import struct
from typing import Iterator, List, Tuple

from dissect.extfs import ExtFS
from dissect.extfs.exceptions import Error as ExtError

from .volume_file import offset_file

SECTOR = 512
LINUX_TYPES = (0x83,)  # MBR partition types that may hold an ext file system
CHUNK = 1 << 20
MAX_LINKS = 8
# The most copied out of a guest for one boot file (kernel or initrd): the guest chooses
# what its menu names, and must not be able to fill dom0's disk with it (cf. XSA-25).
MAX_BOOT_FILE = 256 << 20


class GuestFsError(Exception):
    def __init__(self, message: str, missing: bool = False):
        super().__init__(message)
        self.missing = missing


class GuestDisk:
    """The ext file systems on a guest disk, whole or in its MBR partitions."""

    def __init__(self, fileobj, size: int, name: str):
        self.name = name
        self.filesystems: List[Tuple[str, ExtFS]] = list(self._open(fileobj, size))
        if not self.filesystems:
            raise GuestFsError(f"{name}: no ext2/3/4 file system on the disk or in its partitions")

    def _open(self, fileobj, size: int) -> Iterator[Tuple[str, ExtFS]]:
        whole = _ext(fileobj)
        if whole is not None:
            yield "the whole disk", whole
            return
        for number, start, length in _mbr_partitions(fileobj, size):
            fs = _ext(offset_file(fileobj, start, length))
            if fs is not None:
                yield f"partition {number}", fs

    def find(self, path: str) -> Tuple[str, object]:
        """(where, inode) of the first file system holding `path`; a path below /boot is also
        looked for at the root of each file system (a separate /boot partition)."""
        tries = [path] + ([path[len("/boot"):]] if path.startswith("/boot/") else [])
        for candidate in tries:
            for where, fs in self.filesystems:
                node = _lookup(fs, candidate)
                if node is not None:
                    return where, node
        raise GuestFsError(f"{self.name}: no {path} in its file systems", missing=True)

    def exists(self, path: str) -> bool:
        try:
            self.find(path)
            return True
        except GuestFsError as e:
            if e.missing:
                return False
            raise

    def read_text(self, path: str, limit: int = 1 << 20) -> str:
        _, node = self.find(path)
        try:
            return node.open().read(limit).decode("utf-8", errors="replace")
        except (ExtError, OSError, EOFError) as e:
            raise GuestFsError(f"{self.name}: reading {path}: {e}") from None

    def copy(self, path: str, dest: str, limit: int = MAX_BOOT_FILE) -> int:
        """The file at `path` to `dest`, whole or not at all; a file over `limit` bytes is a
        GuestFsError and nothing is written."""
        _, node = self.find(path)
        too_big = GuestFsError(f"{self.name}: {path} is larger than the {limit >> 20} MiB allowed for a boot file")
        if (getattr(node, "size", 0) or 0) > limit:
            raise too_big
        part = dest + ".part"
        try:
            src = node.open()
            with open(part, "wb") as out:
                copied = 0
                while True:
                    chunk = src.read(CHUNK)
                    if not chunk:
                        break
                    copied += len(chunk)
                    if copied > limit:
                        raise too_big
                    out.write(chunk)
            os.replace(part, dest)
            return os.path.getsize(dest)
        except (ExtError, OSError, EOFError) as e:
            raise GuestFsError(f"{self.name}: reading {path}: {e}") from None
        finally:
            if os.path.exists(part):
                os.unlink(part)


def _ext(fileobj):
    try:
        return ExtFS(fileobj)
    except (ExtError, NotImplementedError, EOFError, OSError, ValueError, struct.error):
        return None
    except Exception:  # noqa: BLE001 - dissect's structure parser raises its own types on garbage
        return None


def _mbr_partitions(fileobj, size: int):
    fileobj.seek(0)
    sector = fileobj.read(SECTOR)
    if len(sector) < SECTOR or sector[510:512] != b"\x55\xaa":
        return
    for number in range(4):
        entry = sector[446 + 16 * number:446 + 16 * (number + 1)]
        kind = entry[4]
        first, count = struct.unpack_from("<II", entry, 8)
        if kind in LINUX_TYPES and count and (first + count) * SECTOR <= size:
            yield number + 1, first * SECTOR, count * SECTOR


def _lookup(fs, path: str):
    """The inode at `path`, following symbolic links; None when there is none."""
    parts = [p for p in path.split("/") if p]
    node = fs.root
    seen = 0
    i = 0
    trail: List[str] = []
    while i < len(parts):
        name = parts[i]
        if name == ".":
            i += 1
            continue
        if name == "..":
            trail = trail[:-1]
            node = fs.get("/" + "/".join(trail)) if trail else fs.root
            i += 1
            continue
        try:
            found = next((e for e in node.iterdir() if e.filename == name), None)
        except (ExtError, OSError, EOFError):
            return None
        except Exception:  # noqa: BLE001 - not a directory, or a damaged one
            return None
        if found is None:
            return None
        if found.filetype == stat.S_IFLNK:
            seen += 1
            if seen > MAX_LINKS:
                return None
            target = found.link
            rest = parts[i + 1:]
            parts = [p for p in target.split("/") if p] + rest
            if target.startswith("/"):
                trail, node = [], fs.root
            i = 0
            continue
        trail.append(name)
        node = found
        i += 1
    return node
