"""The attachments of this host, one small JSON file each in ``<state_dir>/datapath``.

A record is written (atomically, and durably) before anything serves the
volume and removed only after its server stopped, so whatever an agent killed
at any moment left running is found again by the next one. Each record is
named by a short random identifier, which also names its nbdkit's socket, pid
file and log beside it (short, because a Unix socket path has 107 bytes). A
record also keeps the image its server reads, so a server that died (a host
reboot, a crash) can be started again on the same socket.
"""

import json
import os
import secrets
import time
from typing import NamedTuple

from sm.driver import Attachment

_FIELDS = ("kind", "path", "format", "uri", "sr", "vdi", "owner", "writable")


class Record(NamedTuple):
    ident: str
    attachment: Attachment
    image: str  # what its nbdkit serves ("" unless kind "nbd")


class Records:
    def __init__(self, state_dir: str):
        self.dir = os.path.join(state_dir, "datapath")

    def _path(self, ident: str) -> str:
        return os.path.join(self.dir, ident + ".json")

    def new_ident(self) -> str:
        """A fresh identifier (8 hex digits: short enough for a socket path)."""
        while True:
            ident = secrets.token_hex(4)
            if not os.path.exists(self._path(ident)):
                return ident

    def put(self, ident: str, attachment: Attachment, image: str = "") -> None:
        os.makedirs(self.dir, exist_ok=True)
        entry = {k: getattr(attachment, k) for k in _FIELDS}
        entry["image"] = image
        entry["since"] = time.time()
        tmp = self._path(ident) + ".tmp"
        with open(tmp, "w") as f:
            json.dump(entry, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path(ident))
        _fsync_dir(self.dir)

    def drop(self, ident: str) -> None:
        try:
            os.unlink(self._path(ident))
        except FileNotFoundError:
            return
        _fsync_dir(self.dir)

    def all(self) -> list[Record]:
        """Every record, oldest first."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.dir, name)) as f:
                    entry = json.load(f)
                attachment = Attachment(**{k: entry[k] for k in _FIELDS})
            except (OSError, ValueError, KeyError, TypeError):
                continue  # removed meanwhile, or not ours
            found.append((entry.get("since", 0), Record(name[:-5], attachment,
                                                        entry.get("image", ""))))
        return [r for _, r in sorted(found, key=lambda x: (x[0], x[1].ident))]

    def find(self, sr_uuid: str, vdi_uuid: str, owner: str) -> Record | None:
        """The newest attachment of the volume for owner ("": the newest anonymous one)."""
        mine = [r for r in self.all()
                if (r.attachment.sr, r.attachment.vdi, r.attachment.owner)
                == (sr_uuid, vdi_uuid, owner)]
        return mine[-1] if mine else None


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
