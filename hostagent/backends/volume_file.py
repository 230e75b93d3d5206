"""A volume's bytes as a read-only, seekable file object, for libraries that read images
through one (pycdlib for ISOs, dissect.extfs for guest file systems).

`read_at(offset, length)` is the storage port's VolumeIO.read (or any function like it);
calls block, so the whole reader runs in a worker thread.
"""

import io
from typing import Callable


class VolumeFile(io.RawIOBase):
    def __init__(self, read_at: Callable[[int, int], bytes], size: int):
        super().__init__()
        self._read_at = read_at
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        length = min(len(buffer), max(0, self._size - self._pos))
        if length <= 0:
            return 0
        data = self._read_at(self._pos, length)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


def offset_file(base, offset: int, size: int) -> VolumeFile:
    """A window of another seekable file (a partition of a disk)."""
    def read_at(pos: int, length: int) -> bytes:
        base.seek(offset + pos)
        return base.read(length)
    return VolumeFile(read_at, size)
