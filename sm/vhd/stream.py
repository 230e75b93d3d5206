"""A VHD as a byte stream: written front to back from a disk's contents, and read back
the same way, so that a disk image can cross a network without a file in between.

`export_stream(size, blocks, read)` yields a dynamic VHD of a disk of `size` bytes whose
data may lie in the 2 MiB blocks numbered in `blocks` (everything else reads as zeros):
footer copy, dynamic header, block allocation table, each block (full sector bitmap, then
its data) in order, footer. A differencing chain read through `read` comes out flattened.

`import_stream(read)` reads a dynamic or differencing VHD from a blocking `read(n)`
(a file's read: fewer bytes only at the end) and yields (offset, data) for the sectors its
blocks mark as present, in the stream's order; its blocks must lie in the stream in
increasing file order, as every sequential writer (this one, vhd-tool, qemu-img) puts
them. A stream that ends early is CorruptError("...ends early...").
"""

import array
import sys
import uuid as uuidlib

from . import format as fmt
from .errors import CorruptError, UnsupportedError

BLOCK_SIZE = fmt.DEFAULT_BLOCK_SIZE
_TABLE_OFFSET = fmt.FOOTER_SIZE + fmt.HEADER_SIZE


def _round_up(n, to):
    return -(-n // to) * to


def stream_length(size, blocks, block_size=BLOCK_SIZE):
    """The bytes export_stream yields for these arguments."""
    entries = -(-size // block_size)
    bat = _round_up(4 * entries, fmt.SECTOR)
    return _TABLE_OFFSET + bat + len(blocks) * (fmt.bitmap_size(block_size) + block_size) + fmt.FOOTER_SIZE


def export_stream(size, blocks, read, block_size=BLOCK_SIZE, timestamp=0):
    """Yield a dynamic VHD of `size` bytes whose blocks `blocks` (sorted, unique block
    numbers) hold `read(offset, length)`; the rest of the disk is unallocated."""
    entries = -(-size // block_size)
    blocks = sorted(set(blocks))
    if blocks and (blocks[0] < 0 or blocks[-1] >= entries):
        raise ValueError(f"block numbers must lie in [0, {entries})")
    bat_bytes = _round_up(4 * entries, fmt.SECTOR)
    bitmap = fmt.Bitmap(block_size)
    stride = bitmap.size + block_size
    first = _TABLE_OFFSET + bat_bytes
    bat = array.array("I", [fmt.UNALLOCATED]) * entries
    for k, n in enumerate(blocks):
        bat[n] = (first + k * stride) // fmt.SECTOR
    if sys.byteorder == "little":
        bat.byteswap()
    footer = fmt.Footer(fmt.DISK_DYNAMIC, size, size, uuidlib.uuid4().bytes,
                        data_offset=fmt.FOOTER_SIZE, timestamp=fmt.to_vhd_time(timestamp),
                        geometry=fmt.geometry(size)).pack()
    header = fmt.Header(_TABLE_OFFSET, entries, block_size).pack()
    yield footer + header + bat.tobytes() + b"\xff" * (bat_bytes - 4 * entries)
    full = bitmap.to_bytes(bitmap.full)
    for n in blocks:
        start = n * block_size
        length = min(block_size, size - start)
        data = read(start, length)
        yield full + data + bytes(block_size - length)
    yield footer


class _Source:
    """A blocking read(n) with the position it has reached."""

    def __init__(self, read):
        self._read = read
        self.pos = 0

    def take(self, n, what):
        parts, got = [], 0
        while got < n:
            piece = self._read(n - got)
            if not piece:
                raise CorruptError(f"the VHD stream ends early, in its {what} at byte {self.pos + got}")
            parts.append(piece)
            got += len(piece)
        self.pos += n
        return b"".join(parts)

    def skip_to(self, offset, what):
        if offset < self.pos:
            raise UnsupportedError(f"the {what} at byte {offset} lies before byte {self.pos} "
                                   "of the stream (not written front to back)")
        while self.pos < offset:
            self.take(min(1 << 20, offset - self.pos), f"gap before the {what}")


def import_stream(read):
    """Yield (virtual size, None) first, then (offset, data) for every present run of
    sectors of the VHD read from `read`; see the module doc."""
    src = _Source(read)
    footer = fmt.Footer.unpack(src.take(fmt.FOOTER_SIZE, "footer"))
    if footer.disk_type == fmt.DISK_FIXED:
        raise UnsupportedError("a fixed VHD cannot be streamed (its footer comes last); "
                               "send it as format=raw without its footer")
    size = footer.current_size
    yield size, None
    src.skip_to(footer.data_offset, "dynamic header")
    header = fmt.Header.unpack(src.take(fmt.HEADER_SIZE, "dynamic header"))
    if header.max_table_entries * header.block_size < size:
        raise CorruptError(f"{header.max_table_entries} blocks of {header.block_size} bytes "
                           f"cannot hold {size} bytes")
    src.skip_to(header.table_offset, "block allocation table")
    bat = array.array("I")
    bat.frombytes(src.take(4 * header.max_table_entries, "block allocation table"))
    if sys.byteorder == "little":
        bat.byteswap()
    bitmap = fmt.Bitmap(header.block_size)
    placed = sorted((sector * fmt.SECTOR, n) for n, sector in enumerate(bat)
                    if sector != fmt.UNALLOCATED and n * header.block_size < size)
    for at, n in placed:
        src.skip_to(at, f"block {n}")
        bm = bitmap.from_bytes(src.take(bitmap.size, f"bitmap of block {n}"))
        data = src.take(header.block_size, f"block {n}")
        start = n * header.block_size
        sectors = min(bitmap.sectors, -(-(size - start) // fmt.SECTOR))
        for s0, s1, present in bitmap.runs(bm, 0, sectors):
            if present:
                yield start + s0 * fmt.SECTOR, data[s0 * fmt.SECTOR:min(s1 * fmt.SECTOR, size - start)]
