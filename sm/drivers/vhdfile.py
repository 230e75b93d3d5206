"""The seam between the VHD drivers and the sm.vhd format library.

Everything the drivers need from a VHD file goes through these few functions,
which also translate sm.vhd's errors into sm.errors: a malformed image is
VDILoad, a bad size VDISize, a full disk SRFull. Parents are named by file
name: sm.vhd records a same-directory parent as a relative locator first, so an
SR directory can be mounted anywhere without rewriting its chains.
"""

import errno
import os
from contextlib import contextmanager
from dataclasses import dataclass

from sm import vhd
from sm.driver import VolumeReader, VolumeWriter
from sm.errors import BackendFailure, SRFull


@dataclass(frozen=True)
class VhdFacts:
    virtual_size: int
    parent: str | None  # the parent's file name (found or only recorded), else None
    broken: str | None = None  # why the file could not be read as a VHD


def facts_or_broken(path: str) -> VhdFacts:
    """facts(path), or for an unreadable image a VhdFacts saying why (so one damaged
    file does not make a whole SR unscannable)."""
    try:
        return facts(path)
    except BackendFailure as exc:
        return VhdFacts(0, None, exc.params[1])


@contextmanager
def translated(what: str, error: str = "VDILoad"):
    """Turn sm.vhd and OS failures on `what` into sm.errors (FileNotFoundError passes)."""
    try:
        yield
    except (vhd.OutOfRangeError, vhd.ResizeError) as exc:
        raise BackendFailure("VDISize", f"{what}: {exc}") from exc
    except vhd.VhdError as exc:
        raise BackendFailure(error, f"{what}: {type(exc).__name__}: {exc}") from exc
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise SRFull(0, _free_bytes(what)) from exc
        raise BackendFailure(error, f"{what}: {exc.strerror or exc}") from exc


def _free_bytes(path: str) -> int:
    """Bytes still free on the filesystem holding path (0 if that cannot be told)."""
    try:
        vfs = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return 0
    return vfs.f_bavail * vfs.f_frsize


def create(path: str, virtual_size: int) -> None:
    """A new, empty dynamic (thin) VHD; the file must not exist."""
    with translated(path, "VDICreate"):
        vhd.create_dynamic(path, virtual_size)


def make_child(path: str, parent_path: str) -> None:
    """An empty differencing VHD at path reading through to parent_path."""
    with translated(path, "VDICreate"):
        vhd.make_child(parent_path, path)


def freeze(path: str, base_path: str, second_child: str) -> None:
    """Rename leaf `path` to `base_path` and give it two empty children: `path` (same
    contents as before) and `second_child`. sm.vhd puts everything back on failure."""
    with translated(path, "VDISnapshot"):
        vhd.snapshot(path, base_path, second_child)


def resize(path: str, new_size: int) -> None:
    """Grow the virtual size (sm.vhd never shrinks)."""
    with translated(path, "VDIResize"):
        vhd.resize(path, new_size)


def facts(path: str) -> VhdFacts:
    with translated(path):
        info = vhd.info(path)
    parent = info["parent"] or info["parent_name"]
    return VhdFacts(info["virtual_size"], os.path.basename(parent) if parent else None)


def _merge(ranges):
    out = []
    for start, length in sorted(ranges):
        if out and start <= out[-1][0] + out[-1][1]:
            last_start, last_len = out[-1]
            out[-1] = (last_start, max(last_len, start + length - last_start))
        else:
            out.append((start, length))
    return out


class _Reader(VolumeReader):
    """The virtual contents of a leaf, read through its whole chain."""

    def __init__(self, path: str):
        self._path = path
        with translated(path):
            self._image = vhd.open(path)
        self.size = self._image.virtual_size

    def read(self, offset: int, length: int) -> bytes:
        with translated(self._path):
            return self._image.read(offset, length)

    def extents(self):
        """Every range some file of the chain holds, clipped to this disk's size."""
        ranges = []
        with translated(self._path):
            for member in vhd.chain(self._path):
                with vhd.open(member) as image:
                    for start, length in image.extents():
                        end = min(start + length, self.size)
                        if end > start:
                            ranges.append((start, end - start))
        return _merge(ranges)

    def close(self):
        self._image.close()


class _Writer(VolumeWriter):
    def __init__(self, path: str):
        self._path = path
        with translated(path):
            self._image = vhd.open(path, writable=True)

    def write(self, offset: int, data: bytes) -> None:
        with translated(self._path, "EIO"):
            self._image.write(offset, data)

    def close(self):
        try:
            with translated(self._path, "EIO"):
                self._image.flush()
        finally:
            self._image.close()


def reader(path: str) -> VolumeReader:
    return _Reader(path)


def writer(path: str) -> VolumeWriter:
    """Writes into path (a leaf); unwritten ranges keep reading from its parents."""
    return _Writer(path)
