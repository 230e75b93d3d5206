"""sm.vhd.stream: a VHD written front to back from a disk's contents and read back the
same way; the file it makes is also opened by sm.vhd itself."""

import io

import pytest

from sm import vhd
from sm.vhd import format as fmt
from sm.vhd import stream
from sm.vhd.errors import CorruptError, UnsupportedError

MiB = 1 << 20
BLOCK = stream.BLOCK_SIZE


def contents(size):
    disk = bytearray(size)
    disk[512:1512] = b"a" * 1000
    disk[5 * MiB:5 * MiB + 4096] = b"b" * 4096
    disk[size - 512:] = b"z" * 512
    return disk


def blocks_of(disk):
    return [n for n in range(-(-len(disk) // BLOCK)) if any(disk[n * BLOCK:(n + 1) * BLOCK])]


def read_back(raw):
    g = stream.import_stream(io.BytesIO(raw).read)
    size, _ = next(g)
    out = bytearray(size)
    for offset, data in g:
        out[offset:offset + len(data)] = data
    return out


def test_round_trip_and_sm_vhd_opens_the_file(tmp_path):
    size = 10 * MiB + 3 * 512
    disk = contents(size)
    blocks = blocks_of(disk)
    raw = b"".join(stream.export_stream(size, blocks, lambda o, n: bytes(disk[o:o + n])))
    assert len(raw) == stream.stream_length(size, blocks)
    assert read_back(raw) == disk
    path = tmp_path / "out.vhd"
    path.write_bytes(raw)
    with vhd.open(str(path)) as img:
        assert img.virtual_size == size
        assert img.read(0, size) == bytes(disk)


def test_a_chain_made_by_sm_vhd_streams_flattened(tmp_path):
    base, leaf = str(tmp_path / "base.vhd"), str(tmp_path / "leaf.vhd")
    vhd.create_dynamic(base, 6 * MiB)
    with vhd.open(base, writable=True) as img:
        img.write(0, b"1" * 4096)
        img.flush()
    vhd.make_child(base, leaf)
    with vhd.open(leaf, writable=True) as img:
        img.write(4 * MiB, b"2" * 4096)
        img.flush()
    with vhd.open(leaf) as img:
        expected = img.read(0, 6 * MiB)
        raw = b"".join(stream.export_stream(6 * MiB, [0, 1, 2], img.read))
    assert read_back(raw) == expected


def test_a_partly_present_block_gives_only_its_sectors():
    size = 2 * MiB
    raw = bytearray(b"".join(stream.export_stream(size, [0], lambda o, n: b"\x07" * n)))
    bitmap_at = 512 + 1024 + 512  # footer copy, header, one BAT sector
    raw[bitmap_at:bitmap_at + 512] = b"\x80" + bytes(511)  # only sector 0 present
    got = list(stream.import_stream(io.BytesIO(bytes(raw)).read))
    assert got == [(size, None), (0, b"\x07" * 512)]


def test_short_fixed_and_out_of_order_streams_are_refused(tmp_path):
    size = 4 * MiB
    raw = b"".join(stream.export_stream(size, [0, 1], lambda o, n: b"\x01" * n))
    for cut in (100, 600, 3000, len(raw) - 600):
        with pytest.raises(CorruptError, match="ends early"):
            read_back(raw[:cut])
    fixed = tmp_path / "fixed.vhd"
    footer = fmt.Footer(fmt.DISK_FIXED, 512, 512, bytes(16), geometry=fmt.geometry(512)).pack()
    fixed.write_bytes(bytes(512) + footer)
    with pytest.raises(CorruptError):  # its first 512 bytes are data, not a footer
        read_back(fixed.read_bytes())
    with pytest.raises(UnsupportedError):
        read_back(footer)
    backwards = bytearray(raw)
    bat = 512 + 1024
    backwards[bat:bat + 4] = (2).to_bytes(4, "big")  # block 0 said to lie inside the header
    with pytest.raises(UnsupportedError, match="front to back"):
        read_back(bytes(backwards))
