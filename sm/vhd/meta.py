"""Metadata of an open Image: growing, re-parenting, appending structures, finding the parent.

Functions over sm.vhd.image.Image (which they treat as a friend: they use its
private state). Order of writes: new data first, the structure that points at
it (header, footer) last, so a crash leaves the old, consistent description.
"""

import array
import os
import sys

from . import format as fmt
from .errors import (NotDifferencingError, OutOfRangeError, ParentMismatchError,
                     ParentMissingError, ReadOnlyError, ResizeError, VhdError)
from .format import SECTOR, UNALLOCATED

ALIGN = 4096
MAX_RESERVED_ENTRIES = 1 << 20        # BAT room kept for growth: 4 MiB, 2 TiB of 2 MiB blocks
LOCATOR_PREFERENCE = (fmt.PLATFORM_MACX, fmt.PLATFORM_W2RU, fmt.PLATFORM_W2KU)


def _round_up(n, to):
    return -(-n // to) * to


def append(img, raw, room=0):
    """Put `raw` (4 KiB-aligned) where the footer is, keeping at least `room` bytes for it, and
    move the footer past it. Returns the offset of `raw`."""
    start = img._footer_pos
    off = _round_up(start, ALIGN)
    head = bytes(off - start) + raw
    head += bytes(max(fmt.FOOTER_SIZE - len(head), 0))      # wipe the old footer
    new_footer = max(off + _round_up(max(len(raw), room, 1), SECTOR), start + len(head))
    img._pwrite([head], start)
    img._pwrite([img._footer_raw], new_footer)
    img._footer_pos = new_footer
    return off


def write_header(img):
    img._pwrite([img.header.pack()], img.footer.data_offset)


def write_footers(img):
    """The footer at the end and, for dynamic and differencing disks, its copy at offset 0."""
    img._footer_raw = img.footer.pack()
    img._pwrite([img._footer_raw], img._footer_pos)
    if img.header is not None:
        img._pwrite([img._footer_raw], 0)


def bat_room(img):
    """How many BAT entries fit at the table offset before the next structure in the file."""
    h = img.header
    used = [e * SECTOR for e in img._bat if e != UNALLOCATED]
    used += [loc.offset for loc in h.locators if loc.used]
    used.append(img.footer.data_offset)
    limit = min([img._footer_pos] + [u for u in used if u >= h.table_offset])
    return (limit - h.table_offset) // 4


def _check_writable(img):
    if not img.writable:
        raise ReadOnlyError(f"{img.path} is open read-only")


def grow(img, new_size):
    """Grow the virtual size to `new_size` (rounded up to a sector); never shrinks.

    The BAT grows in place when the room after it allows (images from create_* keep room for
    2 TiB); otherwise it moves to the end of the file, with room to grow to the maximum."""
    _check_writable(img)
    new_size = _round_up(new_size, SECTOR)
    if new_size < img.virtual_size:
        raise ResizeError(f"{img.path}: cannot shrink {img.virtual_size} to {new_size}")
    if new_size > fmt.MAX_VIRTUAL_SIZE:
        raise ResizeError(f"{img.path}: {new_size} bytes is over the VHD maximum "
                          f"{fmt.MAX_VIRTUAL_SIZE}")
    if new_size == img.virtual_size:
        return
    if img.header is None:                       # fixed: the data simply extends (a hole)
        img._pwrite([bytes(fmt.FOOTER_SIZE)], img._footer_pos)
        img._footer_pos = new_size
    else:
        _grow_bat(img, -(-new_size // img.block_size))
    # Both sizes: the specification calls the original size informational, but libvhdi takes
    # the disk's size from it (and qemu from the current size).
    img.footer.current_size = img.footer.original_size = new_size
    img.footer.geometry = fmt.geometry(new_size)
    write_footers(img)


def _grow_bat(img, need):
    h = img.header
    old = h.max_table_entries
    if need <= old:
        return
    fresh = array.array("I", [UNALLOCATED]) * (need - old)
    if need <= bat_room(img):
        img._pwrite([fresh.tobytes()], h.table_offset + 4 * old)   # all ones: any byte order
    else:
        room = max(need, min(-(-fmt.MAX_VIRTUAL_SIZE // h.block_size), MAX_RESERVED_ENTRIES))
        table = img._bat + fresh
        if sys.byteorder == "little":
            table.byteswap()
        h.table_offset = append(img, table.tobytes(), 4 * room)
    img._bat.extend(fresh)
    img._full.extend(bytes(need - old))
    h.max_table_entries = need
    write_header(img)                            # after the table it describes


def store_parent(img, parent_id, timestamp, name, payloads):
    """Record a new parent: unique id, timestamp, name and locators [(code, data)].

    Locator data reuses the room of the existing locators where it fits, else is appended."""
    _check_writable(img)
    if not img.is_differencing:
        raise NotDifferencingError(f"{img.path} is a {img.type_name} disk")
    h = img.header
    if len(payloads) > 8:
        raise OutOfRangeError("a VHD header has 8 parent locators")
    free = sorted(((loc.space, loc.offset) for loc in h.locators
                   if loc.offset and loc.space and loc.offset + loc.space <= img._footer_pos),
                  reverse=True)
    locators = []
    for code, data in payloads:
        fits = [slot for slot in free if slot[0] >= len(data)]
        if fits:
            slot = min(fits)
            free.remove(slot)
            space, off = slot
            img._pwrite([data + bytes(space - len(data))], off)
        else:
            space = _round_up(max(len(data), 1), SECTOR)
            off = append(img, data + bytes(space - len(data)))
        locators.append(fmt.Locator(code, space, len(data), off))
    h.locators = locators + [fmt.Locator() for _ in range(8 - len(locators))]
    h.parent_unique_id, h.parent_timestamp, h.parent_name = parent_id, timestamp, name
    write_header(img)
    img._parent_path = None
    if img._parent is not None:
        img._parent.close()
        img._parent = None


def parent_candidates(img):
    """Paths a differencing image's locators (MacX, then W2ru, then W2ku) and parent name
    point at, relative ones taken from the image's directory; no duplicates."""
    base = os.path.dirname(os.path.abspath(img.path))
    found = []
    for code in LOCATOR_PREFERENCE:
        for loc in img.header.locators:
            if (loc.code != code or not loc.used or loc.length > 65536
                    or loc.offset + loc.length > img._footer_pos):
                continue
            raw = os.pread(img._fd, loc.length, loc.offset)
            name = fmt.decode_locator(code, raw) if len(raw) == loc.length else None
            if name:
                found.append(os.path.normpath(os.path.join(base, name)))
    if img.header.parent_name:
        found.append(os.path.normpath(os.path.join(base, img.header.parent_name)))
    return list(dict.fromkeys(found))


def locate_parent(img, opener):
    """The first existing candidate whose footer has the unique id `img` records for its
    parent (each opened read-only with `opener`)."""
    candidates = parent_candidates(img)
    existing = [p for p in candidates if os.path.isfile(p)]
    for p in existing:
        try:
            with opener(p) as parent:
                if parent.footer.unique_id == img.header.parent_unique_id:
                    return p
        except (OSError, VhdError):
            continue
    if existing:
        raise ParentMismatchError(f"{img.path}: no parent with unique id "
                                  f"{img.header.parent_uuid} among {existing}")
    raise ParentMissingError(f"{img.path}: parent not found (tried {candidates})")
