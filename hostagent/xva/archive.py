"""The tar framing of an XVA: writing its entries, and reading them back.

An archive is `ova.xml`, then for each streamed disk (in the order of its `Ref:<n>` id
as a string) entries `Ref:<n>/<8-digit chunk number>` of at most 1 MiB of disk data,
each followed by its checksum entry (`.checksum` SHA-1 or `.xxhash` XXH64), then the
tar end blocks. All-zero chunks are left out except a disk's first and last. A reader
rebuilds disk offsets by accumulating as xapi does: a gap of N chunk numbers is N times
the first chunk's length of zeros, then the chunk's own length follows (an empty chunk
is xapi's keep-alive and moves nothing).
"""

import re
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from . import codecs
from .errors import XvaError
from .ovaxml import MAX_OVA_XML

CHUNK = 1 << 20
BLOCK = 512
OVA_XML = "ova.xml"
END = bytes(2 * BLOCK)
LONG_NAME_MAX = 4096  # a GNU long-name header's data, read whole: no archive name needs more
_ZEROS = bytes(CHUNK)
_NAME = re.compile(r"^(Ref:\d+)/(\d{8})(?:\.(checksum|xxhash))?$")


# --------------------------------------------------------------------------- writing
def entry_pieces(name: str, data: bytes) -> list:
    """One tar member as pieces to send in order, the data not copied: ustar header,
    the data, padding to the next 512-byte block."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    pad = -len(data) % BLOCK
    return [info.tobuf(tarfile.USTAR_FORMAT), data] + ([bytes(pad)] if pad else [])


def entry(name: str, data: bytes) -> bytes:
    """One tar member in one piece."""
    return b"".join(entry_pieces(name, data))


def is_zero(data) -> bool:
    return data == _ZEROS if len(data) == CHUNK else data == bytes(len(data))


def chunk_count(size: int) -> int:
    return max(1, -(-size // CHUNK))


def chunk_numbers(size: int, extents: list[tuple[int, int]]) -> list[int]:
    """The chunks of a disk of `size` bytes that can hold data (from its (offset, length)
    extents), with the first and the last, which an archive always carries."""
    last = chunk_count(size) - 1
    numbers = {0, last}
    for offset, length in extents:
        if length > 0:
            numbers.update(range(offset // CHUNK, min(last, (offset + length - 1) // CHUNK) + 1))
    return sorted(numbers)


def chunk_pieces(ref_id: str, number: int, data, last: int, kind: str = codecs.EXPORT_CHECKSUM) -> list:
    """The entries of chunk `number` (data, then its checksum) as pieces to send in order
    (the data not copied), or [] for an all-zero chunk neither the first nor the `last`."""
    if 0 < number < last and is_zero(data):
        return []
    name = f"{ref_id}/{number:08d}"
    checksum = codecs.checksum(kind, data).encode("ascii")
    return entry_pieces(name, data) + entry_pieces(f"{name}.{kind}", checksum)


def chunk_entries(ref_id: str, number: int, data, last: int, kind: str = codecs.EXPORT_CHECKSUM) -> bytes:
    """chunk_pieces in one piece."""
    return b"".join(chunk_pieces(ref_id, number, data, last, kind))


# --------------------------------------------------------------------------- reading
@dataclass
class _Disk:
    first_length: int | None = None
    last_number: int = -1
    end: int = 0  # the disk offset after the last chunk read


class XvaReader:
    """Reads an (already decompressed) XVA from a blocking file-like: `ova_xml()` first,
    then `chunks()` yields (disk id, offset, data) once each chunk's checksum matched
    (or `force`), then `check_complete(sizes)`. Failures are XvaError."""

    def __init__(self, fileobj, force: bool = False):
        self.force = force
        self.failed_checksums = 0
        self._disks: dict[str, _Disk] = {}
        self._tar = _Members(fileobj)

    def _next(self):
        with _reading():
            return self._tar.next()

    def _data(self, member, limit: int) -> bytes:
        if member.size > limit:
            raise XvaError("IMPORT_ERROR", f"{member.name} holds {member.size} bytes, more than "
                                           f"the {limit} it may")
        with _reading():
            return self._tar.data(member)

    def ova_xml(self) -> bytes:
        member = self._next()
        if member is None:
            raise XvaError("IMPORT_ERROR_PREMATURE_EOF")
        if member.name != OVA_XML:
            raise XvaError("IMPORT_ERROR_UNEXPECTED_FILE", OVA_XML, member.name)
        return self._data(member, MAX_OVA_XML)

    def chunks(self) -> Iterator[tuple[str, int, bytes]]:
        held = None  # (name, disk id, number, data) waiting for its checksum
        while True:
            member = self._next()
            if member is None:
                break
            m = _NAME.match(member.name)
            if m is None or not member.isfile():
                continue  # xapi ignores what it does not know; so do we
            ref_id, number, kind = m.group(1), int(m.group(2)), m.group(3)
            if kind is None:
                held = (member.name, ref_id, number, self._data(member, CHUNK))
                continue
            if held is None or held[0] != member.name.rsplit(".", 1)[0]:
                raise XvaError("IMPORT_ERROR", f"{member.name} follows no chunk of its name")
            text = self._data(member, 64).decode("ascii", "replace").strip()
            _, ref_id, number, data = held
            held = None
            if text.lower() != codecs.checksum(kind, data).lower():
                self.failed_checksums += 1
                if not self.force:
                    raise XvaError("IMPORT_ERROR_SOME_CHECKSUMS_FAILED")
            yield (ref_id, self._place(ref_id, number, len(data)), data)
        if held is not None:
            raise XvaError("IMPORT_ERROR_PREMATURE_EOF")

    def _place(self, ref_id: str, number: int, length: int) -> int:
        disk = self._disks.setdefault(ref_id, _Disk())
        if number <= disk.last_number:
            raise XvaError("IMPORT_ERROR", f"{ref_id}: chunk {number} after chunk {disk.last_number}")
        if disk.first_length is None:
            disk.first_length = length if number == 0 else CHUNK
        offset = disk.end + (number - disk.last_number - 1) * disk.first_length
        disk.last_number, disk.end = number, offset + length
        return offset

    def check_complete(self, sizes: dict[str, int]) -> None:
        """Every disk of `sizes` (id -> virtual size) arrived up to its last byte."""
        for ref_id, size in sorted(sizes.items()):
            disk = self._disks.get(ref_id)
            if disk is None or disk.end < size:
                raise XvaError("IMPORT_ERROR_PREMATURE_EOF")
            if disk.end > size:
                raise XvaError("IMPORT_ERROR", f"{ref_id} holds {disk.end} bytes, more than its "
                                               f"virtual size {size}")


class _Members:
    """The members of a tar stream, front to back, from a blocking file-like whose reads
    may come short: headers parsed by tarfile, each member's data read in one piece (the
    stream mode of tarfile.open copies its whole buffer on every read, which cost more than
    the rest of an import). Member data not asked for is skipped."""

    def __init__(self, f):
        self.f = f
        self._skip = 0  # bytes of the current member (and its padding) not read yet
        self._started = False

    def _exact(self, n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            piece = self.f.read(n - got)
            if not piece:
                raise XvaError("IMPORT_ERROR_PREMATURE_EOF")
            parts.append(piece)
            got += len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def next(self):
        """The next member's TarInfo, or None at the end of the archive."""
        while self._skip:
            self._skip -= len(self._exact(min(self._skip, CHUNK)))
        block = self.f.read(BLOCK)
        if not block:
            if not self._started:
                raise XvaError("IMPORT_ERROR_PREMATURE_EOF")
            return None  # no end blocks: the archive ends with its last member
        self._started = True
        if len(block) < BLOCK:
            block += self._exact(BLOCK - len(block))
        if block == bytes(BLOCK):
            return None
        info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        self._skip = info.size + (-info.size % BLOCK)
        if info.type == tarfile.GNUTYPE_LONGNAME:  # a long name, then its member
            if info.size > LONG_NAME_MAX:
                raise XvaError("IMPORT_ERROR", f"a tar long name of {info.size} bytes, more than "
                                               f"the {LONG_NAME_MAX} it may")
            name = self.data(info).rstrip(b"\0").decode("utf-8", "surrogateescape")
            info = self.next()
            if info is not None:
                info.name = name
        return info

    def data(self, info) -> bytes:
        data = self._exact(info.size) if info.size else b""
        pad = -info.size % BLOCK
        if pad:
            self._exact(pad)
        self._skip = 0
        return data


@contextmanager
def _reading():
    """tarfile's and the decompressors' failures as XvaError."""
    try:
        with codecs.translated():
            yield
    except tarfile.TarError as exc:
        text = str(exc)
        if "unexpected end" in text or "empty file" in text or "truncated" in text:
            raise XvaError("IMPORT_ERROR_PREMATURE_EOF") from None
        raise XvaError("IMPORT_ERROR", f"not a tar archive: {text}") from None
