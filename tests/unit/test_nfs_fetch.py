"""The NFS export copier's file handling, with a local directory standing in for the mounted
export (the NFS mount itself cannot run on this kernel)."""

import os
import stat

import pytest

from hostagent.backends.fetch import FetchError, Progress
from hostagent.backends.nfs_fetch import MOUNT_OPTIONS, NfsExport
from sm.runner import RecordingRunner


def _export(tmp_path):
    top = tmp_path / "export"
    (top / "images" / "xen").mkdir(parents=True)
    export = NfsExport("server", "/export", str(tmp_path / "work"))
    export.mountpoint = str(top)  # stands in for the mounted export
    return export, top


def test_copies_a_plain_file_root_only(tmp_path):
    export, top = _export(tmp_path)
    (top / "images" / "xen" / "vmlinuz").write_bytes(b"kernel")
    dest = tmp_path / "vmlinuz"
    assert export.copy("images/xen/vmlinuz", str(dest), Progress()) == 6
    assert dest.read_bytes() == b"kernel"
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600


def test_symlink_out_of_the_export_is_refused_and_nothing_copied(tmp_path):
    export, top = _export(tmp_path)
    secret = tmp_path / "shadow"
    secret.write_text("root:secret")
    os.symlink(secret, top / "images" / "xen" / "initrd.img")
    dest = tmp_path / "initrd.img"
    with pytest.raises(FetchError, match="symbolic link"):
        export.copy("images/xen/initrd.img", str(dest), Progress())
    assert not dest.exists() and not (tmp_path / "initrd.img.part").exists()


def test_symlinked_directory_is_refused(tmp_path):
    export, top = _export(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "vmlinuz").write_text("x")
    os.symlink(outside, top / "images" / "pxe")
    with pytest.raises(FetchError, match="symbolic link"):
        export.copy("images/pxe/vmlinuz", str(tmp_path / "k"), Progress())
    assert not (tmp_path / "k").exists()


def test_dotdot_and_non_files_are_refused(tmp_path):
    export, _ = _export(tmp_path)
    (tmp_path / "k").write_text("x")
    with pytest.raises(FetchError, match="not a plain path"):
        export.copy("images/../../k", str(tmp_path / "out"), Progress())
    with pytest.raises(FetchError, match="not a regular file"):
        export.copy("images/xen", str(tmp_path / "out"), Progress())


def test_missing_file_is_reported_missing(tmp_path):
    export, _ = _export(tmp_path)
    with pytest.raises(FetchError) as info:
        export.copy("images/xen/nothing", str(tmp_path / "out"), Progress())
    assert info.value.missing


def test_mount_goes_through_sms_helper_read_only_noexec_with_double_dash(tmp_path):
    runner = RecordingRunner()
    with NfsExport("filer.example", "/srv/debian", str(tmp_path / "work"), runner) as export:
        mountpoint = export.mountpoint
    mount, umount = runner.calls
    assert mount == ["mount", "-t", "nfs", "-o", MOUNT_OPTIONS, "--", "filer.example:/srv/debian", mountpoint]
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(MOUNT_OPTIONS.split(","))
    assert umount == ["umount", mountpoint]
    assert not os.path.exists(mountpoint)


def test_mount_failure_is_a_fetch_error_and_leaves_no_mountpoint(tmp_path):
    runner = RecordingRunner().when(["mount"], rc=32, stderr="mount.nfs: access denied by server\n")
    with pytest.raises(FetchError, match="mounting filer:/x: mount.nfs: access denied"), \
            NfsExport("filer", "/x", str(tmp_path / "work"), runner):
        pass
    assert os.listdir(tmp_path / "work") == []


def test_mount_timeout_and_missing_tool_are_fetch_errors(tmp_path):
    runner = RecordingRunner().when(["mount"], timeout=True)
    with pytest.raises(FetchError, match="no answer"), NfsExport("filer", "/x", str(tmp_path / "w"), runner):
        pass
    runner = RecordingRunner().when(["mount"], rc=127, stderr="mount: command not found")
    with pytest.raises(FetchError, match="no mount command"), NfsExport("filer", "/x", str(tmp_path / "w"), runner):
        pass
