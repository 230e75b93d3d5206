"""eliloader's adapters against real things: fetch.py over a real HTTP server, HTTPS with a
certificate the client trusts, and FTP (pyftpdlib); iso_files.py on images pycdlib writes;
guest_fs.py on ext2/ext4 file systems made by mke2fs -d, whole or in an MBR partition.
"""

import io
import os
import shutil
import ssl
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from hostagent.backends.fetch import FetchError, Progress, UrlTree, fetch
from hostagent.backends.guest_fs import GuestDisk, GuestFsError
from hostagent.backends.iso_files import IsoTree
from tests.functional.guest_install_media import RepositoryServer, iso_image
from tests.functional.tls_cert import make_self_signed

KERNEL = os.urandom(300_000)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "repo"
    (root / "images" / "xen").mkdir(parents=True)
    (root / "images" / "xen" / "vmlinuz").write_bytes(KERNEL)
    return root


def test_http_whole_missing_and_truncated(tree, tmp_path):
    with RepositoryServer(tree) as server:
        progress = Progress()
        with UrlTree(server.url) as source:
            assert source.copy("images/xen/vmlinuz", str(tmp_path / "k"), progress) == len(KERNEL)
        assert (tmp_path / "k").read_bytes() == KERNEL and progress.done == progress.total == len(KERNEL)
        with pytest.raises(FetchError) as missing:
            fetch(f"{server.url}/images/xen/nothing", str(tmp_path / "n"))
        assert missing.value.missing and "HTTP 404" in str(missing.value)
        server.lies.add("images/xen/vmlinuz")
        with pytest.raises(FetchError, match="truncated download") as short:
            fetch(f"{server.url}/images/xen/vmlinuz", str(tmp_path / "t"))
        assert not short.value.missing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k", "repo"]  # nothing partial left


def test_a_cancelled_download_stops(tree, tmp_path):
    with RepositoryServer(tree) as server:
        progress = Progress(cancel=True)
        with pytest.raises(FetchError, match="cancelled"):
            fetch(f"{server.url}/images/xen/vmlinuz", str(tmp_path / "k"), progress)
    assert not (tmp_path / "k").exists() and not (tmp_path / "k.part").exists()


def test_https_checks_the_certificate(tree, tmp_path, monkeypatch):
    cert, key = make_self_signed(str(tmp_path / "tls"))
    with RepositoryServer(tree) as server:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
        url = server.url.replace("http://", "https://") + "/images/xen/vmlinuz"
        with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED"):
            fetch(url, str(tmp_path / "k"))
        monkeypatch.setenv("SSL_CERT_FILE", cert)  # the host trusts the repository's CA
        assert fetch(url, str(tmp_path / "k")) == len(KERNEL)
    assert (tmp_path / "k").read_bytes() == KERNEL


def test_ftp(tree, tmp_path):
    pytest.importorskip("pyftpdlib", reason="pyftpdlib (the test extra) serves FTP here")
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(str(tree))
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer})
    server = FTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2}, daemon=True)
    thread.start()
    try:
        base = f"ftp://127.0.0.1:{server.address[1]}"
        with UrlTree(base) as source:
            assert source.copy("images/xen/vmlinuz", str(tmp_path / "k"), Progress()) == len(KERNEL)
        assert (tmp_path / "k").read_bytes() == KERNEL
        with pytest.raises(FetchError) as missing:
            fetch(f"{base}/images/xen/nothing", str(tmp_path / "n"))
        assert missing.value.missing, str(missing.value)
    finally:
        server.close_all()
        thread.join(5)


def _read_at(path: Path):
    data = path.read_bytes()
    return lambda offset, length: data[offset:offset + length], len(data)


def test_iso_names_rock_ridge_and_plain(tmp_path):
    image = iso_image({"boot/x86_64/vmlinuz-xen": KERNEL, "boot/x86_64/initrd-xen": b"i" * 5000},
                      tmp_path / "sles.iso")
    with open(image, "rb") as f, IsoTree(f, "sles.iso") as iso:
        assert iso.copy("boot/x86_64/vmlinuz-xen", str(tmp_path / "k"), Progress()) == len(KERNEL)
        with pytest.raises(FetchError) as missing:
            iso.copy("boot/x86_64/vmlinuz", str(tmp_path / "n"), Progress())
        assert missing.value.missing
    assert (tmp_path / "k").read_bytes() == KERNEL
    import pycdlib
    plain = pycdlib.PyCdlib()
    plain.new()  # ISO 9660 level 1 names only
    plain.add_directory("/IMAGES")
    plain.add_fp(io.BytesIO(KERNEL), len(KERNEL), "/IMAGES/VMLINUZ.;1")
    plain.write(str(tmp_path / "plain.iso"))
    plain.close()
    with open(tmp_path / "plain.iso", "rb") as f, IsoTree(f, "plain.iso") as iso:
        assert iso.copy("images/vmlinuz.", str(tmp_path / "p"), Progress()) == len(KERNEL)


def _ext_image(tmp_path, fstype="ext4"):
    root = tmp_path / "root"
    (root / "boot" / "grub").mkdir(parents=True)
    (root / "boot" / "vmlinuz-6.1").write_bytes(KERNEL)
    os.symlink("vmlinuz-6.1", root / "boot" / "vmlinuz")  # relative link
    os.symlink("/boot/vmlinuz-6.1", root / "vmlinuz")  # absolute link
    (root / "boot" / "grub" / "grub.cfg").write_text("menuentry 'x' {\n linux /boot/vmlinuz\n}\n")
    image = tmp_path / f"fs.{fstype}"
    subprocess.run(["mke2fs", "-q", "-F", "-t", fstype, "-d", str(root), str(image), "16M"], check=True,
                   capture_output=True)
    return image


@pytest.mark.skipif(not shutil.which("mke2fs"), reason="needs mke2fs (e2fsprogs)")
def test_guest_file_systems_whole_and_partitioned(tmp_path):
    image = _ext_image(tmp_path)
    read_at, size = _read_at(image)
    from hostagent.backends.volume_file import VolumeFile
    disk = GuestDisk(VolumeFile(read_at, size), size, "whole")
    for path in ("/boot/vmlinuz-6.1", "/boot/vmlinuz", "/vmlinuz"):
        disk.copy(path, str(tmp_path / "k"))
        assert (tmp_path / "k").read_bytes() == KERNEL, path
    assert "linux /boot/vmlinuz" in disk.read_text("/boot/grub/grub.cfg")
    assert not disk.exists("/boot/initrd.img")

    # the same file system in the first partition of an MBR disk, 1 MiB in
    start = 2048
    fs = image.read_bytes()
    mbr = bytearray(512)
    mbr[446:462] = struct.pack("<B3sB3sII", 0x80, b"\0\0\0", 0x83, b"\0\0\0", start, len(fs) // 512)
    mbr[510:512] = b"\x55\xaa"
    partitioned = bytes(mbr) + bytes(start * 512 - 512) + fs
    disk = GuestDisk(VolumeFile(lambda o, n: partitioned[o:o + n], len(partitioned)), len(partitioned), "mbr")
    assert disk.filesystems[0][0] == "partition 1" and disk.exists("/boot/vmlinuz")

    blank = bytes(4 << 20)
    with pytest.raises(GuestFsError, match="no ext2/3/4 file system"):
        GuestDisk(VolumeFile(lambda o, n: blank[o:o + n], len(blank)), len(blank), "blank")


@pytest.mark.skipif(not shutil.which("mke2fs"), reason="needs mke2fs (e2fsprogs)")
def test_a_guest_boot_file_over_the_cap_is_refused_and_nothing_copied(tmp_path):
    from hostagent.backends.guest_fs import MAX_BOOT_FILE
    from hostagent.backends.volume_file import VolumeFile
    root = tmp_path / "root"
    (root / "boot").mkdir(parents=True)
    with open(root / "boot" / "vmlinuz", "wb") as f:  # sparse: costs the image next to nothing
        f.truncate(MAX_BOOT_FILE + (1 << 20))
    image = tmp_path / "fs.ext4"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", str(root), str(image), "16M"], check=True,
                   capture_output=True)
    read_at, size = _read_at(image)
    disk = GuestDisk(VolumeFile(read_at, size), size, "huge")
    with pytest.raises(GuestFsError, match="larger than the 256 MiB"):
        disk.copy("/boot/vmlinuz", str(tmp_path / "k"))
    assert not (tmp_path / "k").exists() and not (tmp_path / "k.part").exists()
