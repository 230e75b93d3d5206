"""VHD on-disk structures: footer, dynamic header, parent locators, bitmaps.

Pure functions and small dataclasses, no file I/O. Everything is written from
the published "Virtual Hard Disk Image Format Specification": all integers
are big-endian, the footer is 512 bytes, the dynamic-disk header 1024, a
checksum is the ones' complement of the byte sum of the structure taken with
its checksum field as zero, timestamps count seconds since 2000-01-01 UTC.
"""

import dataclasses
import struct
import uuid as uuidlib

from .errors import BadCookieError, ChecksumError, CorruptError, OutOfRangeError, UnsupportedError

SECTOR = 512
FOOTER_SIZE = 512
HEADER_SIZE = 1024
FOOTER_COOKIE = b"conectix"
HEADER_COOKIE = b"cxsparse"
FORMAT_VERSION = 0x00010000
HEADER_VERSION = 0x00010000
FEATURE_RESERVED = 0x00000002       # "must always be set"
NO_DATA_OFFSET = 0xFFFFFFFFFFFFFFFF  # footer data offset of a fixed disk, header data offset
UNALLOCATED = 0xFFFFFFFF             # a BAT entry of a block with no data in this file

DISK_FIXED = 2
DISK_DYNAMIC = 3
DISK_DIFFERENCING = 4
DISK_TYPE_NAMES = {DISK_FIXED: "fixed", DISK_DYNAMIC: "dynamic", DISK_DIFFERENCING: "differencing"}

DEFAULT_BLOCK_SIZE = 2 * 1024 * 1024
# The largest virtual size VHD implementations accept (BAT entries are 32-bit sector numbers,
# so the whole file has to stay under 2 TiB).
MAX_VIRTUAL_SIZE = 2040 * 1024 ** 3

# Creator fields. The creator application "tap\0" is what XenServer's blktap writes; it also
# tells qemu's vpc driver to take the virtual size from the footer's current size rather than
# from the CHS geometry (which cannot express most sizes exactly).
CREATOR_APP = b"tap\x00"
CREATOR_VERSION = 0x00010003
CREATOR_HOST_OS = b"Wi2k"

VHD_EPOCH = 946684800  # 2000-01-01T00:00:00Z as a Unix time

PLATFORM_MACX = b"MacX"  # file:// URL, UTF-8
PLATFORM_W2KU = b"W2ku"  # absolute path, UTF-16 LE
PLATFORM_W2RU = b"W2ru"  # relative path, UTF-16 LE
PLATFORM_NONE = b"\x00\x00\x00\x00"

_FOOTER = struct.Struct(">8sIIQI4sI4sQQHBBII16sB427x")
_HEADER = struct.Struct(">8sQQIIII16sII512s")
_LOCATOR = struct.Struct(">4sIIIQ")
_FOOTER_CHECKSUM_AT = 64
_HEADER_CHECKSUM_AT = 36
assert _FOOTER.size == FOOTER_SIZE and _HEADER.size + 8 * _LOCATOR.size + 256 == HEADER_SIZE


def checksum(data, at):
    """Ones' complement of the byte sum of `data`, the 4 bytes at `at` counted as zero."""
    total = sum(data) - sum(data[at:at + 4])
    return ~total & 0xFFFFFFFF


def _set_checksum(raw, at):
    raw = bytearray(raw)
    raw[at:at + 4] = b"\0\0\0\0"
    raw[at:at + 4] = struct.pack(">I", checksum(raw, at))
    return bytes(raw)


def geometry(size):
    """(cylinders, heads, sectors per track) of `size` bytes, the specification's algorithm."""
    total = size // SECTOR
    total = min(total, 65535 * 16 * 255)
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = max((cth + 1023) // 1024, 4)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt


def to_vhd_time(unix_time):
    """A Unix time as a VHD timestamp (clamped to the 32-bit field)."""
    return min(max(int(unix_time) - VHD_EPOCH, 0), 0xFFFFFFFF)


def from_vhd_time(stamp):
    return stamp + VHD_EPOCH


@dataclasses.dataclass
class Footer:
    disk_type: int
    current_size: int
    original_size: int
    unique_id: bytes
    data_offset: int = NO_DATA_OFFSET
    timestamp: int = 0
    features: int = FEATURE_RESERVED
    version: int = FORMAT_VERSION
    creator_app: bytes = CREATOR_APP
    creator_version: int = CREATOR_VERSION
    creator_host_os: bytes = CREATOR_HOST_OS
    geometry: tuple = (0, 0, 0)
    saved_state: int = 0
    checksum: int = 0

    @property
    def uuid(self):
        return str(uuidlib.UUID(bytes=self.unique_id))

    def pack(self):
        c, h, s = self.geometry
        raw = _FOOTER.pack(FOOTER_COOKIE, self.features, self.version, self.data_offset,
                           self.timestamp, self.creator_app, self.creator_version,
                           self.creator_host_os, self.original_size, self.current_size,
                           c, h, s, self.disk_type, 0, self.unique_id, self.saved_state)
        return _set_checksum(raw, _FOOTER_CHECKSUM_AT)

    @classmethod
    def unpack(cls, raw):
        if len(raw) != FOOTER_SIZE:
            raise CorruptError(f"footer: {len(raw)} bytes where {FOOTER_SIZE} are needed")
        (cookie, features, version, data_offset, timestamp, app, app_version, host_os, original,
         current, c, h, s, disk_type, stored, unique_id, saved) = _FOOTER.unpack(raw)
        if cookie != FOOTER_COOKIE:
            raise BadCookieError(f"footer cookie is {cookie!r}, not {FOOTER_COOKIE!r}")
        if checksum(raw, _FOOTER_CHECKSUM_AT) != stored:
            raise ChecksumError(f"footer checksum {stored:#010x} does not match its contents "
                                f"({checksum(raw, _FOOTER_CHECKSUM_AT):#010x})")
        if version >> 16 != 1:
            raise UnsupportedError(f"file format version {version:#010x}")
        if disk_type not in DISK_TYPE_NAMES:
            raise UnsupportedError(f"disk type {disk_type}")
        return cls(disk_type, current, original, unique_id, data_offset, timestamp, features,
                   version, app, app_version, host_os, (c, h, s), saved, stored)


@dataclasses.dataclass
class Locator:
    """One parent locator entry; `space` is the reserved room in bytes."""
    code: bytes = PLATFORM_NONE
    space: int = 0
    length: int = 0
    offset: int = 0

    @property
    def used(self):
        return self.code != PLATFORM_NONE and self.length > 0 and self.offset > 0

    def pack(self):
        # The specification stores the room as a count of sectors; some writers stored bytes.
        return _LOCATOR.pack(self.code, self.space // SECTOR, self.length, 0, self.offset)

    @classmethod
    def unpack(cls, raw):
        code, space, length, _reserved, offset = _LOCATOR.unpack(raw)
        # Reading a byte count as sectors would claim room that is not there: a value of at
        # least 512 is taken as bytes (no path needs 256 KiB), a smaller one as sectors.
        space = space if space >= SECTOR else space * SECTOR
        return cls(code, space, length, offset)


@dataclasses.dataclass
class Header:
    table_offset: int
    max_table_entries: int
    block_size: int = DEFAULT_BLOCK_SIZE
    parent_unique_id: bytes = bytes(16)
    parent_timestamp: int = 0
    parent_name: str = ""
    locators: list = dataclasses.field(default_factory=lambda: [Locator() for _ in range(8)])
    data_offset: int = NO_DATA_OFFSET
    version: int = HEADER_VERSION
    checksum: int = 0

    @property
    def parent_uuid(self):
        return str(uuidlib.UUID(bytes=self.parent_unique_id))

    def pack(self):
        raw = _HEADER.pack(HEADER_COOKIE, self.data_offset, self.table_offset, self.version,
                           self.max_table_entries, self.block_size, 0, self.parent_unique_id,
                           self.parent_timestamp, 0, encode_parent_name(self.parent_name))
        locators = list(self.locators) + [Locator()] * (8 - len(self.locators))
        raw += b"".join(loc.pack() for loc in locators[:8]) + bytes(256)
        return _set_checksum(raw, _HEADER_CHECKSUM_AT)

    @classmethod
    def unpack(cls, raw):
        if len(raw) != HEADER_SIZE:
            raise CorruptError(f"dynamic header: {len(raw)} bytes where {HEADER_SIZE} are needed")
        (cookie, data_offset, table_offset, version, entries, block_size, stored, parent_id,
         parent_ts, _reserved, name) = _HEADER.unpack_from(raw)
        if cookie != HEADER_COOKIE:
            raise BadCookieError(f"dynamic header cookie is {cookie!r}, not {HEADER_COOKIE!r}")
        if checksum(raw, _HEADER_CHECKSUM_AT) != stored:
            raise ChecksumError(f"dynamic header checksum {stored:#010x} does not match its "
                                f"contents ({checksum(raw, _HEADER_CHECKSUM_AT):#010x})")
        if version >> 16 != 1:
            raise UnsupportedError(f"dynamic header version {version:#010x}")
        if block_size < SECTOR or block_size % SECTOR:
            raise CorruptError(f"block size {block_size} is not a positive multiple of {SECTOR}")
        locators = [Locator.unpack(raw[_HEADER.size + i * _LOCATOR.size:][:_LOCATOR.size])
                    for i in range(8)]
        return cls(table_offset, entries, block_size, parent_id, parent_ts,
                   decode_parent_name(name), locators, data_offset, version, stored)


def encode_parent_name(name):
    """The 512-byte UTF-16 BE parent name field (truncated on a character boundary)."""
    raw = b""
    for ch in name:
        unit = ch.encode("utf-16-be")
        if len(raw) + len(unit) > 512:
            break
        raw += unit
    return raw.ljust(512, b"\0")


def decode_parent_name(raw):
    text = raw.decode("utf-16-be", errors="replace")
    return text.split("\0", 1)[0]


def encode_locator(code, path):
    """The platform data of a locator: MacX a file:// URL in UTF-8, W2ku/W2ru UTF-16 LE paths."""
    if code == PLATFORM_MACX:
        return ("file://" + path).encode("utf-8")
    if code in (PLATFORM_W2KU, PLATFORM_W2RU):
        return path.encode("utf-16-le")
    raise OutOfRangeError(f"no encoding for platform code {code!r}")


def decode_locator(code, data):
    """The path a locator's platform data names, or None for codes and data it cannot read."""
    try:
        if code == PLATFORM_MACX:
            text = data.decode("utf-8")
            if not text.startswith("file://"):
                return None
            text = text[len("file://"):]
        elif code in (PLATFORM_W2KU, PLATFORM_W2RU):
            text = data.decode("utf-16-le").replace("\\", "/")
        else:
            return None
    except UnicodeDecodeError:
        return None
    text = text.split("\0", 1)[0]
    return text or None


def bitmap_size(block_size):
    """Bytes of the sector bitmap in front of each block: one bit per sector, whole sectors."""
    nbytes = -(-(block_size // SECTOR) // 8)
    return -(-nbytes // SECTOR) * SECTOR


class Bitmap:
    """Sector-bitmap arithmetic for one block geometry. A bitmap is held as a Python int of the
    bitmap bytes read big-endian, so sector 0 (the most significant bit of byte 0) is the
    highest bit and sector i is bit (nbits - 1 - i)."""

    def __init__(self, block_size):
        self.size = bitmap_size(block_size)
        self.nbits = self.size * 8
        self.sectors = block_size // SECTOR
        self.full = self.mask(0, self.sectors)

    def mask(self, s0, s1):
        return ((1 << (s1 - s0)) - 1) << (self.nbits - s1)

    def all_set(self, bm, s0, s1):
        m = self.mask(s0, s1)
        return bm & m == m

    def to_bytes(self, bm):
        return bm.to_bytes(self.size, "big")

    def from_bytes(self, raw):
        return int.from_bytes(raw, "big")

    def runs(self, bm, s0, s1):
        """[(start, end, is_set)] covering sectors [s0, s1) in order, maximal runs."""
        bits = format(bm, f"0{self.nbits}b")
        out = []
        pos = s0
        while pos < s1:
            is_set = bits[pos] == "1"
            nxt = bits.find("0" if is_set else "1", pos, s1)
            end = s1 if nxt < 0 else nxt
            out.append((pos, end, is_set))
            pos = end
        return out
