"""The 256-colour palette (VGA console colours for 0-15, xterm's cube and greys above) and the
mapping from pyte's colour names and hex strings to palette indices."""

DEFAULT_FG = 7
DEFAULT_BG = 0

_VGA16 = (
    (0x00, 0x00, 0x00), (0xaa, 0x00, 0x00), (0x00, 0xaa, 0x00), (0xaa, 0x55, 0x00),
    (0x00, 0x00, 0xaa), (0xaa, 0x00, 0xaa), (0x00, 0xaa, 0xaa), (0xaa, 0xaa, 0xaa),
    (0x55, 0x55, 0x55), (0xff, 0x55, 0x55), (0x55, 0xff, 0x55), (0xff, 0xff, 0x55),
    (0x55, 0x55, 0xff), (0xff, 0x55, 0xff), (0x55, 0xff, 0xff), (0xff, 0xff, 0xff),
)
_CUBE = (0x00, 0x5f, 0x87, 0xaf, 0xd7, 0xff)


def _build_palette() -> tuple:
    colours = list(_VGA16)
    for i in range(216):
        colours.append((_CUBE[i // 36], _CUBE[i // 6 % 6], _CUBE[i % 6]))
    for i in range(24):
        v = 8 + i * 10
        colours.append((v, v, v))
    return tuple(colours)


PALETTE = _build_palette()

# pyte names the 16 ANSI colours ("brown" is yellow; "bfightmagenta" is pyte's own spelling).
_NAMES = {
    "black": 0, "red": 1, "green": 2, "brown": 3, "yellow": 3, "blue": 4, "magenta": 5,
    "cyan": 6, "white": 7,
}
NAMED = dict(_NAMES)
NAMED.update({"bright" + k: v + 8 for k, v in _NAMES.items()})
NAMED["bfightmagenta"] = 13


def _xterm_hex() -> dict:
    # pyte reports 256-colour SGR values as xterm's hex strings: map those back to their index
    # (xterm's first 16 differ from our VGA ones, so they are listed from xterm's values).
    xterm16 = ("000000", "cd0000", "00cd00", "cdcd00", "0000ee", "cd00cd", "00cdcd", "e5e5e5",
               "7f7f7f", "ff0000", "00ff00", "ffff00", "5c5cff", "ff00ff", "00ffff", "ffffff")
    table = {}
    for i, (r, g, b) in enumerate(PALETTE):
        table.setdefault(f"{r:02x}{g:02x}{b:02x}", i)
    for i, h in enumerate(xterm16):
        table[h] = i
    return table


HEX = _xterm_hex()


def nearest(rgb_hex: str) -> int:
    """Palette index of the closest colour to an 'rrggbb' string (true-colour SGR)."""
    try:
        r, g, b = int(rgb_hex[0:2], 16), int(rgb_hex[2:4], 16), int(rgb_hex[4:6], 16)
    except ValueError:
        return DEFAULT_FG
    best, best_d = 0, 1 << 30
    for i in range(16, 256):
        pr, pg, pb = PALETTE[i]
        d = (pr - r) ** 2 + (pg - g) ** 2 + (pb - b) ** 2
        if d < best_d:
            best, best_d = i, d
    return best


def colour_index(value: str, default: int) -> int:
    """Palette index for a pyte colour value: 'default', a name or an 'rrggbb' hex string."""
    if value == "default":
        return default
    i = NAMED.get(value)
    if i is not None:
        return i
    i = HEX.get(value.lower())
    return i if i is not None else nearest(value)
