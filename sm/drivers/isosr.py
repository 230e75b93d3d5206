"""The ``iso`` SR: a local directory of ``*.iso`` files offered as read-only CD images.

Volumes are the files themselves; their uuid is derived from the SR uuid and
the file name (uuid5), so a rescan, a restart or a re-introduce keeps every
VDI's identity, and the same file in two SRs still gets two uuids. Volumes are
neither created nor destroyed through the API: the files are the user's.
"""

import os
import uuid as uuidlib

from sm.driver import Attachment, ConfigKey, Driver, DriverInfo, SrStat, Volume, VolumeReader
from sm.drivers.attachments import AttachmentBook
from sm.drivers.filesr import COPYRIGHT, VENDOR
from sm.errors import BackendFailure, ConfigInvalid, Unsupported, VolumeNotFound, VolumeReadOnly


def iso_uuid(sr_uuid: str, name: str) -> str:
    """The stable uuid of file `name` in SR `sr_uuid`."""
    try:
        namespace = uuidlib.UUID(sr_uuid)
    except ValueError:
        namespace = uuidlib.uuid5(uuidlib.NAMESPACE_URL, sr_uuid)
    return str(uuidlib.uuid5(namespace, name))


class _FileReader(VolumeReader):
    def __init__(self, path: str):
        self._file = open(path, "rb")
        self.size = os.fstat(self._file.fileno()).st_size

    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self._file.fileno(), length, offset)
        return data + bytes(length - len(data))

    def close(self):
        self._file.close()


class IsoDriver(Driver):
    info = DriverInfo(
        type="iso", name="ISO",
        description="SR plugin which offers the .iso files of a local directory as CD images",
        vendor=VENDOR, copyright=COPYRIGHT, version="1.0", required_api_version="1.0",
        capabilities=("SR_PROBE", "SR_UPDATE", "VDI_ATTACH", "VDI_DETACH"),
        configuration=(
            ConfigKey("location", "local directory holding the .iso files", True,
                      "ISODconfMissingLocation"),
        ),
        exclusive=frozenset({"create", "destroy", "attach", "detach"}),
        content_type="iso",
    )

    @property
    def book(self) -> AttachmentBook:
        return AttachmentBook(self.state_dir, self.sr_uuid)

    def location(self) -> str:
        location = self.config("location")
        if not os.path.isabs(location):
            raise ConfigInvalid("location", location, "must be an absolute local path",
                                "ISOLocalPath")
        return location

    def _require_dir(self) -> str:
        location = self.location()
        if not os.path.isdir(location):
            raise BackendFailure("ISOLocalPath", f"{location} is not a directory")
        return location

    def _files(self) -> dict[str, str]:
        """uuid -> file name, for every regular *.iso file."""
        location = self._require_dir()
        found = {}
        for entry in os.scandir(location):
            if entry.name.lower().endswith(".iso") and entry.is_file():
                found[iso_uuid(self.sr_uuid, entry.name)] = entry.name
        return found

    def _volume(self, name: str) -> Volume:
        try:
            st = os.stat(os.path.join(self.location(), name))
        except FileNotFoundError:
            raise VolumeNotFound(iso_uuid(self.sr_uuid, name), self.sr_uuid) from None
        return Volume(uuid=iso_uuid(self.sr_uuid, name), location=name,
                      virtual_size=st.st_size, physical_utilisation=st.st_blocks * 512,
                      parent=None, read_only=True, format="iso", name=name)

    def _name(self, uuid: str) -> str:
        name = self._files().get(uuid)
        if name is None:
            raise VolumeNotFound(uuid, self.sr_uuid)
        return name

    # ---- SR operations: the directory belongs to the user, we only read it -----------------

    def create(self, physical_size: int) -> None:
        self.validate_config()
        self._require_dir()

    def destroy(self) -> None:
        self.validate_config()  # never deletes the user's files

    def attach(self) -> None:
        self.validate_config()
        self._require_dir()

    def detach(self) -> None:
        in_use = self.book.attached()
        if in_use:
            raise BackendFailure("SRInUse", f"images still attached: {', '.join(in_use)}")

    def scan(self) -> list[Volume]:
        return sorted((self._volume(n) for n in self._files().values()), key=lambda v: v.name)

    def stat(self) -> SrStat:
        location = self._require_dir()
        volumes = self.scan()
        vfs = os.statvfs(location)
        return SrStat(physical_size=vfs.f_blocks * vfs.f_frsize,
                      physical_utilisation=sum(v.physical_utilisation for v in volumes),
                      virtual_allocation=sum(v.virtual_size for v in volumes))

    def probe(self) -> list[dict]:
        self.validate_config()
        return [{"name": v.name, "uuid": v.uuid} for v in self.scan()]

    # ---- volumes -----------------------------------------------------------------------------

    def vol_create(self, uuid: str, virtual_size: int) -> Volume:
        raise Unsupported("vol_create", "ISO images are added as files to the SR's location")

    def vol_destroy(self, uuid: str) -> None:
        raise Unsupported("vol_destroy", "ISO images are removed as files from the location")

    def vol_stat(self, uuid: str) -> Volume:
        return self._volume(self._name(uuid))

    def expose(self, uuid: str, writable: bool, serve) -> Attachment:
        name = self._name(uuid)
        if writable:
            raise VolumeReadOnly(uuid)
        self.book.add(uuid, False)
        return Attachment(kind="file", path=os.path.join(self.location(), name), format="iso")

    def release(self, uuid: str) -> None:
        self.book.remove(uuid)

    def open_reader(self, uuid: str) -> VolumeReader:
        return _FileReader(os.path.join(self.location(), self._name(uuid)))
