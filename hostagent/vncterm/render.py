"""Cells to pixels: a framebuffer of palette indices drawn cell by cell with the console font.

``render_lines`` draws plain text exactly as vncterm draws it (default colours), and
``read_text`` reads a captured RGB framebuffer back into text, so tests can compare a screen
captured by a real VNC client with the text they expect.
"""

from .font import Font, load_font
from .palette import DEFAULT_BG, DEFAULT_FG, PALETTE

_CACHE_LIMIT = 4096


def cell_key(font: Font, data: str, fg: int, bg: int, underline: bool = False,
             inverse: bool = False) -> tuple:
    """The hashable description of one drawn cell: (glyph, fg, bg, underline)."""
    if inverse:
        fg, bg = bg, fg
    return (font.glyph(data), fg, bg, bool(underline))


class Framebuffer:
    """cols x rows cells of font-sized pixels, one palette index byte per pixel."""

    def __init__(self, font: Font, cols: int, rows: int):
        self.font = font
        self.cols, self.rows = cols, rows
        self.cell_w, self.cell_h = font.width, font.height
        self.width, self.height = cols * font.width, rows * font.height
        self.pixels = bytearray([DEFAULT_BG]) * (self.width * self.height)
        blank = cell_key(font, " ", DEFAULT_FG, DEFAULT_BG)
        self._drawn = [[blank] * cols for _ in range(rows)]
        self._cells: dict = {}
        self._tables: dict = {}

    def _cell_rows(self, key: tuple) -> tuple:
        rows = self._cells.get(key)
        if rows is None:
            glyph, fg, bg, underline = key
            table = self._tables.get((fg, bg))
            if table is None:
                table = self._tables[(fg, bg)] = bytes([bg, fg]) + bytes(254)
            w, h = self.cell_w, self.cell_h
            mask = self.font.masks[glyph]
            if underline:
                mask = mask[:(h - 2) * w] + b"\x01" * w + mask[(h - 1) * w:]
            cell = mask.translate(table)
            rows = tuple(cell[r * w:(r + 1) * w] for r in range(h))
            if len(self._cells) >= _CACHE_LIMIT:
                self._cells.clear()
            self._cells[key] = rows
        return rows

    def draw_row(self, y: int, keys: list):
        """Draw one text row; returns the changed cell span (x0, x1) or None if nothing changed."""
        old = self._drawn[y]
        n = self.cols
        x0 = 0
        while x0 < n and old[x0] == keys[x0]:
            x0 += 1
        if x0 == n:
            return None
        x1 = n
        while old[x1 - 1] == keys[x1 - 1]:
            x1 -= 1
        cells = [self._cell_rows(k) for k in keys[x0:x1]]
        w, h, width = self.cell_w, self.cell_h, self.width
        base = y * h * width + x0 * w
        span = (x1 - x0) * w
        pixels = self.pixels
        for r in range(h):
            start = base + r * width
            pixels[start:start + span] = b"".join([c[r] for c in cells])
        self._drawn[y] = list(keys)
        return (x0, x1)

    def find_scroll(self, rows: dict) -> int:
        """How many text rows the screen moved up, judging by the new keys of every row
        (``rows``: y -> keys); 0 when it did not scroll. Up to two rows may differ (the cursor's
        old and new rows)."""
        n = self.rows
        if len(rows) < n:
            return 0
        drawn = self._drawn
        for k in range(1, n - 1):
            misses = 0
            for y in range(n - k):
                if rows[y] != drawn[y + k]:
                    misses += 1
                    if misses > 2:
                        break
            if misses <= 2 and n - k > 4:
                return k
        return 0

    def scroll(self, k: int) -> None:
        """Move the picture up by k text rows; the k rows freed at the bottom are redrawn by the
        next draw_row calls (they compare unequal to anything)."""
        band = k * self.cell_h * self.width
        self.pixels[:-band] = self.pixels[band:]
        self._drawn = self._drawn[k:] + [[None] * self.cols for _ in range(k)]

    def region(self, x: int, y: int, w: int, h: int) -> bytes:
        """Palette indices of a pixel rectangle, row by row."""
        width, pixels = self.width, self.pixels
        if x == 0 and w == width:
            return bytes(pixels[y * width:(y + h) * width])
        return b"".join([pixels[(y + r) * width + x:(y + r) * width + x + w] for r in range(h)])


def indices_to_rgb(indices: bytes) -> bytes:
    """Palette indices to packed 8-bit RGB triplets."""
    n = len(indices)
    out = bytearray(n * 3)
    for plane in range(3):
        table = bytes(c[plane] for c in PALETTE)
        out[plane::3] = indices.translate(table)
    return bytes(out)


def render_lines(lines, cols: int = 80, rows: int = 25, cursor=None, font: Font = None) -> bytes:
    """RGB bytes (width cols*8, height rows*16 with the default font) of plain text in the
    default colours, as vncterm shows it; ``cursor`` is an optional (x, y) cell drawn inverted."""
    font = font or load_font()
    fb = Framebuffer(font, cols, rows)
    for y in range(rows):
        text = lines[y] if y < len(lines) else ""
        keys = []
        for x in range(cols):
            ch = text[x] if x < len(text) else " "
            keys.append(cell_key(font, ch, DEFAULT_FG, DEFAULT_BG, inverse=cursor == (x, y)))
        fb.draw_row(y, keys)
    return indices_to_rgb(bytes(fb.pixels))


def read_text(rgb: bytes, width: int, height: int, font: Font = None) -> list:
    """Read the text of an RGB framebuffer drawn in this font, whatever its colours: one string
    per text row, trailing spaces removed, '\\ufffd' for a cell matching no glyph."""
    font = font or load_font()
    w, h = font.width, font.height
    if len(rgb) < width * height * 3:
        raise ValueError("framebuffer smaller than width x height")
    by_mask: dict = {}
    for char, glyph in sorted(font.unicode_map.items(), key=lambda kv: (not kv[0].isascii(), kv[0])):
        by_mask.setdefault(font.masks[glyph], char)
    # One int per pixel (RGB packed); identical cells (blanks, repeated letters) are read once.
    rgbx = bytearray(width * height * 4)
    for plane in range(3):
        rgbx[plane::4] = rgb[plane:width * height * 3:3]
    pixels = memoryview(rgbx).cast("I")
    seen: dict = {}
    lines = []
    for cy in range(height // h):
        chars = []
        for cx in range(width // w):
            base = cy * h * width + cx * w
            raw = b"".join([rgbx[(base + r * width) * 4:(base + r * width + w) * 4]
                            for r in range(h)])
            char = seen.get(raw)
            if char is None:
                cell = []
                for r in range(h):
                    cell.extend(pixels[base + r * width:base + r * width + w])
                char = seen[raw] = _cell_char(cell, by_mask)
            chars.append(char)
        lines.append("".join(chars).rstrip())
    return lines


def _cell_char(cell: list, by_mask: dict) -> str:
    ground = cell[0]
    mask = bytes([px != ground for px in cell])
    if not any(mask):
        return " "
    inverse = bytes([px == ground for px in cell])
    return by_mask.get(mask) or by_mask.get(inverse) or "\ufffd"
