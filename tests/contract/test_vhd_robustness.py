"""sm.vhd on damaged images and misuse: corrupt checksums, truncated files, random
corruption, wrong calls and a full disk raise VhdError (or the OS error) and nothing else,
and never leave an image that no longer opens."""

import os
import random
import struct
import subprocess

import pytest

from sm import vhd
from sm.vhd import format as fmt
from sm.vhd.create import BAT_OFFSET

MiB = 1 << 20

def populated(tmp_path, name="e.vhd"):
    path = tmp_path / name
    vhd.create_dynamic(path, 6 * MiB, reserve_size=6 * MiB)   # small file: no 4 MiB BAT room
    with vhd.open(path, writable=True) as img:
        img.write(0, b"\x11" * (5 * MiB))
    return path


def open_and_read_all(path):
    with vhd.open(path) as img:
        for off in range(0, img.virtual_size, MiB):
            img.read(off, MiB)


def test_corrupt_checksums_raise(tmp_path):
    path = populated(tmp_path)
    size = path.stat().st_size
    with open(path, "r+b") as f:                   # one bit in the reserved part of the footer
        f.seek(size - 100)
        byte = f.read(1)
        f.seek(size - 100)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(vhd.ChecksumError):
        vhd.open(path)
    path = populated(tmp_path, "h.vhd")
    with open(path, "r+b") as f:                   # the header's block size
        f.seek(512 + 32)
        f.write(struct.pack(">I", 4 * MiB))
    with pytest.raises(vhd.ChecksumError):
        vhd.open(path)
    path = populated(tmp_path, "c.vhd")
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size - 512)
        f.write(b"notavhd!")
    with pytest.raises(vhd.BadCookieError):
        vhd.open(path)


def test_truncated_files_raise_vhd_errors_only(tmp_path):
    path = populated(tmp_path)
    full = path.read_bytes()
    cuts = [0, 1, 511, 512, 1000, 1536, BAT_OFFSET, BAT_OFFSET + 2048, len(full) // 2,
            len(full) - 513, len(full) - 512, len(full) - 1]
    for cut in cuts:
        t = tmp_path / f"t{cut}.vhd"
        t.write_bytes(full[:cut])
        with pytest.raises(vhd.VhdError):
            open_and_read_all(t)
    # truncated data but a footer put back at the end: the block past the end is caught
    t = tmp_path / "refooted.vhd"
    t.write_bytes(full[:len(full) // 2] + full[-512:])
    with pytest.raises(vhd.CorruptError):
        open_and_read_all(t)


@pytest.mark.parametrize("kind", ["dynamic", "differencing"])
def test_random_corruption_raises_nothing_but_vhd_errors(tmp_path, kind):
    """Metadata bytes overwritten at random (checksums fixed up so the damage gets past
    them): opening and reading either works or raises VhdError."""
    rng = random.Random(99)
    victim = populated(tmp_path)
    if kind == "differencing":
        parent = victim
        victim = tmp_path / "child.vhd"
        vhd.make_child(parent, victim, reserve_size=6 * MiB)
        with vhd.open(victim, writable=True) as img:
            img.write(MiB + 512, b"\x22" * (2 * MiB))
    good = victim.read_bytes()
    for trial in range(300):
        raw = bytearray(good)
        where = rng.choice([(0, 512), (512, 1536), (1536, 1536 + 64), (BAT_OFFSET, BAT_OFFSET + 64),
                            (len(raw) - 512, len(raw))])
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(*where)] = rng.choice([0, 0xFF, rng.randrange(256)])
        if rng.random() < 0.8:                     # make the footers and header self-consistent
            for at, n, c in ((0, 512, 64), (len(raw) - 512, 512, 64), (512, 1024, 36)):
                block = raw[at:at + n]
                struct.pack_into(">I", block, c, fmt.checksum(block, c))
                raw[at:at + n] = block
        victim.write_bytes(bytes(raw))
        try:
            open_and_read_all(victim)
            vhd.info(victim)
        except vhd.VhdError:
            pass


def test_api_misuse_errors(tmp_path):
    path = populated(tmp_path)
    with vhd.open(path) as img:
        with pytest.raises(vhd.ReadOnlyError):
            img.write(0, b"x")
        with pytest.raises(vhd.OutOfRangeError):
            img.read(6 * MiB - 1, 2)
        with pytest.raises(vhd.OutOfRangeError):
            img.read(-1, 1)
        assert img.parent_path is None
        with pytest.raises(vhd.NotDifferencingError):
            img.parent()
    with vhd.open(path, writable=True) as img:
        with pytest.raises(vhd.OutOfRangeError):
            img.write(6 * MiB, b"x")
    with pytest.raises(vhd.OutOfRangeError):
        vhd.create_dynamic(tmp_path / "big.vhd", vhd.MAX_VIRTUAL_SIZE + 512)
    with pytest.raises(vhd.OutOfRangeError):
        vhd.create_dynamic(tmp_path / "odd.vhd", MiB, block_size=3000)
    with pytest.raises(FileExistsError):
        vhd.create_dynamic(path, MiB)
    vhd.make_child(path, tmp_path / "orphan.vhd")
    os.unlink(path)
    with vhd.open(tmp_path / "orphan.vhd") as img:
        with pytest.raises(vhd.ParentMissingError):
            img.read(0, 1)
    assert issubclass(vhd.ParentMissingError, vhd.VhdError)


def test_full_disk_keeps_the_image_openable(tmp_path):
    """A write that runs out of space leaves a VHD that opens, with every earlier block intact."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        path = str(mnt / "d.vhd")
        vhd.create_dynamic(path, 64 << 20, reserve_size=64 << 20)
        written = []
        block = 2 << 20
        with vhd.open(path, writable=True) as img:
            with pytest.raises(OSError):
                for i in range(32):
                    data = bytes([i + 1]) * block
                    img.write(i * block, data)
                    written.append(i)
        assert 0 < len(written) < 32
        with vhd.open(path) as img:
            for i in written:
                assert img.read(i * block, block) == bytes([i + 1]) * block
            assert img.read(len(written) * block, block) == bytes(block)
    finally:
        subprocess.run(["umount", str(mnt)])
