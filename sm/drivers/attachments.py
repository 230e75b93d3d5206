"""Which volumes of an SR are attached on this host, kept as files in the state dir.

Drivers consult it before operations that would pull a volume from under a
domain (destroy, offline resize, clone of a leaf). One file per attached volume
holds its mode and, for read-only attachments, how many there are; it survives
an agent restart, as the domains using the volumes do.
"""

import os

from sm.errors import VolumeInUse, VolumeReadOnly


class AttachmentBook:
    def __init__(self, state_dir: str, sr_uuid: str):
        self.dir = os.path.join(state_dir, "attached", sr_uuid)

    def _path(self, uuid: str) -> str:
        return os.path.join(self.dir, uuid)

    def get(self, uuid: str) -> tuple[str, int] | None:
        """("rw", 1) or ("ro", n) while attached, else None."""
        try:
            with open(self._path(uuid)) as f:
                mode, count = f.read().split()
            return mode, int(count)
        except FileNotFoundError:
            return None

    def add(self, uuid: str, writable: bool, read_only_volume: bool = False) -> None:
        """Record an attachment; one writer, or any number of readers."""
        if writable and read_only_volume:
            raise VolumeReadOnly(uuid)
        current = self.get(uuid)
        if current is not None and (writable or current[0] == "rw"):
            raise VolumeInUse(uuid, "attach")
        mode, count = ("rw", 1) if writable else ("ro", (current or ("ro", 0))[1] + 1)
        os.makedirs(self.dir, exist_ok=True)
        tmp = self._path(uuid) + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{mode} {count}\n")
        os.replace(tmp, self._path(uuid))

    def remove(self, uuid: str) -> None:
        """Drop one attachment (the writer, or one reader); idempotent."""
        current = self.get(uuid)
        if current is None:
            return
        mode, count = current
        if mode == "ro" and count > 1:
            with open(self._path(uuid), "w") as f:
                f.write(f"ro {count - 1}\n")
        else:
            os.unlink(self._path(uuid))

    def require_detached(self, uuid: str, operation: str) -> None:
        if self.get(uuid) is not None:
            raise VolumeInUse(uuid, operation)

    def attached(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.dir) if not n.endswith(".tmp"))
        except FileNotFoundError:
            return []
