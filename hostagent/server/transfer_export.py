"""GET /export and /export_metadata: a VM as an XVA (xapi-protocol.md §8.2, §8.3).

/export streams ova.xml and then every streamed disk in 1 MiB chunks with XXH64 checksum
entries (as today's xapi), all-zero chunks left out (but a disk's first and last),
optionally compressed as a whole (`use_compression=true|gzip|zstd`). The VM (Halted or Suspended; a snapshot
or template too) shows `export` in current_operations for the whole transfer; its task
reports progress, and cancelling it stops the stream (the connection is closed, the task
ends `cancelled`) until the last byte has been handed to the connection. A client that
leaves before that fails the task (INTERNAL_ERROR, as xapi's failed writes do); either
way `export` leaves current_operations. /export_metadata sends a tar holding only ova.xml, the VM's snapshots
included. Failures before any byte is sent are HTTP 404 (no such VM) or 500 with the
XenAPI error as text; the task carries the error either way.
"""

import logging

from twisted.web.server import NOT_DONE_YET

from ..actions import storage_records as R
from ..actions import xva_export
from ..actions.storage_errors import translated
from ..datamodel.errors import ApiError
from ..datamodel.types import RecordOf
from ..xva import archive, codecs
from .transfer_common import Gone, ResponseSink, Work

log = logging.getLogger("hostagent.export")

COMPRESSION = {"true": "gzip", "gzip": "gzip", "zstd": "zstd", "false": None, "": None}


def find_vm(ctx, query) -> str:
    ref, uuid = query.get("ref", ""), query.get("uuid", "")
    if ref:
        ctx.need("VM", ref)
        return ref
    found = ctx.store.by_uuid("VM", uuid) if uuid else None
    if found is None:
        raise ApiError("UUID_INVALID", "VM", uuid)
    return found


def fail_stream(call, work, error: Exception) -> None:
    """A download that failed: its task says why; a client that has seen nothing yet gets the
    refusal, one mid-stream a cut connection (the missing end tells it)."""
    err = work.fail(error)
    if not call.request.startedWriting:
        refuse(call, err, work.task)
    elif not call.over:
        call.request.loseConnection()


def refuse(call, err: ApiError, task: str) -> None:
    """Answer a request that failed before its stream started."""
    request = call.request
    if call.over:
        return
    missing = err.code in ("HANDLE_INVALID", "UUID_INVALID")
    request.setResponseCode(404 if missing else 500)
    request.setHeader(b"content-type", b"text/plain")
    request.setHeader(b"task-id", task.encode())
    body = (" ".join(err.description) + "\n").encode("utf-8", "replace")
    request.setHeader(b"content-length", b"%d" % len(body))
    request.write(body)
    request.finish()


def start_stream(call, work: Work, filename: str, length=None) -> bool:
    """Send the headers of a download; False (and the response finished) for a HEAD."""
    request = call.request
    request.setResponseCode(200)
    request.setHeader(b"content-type", b"application/octet-stream")
    request.setHeader(b"content-disposition", f'attachment; filename="{filename}"'.encode())
    request.setHeader(b"task-id", work.task.encode())
    if length is not None:
        request.setHeader(b"content-length", b"%d" % length)
    # Without a length the body goes chunked and the connection stays open afterwards
    # (xapi answers HTTP/1.0 and closes instead): undici before 2026-07, in Xen
    # Orchestra's xen-api, crashes when a connection closes while its reader is paused
    # (nodejs/undici#5360), which a close-delimited body makes likely.
    if request.method == b"HEAD":
        request.finish()
        return False
    return True


class ExportHandler:
    """/export and, with `metadata`, /export_metadata."""

    methods = ("GET",)

    def __init__(self, transfers, metadata: bool = False):
        self.t = transfers
        self.metadata = metadata

    def render(self, call):
        self.t.runtime.shield(self._run(call))
        return NOT_DONE_YET

    async def _run(self, call):
        label = "VM.export_metadata" if self.metadata else "VM.export"
        work = Work(self.t, call, label, exporting=True)
        ctx, store = work.ctx, work.ctx.store
        oplocks = self.t.runtime.oplocks
        table = oplocks.tables["VM"]
        op = next(o for o in table.ops if o.name == "export")
        vm = locked = end = None
        try:
            vm = find_vm(ctx, call.query)
            if self.metadata:
                rec = ctx.need("VM", vm)
                if rec["is_control_domain"]:
                    raise ApiError("OPERATION_NOT_ALLOWED", "a control domain cannot be exported")
            else:
                oplocks.begin(table, op, vm, work.task)
                locked = vm
            end = await self._send(call, work, vm)
            work.succeed("<value></value>")
        except Exception as e:  # noqa: BLE001 - every failure ends the task
            fail_stream(call, work, e)
        finally:
            if locked is not None and store.exists("VM", locked):
                oplocks.end(table, locked, work.task)
        if end is not None:  # the client sees the end once the task and the VM say so
            end()

    async def _send(self, call, work: Work, vm: str):
        """Send the archive but its end; returns what ends the response."""
        store = work.ctx.store
        plan = xva_export.plan(store, vm, metadata=self.metadata)

        def encode(cls, rec):
            return self.t.encoder.fragment(rec, RecordOf(cls))
        ova = xva_export.ova_xml(store, plan, encode, work.ctx.clock, metadata=self.metadata)
        if self.metadata:
            body = archive.entry(archive.OVA_XML, ova) + archive.END
            if start_stream(call, work, "export.xva", len(body)):
                call.request.write(body)
                return call.request.finish
            return None
        kind = COMPRESSION.get(call.query.get("use_compression", "").lower())
        if kind is None and call.query.get("use_compression", "").lower() not in COMPRESSION:
            raise ApiError("INVALID_VALUE", "use_compression", call.query["use_compression"])
        disks = []
        storage = work.ctx.ports.storage
        try:
            for ref_id, vdi in plan.disks:
                rec = store.get("VDI", vdi)
                drv = R.plugged_driver(work.ctx, rec["SR"])
                with translated(work.ctx):
                    io = await storage.open_io(drv, R.volume_of(store, vdi), False)
                disks.append((ref_id, io, rec["virtual_size"]))
            if not start_stream(call, work, "export.xva"):
                return None
            sink = ResponseSink(call, self.t.reactor)
            await work.stream(self.t.in_pool(_stream, work, sink, ova, disks, kind), sink)
            return sink.close
        finally:
            for _, io, _ in disks:
                await self.t.in_pool(io.close)


def _stream(work: Work, sink: ResponseSink, ova: bytes, disks, kind) -> None:
    """In a worker thread: the whole archive, chunk by chunk, through the compressor."""
    z = codecs.compressor(kind) if kind else None

    def send(pieces: list) -> None:
        if sink.gone:
            raise Gone("the client closed the connection")
        if z:
            pieces = [z.compress(b"".join(pieces))]
        sink.write(pieces)

    plans = []
    for ref_id, io, size in disks:
        numbers = archive.chunk_numbers(size, io.extents())
        plans.append((ref_id, io, size, numbers))
        work.total += len(numbers) * archive.CHUNK
    send(archive.entry_pieces(archive.OVA_XML, ova))
    for ref_id, io, size, numbers in plans:
        last = archive.chunk_count(size) - 1
        for n in numbers:
            work.check()
            offset = n * archive.CHUNK
            data = io.read(offset, min(archive.CHUNK, size - offset))
            pieces = archive.chunk_pieces(ref_id, n, data, last)
            if pieces:
                send(pieces)
            work.done += archive.CHUNK
    send([archive.END])
    if z:
        sink.write([z.flush()])
    sink.drain()  # the task ends only once the connection took it all
