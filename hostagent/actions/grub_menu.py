"""The default entry of a guest's GRUB menu (grub.cfg of GRUB 2, menu.lst of GRUB legacy),
as pygrub reads it: kernel, initrd and arguments. Pure text parsing.

Only what pygrub's simple output needs: `set default=N` / `default N` (a number;
anything else means the first entry), and in the entry its `linux`/`kernel` line
and its `initrd` line. Paths lose a GRUB device prefix such as `(hd0,0)`.
"""

import re
import shlex
from dataclasses import dataclass
from typing import List, Optional

# where pygrub looks, in its order of preference
CONFIG_PATHS = ("/boot/grub/grub.cfg", "/boot/grub2/grub.cfg", "/grub/grub.cfg", "/grub2/grub.cfg",
                "/boot/grub/menu.lst", "/boot/grub/grub.conf", "/grub/menu.lst", "/grub/grub.conf")


@dataclass(frozen=True)
class Entry:
    title: str
    kernel: str
    initrd: str = ""
    args: str = ""


def parse(path: str, text: str) -> Optional[Entry]:
    """The default entry of the config at `path` (its name says which syntax), or None."""
    entries, default = (_grub2 if path.endswith(".cfg") else _legacy)(text)
    if not entries:
        return None
    return entries[default] if 0 <= default < len(entries) else entries[0]


def _words(line: str) -> List[str]:
    try:
        return shlex.split(line, comments=False)
    except ValueError:
        return line.split()


def _path(word: str) -> str:
    return re.sub(r"^\([^)]*\)", "", word)


def _grub2(text: str):
    entries, default, current = [], 0, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = _words(line)
        if not words:
            continue
        if current is None:
            found = re.match(r"""set\s+default=["']?(\d+)["']?\s*$""", line)
            if found:
                default = int(found.group(1))
            elif words[0] == "menuentry":
                current = {"title": words[1] if len(words) > 1 else "", "kernel": "", "initrd": "", "args": ""}
            continue
        if words[0] in ("linux", "linux16", "linuxefi") and len(words) > 1:
            current["kernel"], current["args"] = _path(words[1]), " ".join(words[2:])
        elif words[0] in ("initrd", "initrd16", "initrdefi") and len(words) > 1:
            current["initrd"] = _path(words[1])
        elif line.startswith("}"):
            if current["kernel"]:
                entries.append(Entry(**current))
            current = None
    return entries, default


def _legacy(text: str):
    entries, default, current = [], 0, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, rest = line.partition(" ") if " " in line else line.partition("=")
        key, rest = key.strip(), rest.strip().lstrip("=").strip()
        if key == "default" and current is None and rest.isdigit():
            default = int(rest)
        elif key == "title":
            if current and current["kernel"]:
                entries.append(Entry(**current))
            current = {"title": rest, "kernel": "", "initrd": "", "args": ""}
        elif current is not None and key == "kernel":
            words = _words(rest)
            if words:
                current["kernel"], current["args"] = _path(words[0]), " ".join(words[1:])
        elif current is not None and key in ("initrd", "module") and not current["initrd"]:
            words = _words(rest)
            if words:
                current["initrd"] = _path(words[0])
    if current and current["kernel"]:
        entries.append(Entry(**current))
    return entries, default
