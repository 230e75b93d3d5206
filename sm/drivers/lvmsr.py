"""The ``lvm`` SR: a volume group on local block devices, one raw LV per volume.

The VG is ``VG_XenStorage-<sr uuid>`` and each volume ``LV-<uuid>`` (xapi's
names), tagged ``vsize=<bytes>`` with the size the caller asked for (LVs round
up to whole extents). Every report is read as JSON, never by column.

Device-mapper: volume create, resize, destroy, scan, stat and tags edit LVM
metadata only and work without it; when the kernel lacks device-mapper each
command runs with ``global{activation=0}`` and creates LVs inactive. The LVs'
data is then read and written on the physical volumes themselves, at the
offsets of the LV's extents (``sm.drivers.lvextents``): open_reader/open_writer
(hence vol_copy_to from and to LVM), clone and snapshot (full copies), and the
zeroing of new or grown space. Only vol_attach, which hands out the
``/dev/<vg>/<lv>`` block device, needs activation; without device-mapper it
raises Unsupported and VDI_ATTACH is not declared. With device-mapper the data
path goes through the activated LV, as the datapath itself does.

A new volume, and the space a resize reveals, read as zeros on both paths: the
whole range is zeroed (``lvextents.zero_range``), never only the first 4 KiB
that ``lvcreate --zero`` clears, so no VDI shows what a destroyed one held.
"""

import json
import os
import stat

from sm.driver import COPY_CHUNK, Attachment, ConfigKey, Driver, DriverInfo, SrStat, Volume, \
    VolumeReader, VolumeWriter
from sm.drivers.attachments import AttachmentBook
from sm.drivers.filesr import COPYRIGHT, VENDOR
from sm.drivers.lvextents import (SEGMENT_FIELDS, BlockIO, ExtentIO, copy_range, extent_map,
                                  pv_names)
from sm.drivers.vhddir import UUID_RE, check_uuid
from sm.errors import (BackendFailure, ConfigInvalid, SRFull, SRNotEmpty, Unsupported,
                       VolumeExists, VolumeInUse, VolumeNotFound)
from sm.runner import Runner

VG_PREFIX = "VG_XenStorage-"
LV_PREFIX = "LV-"
VSIZE_TAG = "vsize="
NO_ACTIVATION = ["--config", "global{activation=0}"]
DM_CONTROL = "/dev/mapper/control"
# Capabilities that need LVs activated as block devices (the rest use the PVs).
NEEDS_ACTIVATION = ("VDI_ATTACH",)
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

    def report(self, tool: str, fields: str, *args, error: str, ok_codes=(0,),
               key: str | None = None) -> list[dict]:
        """Rows of an lvs/vgs/pvs JSON report (``key="seg"`` for ``lvs --segments``)."""
        result = self.lvm(tool, "--reportformat", "json", "--units", "b", "--nosuffix",
                          "-o", fields, *args, error=error, ok_codes=ok_codes)
        if result.rc != 0:
            return []
        try:
            report = json.loads(result.stdout)["report"]
        except (ValueError, KeyError) as exc:
            raise BackendFailure(error, f"{tool}: unreadable report: {exc}") from exc
        key = key or tool[:-1]  # lvs -> lv, vgs -> vg, pvs -> pv
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
        # With device-mapper lvcreate wipes known signatures before anything can see
        # them (its --zero clears only 4 KiB); without device-mapper it can do neither.
        # Either way _zero_tail then zeroes the whole LV.
        mode = ["--activate", "y", "--zero", "y", "--wipesignatures", "y", "--yes"] \
            if self.activation else ["--activate", "n", "--zero", "n"]
        self.lvm("lvcreate", *mode, "--size", f"{virtual_size}B", "--name", LV_PREFIX + uuid,
                 "--addtag", f"{VSIZE_TAG}{virtual_size}", self.vg, error="LVMCreate")
        self._zero_tail(uuid, 0, "vol_create")  # and deactivated: active only while attached
        return self.vol_stat(uuid)

    def _zero_tail(self, uuid: str, start: int, operation: str) -> None:
        """An LV's extents still hold what an earlier LV left there: zero them from
        ``start`` to the LV's end, on its PVs or through the activated LV (a new
        volume, or the space a resize reveals, reads as zeros; vol_copy_to skips
        ranges of zeros). A new LV that cannot be zeroed is removed again."""
        try:
            with self._raw(uuid, 0, True, operation) as lv:
                lv.zero(start, lv.capacity - start)
        except BaseException:
            if operation == "vol_create":
                self.lvm("lvremove", "--force", self.lv_path(uuid), error="LVMDelete",
                         ok_codes=range(256))
            raise

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
        self._zero_tail(uuid, volume.virtual_size, "vol_resize")
        self.lvm("lvchange", "--deltag", f"{VSIZE_TAG}{volume.virtual_size}",
                 "--addtag", f"{VSIZE_TAG}{new_size}", self.lv_path(uuid), error="LVMResize")
        return self.vol_stat(uuid)

    def _copy(self, uuid: str, new_uuid: str, operation: str) -> Volume:
        """A full copy of the LV's extents into a new LV of the same size (raw LVs share
        nothing); the original is only read. Without activation the data is copied on
        the PVs, with it through the activated LVs."""
        check_uuid(new_uuid)
        volumes = {v.uuid: v for v in self.scan()}
        source = volumes.get(uuid)
        if source is None:
            raise VolumeNotFound(uuid, self.sr_uuid)
        if new_uuid in volumes:
            raise VolumeExists(new_uuid)
        current = self.book.get(uuid)
        if current is not None and current[0] == "rw":
            raise VolumeInUse(uuid, operation)  # a copy of a disk being written is torn
        free = self.vg_facts()["vg_free"]
        if source.physical_utilisation > free:
            raise SRFull(source.virtual_size, free)
        with self.open_reader(uuid, operation) as reader:  # refuses unmappable LVs first
            self.lvm("lvcreate", "--activate", "n", "--zero", "n",
                     "--size", f"{source.physical_utilisation}B", "--name", LV_PREFIX + new_uuid,
                     "--addtag", f"{VSIZE_TAG}{source.virtual_size}", self.vg, error="LVMCreate")
            try:
                with self.open_writer(new_uuid, operation) as writer:
                    copy_range(reader, writer, source.physical_utilisation, COPY_CHUNK)
            except BaseException:
                self.lvm("lvremove", "--force", self.lv_path(new_uuid), error="LVMDelete",
                         ok_codes=range(256))
                raise
        return self.vol_stat(new_uuid)

    def vol_clone(self, uuid: str, new_uuid: str) -> Volume:
        return self._copy(uuid, new_uuid, "vol_clone")

    def vol_snapshot(self, uuid: str, new_uuid: str) -> Volume:
        return self._copy(uuid, new_uuid, "vol_snapshot")

    # ---- datapath ----------------------------------------------------------------------------

    def _extents(self, uuid: str, size: int, writable: bool, operation: str) -> ExtentIO:
        """The LV's extents opened on its PVs, where ``lvs --segments`` and ``pvs`` put
        them (see sm.drivers.lvextents)."""
        segments = self.report("lvs", SEGMENT_FIELDS, "--segments", self.lv_path(uuid),
                               key="seg", error="LVMNoVolume", ok_codes=(0, 5))
        if not segments:
            raise VolumeNotFound(uuid, self.sr_uuid)
        pvs = self.report("pvs", "pv_name,pe_start", *pv_names(segments), error="PVSfailed")
        pe_starts = {row["pv_name"]: int(row["pe_start"]) for row in pvs}
        pieces = extent_map(LV_PREFIX + uuid, operation, segments, pe_starts)
        return ExtentIO(self.lv_path(uuid), pieces, size, writable)

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

    def expose(self, uuid: str, writable: bool, serve) -> Attachment:
        self.vol_stat(uuid)
        self._activate(uuid, "vol_attach")
        self.book.add(uuid, writable)
        return Attachment(kind="block", path=self.device_path(uuid), format="raw")

    def release(self, uuid: str) -> None:
        check_uuid(uuid)
        self.book.remove(uuid)
        self._deactivate(uuid)

    def _raw(self, uuid: str, size: int, writable: bool, operation: str):
        """The LV's bytes: on its PVs without device-mapper, else through the LV
        activated for the purpose (deactivated again on close unless attached)."""
        if not self.activation:
            return self._extents(uuid, size, writable, operation)
        self._activate(uuid, operation)
        return BlockIO(self.device_path(uuid), size, writable, lambda: self._deactivate(uuid))

    def open_reader(self, uuid: str, operation: str = "open_reader") -> VolumeReader:
        return self._raw(uuid, self.vol_stat(uuid).virtual_size, False, operation)

    def open_writer(self, uuid: str, operation: str = "open_writer") -> VolumeWriter:
        return self._raw(uuid, self.vol_stat(uuid).virtual_size, True, operation)

