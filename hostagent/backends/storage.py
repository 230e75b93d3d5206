"""The storage port: SR drivers from `sm`, run off the reactor, errors translated.

The only module that imports `sm`. Every driver call runs through
`run_blocking` (a worker pool owned by the server) under the SR's lock, shared
or exclusive as the driver declares, and any `sm` failure becomes a
`StorageError` carrying the XenAPI code and parameters the driver chose.
"""

import logging
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional

from sm.errors import SMError
from sm.lock import SRLocks
from sm.registry import default_registry
from sm.runner import Runner

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


class Storage:
    def __init__(self, state_dir: str, run_blocking: Callable, registry=None, runner=None,
                 lock_timeout: Optional[float] = None, environ: Mapping[str, str] = os.environ):
        """`run_blocking(fn, *args)` runs fn in a worker thread and returns an awaitable."""
        self.state_dir = state_dir
        self.run_blocking = run_blocking
        self.runner = runner or Runner()
        self.registry = registry or default_registry(self.runner)
        self.locks = SRLocks()
        self.lock_timeout = lock_timeout
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
        """A driver object for one SR; SR_UNKNOWN_DRIVER if the type has none."""
        return self._cls(sr_type)(sr_uuid, dict(device_config), self.runner, self.state_dir)

    async def call(self, drv, op: str, *args):
        """Run `drv.<op>(*args)` in a worker thread under the SR lock."""
        return await self.begin(drv, op, *args).wait()

    def begin(self, drv, op: str, *args) -> "Job":
        """Start `drv.<op>(*args)` in a worker thread under the SR lock (and, for
        vol_copy_to, the destination SR's lock too); the Job says when it is done."""
        job = Job(drv, op)
        drivers = [drv] + [a for a in args if op == "vol_copy_to" and hasattr(a, "sr_uuid")]

        def work():
            try:
                with ExitStack() as stack:
                    # both SRs of a copy are locked in uuid order, so two copies never deadlock
                    for d in sorted({d.sr_uuid: d for d in drivers}.values(), key=lambda d: d.sr_uuid):
                        stack.enter_context(self.locks.hold(d.sr_uuid, op, d.info.exclusive,
                                                            self.lock_timeout))
                    result = getattr(drv, op)(*args)
                    delay = self.fault_delay.get(op)
                    if delay:
                        time.sleep(delay)
                    return result
            finally:
                job.done = True
        job.pending = self.run_blocking(work)
        return job

    async def validate(self, drv):
        await self.call(drv, "validate_config")


class Job:
    """A driver call running in a worker thread: `done` turns true (from that thread)
    when it has ended; `await job.wait()` gives its result or its StorageError."""

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
    return result
