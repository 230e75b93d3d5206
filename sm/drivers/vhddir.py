"""VHD volumes in one directory: the volume logic shared by the file, ext and nfs drivers.

Each volume is ``<uuid>.vhd``; a differencing volume names its parent's file in
its header. Clone and snapshot copy no data: the original leaf is renamed to a
read-only base under a fresh uuid and gets two empty children, one taking the
original name (same contents, so the VDI keeps its uuid and data) and one the
new uuid. A journal written first makes that crash-safe: ``recover`` (run by
attach and scan) puts an interrupted branch back as it was. On a
shared SR (nfs) journals and temporary files carry this host's id, so a host
never rolls back another host's work in progress. Bases are the volumes other
volumes name as parent; when a base loses its last child it is deleted too.
What each file holds is parsed once and kept while the file stays the same
(``sm.drivers.vhdcache``), so a call costs an ``fstat`` per file, not a parse.
"""

from abc import abstractmethod
import json
import os
import re
import socket
import uuid as uuidlib
from contextlib import contextmanager

from sm.driver import Attachment, Driver, SrStat, Volume
from sm.drivers import vhdfile
from sm.drivers.attachments import AttachmentBook
from sm.drivers.vhdcache import FactsCache, fresh_stat
from sm.errors import (BackendFailure, SRNotEmpty, VolumeExists, VolumeInUse, VolumeNotFound,
                       VolumeReadOnly)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TMP = ".tmp-"
_JOURNAL = ".branch-"

VHD_CAPABILITIES = (
    "SR_PROBE", "SR_UPDATE", "VDI_CREATE", "VDI_DELETE", "VDI_ATTACH", "VDI_DETACH",
    "VDI_CLONE", "VDI_SNAPSHOT", "VDI_RESIZE", "THIN_PROVISIONING",
)
# Operations that rename files or read the whole directory run alone on the SR.
VHD_EXCLUSIVE = frozenset({"create", "destroy", "attach", "detach", "scan",
                           "vol_clone", "vol_snapshot", "vol_destroy"})


def check_uuid(uuid: str) -> str:
    if not UUID_RE.match(uuid or ""):
        raise BackendFailure("InvalidArg", f"not a lower-case uuid: {uuid!r}")
    return uuid


def _is_volume(name: str) -> bool:
    return name.endswith(".vhd") and bool(UUID_RE.match(name[:-4]))


def host_id() -> str:
    """This host's id for journal and temporary file names (machine-id, else hostname)."""
    try:
        with open("/etc/machine-id") as f:
            ident = f.read().strip()
    except OSError:
        ident = ""
    return ident or socket.gethostname()


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class VhdDir:
    """The volumes of one SR directory."""

    def __init__(self, path: str, sr_uuid: str, book: AttachmentBook,
                 cache: FactsCache | None = None, host: str | None = None):
        self.path = path
        self.sr_uuid = sr_uuid
        self.book = book
        self.cache = cache if cache is not None else FactsCache()
        self.host = host or host_id()

    def _tmp(self, uuid: str) -> str:
        return os.path.join(self.path, f"{_TMP}{self.host}-{uuid}.vhd")

    def file(self, uuid: str) -> str:
        return os.path.join(self.path, uuid + ".vhd")

    def require_present(self) -> None:
        if not os.path.isdir(self.path):
            raise BackendFailure("SRUnavailable", f"{self.path} is not a directory "
                                                  "(is the SR attached?)")

    def uuids(self) -> list[str]:
        self.require_present()
        return sorted(name[:-4] for name in os.listdir(self.path) if _is_volume(name))

    # ---- reading ---------------------------------------------------------------------------

    def _facts(self) -> dict[str, tuple[vhdfile.VhdFacts, os.stat_result]]:
        """Every volume's facts and stat (one stat per file, parsed only when changed)."""
        self.require_present()
        listed = self.cache.listing(self.path, _is_volume)
        return {name[:-4]: fact for name, fact in listed.items()}

    def _fact(self, uuid: str) -> tuple[vhdfile.VhdFacts, os.stat_result]:
        path = self.file(uuid)
        try:
            st = fresh_stat(path)
            return self.cache.facts(path, st), st
        except FileNotFoundError:
            raise VolumeNotFound(uuid, self.sr_uuid) from None

    def _volume(self, uuid: str, fact: vhdfile.VhdFacts, st: os.stat_result,
                is_base: bool) -> Volume:
        parent = fact.parent[:-4] if fact.parent and fact.parent.endswith(".vhd") else fact.parent
        # A damaged image is listed (so it can be seen and destroyed) but never written.
        return Volume(uuid=uuid, location=uuid, virtual_size=fact.virtual_size,
                      physical_utilisation=st.st_blocks * 512, parent=parent,
                      read_only=is_base or fact.broken is not None, format="vhd")

    def scan(self) -> list[Volume]:
        """Recover, then list (an exclusive operation: see ``recover``)."""
        self.recover()
        return self.volumes()

    def volumes(self) -> list[Volume]:
        facts = self._facts()
        parents = {f.parent[:-4] for f, _ in facts.values() if f.parent}
        return [self._volume(u, f, st, u in parents) for u, (f, st) in sorted(facts.items())]

    def children(self, uuid: str) -> list[str]:
        name = uuid + ".vhd"
        return [u for u, (f, _) in self._facts().items() if f.parent == name]

    def get(self, uuid: str) -> Volume:
        check_uuid(uuid)
        self.require_present()
        fact, st = self._fact(uuid)
        return self._volume(uuid, fact, st, bool(self.children(uuid)))

    def stat(self) -> SrStat:
        self.require_present()
        vfs = os.statvfs(self.path)
        return SrStat(physical_size=vfs.f_blocks * vfs.f_frsize,
                      physical_utilisation=(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize,
                      virtual_allocation=sum(v.virtual_size for v in self.volumes()
                                             if not v.read_only))

    # ---- changing --------------------------------------------------------------------------

    def _new(self, uuid: str) -> str:
        check_uuid(uuid)
        self.require_present()
        path = self.file(uuid)
        if os.path.exists(path):
            raise VolumeExists(uuid)
        return path

    def create(self, uuid: str, virtual_size: int) -> Volume:
        path = self._new(uuid)
        if virtual_size <= 0:
            raise BackendFailure("VDISize", f"virtual size {virtual_size} is not positive")
        tmp = self._tmp(uuid)
        try:
            with self.cache.changing(path):
                vhdfile.create(tmp, virtual_size)
                os.replace(tmp, path)
        finally:
            _remove(tmp)
        # Not get(): a volume made just now under a fresh uuid is nobody's base, and
        # asking would read the whole SR.
        fact, st = self._fact(uuid)
        return self._volume(uuid, fact, st, False)

    def destroy(self, uuid: str) -> None:
        volume = self.get(uuid)
        self.book.require_detached(uuid, "destroy")
        if self.children(uuid):
            # A base: other volumes read through it.
            raise VolumeInUse(uuid, "destroy")
        with self.cache.changing(self.file(uuid)):
            os.unlink(self.file(uuid))
        # Garbage-collect bases nothing reads through any more.
        parent = volume.parent
        while parent and os.path.exists(self.file(parent)) and not self.children(parent) \
                and self.book.get(parent) is None:
            grand = self._fact(parent)[0].parent
            with self.cache.changing(self.file(parent)):
                os.unlink(self.file(parent))
            parent = grand[:-4] if grand else None

    def branch(self, uuid: str, new_uuid: str, operation: str) -> Volume:
        """Clone or snapshot without copying data; returns the new volume."""
        source = self.get(uuid)
        new_path = self._new(new_uuid)
        if source.read_only:
            self._child(new_path, self.file(uuid))  # already an immutable base
        else:
            # The leaf's file becomes the base, so nothing may have it open.
            self.book.require_detached(uuid, operation)
            self._freeze(uuid, new_uuid)
        return self.get(new_uuid)

    def _freeze(self, uuid: str, new_uuid: str) -> None:
        base = str(uuidlib.uuid4())
        journal = os.path.join(self.path, f"{_JOURNAL}{self.host}-{uuid}.json")
        with open(journal, "w") as f:
            json.dump({"leaf": uuid, "base": base, "new": new_uuid}, f)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(self.path)
        try:
            with self.cache.changing(self.file(uuid), self.file(base), self.file(new_uuid)):
                vhdfile.freeze(self.file(uuid), self.file(base), self.file(new_uuid))
                os.chmod(self.file(base), 0o444)
            _fsync_dir(self.path)
        except BaseException:
            self._roll_back(journal)
            raise
        os.unlink(journal)

    def _child(self, path: str, parent_path: str) -> None:
        tmp = self._tmp(os.path.basename(path)[:-4])
        try:
            with self.cache.changing(path):
                vhdfile.make_child(tmp, parent_path)
                os.replace(tmp, path)
            _fsync_dir(self.path)
        finally:
            _remove(tmp)

    def recover(self) -> None:
        """Undo this host's branches a crash interrupted, and drop its temporary files.

        Only for exclusive operations (attach, scan, destroy): a shared one such as
        vol_create may have a temporary file in flight."""
        self.require_present()
        mine = (f"{_JOURNAL}{self.host}-", f"{_TMP}{self.host}-")
        for name in os.listdir(self.path):
            full = os.path.join(self.path, name)
            if name.startswith(mine[0]):
                self._roll_back(full)
            elif name.startswith(mine[1]):
                _remove(full)

    def _roll_back(self, journal: str) -> None:
        try:
            with open(journal) as f:
                entry = json.load(f)
            leaf, base, new = (self.file(entry[k]) for k in ("leaf", "base", "new"))
        except (OSError, ValueError, KeyError):
            _remove(journal)
            return
        if os.path.exists(base):
            # The leaf was renamed: its children are empty, nothing has written to them.
            with self.cache.changing(leaf, base, new):
                _remove(new)
                _remove(leaf)
                os.rename(base, leaf)
                os.chmod(leaf, 0o644)
        _fsync_dir(self.path)
        _remove(journal)

    def resize(self, uuid: str, new_size: int) -> Volume:
        volume = self.get(uuid)
        if volume.read_only:
            raise VolumeReadOnly(uuid)
        self.book.require_detached(uuid, "resize")
        if new_size < volume.virtual_size:
            raise BackendFailure("VDISize", f"shrinking {uuid} from {volume.virtual_size} "
                                            f"to {new_size} bytes is not supported")
        if new_size > volume.virtual_size:
            with self.cache.changing(self.file(uuid)):
                vhdfile.resize(self.file(uuid), new_size)
        return self.get(uuid)

    def attach(self, uuid: str, writable: bool, serve) -> Attachment:
        """Book the volume; a VHD without a parent is its file (qemu's vpc driver reads
        it right), a chain is served by ``serve`` (nbdkit: qemu would read it as if it
        had no parent)."""
        volume = self.get(uuid)
        self.book.add(uuid, writable, volume.read_only)
        try:
            if volume.parent is None:
                return Attachment(kind="file", path=self.file(uuid), format="vpc")
            return serve(self.file(uuid))
        except BaseException:
            self.book.remove(uuid)
            raise

    def require_empty(self) -> None:
        """SRNotEmpty unless every volume is gone (left-over temporaries are dropped)."""
        self.recover()
        left = self.uuids()
        if left:
            raise SRNotEmpty(len(left))

    def remove_empty(self) -> None:
        """Delete the directory of an SR with no volumes left (SRNotEmpty otherwise)."""
        self.require_empty()
        try:
            os.rmdir(self.path)
        except OSError as exc:
            raise BackendFailure("FileSRRmDir", f"{self.path}: {exc.strerror}") from exc


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class VhdDriver(Driver):
    """SR drivers keeping VHD files in a directory; subclasses say where and how
    the directory becomes available (``sr_path``, ``_is_attached``,
    ``_attach_storage``, ``_detach_storage``). One object can serve many calls
    (the agent keeps one per SR): it keeps what it parsed of the SR's files."""

    def __init__(self, sr_uuid: str, device_config: dict, runner, state_dir: str):
        super().__init__(sr_uuid, device_config, runner, state_dir)
        self._cache = FactsCache()
        self._host = host_id()

    @abstractmethod
    def sr_path(self) -> str:
        """The directory holding this SR's VHD files."""

    def _is_attached(self) -> bool:
        return os.path.isdir(self.sr_path())

    def _attach_storage(self) -> None:
        pass

    def _detach_storage(self) -> None:
        pass

    @property
    def book(self) -> AttachmentBook:
        return AttachmentBook(self.state_dir, self.sr_uuid)

    @property
    def volumes(self) -> VhdDir:
        return VhdDir(self.sr_path(), self.sr_uuid, self.book, self._cache, self._host)

    @contextmanager
    def temporarily_attached(self):
        """Attach for the duration of an SR operation unless already attached."""
        if self._is_attached():
            yield
            return
        self._attach_storage()
        try:
            yield
        finally:
            self._detach_storage()

    def attach(self) -> None:
        self.validate_config()
        if not self._is_attached():
            self._attach_storage()
        self.volumes.recover()

    def detach(self) -> None:
        in_use = self.book.attached()
        if in_use:
            raise BackendFailure("SRInUse", f"volumes still attached: {', '.join(in_use)}")
        if self._is_attached():
            self._detach_storage()

    def scan(self) -> list[Volume]:
        return self.volumes.scan()

    def stat(self) -> SrStat:
        return self.volumes.stat()

    def vol_create(self, uuid: str, virtual_size: int) -> Volume:
        return self.volumes.create(uuid, virtual_size)

    def vol_destroy(self, uuid: str) -> None:
        self.volumes.destroy(uuid)

    def vol_stat(self, uuid: str) -> Volume:
        return self.volumes.get(uuid)

    def vol_clone(self, uuid: str, new_uuid: str) -> Volume:
        return self.volumes.branch(uuid, new_uuid, "clone")

    def vol_snapshot(self, uuid: str, new_uuid: str) -> Volume:
        return self.volumes.branch(uuid, new_uuid, "snapshot")

    def vol_resize(self, uuid: str, new_size: int) -> Volume:
        return self.volumes.resize(uuid, new_size)

    def expose(self, uuid: str, writable: bool, serve) -> Attachment:
        return self.volumes.attach(uuid, writable, serve)

    def release(self, uuid: str) -> None:
        self.book.remove(check_uuid(uuid))

    def open_reader(self, uuid: str):
        self.volumes.get(uuid)
        return vhdfile.reader(self.volumes.file(uuid))

    def open_writer(self, uuid: str):
        if self.volumes.get(uuid).read_only:
            raise VolumeReadOnly(uuid)
        return vhdfile.writer(self.volumes.file(uuid))
