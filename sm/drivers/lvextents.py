"""An LV's data read and written: on its physical volumes without device-mapper
(``ExtentIO``), through the activated LV with it (``BlockIO``), and zeroed the same
way on both (``zero_range``).

A linear LV is a list of segments: ``seg_size_pe`` logical extents from logical
extent ``seg_start_pe`` lie on consecutive physical extents of one PV
(``seg_pe_ranges`` is ``<pv>:<first>-<last>``). Physical extent n of a PV starts
``pe_start + n * extent_size`` bytes into its device, so byte x of the LV, in
logical extent ``le = x // extent_size`` of the segment starting at ``seg_start_pe``,
is byte ``pe_start(pv) + (first + le - seg_start_pe) * extent_size + x % extent_size``
of that PV. Only linear segments (and ``striped`` ones of one stripe, the same
layout) are mapped; any other segment type (striped over several PVs, mirror, raid,
thin, cache, ...) is refused, and only the extents LVM reports for the LV are touched.

Without device-mapper nothing else opens the PVs, so every access goes through the
same block-device page cache and is coherent; ``close`` fsyncs what was written.

Zeroing: a new LV's extents, and the space a resize reveals, still hold what an
earlier LV left there, and nothing else clears them: ``lvcreate --zero y`` (device-
mapper only) clears the first 4 KiB. Both paths make the whole range read as zeros
with the BLKZEROOUT ioctl (what ``blkdiscard --zeroout`` does, without a process):
the kernel uses the device's own write-zeroes command where there is one (NVMe,
SCSI WRITE SAME, loop devices' fallocate, passed through dm-linear) and otherwise
writes zero pages itself, never copying buffers from user space, and it keeps the
blocks allocated (no unmap: a thick LV stays thick). Discard is not used: it does
not promise zeros. Where the ioctl is refused, zeros are written in 1 MiB pieces.
"""

import bisect
import errno
import fcntl
import os
import stat
import struct
from typing import NamedTuple

from sm.driver import VolumeReader, VolumeWriter
from sm.errors import BackendFailure, Unsupported

# The lvs --segments fields extent_map needs (plus lv_name and vg_extent_size).
SEGMENT_FIELDS = "lv_name,vg_extent_size,segtype,stripes,seg_start_pe,seg_size_pe,seg_pe_ranges"
BLKZEROOUT = 0x127F  # _IO(0x12, 127): zero a 512-byte-aligned range of a block device
SECTOR = 512
ZERO_CHUNK = 1 << 20  # what zero() writes at once where the device cannot zero ranges


class Piece(NamedTuple):
    """One segment: ``length`` bytes from ``lv_offset`` of the LV at ``dev_offset`` of
    ``device``."""
    lv_offset: int
    length: int
    device: str
    dev_offset: int


def pv_names(seg_rows) -> list[str]:
    """The PVs an lvs --segments report names (for the pvs query of their pe_start)."""
    names = []
    for row in seg_rows:
        for pe_range in (row.get("seg_pe_ranges") or "").split():
            name = pe_range.rpartition(":")[0]
            if name and name not in names:
                names.append(name)
    return names


def extent_map(lv: str, operation: str, seg_rows, pe_starts: dict[str, int]) -> list[Piece]:
    """The pieces of an LV from its ``lvs --segments`` rows (SEGMENT_FIELDS) and the
    ``pe_start`` of its PVs; Unsupported for a segment that is not linear, and
    BackendFailure for a report that does not describe the LV from its first extent
    to its last without gaps."""
    def bad(why):
        return BackendFailure("LVMNoVolume", f"{lv}: {why}")

    if not seg_rows:
        raise bad("lvs reports no segments")
    pieces, next_le = [], 0
    for row in sorted(seg_rows, key=lambda r: int(r["seg_start_pe"])):
        start, count = int(row["seg_start_pe"]), int(row["seg_size_pe"])
        extent = int(row["vg_extent_size"])
        segtype, stripes = row.get("segtype", ""), int(row.get("stripes") or 0)
        if segtype not in ("linear", "striped") or stripes != 1:
            raise Unsupported(operation, f"{lv}: the segment at logical extent {start} is "
                                         f"{segtype} with {stripes} stripe(s); only linear "
                                         f"segments can be read on their physical volumes "
                                         f"without device-mapper")
        ranges = (row.get("seg_pe_ranges") or "").split()
        if len(ranges) != 1:
            raise bad(f"segment at extent {start} has PV ranges {ranges}")
        device, _, span = ranges[0].rpartition(":")
        first, _, last = span.partition("-")
        try:
            first, last = int(first), int(last)
        except ValueError:
            raise bad(f"unreadable PV range {ranges[0]!r}") from None
        if start != next_le or count <= 0 or last - first + 1 != count or first < 0:
            raise bad(f"segment {ranges[0]} at extent {start} ({count} extents) does not "
                      f"follow extent {next_le}")
        if device not in pe_starts:
            raise bad(f"PV {device!r} is not reported by pvs")
        pieces.append(Piece(start * extent, count * extent, device,
                            pe_starts[device] + first * extent))
        next_le = start + count
    return pieces


class ExtentIO(VolumeReader, VolumeWriter):
    """An LV read (and written) with pread/pwrite on its PVs' block devices.

    ``size`` is what readers see (the volume's virtual size); ``capacity`` is the LV's
    whole extents, which reads and writes may reach. Reads past the capacity are
    zeros; writes past it are refused.
    """

    def __init__(self, lv: str, pieces: list[Piece], size: int, writable: bool):
        self.lv, self.pieces, self.size, self.writable = lv, pieces, size, writable
        self.capacity = sum(p.length for p in pieces)
        self._starts = [p.lv_offset for p in pieces]
        self._fds: dict[str, int] = {}
        flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
        try:
            for piece in pieces:
                fd = self._fds.get(piece.device)
                if fd is None:
                    fd = self._fds[piece.device] = os.open(piece.device, flags)
                    if not stat.S_ISBLK(os.fstat(fd).st_mode):
                        raise BackendFailure("LVMMount", f"{lv}: PV {piece.device} is not a "
                                                         f"block device")
                end = os.lseek(fd, 0, os.SEEK_END)
                if piece.dev_offset + piece.length > end:
                    raise BackendFailure("LVMMount", f"{lv}: extents up to byte "
                                         f"{piece.dev_offset + piece.length} lie beyond the "
                                         f"end of {piece.device} ({end} bytes)")
        except OSError as exc:
            self._close_fds()
            raise BackendFailure("LVMMount", f"{lv}: {exc.filename or ''} "
                                             f"{exc.strerror}") from exc
        except BaseException:
            self._close_fds()
            raise

    def _span(self, offset: int, length: int):
        """(position in the request, fd, device offset, bytes) for each piece of a range
        (cut at the capacity)."""
        if offset < 0 or length < 0:
            raise ValueError(f"bad range {offset}+{length}")
        end = min(offset + length, self.capacity)
        pos = offset
        i = bisect.bisect_right(self._starts, pos) - 1
        while pos < end:
            p = self.pieces[i]
            n = min(end, p.lv_offset + p.length) - pos
            yield pos - offset, self._fds[p.device], p.dev_offset + pos - p.lv_offset, n
            pos += n
            i += 1

    def read(self, offset: int, length: int) -> bytes:
        out = bytearray(length)
        try:
            for pos, fd, where, n in self._span(offset, length):
                data = os.pread(fd, n, where)
                if len(data) != n:
                    raise BackendFailure("LVMMount", f"{self.lv}: short read at byte {where}")
                out[pos:pos + n] = data
        except OSError as exc:
            raise BackendFailure("LVMMount", f"{self.lv}: read: {exc.strerror}") from exc
        return bytes(out)

    def _check_write(self, offset: int, length: int):
        if not self.writable:
            raise BackendFailure("LVMWrite", f"{self.lv} is open read-only")
        if offset < 0 or offset + length > self.capacity:
            raise BackendFailure("LVMWrite", f"{self.lv}: bytes {offset}+{length} lie outside "
                                             f"the LV ({self.capacity} bytes)")

    def write(self, offset: int, data: bytes) -> None:
        self._check_write(offset, len(data))
        view = memoryview(data)
        try:
            for pos, fd, where, n in self._span(offset, len(data)):
                _pwrite_all(fd, view[pos:pos + n], where)
        except OSError as exc:
            raise BackendFailure("LVMWrite", f"{self.lv}: write: {exc.strerror}") from exc

    def zero(self, offset: int, length: int) -> None:
        """Make a range read as zeros (``zero_range`` on each PV piece)."""
        self._check_write(offset, length)
        try:
            for _, fd, where, n in self._span(offset, length):
                zero_range(fd, where, n)
        except OSError as exc:
            raise BackendFailure("LVMWrite", f"{self.lv}: zeroing: {exc.strerror}") from exc

    def close(self):
        if not self._fds:
            return
        try:
            if self.writable:
                for device, fd in self._fds.items():
                    try:
                        os.fsync(fd)
                    except OSError as exc:
                        raise BackendFailure("LVMWrite", f"{self.lv}: fsync {device}: "
                                                         f"{exc.strerror}") from exc
        finally:
            for p in self.pieces:  # leave no copy of the LV in the PV's page cache
                try:
                    os.posix_fadvise(self._fds[p.device], p.dev_offset, p.length,
                                     os.POSIX_FADV_DONTNEED)
                except OSError:
                    pass
            self._close_fds()

    def _close_fds(self):
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)


class BlockIO(VolumeReader, VolumeWriter):
    """An activated LV (its ``/dev/<vg>/<lv>`` device) read and written with
    pread/pwrite; ``capacity`` is the device's size (the LV's whole extents).
    ``on_close`` runs after closing (the driver deactivates the LV there)."""

    def __init__(self, path: str, size: int, writable: bool, on_close=None):
        self.path, self.size, self.writable = path, size, writable
        self._on_close, self._fd = on_close, None
        try:
            self._fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
        except OSError as exc:
            self._finish()
            raise BackendFailure("LVMMount", f"{path}: {exc.strerror}") from exc
        self.capacity = os.lseek(self._fd, 0, os.SEEK_END)

    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self._fd, length, offset)
        return data + bytes(length - len(data))

    def write(self, offset: int, data: bytes) -> None:
        try:
            _pwrite_all(self._fd, memoryview(data), offset)
        except OSError as exc:
            raise BackendFailure("LVMWrite", f"{self.path}: {exc.strerror}") from exc

    def zero(self, offset: int, length: int) -> None:
        if offset < 0 or offset + length > self.capacity:
            raise BackendFailure("LVMWrite", f"{self.path}: bytes {offset}+{length} lie "
                                             f"outside the LV ({self.capacity} bytes)")
        try:
            zero_range(self._fd, offset, length)
        except OSError as exc:
            raise BackendFailure("LVMWrite", f"{self.path}: zeroing: {exc.strerror}") from exc

    def close(self):
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self.writable:
                os.fsync(fd)
        finally:
            os.close(fd)
            self._finish()

    def _finish(self):
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()


def zero_range(fd: int, where: int, length: int) -> None:
    """Make ``length`` bytes from ``where`` of a block device (or file) read as zeros:
    BLKZEROOUT for the sector-aligned part, written zeros for the rest and wherever
    the ioctl is refused (a regular file, a device without it)."""
    head = min(-where % SECTOR, length)
    body = (length - head) // SECTOR * SECTOR
    _write_zeros(fd, where, head)
    if body and not _zeroout(fd, where + head, body):
        _write_zeros(fd, where + head, body)
    _write_zeros(fd, where + head + body, length - head - body)


def _pwrite_all(fd: int, data: memoryview, where: int):
    while data:
        n = os.pwrite(fd, data, where)
        data, where = data[n:], where + n


def _write_zeros(fd: int, where: int, length: int):
    while length > 0:
        n = min(length, ZERO_CHUNK)
        _pwrite_all(fd, memoryview(bytes(n)), where)
        where, length = where + n, length - n


def _zeroout(fd: int, where: int, length: int) -> bool:
    """BLKZEROOUT; False where the device or kernel does not offer it."""
    try:
        fcntl.ioctl(fd, BLKZEROOUT, struct.pack("QQ", where, length))
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL):
            return False
        raise
    return True


def copy_range(reader, writer, length: int, chunk: int) -> None:
    """Every byte of [0, length) from reader to writer, zeros included (the destination
    holds whatever its extents held before)."""
    for offset in range(0, length, chunk):
        writer.write(offset, reader.read(offset, min(chunk, length - offset)))
