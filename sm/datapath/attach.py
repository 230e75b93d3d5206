"""Attaching one SR's volumes for domains: the driver's booking, the record, the server.

The order keeps every crash on the safe side. Attach: the driver books the
volume (``AttachmentBook``: VDI_IN_USE for a second writer), the record is
written, then a VHD chain's nbdkit starts; detach: the server stops, the
record goes, then the booking. An agent killed in between leaves at worst a
volume that still counts as in use, or a record whose detach is repeated,
never a server nobody can find nor a writer nobody counts.
"""

import dataclasses
import threading

from sm.datapath.records import Record, Records
from sm.datapath.server import NbdServers
from sm.driver import Attachment
from sm.errors import VolumeInUse


class Datapath:
    """The attachments of one SR's volumes on this host."""

    def __init__(self, state_dir: str, sr_uuid: str, servers: NbdServers | None = None):
        self.sr_uuid = sr_uuid
        self.records = Records(state_dir)
        self.servers = servers or NbdServers(self.records.dir)
        self._mutex = threading.Lock()
        self._volume_locks: dict[str, threading.Lock] = {}

    def _lock(self, uuid: str) -> threading.Lock:
        """Attach and detach of one volume run one at a time (the book reads, then writes)."""
        with self._mutex:
            return self._volume_locks.setdefault(uuid, threading.Lock())

    def attach(self, uuid: str, writable: bool, owner: str, expose, release) -> Attachment:
        """Driver.vol_attach: ``expose(uuid, writable, serve)`` books the volume and
        says where it is, ``release(uuid)`` undoes that."""
        with self._lock(uuid):
            if owner:
                found = self.records.find(self.sr_uuid, uuid, owner)
                if found is not None:
                    return self._again(found, writable)
            ident = self.records.new_ident()
            whose = dict(sr=self.sr_uuid, vdi=uuid, owner=owner, writable=writable)

            def serve(image: str) -> Attachment:
                self.servers.check_socket_path(ident)
                served = Attachment(kind="nbd", path=self.servers.socket(ident), format="raw",
                                    uri=self.servers.uri(ident), **whose)
                self.records.put(ident, served, image)
                try:
                    self.servers.start(ident, image, writable)
                except BaseException:
                    self.servers.stop(ident)
                    self.records.drop(ident)
                    raise
                return served

            where = dataclasses.replace(expose(uuid, writable, serve), **whose)
            if where.kind != "nbd":
                try:
                    self.records.put(ident, where)
                except BaseException:
                    release(uuid)
                    raise
            return where

    def _again(self, found: Record, writable: bool) -> Attachment:
        attachment = found.attachment
        if attachment.writable != writable:
            raise VolumeInUse(attachment.vdi, "attach")
        if attachment.kind == "nbd" and self.servers.serving(found.ident) is None:
            # Its server is gone (a host reboot, a crash): serve again on the same socket.
            self.servers.start(found.ident, found.image, writable)
        return attachment

    def detach(self, uuid: str, owner: str, release) -> None:
        """Driver.vol_detach; nothing to do when the owner holds no attachment."""
        with self._lock(uuid):
            found = self.records.find(self.sr_uuid, uuid, owner)
            if found is None:
                return
            if found.attachment.kind == "nbd":
                self.servers.stop(found.ident)
            self.records.drop(found.ident)
            release(uuid)

    def attachments(self) -> list[Attachment]:
        return [r.attachment for r in self.records.all() if r.attachment.sr == self.sr_uuid]


def attachments(state_dir: str) -> list[Attachment]:
    """Every attachment recorded on this host (all SRs), oldest first."""
    return [r.attachment for r in Records(state_dir).all()]
