"""ZRLE payloads: tile sub-encodings, compressed pixels, and what they weigh."""

import struct
import zlib

from hostagent.vncterm.pixelformat import DEFAULT, Converter, PixelFormat
from hostagent.vncterm.render import render_lines
from hostagent.vncterm.zrle import ZrleEncoder, _cpixel_planes


def payload(encoder, pixels, w, h, inflater):
    data = encoder.encode(pixels, w, h)
    (n,) = struct.unpack(">I", data[:4])
    assert n == len(data) - 4
    return inflater.decompress(data[4:])


def test_solid_tile_is_one_compressed_pixel():
    enc, z = ZrleEncoder(Converter(DEFAULT)), zlib.decompressobj()
    assert payload(enc, bytes([1]) * 64 * 64, 64, 64, z) == b"\x01" + b"\x00\x00\xaa"


def test_two_colour_tile_is_a_one_bit_packed_palette():
    enc, z = ZrleEncoder(Converter(DEFAULT)), zlib.decompressobj()
    # 10x2 tile: first row alternates 0/7, second row all 7.
    pixels = bytes([0, 7] * 5) + bytes([7] * 10)
    raw = payload(enc, pixels, 10, 2, z)
    assert raw[0] == 2
    assert raw[1:7] == b"\x00\x00\x00" + b"\xaa\xaa\xaa"
    # rows are padded to whole bytes: 0101010101 000000 / 1111111111 000000
    assert raw[7:] == bytes([0b01010101, 0b01000000, 0b11111111, 0b11000000])


def test_many_colours_fall_back_to_raw_cpixels():
    enc, z = ZrleEncoder(Converter(DEFAULT)), zlib.decompressobj()
    pixels = bytes(range(20))
    raw = payload(enc, pixels, 20, 1, z)
    assert raw[0] == 0 and len(raw) == 1 + 20 * 3


def test_one_stream_per_connection_across_updates():
    enc, z = ZrleEncoder(Converter(DEFAULT)), zlib.decompressobj()
    for colour in (1, 2, 3):
        assert payload(enc, bytes([colour]) * 16, 4, 4, z)[0] == 1


def test_cpixel_is_three_bytes_only_when_colour_fits():
    assert _cpixel_planes(Converter(DEFAULT)) == [0, 1, 2]
    high = PixelFormat(32, 24, False, True, 255, 255, 255, 24, 16, 8)
    assert _cpixel_planes(Converter(high)) == [1, 2, 3]
    rgb565 = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)
    assert _cpixel_planes(Converter(rgb565)) == [0, 1]


def test_a_full_text_screen_shrinks_a_hundredfold():
    lines = ["".join(chr(33 + (i * 7 + j) % 90) for j in range(80)) for i in range(25)]
    rgb = render_lines(lines)
    indices = bytes(7 if any(rgb[i:i + 3]) else 0 for i in range(0, len(rgb), 3))
    enc = ZrleEncoder(Converter(DEFAULT))
    size = len(enc.encode(indices, 640, 400))
    assert size < 640 * 400 * 4 // 100, size
