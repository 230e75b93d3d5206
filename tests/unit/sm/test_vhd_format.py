"""sm.vhd.format: footer/header packing, checksums, geometry, locators and bitmaps.

Expected values are computed by hand from the VHD specification's rules (field
offsets, the CHS algorithm), not by calling the code under test twice.
"""

import struct
import uuid

import pytest

from sm.vhd import format as fmt
from sm.vhd.errors import BadCookieError, ChecksumError, CorruptError, UnsupportedError, VhdError

UID = uuid.UUID("12345678-9abc-def0-1234-56789abcdef0").bytes


def make_footer(**kw):
    args = dict(disk_type=fmt.DISK_DYNAMIC, current_size=100 << 20, original_size=100 << 20,
                unique_id=UID, data_offset=512, timestamp=12345, geometry=(1003, 12, 17))
    args.update(kw)
    return fmt.Footer(**args)


# -- checksum -------------------------------------------------------------------------------

def test_checksum_is_ones_complement_of_byte_sum_without_the_field():
    data = bytes(range(1, 21))
    # bytes 4..7 (5+6+7+8 = 26) are the checksum field and do not count
    assert fmt.checksum(data, 4) == ~(sum(range(1, 21)) - 26) & 0xFFFFFFFF
    assert fmt.checksum(bytes(16), 0) == 0xFFFFFFFF


def test_footer_checksum_plus_byte_sum_is_all_ones():
    raw = make_footer().pack()
    stored = struct.unpack(">I", raw[64:68])[0]
    rest = sum(raw) - sum(raw[64:68])
    assert (rest + stored) & 0xFFFFFFFF == 0xFFFFFFFF


# -- footer ---------------------------------------------------------------------------------

def test_footer_field_offsets():
    raw = make_footer().pack()
    assert len(raw) == 512
    assert raw[0:8] == b"conectix"
    assert struct.unpack(">I", raw[8:12])[0] == 2                 # features: reserved bit
    assert struct.unpack(">I", raw[12:16])[0] == 0x00010000       # format version
    assert struct.unpack(">Q", raw[16:24])[0] == 512              # data offset
    assert struct.unpack(">I", raw[24:28])[0] == 12345            # timestamp
    assert raw[28:32] == fmt.CREATOR_APP
    assert raw[36:40] == fmt.CREATOR_HOST_OS
    assert struct.unpack(">Q", raw[40:48])[0] == 100 << 20        # original size
    assert struct.unpack(">Q", raw[48:56])[0] == 100 << 20        # current size
    assert struct.unpack(">HBB", raw[56:60]) == (1003, 12, 17)    # geometry
    assert struct.unpack(">I", raw[60:64])[0] == 3                # disk type
    assert raw[68:84] == UID
    assert raw[84] == 0                                           # saved state
    assert raw[85:] == bytes(427)


def test_footer_round_trip():
    f = make_footer(disk_type=fmt.DISK_DIFFERENCING, saved_state=1)
    g = fmt.Footer.unpack(f.pack())
    assert (g.disk_type, g.current_size, g.unique_id, g.geometry, g.saved_state) == \
        (fmt.DISK_DIFFERENCING, 100 << 20, UID, (1003, 12, 17), 1)
    assert g.uuid == "12345678-9abc-def0-1234-56789abcdef0"


def test_footer_errors():
    raw = bytearray(make_footer().pack())
    with pytest.raises(CorruptError):
        fmt.Footer.unpack(bytes(raw[:511]))
    bad = bytearray(raw)
    bad[0:8] = b"conectiy"
    with pytest.raises(BadCookieError):
        fmt.Footer.unpack(bytes(bad))
    bad = bytearray(raw)
    bad[100] ^= 1                                                 # reserved area
    with pytest.raises(ChecksumError):
        fmt.Footer.unpack(bytes(bad))
    bad = bytearray(raw)
    bad[64] ^= 0x80                                               # the checksum itself
    with pytest.raises(ChecksumError):
        fmt.Footer.unpack(bytes(bad))
    with pytest.raises(UnsupportedError):
        fmt.Footer.unpack(make_footer(disk_type=5).pack())
    with pytest.raises(UnsupportedError):
        fmt.Footer.unpack(make_footer(version=0x00020000).pack())
    assert issubclass(ChecksumError, VhdError) and issubclass(BadCookieError, VhdError)


# -- dynamic header -------------------------------------------------------------------------

def test_header_field_offsets_and_round_trip():
    locs = [fmt.Locator(b"MacX", 4096, 20, 1536), fmt.Locator(b"W2ku", 1024, 30, 5632)]
    h = fmt.Header(table_offset=16384, max_table_entries=50, block_size=2 << 20,
                   parent_unique_id=UID, parent_timestamp=777, parent_name="base.vhd",
                   locators=locs)
    raw = h.pack()
    assert len(raw) == 1024
    assert raw[0:8] == b"cxsparse"
    assert struct.unpack(">Q", raw[8:16])[0] == 0xFFFFFFFFFFFFFFFF
    assert struct.unpack(">Q", raw[16:24])[0] == 16384
    assert struct.unpack(">I", raw[24:28])[0] == 0x00010000
    assert struct.unpack(">I", raw[28:32])[0] == 50
    assert struct.unpack(">I", raw[32:36])[0] == 2 << 20
    stored = struct.unpack(">I", raw[36:40])[0]
    assert stored == ~(sum(raw) - sum(raw[36:40])) & 0xFFFFFFFF
    assert raw[40:56] == UID
    assert struct.unpack(">I", raw[56:60])[0] == 777
    assert raw[64:64 + 16] == "base.vhd".encode("utf-16-be")
    assert raw[64 + 16:576] == bytes(512 - 16)
    # locator entries: code, data space in sectors, length, reserved, offset
    assert struct.unpack(">4sIIIQ", raw[576:600]) == (b"MacX", 8, 20, 0, 1536)
    assert struct.unpack(">4sIIIQ", raw[600:624]) == (b"W2ku", 2, 30, 0, 5632)
    assert raw[624:768] == bytes(144) and raw[768:] == bytes(256)
    back = fmt.Header.unpack(raw)
    assert (back.table_offset, back.max_table_entries, back.block_size, back.parent_unique_id,
            back.parent_timestamp, back.parent_name) == (16384, 50, 2 << 20, UID, 777, "base.vhd")
    assert back.locators[:2] == locs and not any(loc.used for loc in back.locators[2:])


def test_header_errors():
    raw = fmt.Header(16384, 50).pack()
    with pytest.raises(BadCookieError):
        fmt.Header.unpack(b"cxsparsf" + raw[8:])
    bad = bytearray(raw)
    bad[900] = 1
    with pytest.raises(ChecksumError):
        fmt.Header.unpack(bytes(bad))
    with pytest.raises(CorruptError):
        fmt.Header.unpack(raw[:1000])
    with pytest.raises(CorruptError):
        fmt.Header.unpack(fmt.Header(16384, 50, block_size=1000).pack())


def test_locator_space_in_bytes_is_tolerated():
    # Some writers stored the room in bytes, not sectors: 4096 "sectors" would be 2 MiB.
    raw = struct.pack(">4sIIIQ", b"MacX", 4096, 20, 0, 1536)
    assert fmt.Locator.unpack(raw).space == 4096
    raw = struct.pack(">4sIIIQ", b"MacX", 8, 20, 0, 1536)
    assert fmt.Locator.unpack(raw).space == 4096


def test_parent_name_encoding():
    assert fmt.encode_parent_name("a") == b"\0a" + bytes(510)
    assert fmt.decode_parent_name(fmt.encode_parent_name("snap-é.vhd")) == "snap-é.vhd"
    long = fmt.encode_parent_name("x" * 300)
    assert len(long) == 512 and fmt.decode_parent_name(long) == "x" * 256
    # a character outside the BMP is a surrogate pair: never cut in half
    assert fmt.decode_parent_name(fmt.encode_parent_name("x" * 255 + "\U0001F600")) == "x" * 255


def test_locator_payloads():
    assert fmt.encode_locator(b"MacX", "./base.vhd") == b"file://./base.vhd"
    assert fmt.encode_locator(b"W2ku", "/sr/a.vhd") == "/sr/a.vhd".encode("utf-16-le")
    assert fmt.decode_locator(b"MacX", b"file:///sr/a.vhd") == "/sr/a.vhd"
    assert fmt.decode_locator(b"MacX", b"/sr/a.vhd") is None
    assert fmt.decode_locator(b"W2ru", ".\\a.vhd".encode("utf-16-le")) == "./a.vhd"
    assert fmt.decode_locator(b"W2ku", b"\xff\xd8") is None       # lone surrogate
    assert fmt.decode_locator(b"Wi2k", b"C:\\x") is None


# -- geometry, time -------------------------------------------------------------------------

@pytest.mark.parametrize("size, chs", [
    (10 << 20, (301, 4, 17)),          # 20480 sectors: 1204 cyl*heads, heads raised to 4
    (100 << 20, (1003, 12, 17)),       # 204800: 12047 c*h, 12 heads
    (1 << 30, (2080, 16, 63)),         # 2097152: 17 and 31 spt overflow, 63 spt
    (65535 * 16 * 63 * 512, (16191, 16, 255)),   # the 255-spt threshold: 259056 c*h
    (2040 << 30, (65535, 16, 255)),    # capped
])
def test_geometry_follows_the_specification(size, chs):
    assert fmt.geometry(size) == chs


def test_geometry_never_exceeds_the_size():
    for sectors in (1, 17, 4096, 123457, 999999, 8 * 1024 * 1024 + 3):
        c, h, s = fmt.geometry(sectors * 512)
        assert c * h * s <= sectors and h <= 16 and s <= 255 and c <= 65535


def test_timestamps_count_from_2000():
    assert fmt.to_vhd_time(946684800) == 0
    assert fmt.to_vhd_time(946684800 + 86400.7) == 86400
    assert fmt.to_vhd_time(0) == 0
    assert fmt.from_vhd_time(10) == 946684810


# -- bitmaps --------------------------------------------------------------------------------

def test_bitmap_sizes():
    assert fmt.bitmap_size(2 << 20) == 512          # 4096 sectors, 512 bytes
    assert fmt.bitmap_size(512) == 512              # one bit, still a whole sector
    assert fmt.bitmap_size(4 << 20) == 1024
    assert fmt.bitmap_size(3 << 20) == 1024         # 6144 bits = 768 bytes, rounded up


def test_bitmap_bit_order_is_msb_first():
    bm = fmt.Bitmap(2 << 20)
    raw = bm.to_bytes(bm.mask(0, 1))
    assert raw[0] == 0x80 and raw[1:] == bytes(511)
    raw = bm.to_bytes(bm.mask(9, 11))
    assert raw[1] == 0b01100000
    assert bm.to_bytes(bm.full) == b"\xff" * 512


def test_bitmap_runs_and_all_set():
    bm = fmt.Bitmap(64 * 512)                       # 64 sectors in a 4096-bit bitmap
    v = bm.mask(3, 10) | bm.mask(20, 64)
    assert bm.runs(v, 0, 64) == [(0, 3, False), (3, 10, True), (10, 20, False), (20, 64, True)]
    assert bm.runs(v, 5, 22) == [(5, 10, True), (10, 20, False), (20, 22, True)]
    assert bm.all_set(v, 3, 10) and not bm.all_set(v, 3, 11) and bm.all_set(v, 20, 64)
    assert bm.from_bytes(bm.to_bytes(v)) == v
    assert v & bm.full != bm.full and bm.all_set(bm.full, 0, 64)
