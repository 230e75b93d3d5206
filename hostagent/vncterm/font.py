"""PSF (Linux console) bitmap fonts: glyph bitmaps and the Unicode map, read from package data."""

import gzip
import struct
from dataclasses import dataclass
from importlib import resources

DEFAULT_FONT = "Uni2-VGA16.psf.gz"

_PSF1_MAGIC = b"\x36\x04"
_PSF2_MAGIC = b"\x72\xb5\x4a\x86"


class FontError(ValueError):
    """A font file that is not a PSF font we can read."""


@dataclass(frozen=True)
class Font:
    """A bitmap font: each glyph is width*height bytes of 0 (background) or 1 (ink)."""

    width: int
    height: int
    masks: tuple          # glyph index -> bytes, row-major, one byte per pixel
    unicode_map: dict     # character -> glyph index
    fallback: int         # glyph shown for characters the font lacks

    def glyph(self, char: str) -> int:
        """The glyph index for one character ('' and ' ' are blank)."""
        g = self.unicode_map.get(char)
        if g is None and len(char) > 1:          # a base character with combining marks
            g = self.unicode_map.get(char[0])
        if g is None:
            if not char or char.isspace():
                return self.unicode_map.get(" ", self.fallback)
            return self.fallback
        return g


def load_font(name: str = DEFAULT_FONT) -> Font:
    """Load a PSF1 or PSF2 font (optionally gzipped) shipped in this package's data directory."""
    raw = resources.files(__package__).joinpath("data", name).read_bytes()
    return parse_psf(raw)


def parse_psf(raw: bytes) -> Font:
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[:2] == _PSF1_MAGIC:
        return _parse_psf1(raw)
    if raw[:4] == _PSF2_MAGIC:
        return _parse_psf2(raw)
    raise FontError("not a PSF font")


def _bitmaps(data: bytes, count: int, width: int, height: int) -> tuple:
    row_bytes = (width + 7) // 8
    size = row_bytes * height
    if len(data) < count * size:
        raise FontError("truncated glyph table")
    to_mask = bytes.maketrans(b"01", b"\x00\x01")
    bits = row_bytes * 8
    masks = []
    for g in range(count):
        glyph = data[g * size:(g + 1) * size]
        rows = [format(int.from_bytes(glyph[y * row_bytes:(y + 1) * row_bytes], "big"),
                       f"0{bits}b")[:width] for y in range(height)]
        masks.append("".join(rows).encode().translate(to_mask))
    return tuple(masks)


def _font(masks, width, height, umap) -> Font:
    if not umap:
        umap = {chr(i): i for i in range(min(len(masks), 256))}
    fallback = umap.get("?", 0)
    return Font(width, height, masks, umap, fallback)


def _parse_psf1(raw: bytes) -> Font:
    mode, height = raw[2], raw[3]
    count = 512 if mode & 0x01 else 256
    masks = _bitmaps(raw[4:], count, 8, height)
    umap: dict = {}
    if mode & 0x06:
        table = raw[4 + count * height:]
        entries = struct.unpack(f"<{len(table) // 2}H", table[:len(table) // 2 * 2])
        glyph, in_sequence = 0, False
        for e in entries:
            if e == 0xFFFF:
                glyph, in_sequence = glyph + 1, False
                if glyph >= count:
                    break
            elif e == 0xFFFE:
                in_sequence = True
            elif not in_sequence:
                umap.setdefault(chr(e), glyph)
    return _font(masks, 8, height, umap)


def _parse_psf2(raw: bytes) -> Font:
    if len(raw) < 32:
        raise FontError("truncated PSF2 header")
    _v, header, flags, count, size, height, width = struct.unpack("<7I", raw[4:32])
    if not (0 < width <= 32 and 0 < height <= 64 and size == (width + 7) // 8 * height):
        raise FontError("unsupported PSF2 glyph size")
    masks = _bitmaps(raw[header:], count, width, height)
    umap: dict = {}
    if flags & 0x01:
        table = raw[header + count * size:]
        for glyph, entry in enumerate(table.split(b"\xff")[:count]):
            for c in entry.split(b"\xfe", 1)[0].decode("utf-8", "replace"):
                umap.setdefault(c, glyph)
    return _font(masks, width, height, umap)
