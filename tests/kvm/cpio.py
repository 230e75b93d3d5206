"""A writer for the cpio "newc" format the kernel unpacks as an initramfs."""

import gzip
import io
import stat

TRAILER = "TRAILER!!!"


class Archive:
    """Entries added in order (parents first), then `gzipped()` gives the initramfs bytes.

    Every entry is owned by root with mtime 0, so the same inputs give the same bytes.
    """

    def __init__(self):
        self._out = io.BytesIO()
        self._ino = 1
        self._closed = False

    def directory(self, path: str, mode: int = 0o755) -> None:
        self._entry(path, stat.S_IFDIR | mode, b"")

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(path, stat.S_IFREG | mode, data)

    def symlink(self, path: str, target: str) -> None:
        self._entry(path, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, path: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(path, stat.S_IFCHR | mode, b"", rdev=(major, minor))

    def gzipped(self) -> bytes:
        if not self._closed:
            self._entry(TRAILER, 0, b"", nlink=1)
            self._closed = True
        return gzip.compress(self._out.getvalue(), compresslevel=6, mtime=0)

    def _entry(self, path: str, mode: int, data: bytes, rdev=(0, 0), nlink=None) -> None:
        if self._closed:
            raise ValueError("archive already finished")
        name = path.lstrip("/").encode() + b"\0"
        if nlink is None:
            nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (self._ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name), 0)
        self._ino += 1
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self._out.write(header + name)
        self._pad()
        self._out.write(data)
        self._pad()

    def _pad(self) -> None:
        self._out.write(b"\0" * (-self._out.tell() % 4))
