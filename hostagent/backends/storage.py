"""The storage port: SR drivers from `sm`, run off the reactor, errors translated.

The only module that imports `sm`. Every driver call runs through
`run_blocking` (a worker pool owned by the server) under the SR's lock, shared
or exclusive as the driver declares, and any `sm` failure becomes a
`StorageError` carrying the XenAPI code and parameters the driver chose.

The SR locks are taken before a call gets a worker, by awaiting locks that hold
no thread (`make_lock`, given by the server): a long exclusive call on one SR
keeps one worker busy, however many calls queue behind it, and calls on other
SRs go on. The queue is first come, first served between calls that conflict
(see hostagent/server/locks.py). One driver object per SR serves its calls, so
what a driver keeps between calls (the VHD drivers' parsed files) lasts.
"""

import dataclasses
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional

from sm import datapath
from sm.errors import BackendFailure, SMError
from sm.registry import default_registry
from sm.runner import Runner
from sm.vhd import VhdError
from sm.vhd import stream as vhd_stream

from .nbd_block import IMAGE_FORMATS as NBD_IMAGE_FORMATS
from .nbd_block import NbdBlockError

log = logging.getLogger("hostagent.storage")

# Test hook: HOSTAGENT_FAULT_DELAY_<OP>=<seconds> (e.g. HOSTAGENT_FAULT_DELAY_VOL_CLONE=5)
# makes every driver call of <op> wait that long after the driver finished, still under
# the SR lock, so a test can kill the agent between the storage change and its records.
FAULT_DELAY_PREFIX = "HOSTAGENT_FAULT_DELAY_"


class StorageError(Exception):
    """A storage failure as XenAPI sees it: `code` and string `params`."""

    def __init__(self, code: str, params=()):
        self.code = code
        self.params = tuple(str(p) for p in params)
        super().__init__(code, *self.params)


@dataclass(frozen=True)
class Volume:
    """What the agent keeps of a driver's volume (plain data, no sm types)."""

    uuid: str
    location: str
    virtual_size: int
    physical_utilisation: int
    parent: Optional[str]
    read_only: bool
    format: str
    name: str = ""


@dataclass(frozen=True)
class Stat:
    physical_size: int
    physical_utilisation: int
    virtual_allocation: int


@dataclass(frozen=True)
class Attached:
    """A VDI attached for a domain on this host: where the hypervisor finds it. `kind`
    "file": an image it opens itself in `format` ("vpc", a VHD without a parent, or
    "iso"); "block": a device ("raw"); "nbd": `path` is the Unix socket of the nbdkit
    serving a VHD chain, `uri` its NBD URI ("raw")."""

    kind: str
    path: str
    format: str
    uri: str
    sr: str
    vdi: str
    owner: str
    writable: bool


DRIVERS_KEPT = 256  # driver objects kept (one per SR; probes make throw-away ones)


class Storage:
    def __init__(self, state_dir: str, run_blocking: Callable, make_lock: Callable,
                 start: Callable, registry=None, runner=None,
                 lock_timeout: Optional[float] = None, environ: Mapping[str, str] = os.environ):
        """`run_blocking(fn, *args)` runs fn in a worker thread and returns an awaitable.
        `make_lock()` gives a shared/exclusive lock: `acquire(exclusive, timeout)` returns
        an awaitable of True once held (False when the timeout, None for none, passed
        first) and holds no thread while it waits; `release(exclusive)`. `start(coro)`
        runs a coroutine to its end and returns an awaitable of its result; a caller
        that stops waiting on that awaitable must not stop the coroutine. All three are
        called on the thread the port's coroutines run on (the reactor)."""
        self.state_dir = state_dir
        self.run_blocking = run_blocking
        self.make_lock = make_lock
        self.start = start
        self.runner = runner or Runner()
        self.registry = registry or default_registry(self.runner)
        self.lock_timeout = lock_timeout
        self._locks: Dict[str, list] = {}  # SR uuid -> [lock, calls holding or queued]
        self._drivers: "OrderedDict[str, Any]" = OrderedDict()
        self.running = 0  # driver calls in worker threads right now
        self.closed = False
        # On Xen: NBD attachments and VHD files handed over as dom0 block devices
        # (backends/nbd_block.py)
        self.nbd_devices = None
        self.fault_delay = {k[len(FAULT_DELAY_PREFIX):].lower(): float(v) for k, v in environ.items()
                            if k.startswith(FAULT_DELAY_PREFIX) and v}
        if self.fault_delay:
            log.warning("storage fault delays set (a test hook): %s", self.fault_delay)

    # ------------------------------------------------------------- catalogue
    def types(self) -> List[str]:
        return self.registry.types()

    def sm_records(self) -> List[Dict[str, Any]]:
        """One SM record per driver, as this host can honour it."""
        out = []
        for info in self.registry.info():
            out.append({
                "name_label": info.name, "name_description": info.description, "type": info.type,
                "vendor": info.vendor, "copyright": info.copyright, "version": info.version,
                "required_api_version": info.required_api_version,
                "configuration": info.config_descriptions(),
                "capabilities": list(info.capabilities), "features": info.features(),
                "driver_filename": f"sm.drivers ({info.type})",
            })
        return out

    def content_type(self, sr_type: str) -> str:
        return self._cls(sr_type).info.content_type

    def capabilities(self, sr_type: str) -> List[str]:
        return list(self._cls(sr_type).host_info(self.runner).capabilities)

    def _cls(self, sr_type: str):
        try:
            return self.registry.get(sr_type)
        except SMError as e:
            raise StorageError(e.code, e.params) from None

    # ----------------------------------------------------------------- calls
    def driver(self, sr_type: str, sr_uuid: str, device_config: dict):
        """The driver object of one SR (the same one while its type and device_config
        stay); SR_UNKNOWN_DRIVER if the type has none."""
        cls = self._cls(sr_type)
        drv = self._drivers.get(sr_uuid)
        if drv is None or type(drv) is not cls or drv.device_config != dict(device_config):
            drv = self._drivers[sr_uuid] = cls(sr_uuid, dict(device_config), self.runner,
                                               self.state_dir)
        self._drivers.move_to_end(sr_uuid)
        while len(self._drivers) > DRIVERS_KEPT:
            self._drivers.popitem(last=False)
        return drv

    async def call(self, drv, op: str, *args):
        """Run `drv.<op>(*args)` in a worker thread under the SR lock."""
        return await self.begin(drv, op, *args).wait()

    def begin(self, drv, op: str, *args) -> "Job":
        """Queue `drv.<op>(*args)` on the SR's lock (and, for vol_copy_to, the
        destination SR's lock too), then run it in a worker thread; the Job says
        when it is done. A caller that stops waiting leaves the call running."""
        job = Job(drv, op)
        drivers = [drv] + [a for a in args if op == "vol_copy_to" and hasattr(a, "sr_uuid")]
        job.pending = self.start(self._run(job, drivers, op, args))
        return job

    async def _run(self, job: "Job", drivers, op: str, args):
        held = []
        try:
            # both SRs of a copy are locked in uuid order, so two copies never deadlock
            for d in sorted({d.sr_uuid: d for d in drivers}.values(), key=lambda d: d.sr_uuid):
                exclusive = op in d.info.exclusive
                entry = self._locks.get(d.sr_uuid)
                if entry is None:
                    entry = self._locks[d.sr_uuid] = [self.make_lock(), 0]
                entry[1] += 1
                try:
                    self._refuse_if_closed(op, d.sr_uuid)
                    if not await entry[0].acquire(exclusive, self.lock_timeout):
                        raise BackendFailure("LockErr", f"{op} on SR {d.sr_uuid}: lock not "
                                                        f"free after {self.lock_timeout:g}s")
                except BaseException:
                    self._unused(d.sr_uuid)
                    raise
                held.append((d.sr_uuid, exclusive))
            self._refuse_if_closed(op, job.drv.sr_uuid)
            self.running += 1
            try:
                return await self.run_blocking(self._work, job.drv, op, args)
            finally:
                self.running -= 1
        finally:
            for sr_uuid, exclusive in reversed(held):
                self._locks[sr_uuid][0].release(exclusive)
                self._unused(sr_uuid)
            job.done = True

    def _work(self, drv, op: str, args):
        """In a worker thread."""
        result = getattr(drv, op)(*args)
        delay = self.fault_delay.get(op)
        if delay:
            time.sleep(delay)
        return result

    def _unused(self, sr_uuid: str) -> None:
        entry = self._locks[sr_uuid]
        entry[1] -= 1
        if entry[1] == 0:
            del self._locks[sr_uuid]

    def _refuse_if_closed(self, op: str, sr_uuid: str) -> None:
        if self.closed:
            raise BackendFailure("LockErr", f"{op} on SR {sr_uuid}: the agent is stopping")

    def close(self) -> None:
        """Refuse every call from now on, queued ones included (they fail as their turn
        comes); calls already in a worker thread run to their end."""
        self.closed = True

    def busy_srs(self) -> List[str]:
        """SRs with a call running or queued (for diagnostics and tests)."""
        return sorted(self._locks)

    async def validate(self, drv):
        await self.call(drv, "validate_config")

    # ------------------------------------------------------------ transfers
    async def open_io(self, drv, vdi_uuid: str, writable: bool) -> "VolumeIO":
        """A volume opened for a transfer (export, import) under the SR's lock; its
        reads and writes then block: call them in a worker thread."""
        op = "open_writer" if writable else "open_reader"
        return VolumeIO(await self.call(drv, op, vdi_uuid), f"VDI {vdi_uuid}")

    # ------------------------------------------------------------- datapath
    async def attach(self, drv, vdi_uuid: str, writable: bool, owner: str) -> Attached:
        """Attach a VDI for `owner` (a VBD's uuid, say) on this host: a VHD chain gets its
        own nbdkit, which outlives the agent. Attaching again for the same owner gives the
        same attachment."""
        attached = await self.call(drv, "vol_attach", vdi_uuid, writable, owner)
        if self.nbd_devices is None:
            return attached
        # On Xen a VHD reaches the guest through blkback (phy), never through the domain's
        # deprivileged QEMU (qdisk), which cannot open the state dir's files: backends/nbd_block.py
        try:
            if attached.kind == "nbd":
                device = await self.run_blocking(self.nbd_devices.connect, attached.path, owner)
            elif attached.kind == "file" and attached.format in NBD_IMAGE_FORMATS:
                device = await self.run_blocking(self.nbd_devices.connect_image, attached.path,
                                                 attached.format, writable, owner)
            else:
                return attached
        except NbdBlockError as e:
            await self.call(drv, "vol_detach", vdi_uuid, owner)
            raise BackendFailure("VDIUnavailable", f"VDI {vdi_uuid}: {e}") from None
        return dataclasses.replace(attached, kind="block", path=device, format="raw")

    async def detach(self, drv, vdi_uuid: str, owner: str) -> None:
        """Undo attach (its nbdkit stopped); nothing to do if `owner` holds none."""
        if self.nbd_devices is not None:
            try:
                await self.run_blocking(self.nbd_devices.disconnect, owner)
            except NbdBlockError as e:
                raise BackendFailure("VDIUnavailable", f"VDI {vdi_uuid}: {e}") from None
        await self.call(drv, "vol_detach", vdi_uuid, owner)

    async def attachments(self) -> List[Attached]:
        """Every attachment on this host, as recorded in the state dir (so also those
        an agent before a restart made)."""
        return _plain(await self.run_blocking(datapath.attachments, self.state_dir))


class Job:
    """A driver call, queued on its SR's lock and then run in a worker thread: `done`
    turns true when it has ended (or was refused); `await job.wait()` gives its result
    or its StorageError."""

    def __init__(self, drv, op: str):
        self.drv, self.op = drv, op
        self.done = False
        self.pending = None

    async def wait(self):
        try:
            result = await self.pending
        except SMError as e:
            log.info("storage %s on SR %s failed: %s", self.op, self.drv.sr_uuid, e)
            raise StorageError(e.code, e.params) from None
        return _plain(result)


class VolumeIO:
    """A volume's contents for a transfer, in blocking calls for worker threads:
    read(offset, n), write(offset, data), extents() and size (readers), close();
    sm failures as StorageError."""

    def __init__(self, handle, what: str):
        self._handle, self._what = handle, what
        self.size = getattr(handle, "size", None)

    def _run(self, fn, *args):
        try:
            return fn(*args)
        except SMError as e:
            log.info("transfer of %s failed: %s", self._what, e)
            raise StorageError(e.code, e.params) from None

    def read(self, offset: int, length: int) -> bytes:
        return self._run(self._handle.read, offset, length)

    def write(self, offset: int, data: bytes) -> None:
        self._run(self._handle.write, offset, data)

    def extents(self):
        return self._run(self._handle.extents)

    def close(self) -> None:
        self._run(self._handle.close)


VHD_BLOCK = vhd_stream.BLOCK_SIZE  # the block size of the VHD streams below


def vhd_stream_length(size: int, blocks) -> int:
    """The bytes vhd_stream_out yields for these arguments."""
    return vhd_stream.stream_length(size, blocks)


def vhd_stream_out(size: int, blocks, read):
    """The bytes of a dynamic VHD holding `read(offset, n)` in blocks `blocks` (numbers
    of VHD_BLOCK-sized blocks), piece by piece; blocking (a worker thread's)."""
    try:
        yield from vhd_stream.export_stream(size, blocks, read)
    except VhdError as e:
        raise StorageError("VDI_IO_ERROR", [f"VHD stream: {e}"]) from None


def vhd_stream_in(read):
    """A VHD read from a blocking `read(n)`: (virtual size, None) first, then (offset,
    data) of what its blocks hold; a damaged or short stream is VDI_IO_ERROR."""
    try:
        yield from vhd_stream.import_stream(read)
    except VhdError as e:
        raise StorageError("VDI_IO_ERROR", [f"VHD stream: {e}"]) from None


class Progress:
    """A thread-safe progress callback for long driver calls (vol_copy_to): the worker
    stores the latest fraction; returning False asks the driver to stop."""

    def __init__(self):
        self.fraction = 0.0
        self.cancel = False

    def __call__(self, fraction: float) -> bool:
        self.fraction = fraction
        return not self.cancel


def _plain(result):
    """sm's Volume / SrStat values as the agent's own plain data."""
    if isinstance(result, list):
        return [_plain(x) for x in result]
    kind = type(result).__name__
    if kind == "Volume":
        return Volume(result.uuid, result.location, result.virtual_size, result.physical_utilisation,
                      result.parent, result.read_only, result.format, getattr(result, "name", ""))
    if kind == "SrStat":
        return Stat(result.physical_size, result.physical_utilisation, result.virtual_allocation)
    if kind == "Attachment":
        return Attached(result.kind, result.path, result.format, result.uri, result.sr,
                        result.vdi, result.owner, result.writable)
    return result
