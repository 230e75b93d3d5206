"""One VHD chain as an NBD export sees it: sizes, reads, writes, zeroes and flushes.

What the nbdkit plugin (``plugin.py``) maps every request onto, kept free of
nbdkit so it can be tested on its own. All VHD knowledge stays in ``sm.vhd``:
reads fall through the chain there, writes land in the leaf there, in the
order ``sm.vhd.image`` keeps for crash consistency (data, bitmap, footer,
BAT). Nothing here writes to the file except through ``Image.write`` and
``Image.flush``, so a process killed at any instant leaves an image that opens
and reads each sector as either its old or its new contents.

An ``Image`` is not thread-safe and one is shared by every connection of the
server, so requests must reach it one at a time: the plugin declares
nbdkit's SERIALIZE_ALL_REQUESTS thread model for exactly that.
"""

from sm import vhd

ZERO_CHUNK = 2 * 1024 * 1024  # the VHD block size: zeroing reads and writes whole blocks


class VhdExport:
    """The leaf VHD at ``path`` (opened writable or not) with its chain."""

    def __init__(self, path: str, writable: bool):
        self.path = path
        self.writable = writable
        self.image = vhd.open(path, writable=writable)
        try:
            image = self.image  # open the whole chain now: a broken one fails the start
            while image.is_differencing:
                image = image.parent()
        except BaseException:
            self.image.close()
            raise
        self.size = self.image.virtual_size
        self._zeros = memoryview(bytes(min(ZERO_CHUNK, self.size)))

    def readinto(self, buf, offset: int) -> None:
        """Fill ``buf`` (a writable buffer) with the disk's bytes from ``offset``."""
        self.image.readinto(offset, buf)

    def write(self, buf, offset: int) -> None:
        self.image.write(offset, buf)

    def zero(self, length: int, offset: int) -> None:
        """Make ``length`` bytes from ``offset`` read as zeros, writing only where they do
        not already: an NBD client zeroing a fresh disk (qemu-img convert, mkfs) would
        otherwise allocate every block of the leaf."""
        end = offset + length
        while offset < end:
            n = min(ZERO_CHUNK - offset % ZERO_CHUNK, end - offset)
            now = bytearray(n)
            self.image.readinto(offset, now)
            if now != self._zeros[:n]:  # bytearray == memoryview is a memcmp
                self.image.write(offset, self._zeros[:n])
            offset += n

    def flush(self) -> None:
        """Everything written so far becomes durable (fsync of the leaf)."""
        self.image.flush()

    def close(self) -> None:
        if self.image is not None:
            self.image.flush()
            self.image.close()
            self.image = None
