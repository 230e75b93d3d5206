"""Compression and checksums of XVA streams: the one user of zstandard and xxhash.

An export is compressed as a whole (gzip, or zstd); an importer tells which from the
first bytes. Chunk checksums are SHA-1 (`.checksum`, 40 lower-case hex digits, what xapi
wrote before 2019) or XXH64 with seed 0 (`.xxhash`, 16 upper-case hex digits, what today's
xapi and this agent write); an importer accepts both. Failures of a decompressor become
XvaError: a stream that stops early IMPORT_ERROR_PREMATURE_EOF, a damaged one IMPORT_ERROR.
"""

import gzip
import hashlib
import zlib
from contextlib import contextmanager

import xxhash
import zstandard

from .errors import XvaError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAGIC_LENGTH = 4
COMPRESSIONS = ("gzip", "zstd")
CHECKSUM_KINDS = ("checksum", "xxhash")  # file extensions of the checksum entries
# What exports carry: XXH64, as today's xapi writes (and reads); SHA-1 is a tenth as fast,
# which made it most of an export's cost. Every xapi since 2019 imports it.
EXPORT_CHECKSUM = "xxhash"
GZIP_LEVEL = 1  # xapi uses gzip's fast level too: exports are bound by the compressor
ZSTD_LEVEL = 3


def detect(head: bytes):
    """'gzip', 'zstd' or None (a plain tar) from a stream's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


class _Gzip:
    def __init__(self):
        self._z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: a gzip wrapper

    def compress(self, data: bytes) -> bytes:
        return self._z.compress(data)

    def flush(self) -> bytes:
        return self._z.flush()


class _Zstd:
    def __init__(self):
        self._z = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()

    def compress(self, data: bytes) -> bytes:
        return self._z.compress(data)

    def flush(self) -> bytes:
        return self._z.flush()


def compressor(kind: str):
    """An object with compress(bytes) -> bytes and flush() -> bytes for `kind`."""
    if kind == "gzip":
        return _Gzip()
    if kind == "zstd":
        return _Zstd()
    raise ValueError(f"unknown compression {kind!r}")


def decompressing(kind: str, fileobj):
    """A file-like reading `fileobj` decompressed (its read(n) may return less than n)."""
    if kind == "gzip":
        return gzip.GzipFile(fileobj=fileobj, mode="rb")
    if kind == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(fileobj, read_across_frames=True,
                                                          closefd=False)
    raise ValueError(f"unknown compression {kind!r}")


@contextmanager
def translated():
    """Decompressors' failures as XvaError."""
    try:
        yield
    except EOFError:
        raise XvaError("IMPORT_ERROR_PREMATURE_EOF") from None
    except (gzip.BadGzipFile, zlib.error, zstandard.ZstdError) as e:
        if "end of" in str(e) or "truncated" in str(e).lower():
            raise XvaError("IMPORT_ERROR_PREMATURE_EOF") from None
        raise XvaError("IMPORT_ERROR", f"the compressed stream is damaged: {e}") from None


def checksum(kind: str, data) -> str:
    """The text of a chunk's checksum entry of `kind` ('checksum' or 'xxhash')."""
    if kind == "checksum":
        return hashlib.sha1(data).hexdigest()
    if kind == "xxhash":
        return xxhash.xxh64_hexdigest(data).upper()
    raise ValueError(f"unknown checksum kind {kind!r}")
