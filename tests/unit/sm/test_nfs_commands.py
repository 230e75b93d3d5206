"""The nfs driver's mount/umount commands and error translation, through RecordingRunner.

No NFS server is needed: the recorder answers findmnt/mount/umount, and the
"export" is a local directory standing where the mount would be. VHD behaviour
is VhdDriver's, tested through the file driver in tests/contract/sm.
"""

import os

import pytest

from sm.drivers.nfssr import NfsDriver
from sm.errors import ConfigInvalid, ConfigMissing, Timeout, ToolFailed
from sm.runner import RecordingRunner

SR = "6c1b7f5e-2d7e-4b0a-9f7e-6f1d2c3b4a50"
NOT_MOUNTED = dict(rc=1)
OPTS = "soft,timeo=100,retrans=3,proto=tcp"


@pytest.fixture
def state(tmp_path):
    return str(tmp_path)


def driver(state, runner, **config):
    config = {"server": "filer.example", "serverpath": "/export/xen", **config}
    return NfsDriver(SR, config, runner, state)


def mountpoint(state):
    return os.path.join(state, "sr-mount", SR)


def unmounted():
    return RecordingRunner().when(["findmnt"], **NOT_MOUNTED)


def test_attach_mounts_server_path_with_soft_tcp_options(state):
    runner = unmounted()
    os.makedirs(os.path.join(mountpoint(state), SR))  # what the export holds
    driver(state, runner).attach()
    assert runner.calls == [
        ["findmnt", "--noheadings", "--mountpoint", mountpoint(state)],
        ["mount", "-t", "nfs", "-o", f"{OPTS},vers=3", "--", "filer.example:/export/xen",
         mountpoint(state)],
    ]


@pytest.mark.parametrize("version, fstype, vers", [
    ("3", "nfs", "3"), ("4", "nfs4", "4"), ("4.1", "nfs4", "4.1"), ("4.2", "nfs4", "4.2"),
])
def test_nfs_versions_choose_type_and_vers(state, version, fstype, vers):
    runner = unmounted()
    os.makedirs(os.path.join(mountpoint(state), SR))
    driver(state, runner, nfsversion=version).attach()
    assert runner.commands("mount") == [
        ["mount", "-t", fstype, "-o", f"{OPTS},vers={vers}", "--", "filer.example:/export/xen",
         mountpoint(state)]]


def test_extra_options_are_appended_and_ipv6_servers_bracketed(state):
    runner = unmounted()
    os.makedirs(os.path.join(mountpoint(state), SR))
    driver(state, runner, server="fd00::5", options="nconnect=4,noatime").attach()
    assert runner.commands("mount") == [
        ["mount", "-t", "nfs", "-o", f"{OPTS},vers=3,nconnect=4,noatime", "--",
         "[fd00::5]:/export/xen", mountpoint(state)]]


def test_attach_when_already_mounted_runs_no_mount(state):
    runner = RecordingRunner()  # findmnt succeeds: mounted
    os.makedirs(os.path.join(mountpoint(state), SR))
    driver(state, runner).attach()
    assert runner.commands("mount") == []


def test_detach_is_a_clean_umount(state):
    runner = RecordingRunner()
    os.makedirs(mountpoint(state))
    driver(state, runner).detach()
    assert runner.calls == [
        ["findmnt", "--noheadings", "--mountpoint", mountpoint(state)],
        ["umount", mountpoint(state)],
    ]
    assert not os.path.exists(mountpoint(state))  # the empty mount point goes too


def test_detach_when_not_mounted_does_nothing(state):
    runner = unmounted()
    driver(state, runner).detach()
    assert runner.commands("umount") == []


def test_busy_umount_is_nfs_unmount_error_without_a_lazy_retry(state):
    runner = RecordingRunner().when(["umount"], rc=32, stderr="umount: target is busy.\n")
    with pytest.raises(ToolFailed) as info:
        driver(state, runner).detach()
    assert info.value.code == "SR_BACKEND_FAILURE_74"
    assert info.value.params[1] == ("NFS unmount error [opterr=umount exited 32: "
                                    "umount: target is busy.]")
    assert runner.commands("umount") == [["umount", mountpoint(state)]]


@pytest.mark.parametrize("stderr, number", [
    ("mount.nfs: access denied by server while mounting filer.example:/export/xen\n", 73),
    ("mount.nfs: mounting filer.example:/export/xen failed, reason given by server: "
     "No such file or directory\n", 73),
    ("mount.nfs: Connection refused\n", 108),
    ("mount.nfs: Failed to resolve server filer.example: Name or service not known\n", 108),
    ("mount.nfs: requested NFS version or transport protocol is not supported\n", 72),
])
def test_mount_failures_are_translated(state, stderr, number):
    runner = unmounted().when(["mount"], rc=32, stderr=stderr)
    with pytest.raises(ToolFailed) as info:
        driver(state, runner).attach()
    assert info.value.code == f"SR_BACKEND_FAILURE_{number}"
    assert info.value.params[2] == stderr
    assert info.value.rc == 32


def test_mount_timeout_is_an_nfs_mount_error(state):
    runner = unmounted().when(["mount"], timeout=True)
    with pytest.raises(Timeout) as info:
        driver(state, runner).attach()
    assert info.value.code == "SR_BACKEND_FAILURE_73"


def test_missing_server_and_serverpath_are_the_declared_errors(state):
    runner = RecordingRunner()
    with pytest.raises(ConfigMissing) as info:
        NfsDriver(SR, {"serverpath": "/x"}, runner, state).attach()
    assert info.value.code == "SR_BACKEND_FAILURE_102"
    assert info.value.params[1] == "The request is missing the server parameter"
    with pytest.raises(ConfigMissing) as info:
        NfsDriver(SR, {"server": "filer"}, runner, state).attach()
    assert info.value.code == "SR_BACKEND_FAILURE_101"
    assert info.value.params[1] == "The request is missing the serverpath parameter"
    assert runner.calls == []


def test_bad_serverpath_and_version_are_rejected_before_any_command(state):
    runner = RecordingRunner()
    with pytest.raises(ConfigInvalid) as info:
        driver(state, runner, serverpath="export").attach()
    assert info.value.code == "SR_BACKEND_FAILURE_103"
    with pytest.raises(ConfigInvalid) as info:
        driver(state, runner, nfsversion="2").attach()
    assert info.value.code == "SR_BACKEND_FAILURE_72"
    with pytest.raises(ConfigInvalid):
        driver(state, runner, options="ro, sync").attach()
    assert runner.calls == []


def test_create_mounts_makes_the_sr_directory_and_unmounts(state):
    runner = unmounted()
    driver(state, runner).create(0)
    assert [c[0] for c in runner.calls] == ["findmnt", "mount", "umount"]
    assert os.path.isdir(os.path.join(mountpoint(state), SR))


def test_destroy_removes_the_sr_directory_between_mount_and_umount(state):
    runner = unmounted()
    os.makedirs(os.path.join(mountpoint(state), SR))
    driver(state, runner).destroy()
    assert [c[0] for c in runner.calls] == ["findmnt", "mount", "umount"]
    assert not os.path.exists(os.path.join(mountpoint(state), SR))


def test_volumes_live_in_the_sr_directory_under_the_mount(state):
    runner = RecordingRunner()  # mounted
    os.makedirs(os.path.join(mountpoint(state), SR))
    nfs = driver(state, runner)
    vol = nfs.vol_create("0a6c3a9e-1a2b-4c3d-8e4f-5a6b7c8d9e0f", 4 << 20)
    assert os.path.isfile(os.path.join(mountpoint(state), SR, vol.uuid + ".vhd"))
    assert [v.uuid for v in nfs.scan()] == [vol.uuid]


def test_probe_lists_exports_without_serverpath(state):
    runner = RecordingRunner().when(["showmount"], stdout="/export/xen *\n/srv/iso 10.0.0.0/8\n")
    found = NfsDriver(SR, {"server": "filer.example"}, runner, state).probe()
    assert runner.calls == [["showmount", "--no-headers", "--exports", "filer.example"]]
    assert found == [{"path": "/export/xen"}, {"path": "/srv/iso"}]


def test_probe_with_serverpath_lists_sr_directories_on_a_temporary_mount(state):
    runner = RecordingRunner()
    assert driver(state, runner).probe() == []
    mount, umount = runner.calls
    assert mount[:7] == ["mount", "-t", "nfs", "-o", f"{OPTS},vers=3", "--",
                         "filer.example:/export/xen"]
    assert mount[7].startswith(os.path.join(state, "probe")) and umount == ["umount", mount[7]]
