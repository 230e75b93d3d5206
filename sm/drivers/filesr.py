"""Local VHD SRs: ``file`` (a directory) and ``ext`` (a block device formatted ext4).

Both keep thin VHD files and share their volume logic with nfs through
``VhdDriver``. ``file`` keeps its files in ``<location>/<sr uuid>/``. ``ext``
formats its device with mkfs.ext4 (the filesystem uuid is the SR uuid, so probe
can find it) and mounts it on ``<state_dir>/sr-mount/<sr uuid>``, keeping its
files at the root of that filesystem as xapi's EXT SR does.
"""

import os
import stat

from sm.driver import ConfigKey, DriverInfo
from sm.drivers import mounts
from sm.drivers.vhddir import UUID_RE, VHD_CAPABILITIES, VHD_EXCLUSIVE, VhdDriver
from sm.errors import BackendFailure, ConfigInvalid

VENDOR = "hostagent"
COPYRIGHT = "(C) hostagent contributors"
MKFS_TIMEOUT = 600


class FileDriver(VhdDriver):
    info = DriverInfo(
        type="file", name="Local Path VHD",
        description="SR plugin which stores disks as VHD files in a local directory",
        vendor=VENDOR, copyright=COPYRIGHT, version="1.0", required_api_version="1.0",
        capabilities=VHD_CAPABILITIES,
        configuration=(
            ConfigKey("location", "local directory path; the SR lives in <location>/<SR uuid>",
                      True, "ConfigLocationMissing"),
        ),
        exclusive=VHD_EXCLUSIVE,
    )

    def location(self) -> str:
        location = self.config("location")
        if not os.path.isabs(location):
            raise ConfigInvalid("location", location, "must be an absolute path")
        return location

    def sr_path(self) -> str:
        return os.path.join(self.location(), self.sr_uuid)

    def create(self, physical_size: int) -> None:
        self.validate_config()
        path = self.sr_path()
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise BackendFailure("FileSRCreate", f"{path}: {exc.strerror}") from exc
        if self.volumes.uuids():
            raise BackendFailure("SRExists", f"{path} already holds VHD files")

    def destroy(self) -> None:
        self.validate_config()
        if os.path.isdir(self.sr_path()):
            self.volumes.remove_empty()

    def probe(self) -> list[dict]:
        """SR directories under location: [{"uuid", "path"}]."""
        self.validate_config()
        location = self.location()
        try:
            names = sorted(os.listdir(location))
        except OSError as exc:
            raise BackendFailure("SRUnavailable", f"{location}: {exc.strerror}") from exc
        return [{"uuid": n, "path": os.path.join(location, n)} for n in names
                if UUID_RE.match(n) and os.path.isdir(os.path.join(location, n))]


class ExtDriver(VhdDriver):
    info = DriverInfo(
        type="ext", name="Local EXT4 VHD",
        description="SR plugin which formats a local block device ext4 and stores disks "
                    "on it as VHD files",
        vendor=VENDOR, copyright=COPYRIGHT, version="1.0", required_api_version="1.0",
        capabilities=VHD_CAPABILITIES,
        configuration=(
            ConfigKey("device", "local block device path (e.g. /dev/sdb); create erases it",
                      True, "ConfigDeviceMissing"),
        ),
        exclusive=VHD_EXCLUSIVE,
    )

    def device(self) -> str:
        device = self.config("device")
        try:
            is_block = stat.S_ISBLK(os.stat(device).st_mode)
        except OSError as exc:
            raise ConfigInvalid("device", device, exc.strerror, "ConfigDeviceInvalid") from exc
        if not is_block:
            raise ConfigInvalid("device", device, "not a block device", "ConfigDeviceInvalid")
        return device

    def mountpoint(self) -> str:
        return os.path.join(self.state_dir, "sr-mount", self.sr_uuid)

    def sr_path(self) -> str:
        return self.mountpoint()

    def _is_attached(self) -> bool:
        return mounts.is_mounted(self.runner, self.mountpoint())

    def _attach_storage(self) -> None:
        mounts.mount(self.runner, self.device(), self.mountpoint(), "ext4", None, "LVMMount")

    def _detach_storage(self) -> None:
        mounts.umount(self.runner, self.mountpoint(), "LVMUnMount")

    def create(self, physical_size: int) -> None:
        self.validate_config()
        device = self.device()
        # -F: the device is whole-disk storage given to us; -U: find it again by SR uuid.
        self.runner.run(["mkfs.ext4", "-F", "-q", "-U", self.sr_uuid, device],
                        timeout=MKFS_TIMEOUT, error="LVMFilesystem")

    def destroy(self) -> None:
        self.validate_config()
        device = self.device()
        with self.temporarily_attached():
            self.volumes.require_empty()
        if self._is_attached():
            self._detach_storage()
        self.runner.run(["wipefs", "--all", device], error="FileSRDelete")

    def probe(self) -> list[dict]:
        """The SR on device, if it holds one of our filesystems: [{"uuid", "type"}]."""
        self.validate_config()
        result = self.runner.run(["blkid", "--probe", "--output", "export", self.device()],
                                 ok_codes=(0, 2))
        fields = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        if fields.get("TYPE") != "ext4" or not UUID_RE.match(fields.get("UUID", "")):
            return []
        return [{"uuid": fields["UUID"], "type": "ext4"}]
