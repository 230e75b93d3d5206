"""One open VHD file: reads through the parent chain, writes that allocate at the end.

Layout decisions for what this module writes (readers do not depend on them):
a new block goes where the footer was, its sector bitmap placed so that the
block's data starts 4 KiB-aligned; the bitmap and data go out in one
pwritev, then the footer at the new end, then the block's BAT entry in place
(a process dying in between leaks the block's space but never exposes it; there
is no fsync between them, so after a power loss only what flush() made durable
counts). The BAT
lives in memory; allocated bitmaps are cached (a bitmap with every sector set,
the normal case, costs one byte per block). An Image is not thread-safe.
"""

import array
import os
import struct
import sys

from . import format as fmt
from . import meta
from .errors import CorruptError, NotDifferencingError, OutOfRangeError, ReadOnlyError
from .format import SECTOR, UNALLOCATED

ALIGN = 4096
_PARTIAL_BITMAPS = 8192               # partly-set bitmaps kept in memory per image
assert array.array("I").itemsize == 4


def open(path, writable=False):  # noqa: A001 - the package's public name
    """Open the VHD at `path`; OSError if the file cannot be opened, VhdError if it is no VHD."""
    fd = os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)
    try:
        return Image(path, fd, writable)
    except BaseException:
        os.close(fd)
        raise


def resize(path, new_size):
    """Grow the virtual size of the VHD at `path` to `new_size` bytes (rounded up to a sector)."""
    with open(path, writable=True) as img:
        img.resize(new_size)
        img.flush()


def _round_up(n, to):
    return -(-n // to) * to


class Image:
    """An open VHD (use `open`). Attributes: path, writable, footer (format.Footer), header
    (format.Header, None for a fixed disk); properties virtual_size, block_size, type_name,
    uuid, is_differencing, parent_path, physical_size. A context manager."""

    def __init__(self, path, fd, writable):
        self.path = os.fspath(path)
        self.writable = writable
        self._fd = fd
        self._parent = None
        self._parent_path = None
        size = os.fstat(fd).st_size
        if size < fmt.FOOTER_SIZE:
            raise CorruptError(f"{self.path}: {size} bytes cannot hold a VHD footer")
        self._footer_pos = size - fmt.FOOTER_SIZE
        self.footer = fmt.Footer.unpack(self._pread(fmt.FOOTER_SIZE, self._footer_pos, "footer"))
        self._footer_raw = self.footer.pack()
        self.header = None
        if self.footer.disk_type == fmt.DISK_FIXED:
            if self.footer.current_size > self._footer_pos:
                raise CorruptError(f"{self.path}: fixed disk of {self.footer.current_size} bytes "
                                   f"in a {size}-byte file")
            return
        hoff = self.footer.data_offset
        if hoff + fmt.HEADER_SIZE > self._footer_pos:
            raise CorruptError(f"{self.path}: dynamic header offset {hoff} is past the data")
        h = self.header = fmt.Header.unpack(self._pread(fmt.HEADER_SIZE, hoff, "dynamic header"))
        if h.max_table_entries * h.block_size < self.footer.current_size:
            raise CorruptError(f"{self.path}: {h.max_table_entries} blocks of {h.block_size} "
                               f"bytes cannot hold {self.footer.current_size} bytes")
        if h.table_offset + 4 * h.max_table_entries > self._footer_pos:
            raise CorruptError(f"{self.path}: block allocation table runs past the data")
        self._bat = array.array("I")
        self._bat.frombytes(self._pread(4 * h.max_table_entries, h.table_offset, "BAT"))
        if sys.byteorder == "little":
            self._bat.byteswap()
        self._bm = fmt.Bitmap(h.block_size)
        self._full = bytearray(h.max_table_entries)
        self._partial = {}

    # -- description ------------------------------------------------------------------------

    @property
    def virtual_size(self):
        return self.footer.current_size

    @property
    def block_size(self):
        return self.header.block_size if self.header else None

    @property
    def disk_type(self):
        return self.footer.disk_type

    @property
    def type_name(self):
        return fmt.DISK_TYPE_NAMES[self.footer.disk_type]

    @property
    def uuid(self):
        return self.footer.uuid

    @property
    def is_differencing(self):
        return self.footer.disk_type == fmt.DISK_DIFFERENCING

    @property
    def physical_size(self):
        return os.fstat(self._fd).st_size

    def allocated_bytes(self):
        """Bytes of data blocks this file holds (whole blocks; the virtual size if fixed)."""
        if self.header is None:
            return self.virtual_size
        return (len(self._bat) - self._bat.count(UNALLOCATED)) * self.block_size

    def allocated_blocks(self):
        return [i for i, e in enumerate(self._bat) if e != UNALLOCATED] if self.header else []

    def extents(self):
        """Yield (offset, length) of the virtual ranges whose data this file itself holds."""
        if self.header is None:
            yield 0, self.virtual_size
            return
        bs, sectors = self.block_size, self._bm.sectors
        for i, entry in enumerate(self._bat):
            if entry == UNALLOCATED:
                continue
            bm = self._bitmap(i, entry)
            runs = ([(0, sectors, True)] if self._bm.all_set(bm, 0, sectors)
                    else self._bm.runs(bm, 0, sectors))
            for r0, r1, local in runs:
                a, b = i * bs + r0 * SECTOR, min(i * bs + r1 * SECTOR, self.virtual_size)
                if local and b > a:
                    yield a, b - a

    # -- parent -------------------------------------------------------------------------------

    def parent_candidates(self):
        """Paths the parent locators and the parent name point at, in order of preference."""
        return meta.parent_candidates(self) if self.is_differencing else []

    @property
    def parent_path(self):
        """The file holding this image's parent (None unless differencing): the first
        candidate with the unique id recorded here. ParentMismatchError if candidates exist
        but none has it, ParentMissingError if none exists."""
        if self.is_differencing and self._parent_path is None:
            self._parent_path = meta.locate_parent(self, open)
        return self._parent_path

    def parent(self):
        """The parent Image, opened read-only on first use and closed with this one."""
        if not self.is_differencing:
            raise NotDifferencingError(f"{self.path} is a {self.type_name} disk")
        if self._parent is None:
            self._parent = open(self.parent_path)
        return self._parent

    # -- reading ------------------------------------------------------------------------------

    def _check_range(self, offset, length):
        if offset < 0 or length < 0 or offset + length > self.virtual_size:
            raise OutOfRangeError(f"{self.path}: [{offset}, {offset + length}) is outside the "
                                  f"{self.virtual_size}-byte disk")

    def _pread(self, n, off, what):
        raw = os.pread(self._fd, n, off)
        if len(raw) != n:
            raise CorruptError(f"{self.path}: {what} at {off}: read {len(raw)} of {n} bytes")
        return raw

    def _preadinto(self, mv, off):
        got = os.preadv(self._fd, [mv], off)
        while got < len(mv):
            more = os.preadv(self._fd, [mv[got:]], off + got)
            if more == 0:
                raise CorruptError(f"{self.path}: data at {off} ends after {got} of "
                                   f"{len(mv)} bytes")
            got += more

    def _data_offset(self, i, entry):
        off = entry * SECTOR
        if off < fmt.FOOTER_SIZE or off + self._bm.size + self.block_size > self._footer_pos:
            raise CorruptError(f"{self.path}: block {i} at {off} is outside the data area")
        return off + self._bm.size

    def _bitmap(self, i, entry):
        if self._full[i]:
            return self._bm.full
        bm = self._partial.get(i)
        if bm is None:
            bm = self._bm.from_bytes(self._pread(self._bm.size, entry * SECTOR, "sector bitmap"))
            self._remember(i, bm)
        return bm

    def _remember(self, i, bm):
        if bm & self._bm.full == self._bm.full:
            self._full[i] = 1
            self._partial.pop(i, None)
            return
        if len(self._partial) >= _PARTIAL_BITMAPS and i not in self._partial:
            self._partial.pop(next(iter(self._partial)))
        self._partial[i] = bm

    def read(self, offset, length):
        """`length` bytes of the virtual disk from `offset`."""
        self._check_range(offset, length)
        if length == 0:
            return b""
        if self.header is None:
            return self._pread(length, offset, "data")
        i, bo = divmod(offset, self.block_size)
        if bo + length <= self.block_size:        # one block: often a single pread, no copy
            entry = self._bat[i]
            if entry == UNALLOCATED and not self.is_differencing:
                return bytes(length)
            s0, s1 = bo // SECTOR, _round_up(bo + length, SECTOR) // SECTOR
            if entry != UNALLOCATED and (
                    self._full[i] or self._bm.all_set(self._bitmap(i, entry), s0, s1)):
                return self._pread(length, self._data_offset(i, entry) + bo, "data")
        buf = bytearray(length)
        self._readinto(memoryview(buf), offset, True)
        return bytes(buf)

    def readinto(self, offset, buf):
        """Fill the writable buffer `buf` with the virtual disk's bytes from `offset`."""
        mv = memoryview(buf).cast("B")
        self._check_range(offset, len(mv))
        self._readinto(mv, offset, False)
        return len(mv)

    def _readinto(self, mv, offset, zeroed):
        end = min(offset + len(mv), self.virtual_size)
        if end < offset + len(mv):                  # a child larger than this parent
            tail = mv[max(end - offset, 0):]
            if not zeroed:
                tail[:] = bytes(len(tail))
            mv = mv[:max(end - offset, 0)]
        if not mv:
            return
        if self.header is None:
            self._preadinto(mv, offset)
            return
        bs = self.block_size
        pos = 0
        while pos < len(mv):
            i, bo = divmod(offset + pos, bs)
            k = min(bs - bo, len(mv) - pos)
            self._read_block(mv[pos:pos + k], i, bo, zeroed)
            pos += k

    def _read_block(self, mv, i, bo, zeroed):
        entry = self._bat[i]
        start = i * self.block_size
        if entry == UNALLOCATED:
            self._read_absent(mv, start + bo, zeroed)
            return
        data = self._data_offset(i, entry)
        end = bo + len(mv)
        s0, s1 = bo // SECTOR, _round_up(end, SECTOR) // SECTOR
        bm = self._bitmap(i, entry)
        if self._bm.all_set(bm, s0, s1):
            self._preadinto(mv, data + bo)
            return
        for r0, r1, local in self._bm.runs(bm, s0, s1):
            a, b = max(r0 * SECTOR, bo), min(r1 * SECTOR, end)
            if local:
                self._preadinto(mv[a - bo:b - bo], data + a)
            else:
                self._read_absent(mv[a - bo:b - bo], start + a, zeroed)

    def _read_absent(self, mv, offset, zeroed):
        if self.is_differencing:
            self.parent()._readinto(mv, offset, zeroed)
        elif not zeroed:
            mv[:] = bytes(len(mv))

    # -- writing ------------------------------------------------------------------------------

    def _pwrite(self, bufs, off):
        total = sum(len(b) for b in bufs)
        done = os.pwritev(self._fd, bufs, off)
        if done < total:
            rest = memoryview(b"".join(bytes(b) for b in bufs))
            while done < total:
                done += os.pwrite(self._fd, rest[done:], off + done)

    def write(self, offset, data):
        """Write `data` at `offset` of the virtual disk; returns len(data)."""
        if not self.writable:
            raise ReadOnlyError(f"{self.path} is open read-only")
        mv = memoryview(data).cast("B")
        n = len(mv)
        self._check_range(offset, n)
        if n == 0:
            return 0
        a0, a1 = offset - offset % SECTOR, _round_up(offset + n, SECTOR)
        if (a0, a1) != (offset, offset + n):
            # Partial sectors: complete them with what the disk (or its chain) holds now.
            buf = bytearray(a1 - a0)
            edge = memoryview(buf)
            self._readinto(edge[:SECTOR], a0, True)
            if a1 - SECTOR > a0:
                self._readinto(edge[-SECTOR:], a1 - SECTOR, True)
            buf[offset - a0:offset - a0 + n] = mv
            mv, offset = memoryview(buf), a0
        if self.header is None:
            self._pwrite([mv], offset)
            return n
        bs = self.block_size
        pos = 0
        while pos < len(mv):
            i, bo = divmod(offset + pos, bs)
            k = min(bs - bo, len(mv) - pos)
            self._write_block(i, bo, mv[pos:pos + k])
            pos += k
        return n

    def _write_block(self, i, bo, mv):
        s0, s1 = bo // SECTOR, (bo + len(mv)) // SECTOR
        entry = self._bat[i]
        if entry == UNALLOCATED:
            self._allocate(i, bo, mv, s0, s1)
            return
        self._pwrite([mv], self._data_offset(i, entry) + bo)
        bm = self._bitmap(i, entry)
        if not self._bm.all_set(bm, s0, s1):      # data first, then the bits that expose it
            bm |= self._bm.mask(s0, s1)
            self._pwrite([self._bm.to_bytes(bm)], entry * SECTOR)
            self._remember(i, bm)

    def _allocate(self, i, bo, mv, s0, s1):
        # A dynamic disk's new block is all "present": its unwritten part is a hole of zeros.
        # A differencing disk's marks only what is written; the rest reads from the parent.
        bm = self._bm.mask(s0, s1) if self.is_differencing else self._bm.full
        start = self._footer_pos
        pad = -(start + self._bm.size) % ALIGN
        block = start + pad
        if block // SECTOR >= UNALLOCATED:
            raise OutOfRangeError(f"{self.path}: the file would outgrow VHD's sector offsets")
        data = block + self._bm.size
        new_footer = data + self.block_size
        head = bytes(pad) + self._bm.to_bytes(bm)
        try:
            if bo == 0 and len(mv) == self.block_size:
                self._pwrite([head, mv, self._footer_raw], start)
            else:
                if bo == 0:
                    self._pwrite([head, mv], start)
                else:
                    self._pwrite([head], start)
                    self._pwrite([mv], data + bo)
                self._pwrite([self._footer_raw], new_footer)
        except OSError:
            # (a full disk, say): the new block overwrote the footer; put the file back as it
            # was, footer last, so the image still opens, then let the caller see the error
            os.ftruncate(self._fd, start)
            self._pwrite([self._footer_raw], start)
            raise
        self._footer_pos = new_footer
        self._bat[i] = block // SECTOR
        self._pwrite([struct.pack(">I", block // SECTOR)], self.header.table_offset + 4 * i)
        self._remember(i, bm)

    def resize(self, new_size):
        """Grow the virtual size (rounded up to a sector); never shrinks (see meta.grow)."""
        meta.grow(self, new_size)

    # -- lifetime -----------------------------------------------------------------------------

    def flush(self):
        """Make everything written so far durable (fsync)."""
        if self.writable and self._fd is not None:
            os.fsync(self._fd)

    def close(self):
        if self._parent is not None:
            self._parent.close()
            self._parent = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def fileno(self):
        return self._fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<sm.vhd.Image {self.path!r} {self.type_name} {self.virtual_size}>"
