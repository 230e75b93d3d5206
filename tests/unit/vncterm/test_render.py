"""The console font and the framebuffer: glyphs, cells, text read back from pixels."""

import pytest

from hostagent.vncterm.font import load_font, parse_psf
from hostagent.vncterm.palette import DEFAULT_BG, DEFAULT_FG, colour_index
from hostagent.vncterm.render import (
    Framebuffer,
    cell_key,
    indices_to_rgb,
    read_text,
    render_lines,
)


def test_font_is_8x16_with_a_unicode_map():
    font = load_font()
    assert (font.width, font.height) == (8, 16)
    assert len(font.masks) == 512
    assert all(len(m) == 128 for m in font.masks)
    assert font.masks[font.glyph("A")] != font.masks[font.glyph("B")]
    assert not any(font.masks[font.glyph(" ")])
    assert font.glyph("\u2500") != font.fallback             # box drawing is in the font
    assert font.glyph("\U0001f600") == font.fallback == font.glyph("?")
    assert font.glyph("e\u0301\u0302") == font.glyph("e")        # combining marks dropped


def test_not_a_font():
    with pytest.raises(ValueError):
        parse_psf(b"not a font")


def test_render_lines_reads_back_as_the_same_text():
    lines = ["hello, world", "  indented {braces} [brackets] ~tilde~", "", "x" * 80]
    rgb = render_lines(lines, 80, 25, cursor=(3, 2))
    assert len(rgb) == 640 * 400 * 3
    assert read_text(rgb, 640, 400)[:4] == lines
    assert render_lines(lines, 80, 25) != rgb                   # the cursor is drawn


def test_read_text_ignores_colours():
    font = load_font()
    fb = Framebuffer(font, 10, 2)
    keys = [cell_key(font, c, 11, 4) for c in "Colour!   "]
    fb.draw_row(0, keys)
    assert read_text(indices_to_rgb(bytes(fb.pixels)), 80, 32) == ["Colour!", ""]


def test_draw_row_reports_only_the_changed_span():
    font = load_font()
    fb = Framebuffer(font, 20, 2)
    row = [cell_key(font, " ", DEFAULT_FG, DEFAULT_BG)] * 20
    assert fb.draw_row(1, row) is None
    row2 = list(row)
    row2[5] = cell_key(font, "a", DEFAULT_FG, DEFAULT_BG)
    row2[7] = cell_key(font, "b", 1, DEFAULT_BG, underline=True)
    assert fb.draw_row(1, row2) == (5, 8)
    assert fb.draw_row(1, row2) is None
    # The underline is the cell's second-to-last pixel row, in the foreground colour.
    y = 16 + 14
    assert fb.pixels[y * fb.width + 7 * 8:y * fb.width + 8 * 8] == bytes([1]) * 8


def test_colour_names_from_pyte():
    assert colour_index("default", DEFAULT_FG) == DEFAULT_FG
    assert colour_index("red", 0) == 1 and colour_index("brightred", 0) == 9
    assert colour_index("bfightmagenta", 0) == 13          # pyte's own spelling
    assert colour_index("ff0000", 0) == 9                  # xterm 256-colour index 9
    assert colour_index("5f87af", 0) == 16 + 36 * 1 + 6 * 2 + 3
    assert colour_index("010203", 0) == 16                 # true colour: nearest


def test_scroll_is_detected_and_shifts_the_picture():
    font = load_font()
    fb = Framebuffer(font, 10, 8)

    def keys(text):
        return [cell_key(font, c, DEFAULT_FG, DEFAULT_BG) for c in text.ljust(10)]
    for y in range(8):
        fb.draw_row(y, keys(f"row {y}"))
    before = bytes(fb.pixels)
    moved = {y: keys(f"row {y + 2}") for y in range(6)}
    moved.update({6: keys("new a"), 7: keys("new b")})
    assert fb.find_scroll(moved) == 2
    fb.scroll(2)
    band = 2 * 16 * fb.width
    assert bytes(fb.pixels[:-band]) == before[band:]
    assert [y for y in range(8) if fb.draw_row(y, moved[y])] == [6, 7]
    # Not a scroll: edits in place.
    edited = {y: keys(f"row {y + 2}") for y in range(8)}
    edited[0] = keys("changed")
    assert fb.find_scroll(edited) == 0
    assert fb.find_scroll({0: keys("x")}) == 0        # not every row: cannot tell
