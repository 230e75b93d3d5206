"""Creating dynamic and differencing VHD files.

Layout of what this module writes (all of it is described by the header, so
readers need none of these constants):

    0       footer copy (512)
    512     dynamic header (1024)
    1536    parent locator data: 3 slots of 8 KiB (MacX, W2ku, W2ru: room for a PATH_MAX path
            in UTF-16), differencing only
    32768   BAT: max_table_entries entries, then room (a hole) up to the entries of
            `reserve_size` (default 2 TiB: 4 MiB for 2 MiB blocks), so growing never moves it
    ...     data blocks, each [padding][sector bitmap][block], data 4 KiB-aligned
    end     footer (512)
"""

import os
import time
import uuid as uuidlib

from . import format as fmt
from . import image, meta
from .errors import OutOfRangeError, VhdError

LOCATOR_AREA = 1536
LOCATOR_SLOT = 8192
BAT_OFFSET = 32768
DEFAULT_RESERVE_SIZE = 2 * 1024 ** 4


def parent_fields(child_path, parent_path):
    """(parent name, [(platform code, data)]) a child at `child_path` records for its parent.

    The name: the parent's file name when both share a directory, else the relative path
    (the file name if that is too long for the field). MacX: file:// URL, relative ("file://./name") when both files share a directory, else
    absolute; W2ku: the absolute path; W2ru: the path relative to the child's directory."""
    child_dir = os.path.dirname(os.path.abspath(child_path))
    parent_abs = os.path.abspath(parent_path)
    same_dir = os.path.dirname(parent_abs) == child_dir
    rel = ("./" + os.path.basename(parent_abs)) if same_dir else os.path.relpath(parent_abs,
                                                                                 child_dir)
    name = os.path.basename(parent_abs) if same_dir else rel
    if len(name.encode("utf-16-be")) > 512:          # the field's size: a cut path misleads
        name = os.path.basename(parent_abs)
    payloads = [(fmt.PLATFORM_MACX, fmt.encode_locator(fmt.PLATFORM_MACX,
                                                       rel if same_dir else parent_abs)),
                (fmt.PLATFORM_W2KU, fmt.encode_locator(fmt.PLATFORM_W2KU, parent_abs)),
                (fmt.PLATFORM_W2RU, fmt.encode_locator(fmt.PLATFORM_W2RU, rel))]
    return name, payloads


def parent_timestamp(parent_path):
    """The VHD timestamp a child records for its parent: the parent file's mtime."""
    return fmt.to_vhd_time(os.stat(parent_path).st_mtime)


def _check_sizes(virtual_size, block_size):
    if not isinstance(virtual_size, int) or virtual_size <= 0:
        raise OutOfRangeError(f"virtual size {virtual_size!r} is not a positive integer")
    size = -(-virtual_size // fmt.SECTOR) * fmt.SECTOR
    if size > fmt.MAX_VIRTUAL_SIZE:
        raise OutOfRangeError(f"virtual size {size} is over the VHD maximum "
                              f"{fmt.MAX_VIRTUAL_SIZE}")
    if (not isinstance(block_size, int) or block_size < fmt.SECTOR
            or block_size & (block_size - 1) or block_size > 1 << 28):
        raise OutOfRangeError(f"block size {block_size!r} is not a power of two in "
                              f"[{fmt.SECTOR}, 256 MiB]")
    return size


def create_dynamic(path, virtual_size, block_size=fmt.DEFAULT_BLOCK_SIZE, *,
                   reserve_size=DEFAULT_RESERVE_SIZE, unique_id=None):
    """Create a sparse dynamic VHD of `virtual_size` bytes (rounded up to a sector).

    The file must not exist. `reserve_size`: the virtual size the BAT keeps room for, so
    `resize` up to it rewrites no table. Returns `path`."""
    size = _check_sizes(virtual_size, block_size)
    return _create(path, fmt.DISK_DYNAMIC, size, block_size, reserve_size, unique_id, None)


def create_differencing(path, parent_path, *, reserve_size=DEFAULT_RESERVE_SIZE, unique_id=None):
    """Create an empty differencing VHD at `path` over the VHD at `parent_path`.

    Same virtual size and block size as the parent (2 MiB over a fixed parent); records the
    parent's unique id, mtime, name and locators. Returns `path`."""
    with image.open(parent_path) as parent:
        size = parent.virtual_size
        block_size = parent.block_size or fmt.DEFAULT_BLOCK_SIZE
        parent_id = parent.footer.unique_id
    name, payloads = parent_fields(path, parent_path)
    link = (parent_id, parent_timestamp(parent_path), name, payloads)
    _check_sizes(size, block_size)
    return _create(path, fmt.DISK_DIFFERENCING, size, block_size, reserve_size, unique_id, link)


def _create(path, disk_type, size, block_size, reserve_size, unique_id, link):
    entries = -(-size // block_size)
    room = max(entries, min(-(-max(reserve_size, size) // block_size),
                            meta.MAX_RESERVED_ENTRIES))
    footer_at = BAT_OFFSET + -(-4 * room // meta.ALIGN) * meta.ALIGN
    footer = fmt.Footer(disk_type, size, size, unique_id or uuidlib.uuid4().bytes,
                        data_offset=fmt.FOOTER_SIZE, timestamp=fmt.to_vhd_time(time.time()),
                        geometry=fmt.geometry(size))
    header = fmt.Header(BAT_OFFSET, entries, block_size)
    writes = []
    if link is not None:
        header.parent_unique_id, header.parent_timestamp, header.parent_name, payloads = link
        for k, (code, data) in enumerate(payloads):
            if len(data) > LOCATOR_SLOT:
                raise OutOfRangeError(f"parent path too long for a {LOCATOR_SLOT}-byte locator")
            off = LOCATOR_AREA + k * LOCATOR_SLOT
            header.locators[k] = fmt.Locator(code, LOCATOR_SLOT, len(data), off)
            writes.append((data, off))
    raw_footer = footer.pack()
    writes += [(raw_footer, 0), (header.pack(), fmt.FOOTER_SIZE),
               (b"\xff" * (4 * entries), BAT_OFFSET), (raw_footer, footer_at)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        for data, off in writes:
            if os.pwrite(fd, data, off) != len(data):
                raise VhdError(f"{path}: short write at {off}")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    return path
