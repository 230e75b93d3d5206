"""Pixel formats: what ServerInit announces, validation, conversion of palette pixels."""

import struct

import pytest

from hostagent.vncterm.palette import PALETTE
from hostagent.vncterm.pixelformat import (
    DEFAULT,
    Converter,
    PixelFormat,
    PixelFormatError,
    colour_map_entries,
)

RED = 1          # palette index of VGA red, 0xaa0000
WHITE = 15


def test_default_is_32_bit_little_endian_xrgb_and_round_trips():
    assert DEFAULT.pack() == struct.pack(">BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
    assert PixelFormat.unpack(DEFAULT.pack()) == DEFAULT
    assert Converter(DEFAULT).convert(bytes([RED, WHITE])) == b"\x00\x00\xaa\x00\xff\xff\xff\x00"


def test_32_bit_big_endian():
    pf = PixelFormat(32, 24, True, True, 255, 255, 255, 16, 8, 0)
    assert Converter(pf).convert(bytes([RED])) == b"\x00\xaa\x00\x00"


def test_16_bit_565_both_endians():
    le = PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)
    be = PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0)
    value = (0xaa * 31 + 127) // 255 << 11
    assert Converter(le).convert(bytes([RED])) == struct.pack("<H", value)
    assert Converter(be).convert(bytes([RED, WHITE])) == struct.pack(">HH", value, 0xffff)


def test_8_bit_true_colour_bgr233():
    pf = PixelFormat(8, 8, False, True, 7, 7, 3, 0, 3, 6)
    assert Converter(pf).convert(bytes([WHITE, 0])) == bytes([0xff, 0])


def test_colour_mapped_8_bit_sends_palette_indices_and_the_map():
    pf = PixelFormat(8, 8, False, False, 0, 0, 0, 0, 0, 0)
    assert Converter(pf).convert(bytes([RED, 200])) == bytes([RED, 200])
    msg = colour_map_entries()
    assert msg[:6] == struct.pack(">BxHH", 1, 0, 256) and len(msg) == 6 + 256 * 6
    r, g, b = PALETTE[RED]
    assert msg[6 + 6 * RED:12 + 6 * RED] == struct.pack(">HHH", r * 257, g * 257, b * 257)


@pytest.mark.parametrize("pf, why", [
    (PixelFormat(24, 24, False, True, 255, 255, 255, 16, 8, 0), "24 bits"),
    (PixelFormat(16, 16, False, False, 0, 0, 0, 0, 0, 0), "colour map"),
    (PixelFormat(16, 16, False, True, 30, 63, 31, 11, 5, 0), "not 2\\^n-1"),
    (PixelFormat(16, 16, False, True, 31, 63, 31, 12, 5, 0), "does not fit"),
    (PixelFormat(32, 24, False, True, 0, 255, 255, 16, 8, 0), "not 2\\^n-1"),
])
def test_unserved_formats_are_refused(pf, why):
    with pytest.raises(PixelFormatError, match=why):
        Converter(pf)
