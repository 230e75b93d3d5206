"""The storage driver interface: declared facts, volume operations, and the datapath.

A driver class declares what it is as data (``DriverInfo``: type, capabilities,
device_config keys, exclusive operations), which the agent turns into the SM
record clients see. An instance serves one SR on this host. Volume operations
(create, clone, snapshot, resize, destroy) are separate from attaching a volume
for a domain (``vol_attach``/``vol_detach``), as in SMAPIv3. Drivers return
values and raise ``sm.errors`` exceptions; they never call the management API.
"""

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Callable, ClassVar, NamedTuple

from sm.errors import Cancelled, ConfigMissing, Unsupported

# Every capability name xapi knows from a driver (SM.capabilities / SM.features).
CAPABILITIES = frozenset({
    "SR_PROBE", "SR_UPDATE", "SR_SUPPORTS_LOCAL_CACHING", "SR_METADATA", "SR_TRIM",
    "SR_CACHING", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH", "VDI_ACTIVATE",
    "VDI_DEACTIVATE", "VDI_CLONE", "VDI_SNAPSHOT", "VDI_RESIZE", "VDI_RESIZE_ONLINE",
    "VDI_INTRODUCE", "VDI_UPDATE", "VDI_GENERATE_CONFIG", "VDI_MIRROR", "VDI_RESET_ON_BOOT",
    "VDI_CONFIG_CBT", "THIN_PROVISIONING", "ATOMIC_PAUSE",
})

# The operations a driver can name as exclusive (they take the per-SR lock alone).
OPERATIONS = frozenset({
    "create", "destroy", "attach", "detach", "scan", "stat", "probe",
    "vol_create", "vol_destroy", "vol_clone", "vol_snapshot", "vol_resize", "vol_stat",
    "vol_copy_to", "vol_attach", "vol_detach",
})

COPY_CHUNK = 2 * 1024 * 1024  # the VHD block size: copies read and write whole blocks


class ConfigKey(NamedTuple):
    """One device_config key: its description, whether it is required, and the
    error-table entry a missing value raises."""
    key: str
    description: str
    required: bool = False
    error: str = "ConfigParamsMissing"


@dataclass(frozen=True)
class DriverInfo:
    type: str
    name: str
    description: str
    vendor: str
    copyright: str
    version: str
    required_api_version: str
    capabilities: tuple[str, ...]
    configuration: tuple[ConfigKey, ...]
    exclusive: frozenset[str] = frozenset()
    content_type: str = "user"

    def __post_init__(self):
        unknown = set(self.capabilities) - CAPABILITIES
        if unknown:
            raise ValueError(f"{self.type}: unknown capabilities {sorted(unknown)}")
        bad_ops = set(self.exclusive) - OPERATIONS
        if bad_ops:
            raise ValueError(f"{self.type}: unknown exclusive operations {sorted(bad_ops)}")
        object.__setattr__(self, "exclusive", frozenset(self.exclusive))

    def features(self) -> dict[str, int]:
        """SM.features: capability -> version (every capability here is version 1)."""
        return {cap: 1 for cap in self.capabilities}

    def config_descriptions(self) -> dict[str, str]:
        """SM.configuration: device_config key -> description."""
        return {c.key: c.description for c in self.configuration}

    def without(self, *capabilities: str) -> "DriverInfo":
        """The same facts minus some capabilities (what this host cannot do)."""
        return replace(self, capabilities=tuple(c for c in self.capabilities
                                                if c not in capabilities))


@dataclass(frozen=True)
class Volume:
    """One volume (VDI) as storage sees it. ``parent`` is the uuid a differencing
    volume reads through to; a volume other volumes name as parent is a hidden
    base (xapi: managed=false)."""
    uuid: str
    location: str
    virtual_size: int
    physical_utilisation: int
    parent: str | None = None
    read_only: bool = False
    format: str = "vhd"  # "vhd" | "raw" | "iso"
    name: str = ""  # for iso: the file name, which becomes the VDI name


@dataclass(frozen=True)
class SrStat:
    physical_size: int
    physical_utilisation: int
    virtual_allocation: int


@dataclass(frozen=True)
class Attachment:
    """Where a domain finds an attached volume on this host, and in which format.

    ``kind`` "file": ``path`` is an image the hypervisor opens itself (``format``
    "vpc", qemu's name for a VHD, only for one without a parent, which qemu reads
    right; "iso" for a CD image). "block": ``path`` is a block device ("raw").
    "nbd": ``path`` is the Unix socket of the nbdkit serving a VHD chain ("raw"),
    ``uri`` its NBD URI. The rest says whose attachment it is."""
    kind: str  # "file" | "block" | "nbd"
    path: str
    format: str  # qemu's name for what is at path: "vpc" | "raw" | "iso"
    uri: str = ""  # "nbd+unix:///?socket=<path>" for kind "nbd"
    sr: str = ""
    vdi: str = ""
    owner: str = ""  # who holds it (a VBD's or VM's uuid), "" for an anonymous attachment
    writable: bool = False


class VolumeReader(ABC):
    """Reads a volume's virtual contents (through a chain, for VHD)."""
    size: int

    @abstractmethod
    def read(self, offset: int, length: int) -> bytes: ...

    def extents(self):
        """(offset, length) ranges that may hold data; the rest reads as zeros."""
        return [(0, self.size)]

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class VolumeWriter(ABC):
    """Writes a volume's virtual contents."""

    @abstractmethod
    def write(self, offset: int, data: bytes) -> None: ...

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


Progress = Callable[[float], "bool | None"]


class Driver(ABC):
    """One SR on this host. Calls block: the agent runs them in worker threads, each
    only once it holds the SR's lock (shared, or exclusive for ``info.exclusive`` ops)."""

    info: ClassVar[DriverInfo]
    _datapath = None  # see the datapath property

    def __init__(self, sr_uuid: str, device_config: dict, runner, state_dir: str):
        self.sr_uuid = sr_uuid
        self.device_config = dict(device_config)
        self.runner = runner
        self.state_dir = state_dir

    @classmethod
    def host_info(cls, runner=None) -> DriverInfo:
        """The declared facts, minus what this host cannot do (LVM without dm)."""
        return cls.info

    def validate_config(self) -> None:
        """Raise ConfigMissing for the first required key absent from device_config."""
        for entry in self.info.configuration:
            if entry.required and not self.device_config.get(entry.key):
                raise ConfigMissing(entry.key, self.info.type, entry.error)

    def config(self, key: str, default: str | None = None) -> str | None:
        value = self.device_config.get(key)
        return value if value not in (None, "") else default

    # ---- SR operations -------------------------------------------------------------------

    @abstractmethod
    def create(self, physical_size: int) -> None:
        """Make new, empty storage for this SR (leaves it detached)."""

    @abstractmethod
    def destroy(self) -> None:
        """Delete the SR's storage; SRNotEmpty while volumes remain. Works detached."""

    @abstractmethod
    def attach(self) -> None:
        """Make the SR usable on this host (mount, check the VG...); idempotent."""

    @abstractmethod
    def detach(self) -> None:
        """Undo attach; idempotent."""

    @abstractmethod
    def scan(self) -> list[Volume]:
        """Every volume the storage holds now, bases included."""

    @abstractmethod
    def stat(self) -> SrStat:
        """Sizes in bytes."""

    def probe(self) -> list[dict]:
        """What a device_config points at (existing SRs, exports...), as plain dicts."""
        return []

    # ---- volume operations ---------------------------------------------------------------

    @abstractmethod
    def vol_create(self, uuid: str, virtual_size: int) -> Volume: ...

    @abstractmethod
    def vol_destroy(self, uuid: str) -> None: ...

    @abstractmethod
    def vol_stat(self, uuid: str) -> Volume: ...

    def vol_clone(self, uuid: str, new_uuid: str) -> Volume:
        """A writable copy named new_uuid; the original keeps its uuid and contents."""
        raise Unsupported("vol_clone", f"the {self.info.type} driver cannot clone")

    def vol_snapshot(self, uuid: str, new_uuid: str) -> Volume:
        """A point-in-time copy named new_uuid; the original keeps its uuid and contents."""
        raise Unsupported("vol_snapshot", f"the {self.info.type} driver cannot snapshot")

    def vol_resize(self, uuid: str, new_size: int) -> Volume:
        raise Unsupported("vol_resize", f"the {self.info.type} driver cannot resize")

    def vol_copy_to(self, uuid: str, dest_driver: "Driver", new_uuid: str,
                    progress: Progress | None = None) -> Volume:
        """Copy a volume's contents into a new volume of dest_driver (any SR type).

        Reads through ``open_reader`` and writes through the destination's
        ``open_writer``, skipping ranges that hold only zeros (the new volume
        reads as zeros already). ``progress(fraction)`` returning False cancels;
        a failed or cancelled copy destroys the half-made destination.
        """
        source = self.vol_stat(uuid)
        dest = dest_driver.vol_create(new_uuid, source.virtual_size)
        try:
            with self.open_reader(uuid) as reader, dest_driver.open_writer(new_uuid) as writer:
                _copy(reader, writer, progress)
        except BaseException:
            try:
                dest_driver.vol_destroy(new_uuid)
            except Exception:  # the original failure is what the caller needs
                pass
            raise
        return dest_driver.vol_stat(dest.uuid)

    def vol_fill_from(self, uuid: str, path: str) -> None:
        """Write a file's bytes into the volume from offset 0 (a suspend image going in);
        the volume must be at least as large as the file."""
        with open(path, "rb") as src, self.open_writer(uuid) as writer:
            offset = 0
            while True:
                data = src.read(COPY_CHUNK)
                if not data:
                    break
                if data != bytes(len(data)):
                    writer.write(offset, data)
                offset += len(data)

    def vol_dump_to(self, uuid: str, path: str, length: int) -> None:
        """Write the volume's first `length` bytes into a new file (a suspend image coming
        back out); the file is complete or absent."""
        tmp = f"{path}.part"
        with self.open_reader(uuid) as reader, open(tmp, "wb") as out:
            offset = 0
            while offset < length:
                n = min(COPY_CHUNK, length - offset)
                out.write(reader.read(offset, n))
                offset += n
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)

    # ---- datapath -------------------------------------------------------------------------

    def vol_attach(self, uuid: str, writable: bool, owner: str = "") -> Attachment:
        """Attach a volume for a domain on this host and say where the hypervisor finds it.

        Attaching again for the same ``owner`` (a VBD's uuid, say) in the same mode gives
        the same attachment (its server restarted if it died); in the other mode
        VDI_IN_USE. Owner "" makes an anonymous attachment: each attach adds one,
        each detach removes the newest. Recorded in the state dir (``sm.datapath``),
        so attachments and their nbdkit servers outlive an agent restart."""
        return self.datapath.attach(uuid, writable, owner, self.expose, self.release)

    def vol_detach(self, uuid: str, owner: str = "") -> None:
        """Undo vol_attach for owner (its server stopped); nothing to do if not attached."""
        self.datapath.detach(uuid, owner, self.release)

    def vol_attachments(self) -> list[Attachment]:
        """This SR's attachments on this host, as recorded in the state dir."""
        return self.datapath.attachments()

    @abstractmethod
    def expose(self, uuid: str, writable: bool, serve: Callable[[str], Attachment]
               ) -> Attachment:
        """vol_attach's driver part: book the volume as attached (VDI_IN_USE,
        VDI_READONLY...) and say where it is; ``serve(image)`` serves a VHD chain
        whose leaf is ``image`` through nbdkit. Undo the booking if it fails."""

    @abstractmethod
    def release(self, uuid: str) -> None:
        """vol_detach's driver part: undo one booking of expose."""

    @property
    def datapath(self):
        """This SR's attachments (``sm.datapath.Datapath``), made on first use."""
        if self._datapath is None:
            from sm.datapath.attach import Datapath  # it uses this module's Attachment
            self._datapath = Datapath(self.state_dir, self.sr_uuid)
        return self._datapath

    def open_reader(self, uuid: str) -> VolumeReader:
        raise Unsupported("open_reader", f"the {self.info.type} driver has no reader")

    def open_writer(self, uuid: str) -> VolumeWriter:
        raise Unsupported("open_writer", f"the {self.info.type} driver has no writer")


def _copy(reader: VolumeReader, writer: VolumeWriter, progress: Progress | None):
    done = 0
    ranges = list(reader.extents())
    todo = sum(length for _, length in ranges) or 1
    for offset, length in ranges:
        end = offset + length
        while offset < end:
            n = min(COPY_CHUNK, end - offset)
            data = reader.read(offset, n)
            if data != bytes(len(data)):
                writer.write(offset, data)
            offset += n
            done += n
            if progress is not None and progress(min(done / todo, 1.0)) is False:
                raise Cancelled("vol_copy_to")
    if progress is not None:
        progress(1.0)
