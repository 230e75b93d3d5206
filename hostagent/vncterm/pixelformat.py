"""RFB pixel formats: parsing, validation and conversion of palette-index pixels to a client's
format (8, 16 or 32 bits per pixel, true colour; or 8-bit colour-mapped with our palette)."""

import struct
from dataclasses import dataclass

from .palette import PALETTE

_FORMAT = struct.Struct(">BBBBHHHBBB3x")


class PixelFormatError(ValueError):
    """A pixel format vncterm does not serve (the client is disconnected)."""


@dataclass(frozen=True)
class PixelFormat:
    bits_per_pixel: int
    depth: int
    big_endian: bool
    true_colour: bool
    red_max: int
    green_max: int
    blue_max: int
    red_shift: int
    green_shift: int
    blue_shift: int

    def pack(self) -> bytes:
        return _FORMAT.pack(self.bits_per_pixel, self.depth, int(self.big_endian),
                            int(self.true_colour), self.red_max, self.green_max, self.blue_max,
                            self.red_shift, self.green_shift, self.blue_shift)

    @classmethod
    def unpack(cls, data: bytes) -> "PixelFormat":
        bpp, depth, be, tc, rm, gm, bm, rs, gs, bs = _FORMAT.unpack(data)
        return cls(bpp, depth, bool(be), bool(tc), rm, gm, bm, rs, gs, bs)


# What ServerInit announces: 32-bit little-endian xRGB.
DEFAULT = PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 0)


def _bits(maximum: int) -> int:
    return maximum.bit_length()


def validate(pf: PixelFormat) -> None:
    """Raise PixelFormatError for a format we cannot produce."""
    if pf.bits_per_pixel not in (8, 16, 32):
        raise PixelFormatError(f"{pf.bits_per_pixel} bits per pixel is not served (8, 16, 32 are)")
    if not pf.true_colour:
        if pf.bits_per_pixel != 8:
            raise PixelFormatError("a colour map is served only at 8 bits per pixel")
        return
    for name, maximum, shift in (("red", pf.red_max, pf.red_shift),
                                 ("green", pf.green_max, pf.green_shift),
                                 ("blue", pf.blue_max, pf.blue_shift)):
        if maximum == 0 or maximum & (maximum + 1):
            raise PixelFormatError(f"{name}-max {maximum} is not 2^n-1")
        if shift + _bits(maximum) > pf.bits_per_pixel:
            raise PixelFormatError(f"{name} does not fit in {pf.bits_per_pixel} bits")


def pixel_values(pf: PixelFormat) -> list:
    """The client's pixel value for each of the 256 palette indices."""
    if not pf.true_colour:
        return list(range(256))
    values = []
    for r, g, b in PALETTE:
        values.append((r * pf.red_max + 127) // 255 << pf.red_shift
                      | (g * pf.green_max + 127) // 255 << pf.green_shift
                      | (b * pf.blue_max + 127) // 255 << pf.blue_shift)
    return values


class Converter:
    """Turns palette-index bytes into pixel bytes of one client's format, one translate() per
    output byte plane, so a whole update converts at C speed."""

    def __init__(self, pf: PixelFormat):
        validate(pf)
        self.format = pf
        self.bytes_per_pixel = pf.bits_per_pixel // 8
        order = "big" if pf.big_endian else "little"
        packed = [v.to_bytes(self.bytes_per_pixel, order) for v in pixel_values(pf)]
        self.planes = [bytes(p[i] for p in packed) for i in range(self.bytes_per_pixel)]

    def convert(self, indices: bytes) -> bytes:
        if self.bytes_per_pixel == 1:
            return indices.translate(self.planes[0])
        n = self.bytes_per_pixel
        out = bytearray(len(indices) * n)
        for i, plane in enumerate(self.planes):
            out[i::n] = indices.translate(plane)
        return bytes(out)


def colour_map_entries() -> bytes:
    """A SetColourMapEntries message giving our 256-colour palette (for colour-mapped clients)."""
    body = b"".join(struct.pack(">HHH", r * 257, g * 257, b * 257) for r, g, b in PALETTE)
    return struct.pack(">BxHH", 1, 0, len(PALETTE)) + body
