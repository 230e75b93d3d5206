"""The ``nfs`` SR: VHD files on an NFS export, shared by every host of a pool.

``server:serverpath`` is mounted on ``<state_dir>/sr-mount/<sr uuid>`` (soft,
TCP, with a bounded timeout, so a dead server turns into I/O errors rather
than hung threads) and the SR's files live in ``<mount>/<sr uuid>/``, so one
export can hold several SRs. Volume behaviour is VhdDriver's, the same code the
file driver runs. Detach is a clean umount with no lazy fallback: a busy mount
means something still has a disk open, and saying "detached" then would lie.
"""

import os
import uuid as uuidlib

from sm.driver import ConfigKey, DriverInfo
from sm.drivers import mounts
from sm.drivers.filesr import COPYRIGHT, VENDOR
from sm.drivers.vhddir import UUID_RE, VHD_CAPABILITIES, VHD_EXCLUSIVE, VhdDriver
from sm.errors import BackendFailure, ConfigInvalid, ConfigMissing, ToolFailed

# nfsversion -> (filesystem type, vers= option)
NFS_VERSIONS = {
    "3": ("nfs", "3"),
    "4": ("nfs4", "4"),
    "4.0": ("nfs4", "4.0"),
    "4.1": ("nfs4", "4.1"),
    "4.2": ("nfs4", "4.2"),
}
DEFAULT_VERSION = "3"
# timeo is in tenths of a second: 10 s per try, 3 retries, then EIO to the caller.
SOFT_OPTIONS = "soft,timeo=100,retrans=3,proto=tcp"
MOUNT_TIMEOUT = 90

# (fragment of mount.nfs's message, error-table entry), first match wins.
_MOUNT_ERRORS = (
    ("requested NFS version or transport protocol is not supported", "NFSVersion"),
    ("Protocol not supported", "NFSVersion"),
    ("Connection refused", "NFSTarget"),
    ("No route to host", "NFSTarget"),
    ("Connection timed out", "NFSTarget"),
    ("Failed to resolve server", "NFSTarget"),
    ("Name or service not known", "NFSTarget"),
    ("Network is unreachable", "NFSTarget"),
)


def mount_error(exc: ToolFailed) -> ToolFailed:
    """The error-table entry a failed NFS mount deserves, keeping the tool's output."""
    text = exc.stderr + exc.stdout
    name = next((entry for fragment, entry in _MOUNT_ERRORS if fragment in text), "NFSMount")
    return ToolFailed(exc.cmd, exc.rc, exc.stdout, exc.stderr, name)


class NfsDriver(VhdDriver):
    info = DriverInfo(
        type="nfs", name="NFS VHD",
        description="SR plugin which stores disks as VHD files on a remote NFS filesystem",
        vendor=VENDOR, copyright=COPYRIGHT, version="1.0", required_api_version="1.0",
        capabilities=VHD_CAPABILITIES,
        configuration=(
            ConfigKey("server", "hostname or IP address of the NFS server", True,
                      "ConfigServerMissing"),
            ConfigKey("serverpath", "path on the NFS server (absolute)", True,
                      "ConfigServerPathMissing"),
            ConfigKey("nfsversion", "NFS protocol version: 3 (default), 4, 4.0, 4.1 or 4.2"),
            ConfigKey("options", "extra mount options, comma-separated"),
        ),
        exclusive=VHD_EXCLUSIVE,
    )

    def validate_config(self) -> None:
        super().validate_config()
        self.serverpath()
        self.version()
        self.extra_options()

    def server(self) -> str:
        server = self.config("server")
        if server is None:
            raise ConfigMissing("server", "nfs", "ConfigServerMissing")
        # An IPv6 literal needs brackets in server:path.
        return f"[{server}]" if ":" in server and not server.startswith("[") else server

    def serverpath(self) -> str:
        path = self.config("serverpath", "")
        if not path.startswith("/") or any(c.isspace() for c in path):
            raise ConfigInvalid("serverpath", path, "must be an absolute path without spaces",
                                "ConfigServerPathBad")
        return path

    def version(self) -> str:
        version = self.config("nfsversion", DEFAULT_VERSION)
        if version not in NFS_VERSIONS:
            raise ConfigInvalid("nfsversion", version,
                                f"supported: {', '.join(NFS_VERSIONS)}", "NFSVersion")
        return version

    def extra_options(self) -> str | None:
        options = self.config("options")
        if options is not None and (any(c.isspace() for c in options) or options.startswith(",")):
            raise ConfigInvalid("options", options, "comma-separated, without spaces")
        return options

    def mount_argv_parts(self) -> tuple[str, str, str]:
        """(fstype, options, source) for mount."""
        fstype, vers = NFS_VERSIONS[self.version()]
        options = f"{SOFT_OPTIONS},vers={vers}"
        if self.extra_options():
            options += "," + self.extra_options()
        return fstype, options, f"{self.server()}:{self.serverpath()}"

    def mountpoint(self) -> str:
        return os.path.join(self.state_dir, "sr-mount", self.sr_uuid)

    def sr_path(self) -> str:
        return os.path.join(self.mountpoint(), self.sr_uuid)

    def _is_attached(self) -> bool:
        return mounts.is_mounted(self.runner, self.mountpoint())

    def _mount(self, target: str) -> None:
        fstype, options, source = self.mount_argv_parts()
        try:
            mounts.mount(self.runner, source, target, fstype, options, "NFSMount",
                         timeout=MOUNT_TIMEOUT)
        except ToolFailed as exc:
            raise mount_error(exc) from None

    def _attach_storage(self) -> None:
        self._mount(self.mountpoint())

    def _detach_storage(self) -> None:
        mounts.umount(self.runner, self.mountpoint(), "NFSUnMount", timeout=MOUNT_TIMEOUT)

    def create(self, physical_size: int) -> None:
        self.validate_config()
        with self.temporarily_attached():
            path = self.sr_path()
            if os.path.isdir(path) and self.volumes.uuids():
                raise BackendFailure("SRExists", f"{path} already holds VHD files")
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                raise BackendFailure("NFSCreate", f"{path}: {exc.strerror}") from exc

    def destroy(self) -> None:
        self.validate_config()
        with self.temporarily_attached():
            if os.path.isdir(self.sr_path()):
                self.volumes.remove_empty()

    def probe(self) -> list[dict]:
        """Without serverpath: the server's exports [{"path"}]; with it: the SRs
        below it [{"uuid"}]."""
        self.server()
        if self.config("serverpath") is None:
            result = self.runner.run(["showmount", "--no-headers", "--exports",
                                      self.config("server")], error="NFSTarget")
            return [{"path": line.split()[0]} for line in result.stdout.splitlines()
                    if line.strip()]
        self.validate_config()
        target = os.path.join(self.state_dir, "probe", str(uuidlib.uuid4()))
        self._mount(target)
        try:
            names = sorted(os.listdir(target))
            return [{"uuid": n} for n in names
                    if UUID_RE.match(n) and os.path.isdir(os.path.join(target, n))]
        finally:
            mounts.umount(self.runner, target, "NFSUnMount", timeout=MOUNT_TIMEOUT)
