"""VHD (Microsoft Virtual Hard Disk) images: dynamic and differencing disks and their chains.

    from sm import vhd
    vhd.create_dynamic("base.vhd", 10 * 2**30)
    vhd.make_child("base.vhd", "leaf.vhd")
    with vhd.open("leaf.vhd", writable=True) as img:
        img.write(0, b"\\1" * 4096)
        data = img.read(0, 1 << 20)   # what leaf.vhd holds, the rest from base.vhd

Modules: format (on-disk structures, checksums, geometry), image (open/read/write),
create (new files), meta (resize, re-parenting), chain (snapshot/clone/coalesce/info),
errors (VhdError and its subclasses).
"""

from .chain import chain, clone, coalesce, info, make_child, set_parent, snapshot
from .create import create_differencing, create_dynamic
from .errors import (BadCookieError, ChecksumError, CorruptError, NotDifferencingError,
                     OutOfRangeError, ParentMismatchError, ParentMissingError, ReadOnlyError,
                     ResizeError, UnsupportedError, VhdError)
from .format import DEFAULT_BLOCK_SIZE, MAX_VIRTUAL_SIZE
from .image import Image, open, resize  # noqa: A004 - vhd.open is the package's entry point

__all__ = [
    "BadCookieError", "ChecksumError", "CorruptError", "DEFAULT_BLOCK_SIZE", "Image",
    "MAX_VIRTUAL_SIZE", "NotDifferencingError", "OutOfRangeError", "ParentMismatchError",
    "ParentMissingError", "ReadOnlyError", "ResizeError", "UnsupportedError", "VhdError",
    "chain", "clone", "coalesce", "create_differencing", "create_dynamic", "info",
    "make_child", "open", "resize", "set_parent", "snapshot",
]
