"""PUT /import and /import_metadata: an XVA made into a VM (xapi-protocol.md §8.2, §8.3).

As xapi, the handler answers `200 OK` with the `task-id` header before it reads the
body, then reads it as it arrives: compression is told by its magic bytes, ova.xml comes
first, each chunk is written once its checksum matched (`force=true` takes mismatches).
The disks go to `sr_id` (or `sr_uuid`), else the pool's default SR; the records appear
only once every disk is complete, and on any failure the new volumes are destroyed again,
so nothing is left. The task's result is the set of new VMs; the response body repeats
it as one line (or the error, as `CODE param...`) for command-line clients. A chunked
upload is refused with 403 and IMPORT_ERROR_CANNOT_HANDLE_CHUNKED, as xapi does.
/import_metadata takes a tar of ova.xml only and links the VMs to existing VDIs
(`vdi:<uuid in the archive>=<uuid here>` remaps them).
"""

import logging

from ..actions import xva_import
from ..datamodel.errors import ApiError
from ..datamodel.types import Ref, SetOf
from ..xva import archive, codecs, ovaxml
from .transfer_common import BodyPipe, Work, flag
from .transfer_export import refuse

log = logging.getLogger("hostagent.import")


class Discard:
    """A receiver for a body nobody reads (the connection is closed after the answer)."""

    def dataReceived(self, data):
        """Each piece of the unread body is dropped as it arrives."""

    def bodyEnded(self):
        """Nothing waits for the end of a body nobody reads."""


def chunked(call) -> bool:
    values = call.request.requestHeaders.getRawHeaders(b"transfer-encoding") or []
    return any(v.strip().lower() != b"identity" for v in values)


def start_answer(call, work: Work) -> None:
    """xapi's handshake: the status line and headers, before the body is read."""
    request = call.request
    expect = request.requestHeaders.getRawHeaders(b"expect") or []
    if any(v.lower() == b"100-continue" for v in expect) and request.clientproto == b"HTTP/1.1":
        # The channel would send its "100 Continue" only after this answer; send it first
        # (a client such as curl waits for it before it sends the body).
        request.requestHeaders.removeHeader(b"expect")
        request.channel.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.setResponseCode(200)
    request.setHeader(b"content-type", b"text/plain")
    request.setHeader(b"task-id", work.task.encode())
    request.setHeader(b"connection", b"close")
    request.write(b"")


def end_answer(call, text: str) -> None:
    if not call.over:
        call.request.write(text.encode("utf-8", "replace") + b"\n")
        call.request.finish()


class _Prefixed:
    """A file-like giving `head` back before the rest of `f`."""

    def __init__(self, head: bytes, f):
        self.head, self.f = head, f

    def read(self, n: int = -1) -> bytes:
        if self.head:
            out = self.head if n < 0 else self.head[:n]
            self.head = self.head[len(out):]
            return out
        return self.f.read(n)


def open_archive(pipe: BodyPipe, force: bool):
    """In a worker: the archive's reader and its ova.xml, compression told by its first bytes."""
    head = b""
    while len(head) < codecs.MAGIC_LENGTH:
        piece = pipe.read(codecs.MAGIC_LENGTH - len(head))
        if not piece:
            break
        head += piece
    kind = codecs.detect(head)
    source = _Prefixed(head, pipe)
    reader = archive.XvaReader(codecs.decompressing(kind, source) if kind else source, force)
    return reader, reader.ova_xml()


def receive(work: Work, reader: archive.XvaReader, ios, sizes) -> None:
    """In a worker: every chunk onto its disk, then the check that all of them came."""
    for ref_id, offset, data in reader.chunks():
        work.check()
        io = ios.get(ref_id)
        if io is None:
            continue  # a disk the archive streams but no VBD uses: xapi skips it too
        if offset + len(data) > sizes[ref_id]:
            raise ApiError("IMPORT_ERROR", f"{ref_id}: data past its virtual size {sizes[ref_id]}")
        if not archive.is_zero(data):
            io.write(offset, data)
        work.done += len(data)
    reader.check_complete(sizes)


def import_target(ctx, sr) -> str:
    """The SR an import's disks go to: `sr`, else the pool's default; never an ISO SR."""
    sr = xva_import.target_sr(ctx, sr)
    if ctx.store.get("SR", sr)["content_type"] == "iso":
        raise ApiError("SR_OPERATION_NOT_SUPPORTED", sr)
    return sr


def vdi_map(query) -> dict:
    """xapi's `vdi:<old uuid>=<new uuid>` query arguments."""
    return {k[len("vdi:"):]: v for k, v in query.items() if k.startswith("vdi:") and len(k) > 4}


class ImportHandler:
    """/import and, with `metadata`, /import_metadata (a streaming route)."""

    methods = ("PUT",)

    def __init__(self, transfers, metadata: bool = False):
        self.t = transfers
        self.metadata = metadata

    def stream(self, call):
        work = Work(self.t, call, "VM.import_metadata" if self.metadata else "VM.import")
        if chunked(call):
            err = work.fail(ApiError("IMPORT_ERROR_CANNOT_HANDLE_CHUNKED"))
            call.request.setResponseCode(403)
            end_answer_plain(call, work, err)
            return Discard()
        sr = None
        if not self.metadata:
            try:
                query = call.query
                sr = query.get("sr_id") or (work.ctx.store.by_uuid("SR", query["sr_uuid"])
                                            if query.get("sr_uuid") else None)
                if query.get("sr_uuid") and sr is None:
                    raise ApiError("UUID_INVALID", "SR", query["sr_uuid"])
                sr = import_target(work.ctx, sr)
            except ApiError as e:
                refuse(call, work.fail(e), work.task)
                return Discard()
        pipe = BodyPipe(call, self.t.reactor)
        start_answer(call, work)
        self.t.runtime.shield(self._run(call, work, pipe, sr))
        return pipe

    async def _run(self, call, work: Work, pipe: BodyPipe, sr):
        ctx, q = work.ctx, call.query
        restore, force = flag(q, "restore"), flag(q, "force")
        work.cancellable(True)
        try:
            reader, ova = await self.t.in_pool(open_archive, pipe, force)
            _, objects = await self.t.in_pool(ovaxml.read, ova)
            plan = xva_import.plan(objects, metadata=self.metadata)
            if self.metadata:
                refs = await xva_import.create_records(ctx, plan, None, None, {}, restore, vdi_map(q))
            else:
                refs = await import_disks(self.t, work, reader, plan, sr, restore, pipe.stop)
            work.succeed(self.t.encoder.fragment(refs, SetOf(Ref("VM"))))
            text = " ".join(refs)
        except Exception as e:  # noqa: BLE001 - every failure ends the task
            text = " ".join(work.fail(e).description)
        finally:
            pipe.stop()
        end_answer(call, text)


async def import_disks(t, work: Work, reader, plan, sr, restore: bool, on_cancel=None):
    """A volume per streamed disk on `sr`, the archive's chunks written onto them in a
    transfer thread, then the records: the new VM refs. Any failure destroys the volumes
    (xva_import.volumes); `on_cancel()` unblocks the worker's read when the task is cancelled."""
    ctx, storage = work.ctx, work.ctx.ports.storage
    drv = await xva_import.check_target(ctx, sr, plan.disks.values())
    async with xva_import.volumes(ctx, drv, plan.disks) as made:
        ios = {}
        try:
            for ref_id, uuid in made.items():
                ios[ref_id] = await storage.open_io(drv, uuid, True)
            work.total = sum(plan.disks.values())
            job = t.in_pool(receive, work, reader, ios, plan.disks)
            await work.watch(job, on_cancel=on_cancel)
        finally:
            for io in ios.values():
                await t.in_pool(io.close)
        return await xva_import.create_records(ctx, plan, sr, drv, made, restore)


def end_answer_plain(call, work: Work, err: ApiError) -> None:
    request = call.request
    request.setHeader(b"content-type", b"text/plain")
    request.setHeader(b"task-id", work.task.encode())
    body = (" ".join(err.description) + "\n").encode()
    request.setHeader(b"content-length", b"%d" % len(body))
    request.write(body)
    request.finish()
