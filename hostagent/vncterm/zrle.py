"""ZRLE encoding (RFC 6143 section 7.7.6) of palette-index rectangles, for remote viewers.

Text cells have two colours, so most 64x64 tiles are either solid (one pixel) or a two-colour
packed palette (one bit a pixel), then deflated on one zlib stream per connection: a full
80x25 screen shrinks from 1 MB of raw pixels to a few kilobytes. Bits are packed at C speed by
translating each row to ASCII digits and parsing them with int(row, base).
"""

import struct
import zlib

ENCODING_ZRLE = 16
TILE = 64

_DIGITS = b"0123456789abcdef"


def _cpixel_planes(converter) -> list:
    """Which bytes of a client pixel form ZRLE's compressed pixel: 3 of the 4 when a 32-bit
    true-colour format keeps all its colour bits in the low or high 24 bits, else all."""
    pf = converter.format
    planes = list(range(converter.bytes_per_pixel))
    if pf.bits_per_pixel != 32 or not pf.true_colour or pf.depth > 24:
        return planes
    top = max(pf.red_shift + pf.red_max.bit_length(), pf.green_shift + pf.green_max.bit_length(),
              pf.blue_shift + pf.blue_max.bit_length())
    low = min(pf.red_shift, pf.green_shift, pf.blue_shift)
    if top <= 24:                     # colour in the least significant three bytes
        return [0, 1, 2] if not pf.big_endian else [1, 2, 3]
    if low >= 8:                      # colour in the most significant three bytes
        return [1, 2, 3] if not pf.big_endian else [0, 1, 2]
    return planes


class ZrleEncoder:
    """One connection's ZRLE state: its zlib stream and its compressed-pixel layout."""

    def __init__(self, converter, level: int = 6):
        self._z = zlib.compressobj(level)
        self.set_converter(converter)

    def set_converter(self, converter) -> None:
        keep = _cpixel_planes(converter)
        self._planes = [converter.planes[i] for i in keep]
        self._size = len(self._planes)

    def _cpixels(self, indices: bytes) -> bytes:
        n = self._size
        if n == 1:
            return indices.translate(self._planes[0])
        out = bytearray(len(indices) * n)
        for i, plane in enumerate(self._planes):
            out[i::n] = indices.translate(plane)
        return bytes(out)

    def encode(self, pixels: bytes, width: int, height: int) -> bytes:
        """The ZRLE payload (length and zlib data) of a width x height block of indices."""
        out = bytearray()
        for ty in range(0, height, TILE):
            th = min(TILE, height - ty)
            for tx in range(0, width, TILE):
                tw = min(TILE, width - tx)
                rows = [pixels[(ty + r) * width + tx:(ty + r) * width + tx + tw]
                        for r in range(th)]
                self._tile(out, rows, tw)
        data = self._z.compress(bytes(out)) + self._z.flush(zlib.Z_SYNC_FLUSH)
        return struct.pack(">I", len(data)) + data

    def _tile(self, out: bytearray, rows: list, width: int) -> None:
        tile = b"".join(rows)
        colours = sorted(set(tile))
        n = len(colours)
        if n == 1:
            out.append(1)
            out += self._cpixels(bytes(colours))
            return
        if n > 16:
            out.append(0)
            out += self._cpixels(tile)
            return
        bits, base = (1, 2) if n == 2 else (2, 4) if n <= 4 else (4, 16)
        table = bytearray(256)
        for i, c in enumerate(colours):
            table[c] = _DIGITS[i]
        table = bytes(table)
        per_byte = 8 // bits
        pad = -width % per_byte
        nbytes = (width + pad) // per_byte
        out.append(n)
        out += self._cpixels(bytes(colours))
        filler = b"0" * pad
        for row in rows:
            digits = row.translate(table) + filler
            out += int(digits, base).to_bytes(nbytes, "big")
