"""Damage bookkeeping for one client: which cells changed since it was last sent them.

Damage is a dict {cell row: (first column, end column)}; it turns into pixel rectangles, one
per run of consecutive damaged rows, clipped to the region a client asked for.
"""


def merge(damage: dict, new: dict) -> None:
    """Add ``new`` damage into ``damage`` (spans on the same row are united)."""
    for y, (x0, x1) in new.items():
        old = damage.get(y)
        damage[y] = (min(x0, old[0]), max(x1, old[1])) if old else (x0, x1)


def rectangles(damage: dict, region: tuple, cell: tuple) -> list:
    """Pixel rectangles (x, y, w, h) covering the damage inside region (x0, y0, x1, y1);
    cell is the (width, height) of a character cell in pixels."""
    cw, ch = cell
    rx0, ry0, rx1, ry1 = region
    runs, run = [], None
    for y in sorted(damage):
        x0, x1 = damage[y]
        if run and run[1] == y:
            run = [run[0], y + 1, min(run[2], x0), max(run[3], x1)]
        else:
            if run:
                runs.append(run)
            run = [y, y + 1, x0, x1]
    if run:
        runs.append(run)
    out = []
    for top, bottom, left, right in runs:
        px0, py0 = max(left * cw, rx0), max(top * ch, ry0)
        px1, py1 = min(right * cw, rx1), min(bottom * ch, ry1)
        if px1 > px0 and py1 > py0:
            out.append((px0, py0, px1 - px0, py1 - py0))
    return out


def forget(damage: dict, region: tuple, cell: tuple) -> None:
    """Drop the damage of rows whose damaged span lies wholly inside the sent region."""
    cw, ch = cell
    rx0, ry0, rx1, ry1 = region
    for y, (x0, x1) in list(damage.items()):
        if rx0 <= x0 * cw and x1 * cw <= rx1 and ry0 <= y * ch and (y + 1) * ch <= ry1:
            del damage[y]


def shift_up(damage: dict, k: int) -> dict:
    """The damage after the picture moved up k rows on the client too (by a CopyRect)."""
    return {y - k: span for y, span in damage.items() if y >= k}


def everything(rows: int, cols: int) -> dict:
    return {y: (0, cols) for y in range(rows)}
