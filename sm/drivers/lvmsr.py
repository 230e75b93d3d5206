"""The ``lvm`` SR: a volume group on local block devices, one raw LV per volume.

The VG is ``VG_XenStorage-<sr uuid>`` and each volume ``LV-<uuid>`` (xapi's
names), tagged ``vsize=<bytes>`` with the size the caller asked for (LVs round
up to whole extents). Every report is read as JSON, never by column.

Device-mapper: every volume operation here (create, resize, destroy, scan,
stat, tags) edits LVM metadata only and works without it; when the kernel
lacks device-mapper each command runs with ``global{activation=0}`` and
creates LVs inactive. Whatever needs the LV's data as a block device needs
activation: vol_attach (``/dev/<vg>/<lv>``), open_reader/open_writer, hence
vol_copy_to, and clone/snapshot, which for raw LVs are full copies. Without
device-mapper those raise Unsupported and the capabilities are not declared.
"""

import json
import os
import stat

from sm.driver import Attachment, ConfigKey, Driver, DriverInfo, SrStat, Volume, VolumeReader, \
    VolumeWriter
from sm.drivers.attachments import AttachmentBook
from sm.drivers.filesr import COPYRIGHT, VENDOR
from sm.drivers.vhddir import UUID_RE, check_uuid
from sm.errors import (BackendFailure, ConfigInvalid, SRFull, SRNotEmpty, Unsupported,
                       VolumeExists, VolumeInUse, VolumeNotFound)
from sm.runner import Runner

VG_PREFIX = "VG_XenStorage-"
LV_PREFIX = "LV-"
VSIZE_TAG = "vsize="
NO_ACTIVATION = ["--config", "global{activation=0}"]
DM_CONTROL = "/dev/mapper/control"
# Capabilities that need LVs activated as block devices.
NEEDS_ACTIVATION = ("VDI_ATTACH", "VDI_CLONE", "VDI_SNAPSHOT")
NO_DM = "the host kernel lacks device-mapper, so LVs cannot be activated"


def dm_available(runner=None, control: str | None = None) -> bool:
    """Whether LVs can be activated: the control node exists and dmsetup talks to it.

    The node alone proves nothing: dmsetup and lvm create it even when the kernel
    has no device-mapper driver behind it."""
    if not os.path.exists(control or DM_CONTROL):
        return False
    runner = runner if runner is not None else Runner(timeout=10)
    return runner.run(["dmsetup", "version"], ok_codes=range(256)).rc == 0


def parse_tags(text: str) -> list[str]:
    return [t for t in (text or "").split(",") if t]


class LvmDriver(Driver):
    info = DriverInfo(
        type="lvm", name="Local LVM",
        description="SR plugin which represents disks as raw logical volumes in a volume group "
                    "on local block devices",
        vendor=VENDOR, copyright=COPYRIGHT, version="1.0", required_api_version="1.0",
        capabilities=("SR_PROBE", "SR_UPDATE", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH",
                      "VDI_DETACH", "VDI_CLONE", "VDI_SNAPSHOT", "VDI_RESIZE"),
        configuration=(
            ConfigKey("device", "local block devices, comma-separated (create erases them)",
                      True, "ConfigDeviceMissing"),
        ),
        # Space checks and the VG's metadata are SR-wide: changes run one at a time.
        exclusive=frozenset({"create", "destroy", "attach", "detach", "vol_create",
                             "vol_destroy", "vol_resize", "vol_clone", "vol_snapshot"}),
    )

    dm_control = DM_CONTROL  # where device-mapper's control node is (a seam for tests)
    _activation: bool | None = None

    @classmethod
    def host_info(cls, runner=None) -> DriverInfo:
        if dm_available(runner, cls.dm_control):
            return cls.info
        return cls.info.without(*NEEDS_ACTIVATION)

    @property
    def activation(self) -> bool:
        """Whether LVs can be activated here; detected once per driver instance."""
        if self._activation is None:
            self._activation = dm_available(self.runner, self.dm_control)
        return self._activation

    @property
    def vg(self) -> str:
        return VG_PREFIX + self.sr_uuid

    @property
    def book(self) -> AttachmentBook:
        return AttachmentBook(self.state_dir, self.sr_uuid)

    def devices(self) -> list[str]:
        self.validate_config()
        devices = [d.strip() for d in self.config("device").split(",") if d.strip()]
        for device in devices:
            try:
                ok = stat.S_ISBLK(os.stat(device).st_mode)
            except OSError as exc:
                raise ConfigInvalid("device", device, exc.strerror, "ConfigDeviceInvalid") \
                    from exc
            if not ok:
                raise ConfigInvalid("device", device, "not a block device", "ConfigDeviceInvalid")
        return devices

    def lvm(self, tool: str, *args, error: str = "SMGeneral", ok_codes=(0,)):
        argv = [tool] + ([] if self.activation else NO_ACTIVATION) + list(args)
        return self.runner.run(argv, error=error, ok_codes=ok_codes)

    def report(self, tool: str, fields: str, *args, error: str, ok_codes=(0,)) -> list[dict]:
        """Rows of an lvs/vgs/pvs JSON report."""
        result = self.lvm(tool, "--reportformat", "json", "--units", "b", "--nosuffix",
                          "-o", fields, *args, error=error, ok_codes=ok_codes)
        if result.rc != 0:
            return []
        try:
            report = json.loads(result.stdout)["report"]
        except (ValueError, KeyError) as exc:
            raise BackendFailure(error, f"{tool}: unreadable report: {exc}") from exc
        key = tool[:-1]  # lvs -> lv, vgs -> vg, pvs -> pv
        return [row for part in report for row in part.get(key, [])]

    def vg_facts(self, error: str = "SRUnavailable") -> dict:
        rows = self.report("vgs", "vg_name,vg_size,vg_free,vg_extent_size", self.vg,
                           error=error, ok_codes=(0, 5))
        if not rows:
            raise BackendFailure(error, f"volume group {self.vg} not found")
        return {k: (int(v) if k != "vg_name" else v) for k, v in rows[0].items()}

    def vg_exists(self) -> bool:
        return bool(self.report("vgs", "vg_name", self.vg, error="SRUnavailable",
                                ok_codes=(0, 5)))

    # ---- SR operations ---------------------------------------------------------------------

    def create(self, physical_size: int) -> None:
        devices = self.devices()
        if self.vg_exists():
            raise BackendFailure("SRExists", f"volume group {self.vg} already exists")
        # No -ff: pvcreate refuses a device that belongs to another VG.
        self.lvm("pvcreate", "--yes", *devices, error="LVMPartCreate")
        self.lvm("vgcreate", self.vg, *devices, error="LVMGroupCreate")

    def destroy(self) -> None:
        devices = self.devices()
        if not self.vg_exists():
            return
        left = self.scan()
        if left:
            raise SRNotEmpty(len(left))
        self.lvm("vgremove", "--force", self.vg, error="LVMDelete")
        self.lvm("pvremove", "--yes", *devices, error="LVMDelete")

    def attach(self) -> None:
        self.devices()
        self.vg_facts()

    def detach(self) -> None:
        in_use = self.book.attached()
        if in_use:
            raise BackendFailure("SRInUse", f"volumes still attached: {', '.join(in_use)}")
        if self.activation:
            self.lvm("vgchange", "--activate", "n", self.vg, error="LVMUnMount")

    def scan(self) -> list[Volume]:
        rows = self.report("lvs", "lv_name,lv_size,lv_tags", self.vg, error="SRScan")
        volumes = []
        for row in rows:
            name = row["lv_name"]
            uuid = name[len(LV_PREFIX):]
            if not name.startswith(LV_PREFIX) or not UUID_RE.match(uuid):
                continue
            size = int(row["lv_size"])
            vsize = next((int(t[len(VSIZE_TAG):]) for t in parse_tags(row["lv_tags"])
                          if t.startswith(VSIZE_TAG)), size)
            volumes.append(Volume(uuid=uuid, location=uuid, virtual_size=vsize,
                                  physical_utilisation=size, parent=None, read_only=False,
                                  format="raw"))
        return sorted(volumes, key=lambda v: v.uuid)

    def stat(self) -> SrStat:
        vg = self.vg_facts()
        return SrStat(physical_size=vg["vg_size"],
                      physical_utilisation=vg["vg_size"] - vg["vg_free"],
                      virtual_allocation=sum(v.virtual_size for v in self.scan()))

    def probe(self) -> list[dict]:
        """SRs on the devices: [{"uuid", "vg", "devices"}]."""
        rows = self.report("pvs", "pv_name,vg_name", *self.devices(), error="PVSfailed",
                           ok_codes=(0, 5))
        found: dict[str, list[str]] = {}
        for row in rows:
            if row.get("vg_name", "").startswith(VG_PREFIX):
                found.setdefault(row["vg_name"], []).append(row["pv_name"])
        return [{"uuid": vg[len(VG_PREFIX):], "vg": vg, "devices": ",".join(pvs)}
                for vg, pvs in sorted(found.items())]

    # ---- volumes -----------------------------------------------------------------------------

    def lv_path(self, uuid: str) -> str:
        return f"{self.vg}/{LV_PREFIX}{uuid}"

    def vol_stat(self, uuid: str) -> Volume:
        check_uuid(uuid)
        for volume in self.scan():
            if volume.uuid == uuid:
                return volume
        raise VolumeNotFound(uuid, self.sr_uuid)

    def _round(self, size: int, extent: int) -> int:
        return -(-size // extent) * extent

    def vol_create(self, uuid: str, virtual_size: int) -> Volume:
        check_uuid(uuid)
        if virtual_size <= 0:
            raise BackendFailure("VDISize", f"virtual size {virtual_size} is not positive")
        if any(v.uuid == uuid for v in self.scan()):
            raise VolumeExists(uuid)
        vg = self.vg_facts()
        if self._round(virtual_size, vg["vg_extent_size"]) > vg["vg_free"]:
            raise SRFull(virtual_size, vg["vg_free"])
        # Without activation nothing can be zeroed or wiped, so say so rather than fail.
        mode = ["--activate", "y", "--zero", "y", "--wipesignatures", "y", "--yes"] \
            if self.activation else ["--activate", "n", "--zero", "n"]
        self.lvm("lvcreate", *mode, "--size", f"{virtual_size}B", "--name", LV_PREFIX + uuid,
                 "--addtag", f"{VSIZE_TAG}{virtual_size}", self.vg, error="LVMCreate")
        if self.activation:
            self._deactivate(uuid)  # active only while attached
        return self.vol_stat(uuid)

    def vol_destroy(self, uuid: str) -> None:
        self.vol_stat(uuid)
        self.book.require_detached(uuid, "destroy")
        self.lvm("lvremove", "--force", self.lv_path(uuid), error="LVMDelete")

    def vol_resize(self, uuid: str, new_size: int) -> Volume:
        volume = self.vol_stat(uuid)
        self.book.require_detached(uuid, "resize")
        if new_size < volume.virtual_size:
            raise BackendFailure("VDISize", f"shrinking {uuid} from {volume.virtual_size} to "
                                            f"{new_size} bytes is not supported")
        if new_size == volume.virtual_size:
            return volume
        vg = self.vg_facts()
        grown = self._round(new_size, vg["vg_extent_size"])
        if grown > volume.physical_utilisation:
            if grown - volume.physical_utilisation > vg["vg_free"]:
                raise SRFull(new_size, volume.physical_utilisation + vg["vg_free"])
            self.lvm("lvextend", "--size", f"{new_size}B", self.lv_path(uuid),
                     error="LVMResize")
        self.lvm("lvchange", "--deltag", f"{VSIZE_TAG}{volume.virtual_size}",
                 "--addtag", f"{VSIZE_TAG}{new_size}", self.lv_path(uuid), error="LVMResize")
        return self.vol_stat(uuid)

    def _copy(self, uuid: str, new_uuid: str, operation: str) -> Volume:
        if not self.activation:
            raise Unsupported(operation, f"a raw LV is copied in full, and {NO_DM}")
        current = self.book.get(uuid)
        if current is not None and current[0] == "rw":
            raise VolumeInUse(uuid, operation)  # a copy of a disk being written is torn
        return self.vol_copy_to(uuid, self, new_uuid)

    def vol_clone(self, uuid: str, new_uuid: str) -> Volume:
        return self._copy(uuid, new_uuid, "vol_clone")

    def vol_snapshot(self, uuid: str, new_uuid: str) -> Volume:
        return self._copy(uuid, new_uuid, "vol_snapshot")

    # ---- datapath: everything below needs activation ----------------------------------------

    def device_path(self, uuid: str) -> str:
        return f"/dev/{self.lv_path(uuid)}"

    def _activate(self, uuid: str, operation: str) -> None:
        if not self.activation:
            raise Unsupported(operation, f"the LV must be activated as a block device, and "
                                         f"{NO_DM}")
        self.lvm("lvchange", "--activate", "y", self.lv_path(uuid), error="LVMMount")

    def _deactivate(self, uuid: str) -> None:
        if self.activation and self.book.get(uuid) is None:
            self.lvm("lvchange", "--activate", "n", self.lv_path(uuid), error="LVMUnMount")

    def vol_attach(self, uuid: str, writable: bool) -> Attachment:
        self.vol_stat(uuid)
        self._activate(uuid, "vol_attach")
        self.book.add(uuid, writable)
        return Attachment(kind="block", path=self.device_path(uuid), format="raw")

    def vol_detach(self, uuid: str) -> None:
        check_uuid(uuid)
        self.book.remove(uuid)
        self._deactivate(uuid)

    def open_reader(self, uuid: str) -> VolumeReader:
        volume = self.vol_stat(uuid)
        self._activate(uuid, "open_reader")
        return _BlockIO(self, uuid, volume.virtual_size, "rb")

    def open_writer(self, uuid: str) -> VolumeWriter:
        volume = self.vol_stat(uuid)
        self._activate(uuid, "open_writer")
        return _BlockIO(self, uuid, volume.virtual_size, "r+b")


class _BlockIO(VolumeReader, VolumeWriter):
    """An activated LV read or written with pread/pwrite; deactivated again on close."""

    def __init__(self, driver: LvmDriver, uuid: str, size: int, mode: str):
        self._driver, self._uuid, self.size = driver, uuid, size
        try:
            self._file = open(driver.device_path(uuid), mode, buffering=0)
        except OSError as exc:
            driver._deactivate(uuid)
            raise BackendFailure("LVMMount", f"{driver.device_path(uuid)}: {exc.strerror}") \
                from exc

    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self._file.fileno(), length, offset)
        return data + bytes(length - len(data))

    def write(self, offset: int, data: bytes) -> None:
        try:
            os.pwrite(self._file.fileno(), data, offset)
        except OSError as exc:
            raise BackendFailure("LVMWrite", f"{self._uuid}: {exc.strerror}") from exc

    def close(self):
        if self._file.closed:
            return
        try:
            if self._file.mode != "rb":
                os.fsync(self._file.fileno())
        finally:
            self._file.close()
            self._driver._deactivate(self._uuid)
