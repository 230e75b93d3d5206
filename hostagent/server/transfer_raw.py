"""GET /export_raw_vdi and PUT /import_raw_vdi: one disk's contents (xapi-protocol.md §8.2).

`vdi=` names the disk (a ref or a uuid), `format=raw` (the default: every byte of the
virtual disk) or `format=vhd` (a dynamic VHD; a differencing chain comes out flattened;
an upload may be any dynamic or differencing VHD written front to back). An export has a
Content-Length; an import is answered `200 OK` with the `task-id` header before its body
is read, writes into the existing VDI, and fails its task with VDI_IO_ERROR when the body
stops short (of its Content-Length, or of a complete VHD) or holds more than the disk.
"""

import logging

from twisted.web.server import NOT_DONE_YET

from ..actions import storage_records as R
from ..actions.storage_errors import translated
from ..backends.storage import (
    VHD_BLOCK,
    StorageError,
    vhd_stream_in,
    vhd_stream_length,
    vhd_stream_out,
)
from ..datamodel.errors import ApiError
from ..datamodel.types import Ref
from ..rpc.oplocks import Op
from ..xva import archive
from .transfer_common import BodyPipe, Gone, ResponseSink, Work
from .transfer_export import fail_stream, refuse, start_stream
from .transfer_import import Discard, end_answer, start_answer

log = logging.getLogger("hostagent.rawvdi")

FORMATS = ("raw", "vhd")
PIECE = archive.CHUNK
# what a transfer shows in the VDI's current_operations while it holds the disk (the write of
# an import is VDI.copy's into a destination; xapi's enum has no import): every other VDI
# operation (destroy, resize, another import...) meanwhile gets OTHER_OPERATION_IN_PROGRESS
WRITING = Op("copy")
RUNNING_STATES = ("Running", "Paused")


def find_vdi(ctx, query) -> str:
    given = query.get("vdi", "")
    if given.startswith("OpaqueRef:"):
        ctx.need("VDI", given)
        return given
    found = ctx.store.by_uuid("VDI", given) if given else None
    if found is None:
        raise ApiError("UUID_INVALID", "VDI", given)
    return found


def disk_format(query) -> str:
    fmt = query.get("format", "raw") or "raw"
    if fmt not in FORMATS:
        raise ApiError("INTERNAL_ERROR", f"Unknown format {fmt}")  # xapi's answer, word for word
    return fmt


async def open_vdi(work: Work, vdi: str, writable: bool):
    ctx = work.ctx
    rec = ctx.store.get("VDI", vdi)
    drv = R.plugged_driver(ctx, rec["SR"])
    with translated(ctx):
        return await ctx.ports.storage.open_io(drv, R.volume_of(ctx.store, vdi), writable)


def assert_writable(ctx, vdi: str) -> None:
    """Refusals of a write into the disk, before its body is read: a hidden base copy
    (its children read through it), a read-only VDI (ISO images, user flag), or one a
    running VM has attached. A snapshot is its own leaf, writable as in xapi."""
    rec = ctx.store.get("VDI", vdi)
    if not rec["managed"]:
        raise ApiError("VDI_NOT_MANAGED", vdi)
    if rec["read_only"]:
        raise ApiError("VDI_READONLY", vdi)
    for vbd in rec["VBDs"]:
        vbd_rec = ctx.store.tables["VBD"].get(vbd)
        if vbd_rec is None or not vbd_rec["currently_attached"]:
            continue
        vm = ctx.store.tables["VM"].get(vbd_rec["VM"])
        if vm is not None and vm["power_state"] in RUNNING_STATES:
            raise ApiError("VDI_IN_USE", vdi, "import")


def lock_vdi(t, vdi: str, task: str) -> None:
    oplocks = t.runtime.oplocks
    oplocks.begin(oplocks.tables["VDI"], WRITING, vdi, task)


def assert_not_busy(t, vdi: str) -> None:
    oplocks = t.runtime.oplocks
    err = oplocks.problem(oplocks.tables["VDI"], WRITING, vdi, oplocks.store.get("VDI", vdi))
    if err is not None:
        raise err


def unlock_vdi(t, vdi: str, task: str) -> None:
    oplocks = t.runtime.oplocks
    oplocks.end(oplocks.tables["VDI"], vdi, task)


def blocks_of(size: int, extents) -> list:
    last = (size - 1) // VHD_BLOCK if size else -1
    out = set()
    for offset, length in extents:
        if length > 0:
            out.update(range(offset // VHD_BLOCK, min(last, (offset + length - 1) // VHD_BLOCK) + 1))
    return sorted(out)


def send_raw(work: Work, sink: ResponseSink, io, size: int) -> None:
    """In a worker: every byte of the disk, reading only where its extents lie."""
    extents = io.extents()
    work.total = size
    offset = 0
    for start, length in extents + [(size, 0)]:
        while offset < min(start, size):  # a hole: zeros, not read
            n = min(PIECE, start - offset)
            sink.write(bytes(n))
            offset += n
            work.done = offset
        end = min(start + length, size)
        while offset < end:
            work.check()
            n = min(PIECE, end - offset)
            sink.write(io.read(offset, n))
            offset += n
            work.done = offset
    sink.drain()


def send_vhd(work: Work, sink: ResponseSink, io, size: int, blocks) -> None:
    work.total = max(1, len(blocks)) * VHD_BLOCK
    for piece in vhd_stream_out(size, blocks, io.read):
        work.check()
        sink.write(piece)
        work.done += len(piece)
    sink.drain()


def take_raw(work: Work, pipe: BodyPipe, io, size: int) -> None:
    """In a worker: the body onto the disk from offset 0, written a MiB at a time."""
    offset, buf = 0, bytearray()
    while True:
        work.check()
        piece = pipe.read(PIECE)
        if piece:
            buf += piece
        if len(buf) >= PIECE or (not piece and buf):
            data = bytes(buf[:PIECE])
            del buf[:PIECE]
            if offset + len(data) > size:
                raise StorageError("VDI_IO_ERROR", [f"the body holds more than the disk's {size} bytes"])
            if not archive.is_zero(data):
                io.write(offset, data)
            offset += len(data)
            work.done = offset
        elif not piece:
            return


def take_vhd(work: Work, pipe: BodyPipe, io, size: int) -> None:
    stream = vhd_stream_in(pipe.read)
    virtual, _ = next(stream)
    if virtual > size:
        raise StorageError("VDI_IO_ERROR", [f"the VHD holds {virtual} bytes, the disk {size}"])
    work.total = virtual
    for offset, data in stream:
        work.check()
        io.write(offset, data)
        work.done = offset + len(data)


def _short(fn):
    """A body that stops early is VDI_IO_ERROR, as xapi says it."""
    def run(work, pipe, io, size):
        try:
            fn(work, pipe, io, size)
        except Gone as e:
            raise StorageError("VDI_IO_ERROR", [str(e)]) from None
    return run


class ExportRawHandler:
    methods = ("GET",)

    def __init__(self, transfers):
        self.t = transfers

    def render(self, call):
        self.t.runtime.shield(self._run(call))
        return NOT_DONE_YET

    async def _run(self, call):
        work = Work(self.t, call, "VDI.export_raw", exporting=True)
        io = None
        try:
            vdi = find_vdi(work.ctx, call.query)
            fmt = disk_format(call.query)
            # not while an import (or another VDI operation) holds the disk; exports do not
            # lock, so that several may read one disk at once
            assert_not_busy(self.t, vdi)
            io = await open_vdi(work, vdi, False)
            size = work.ctx.store.get("VDI", vdi)["virtual_size"]
            if fmt == "vhd":
                blocks = blocks_of(size, await self.t.in_pool(io.extents))
                length = vhd_stream_length(size, blocks)
            else:
                blocks, length = None, size
            if not start_stream(call, work, f"{work.ctx.store.get('VDI', vdi)['uuid']}.{fmt}", length):
                work.succeed("<value></value>")
                return
            sink = ResponseSink(call, self.t.reactor)
            job = (self.t.in_pool(send_vhd, work, sink, io, size, blocks) if fmt == "vhd"
                   else self.t.in_pool(send_raw, work, sink, io, size))
            await work.stream(job, sink)
            work.succeed("<value></value>")
            sink.close()
        except Exception as e:  # noqa: BLE001 - every failure ends the task
            fail_stream(call, work, e)
        finally:
            if io is not None:
                await self.t.in_pool(io.close)


class ImportRawHandler:
    methods = ("PUT",)

    def __init__(self, transfers):
        self.t = transfers

    def stream(self, call):
        work = Work(self.t, call, "VDI.import_raw")
        try:
            vdi = find_vdi(work.ctx, call.query)
            fmt = disk_format(call.query)
            assert_writable(work.ctx, vdi)
            lock_vdi(self.t, vdi, work.task)  # held until the write ends (in _run)
        except ApiError as e:
            refuse(call, work.fail(e), work.task)
            return Discard()
        pipe = BodyPipe(call, self.t.reactor)
        start_answer(call, work)
        self.t.runtime.shield(self._run(call, work, pipe, vdi, fmt))
        return pipe

    async def _run(self, call, work: Work, pipe: BodyPipe, vdi: str, fmt: str):
        io = None
        try:
            io = await open_vdi(work, vdi, True)
            size = work.ctx.store.get("VDI", vdi)["virtual_size"]
            work.cancellable(True)
            take = _short(take_vhd if fmt == "vhd" else take_raw)
            await work.watch(self.t.in_pool(take, work, pipe, io, size), on_cancel=pipe.stop)
            await self.t.in_pool(io.close)
            io = None
            work.succeed(self.t.encoder.fragment(vdi, Ref("VDI")))
            text = vdi
        except Exception as e:  # noqa: BLE001 - every failure ends the task
            text = " ".join(work.fail(e).description)
        finally:
            pipe.stop()
            if io is not None:
                try:
                    await self.t.in_pool(io.close)
                except Exception as e:  # noqa: BLE001 - the first failure is the one to report
                    log.warning("closing VDI %s after a failed import: %s", vdi, e)
            unlock_vdi(self.t, vdi, work.task)
        end_answer(call, text)
