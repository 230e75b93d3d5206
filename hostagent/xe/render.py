"""Output in XenServer's layout: records, `--minimal` lists, single values.

A record is one line per field, `label (XX): value`, labels padded to the longest
label plus four; the first label is left-aligned, the others right-aligned. Every
record is followed by two empty lines. `--minimal` prints the first shown field of
every record on one line, comma-separated, commas inside values written `\\,`.
"""


def record_text(pairs) -> str:
    """`pairs`: [(label with marker, value)]; returns the record and its two empty lines."""
    if not pairs:
        return "\n\n"
    width = max(len(label) for label, _ in pairs) + 4
    lines = []
    for i, (label, value) in enumerate(pairs):
        head = label.ljust(width) if i == 0 else label.rjust(width)
        lines.append(f"{head}: {value}")
    return "\n".join(lines) + "\n\n\n"


def minimal_text(values) -> str:
    return ",".join(v.replace(",", "\\,") for v in values) + "\n"
