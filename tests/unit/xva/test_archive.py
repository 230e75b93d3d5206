"""hostagent.xva.archive and codecs: chunks, checksums, offsets, truncation, compression."""

import gzip
import hashlib
import io
import tarfile

import pytest

from hostagent.xva import XvaError, archive, codecs, ovaxml

CHUNK = archive.CHUNK
OVA = ovaxml.write(ovaxml.version("h", "d", "v", "b", "0", (1, 1)), [])


def build(disks, kind="checksum", end=True) -> bytes:
    """An archive of ova.xml then, per disk id, its (number, data) chunks."""
    out = archive.entry("ova.xml", OVA)
    for ref_id, chunks in disks:
        for number, data in chunks:
            name = f"{ref_id}/{number:08d}"
            out += archive.entry(name, data) + archive.entry(f"{name}.{kind}",
                                                              codecs.checksum(kind, data).encode())
    return out + (archive.END if end else b"")


def read_all(raw: bytes, sizes, force=False):
    r = archive.XvaReader(io.BytesIO(raw), force=force)
    assert r.ova_xml() == OVA
    disks = {k: bytearray(v) for k, v in sizes.items()}
    for ref_id, offset, data in r.chunks():
        disks[ref_id][offset:offset + len(data)] = data
    r.check_complete(sizes)
    return {k: bytes(v) for k, v in disks.items()}, r


def test_chunk_numbers_keep_first_and_last():
    size = 10 * CHUNK + 512
    assert archive.chunk_numbers(size, []) == [0, 10]
    assert archive.chunk_numbers(size, [(3 * CHUNK + 5, CHUNK)]) == [0, 3, 4, 10]
    assert archive.chunk_numbers(CHUNK, [(0, CHUNK)]) == [0]


def test_zero_chunks_are_left_out_but_not_the_first_and_last():
    zero = bytes(CHUNK)
    assert archive.chunk_entries("Ref:3", 1, zero, last=4) == b""
    assert archive.chunk_entries("Ref:3", 0, zero, last=4) != b""
    entries = archive.chunk_entries("Ref:3", 4, zero[:512], last=4)
    with tarfile.open(fileobj=io.BytesIO(entries + archive.END)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["Ref:3/00000004", "Ref:3/00000004.xxhash"]
    assert members[0].size == 512


def test_sha1_and_xxhash_entries():
    data = b"abc" * 1000
    assert codecs.checksum("checksum", data) == hashlib.sha1(data).hexdigest()
    text = codecs.checksum("xxhash", data)
    assert len(text) == 16 and text == text.upper()


@pytest.mark.parametrize("kind", ["checksum", "xxhash"])
def test_gaps_accumulate_from_the_first_chunk_length(kind):
    a, b = b"\1" * CHUNK, b"\2" * 512
    size = 5 * CHUNK + 512
    disks, _ = read_all(build([("Ref:2", [(0, a), (3, a), (5, b)])], kind), {"Ref:2": size})
    expected = a + bytes(2 * CHUNK) + a + bytes(CHUNK) + b
    assert disks["Ref:2"] == expected


def test_an_empty_keepalive_chunk_moves_nothing():
    a = b"\3" * CHUNK
    disks, _ = read_all(build([("Ref:1", [(0, a), (1, b""), (2, a)])]), {"Ref:1": 2 * CHUNK})
    assert disks["Ref:1"] == a + a


def test_a_bad_checksum_fails_unless_forced():
    raw = bytearray(build([("Ref:1", [(0, b"\4" * CHUNK)])]))
    raw[raw.index(b"\4") + 10] = 5
    with pytest.raises(XvaError) as e:
        read_all(bytes(raw), {"Ref:1": CHUNK})
    assert e.value.code == "IMPORT_ERROR_SOME_CHECKSUMS_FAILED"
    _, reader = read_all(bytes(raw), {"Ref:1": CHUNK}, force=True)
    assert reader.failed_checksums == 1


def test_every_truncation_is_premature_eof():
    raw = build([("Ref:1", [(0, b"\6" * CHUNK), (1, b"\7" * 512)])])
    for cut in (0, 100, 512, 700, len(raw) // 2, len(raw) - 1024 - 513, len(raw) - 1024 - 1024):
        with pytest.raises(XvaError) as e:
            read_all(raw[:cut], {"Ref:1": CHUNK + 512})
        assert e.value.code == "IMPORT_ERROR_PREMATURE_EOF", cut


def test_the_first_entry_must_be_ova_xml():
    raw = archive.entry("Ref:0/00000000", b"x" * 512) + archive.END
    with pytest.raises(XvaError) as e:
        archive.XvaReader(io.BytesIO(raw)).ova_xml()
    assert (e.value.code, e.value.params) == ("IMPORT_ERROR_UNEXPECTED_FILE", ("ova.xml", "Ref:0/00000000"))


def test_chunk_numbers_must_increase():
    a = b"\1" * CHUNK
    with pytest.raises(XvaError) as e:
        read_all(build([("Ref:1", [(1, a), (0, a)])]), {"Ref:1": 2 * CHUNK})
    assert e.value.code == "IMPORT_ERROR"


def test_compression_is_told_by_magic_and_read_back():
    raw = build([("Ref:1", [(0, b"\1" * CHUNK)])])
    for kind in codecs.COMPRESSIONS:
        z = codecs.compressor(kind)
        packed = z.compress(raw) + z.flush()
        assert codecs.detect(packed[:4]) == kind
        disks, _ = read_all_from(codecs.decompressing(kind, io.BytesIO(packed)), {"Ref:1": CHUNK})
        assert disks["Ref:1"] == b"\1" * CHUNK
        with pytest.raises(XvaError) as e:
            read_all_from(codecs.decompressing(kind, io.BytesIO(packed[:len(packed) // 2])), {"Ref:1": CHUNK})
        assert e.value.code == "IMPORT_ERROR_PREMATURE_EOF", kind
    assert codecs.detect(raw[:4]) is None
    z = codecs.compressor("gzip")
    assert gzip.decompress(z.compress(b"x") + z.flush()) == b"x"  # a plain gzip stream


def read_all_from(fileobj, sizes):
    r = archive.XvaReader(fileobj)
    r.ova_xml()
    disks = {k: bytearray(v) for k, v in sizes.items()}
    for ref_id, offset, data in r.chunks():
        disks[ref_id][offset:offset + len(data)] = data
    r.check_complete(sizes)
    return disks, r


def test_a_huge_gnu_long_name_is_refused_before_it_is_read():
    header = tarfile.TarInfo("././@LongLink")
    header.type, header.size = tarfile.GNUTYPE_LONGNAME, 8 << 30  # claims 8 GiB, holds 512 bytes
    raw = archive.entry("ova.xml", OVA) + header.tobuf(tarfile.GNU_FORMAT) + b"a" * 512 + archive.END
    r = archive.XvaReader(io.BytesIO(raw))
    r.ova_xml()
    with pytest.raises(XvaError) as e:
        list(r.chunks())
    assert e.value.code == "IMPORT_ERROR" and "long name" in e.value.params[0]


def test_a_gnu_long_name_within_the_cap_names_its_member():
    name = "Ref:1/00000000"
    info = tarfile.TarInfo(name + "/" * 200)  # over 100 bytes: tarfile writes a long-name header
    info.size = 3
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b"abc"))
    members = archive._Members(io.BytesIO(buf.getvalue()))
    assert members.next().name == name + "/" * 200
