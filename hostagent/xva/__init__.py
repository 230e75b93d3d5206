"""XVA, xapi's VM archive ("export format version 2"), as pure functions and classes.

`ovaxml`: the archive's table of contents (ova.xml) written and read; `archive`: the tar
framing of ova.xml and of each disk's 1 MiB chunks with their checksums, and the importer's
side (chunks back to disk offsets, checksums verified); `codecs`: gzip/zstd compression
and the checksum algorithms (the one importer of zstandard and xxhash). No I/O of their own,
no Twisted: the agent's HTTP handlers feed them from the network and the storage port.
"""

from .errors import XvaError

__all__ = ["XvaError"]
