"""The storage port: SR drivers from `sm`, run off the reactor, errors translated.

The only module that imports `sm`. Every driver call runs through
`run_blocking` (a worker pool owned by the server) under the SR's lock, shared
or exclusive as the driver declares, and any `sm` failure becomes a
`StorageError` carrying the XenAPI code and parameters the driver chose.
"""

import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from sm.errors import SMError
from sm.lock import SRLocks
from sm.registry import default_registry
from sm.runner import Runner

log = logging.getLogger("hostagent.storage")


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
                 lock_timeout: Optional[float] = None):
        """`run_blocking(fn, *args)` runs fn in a worker thread and returns an awaitable."""
        self.state_dir = state_dir
        self.run_blocking = run_blocking
        self.runner = runner or Runner()
        self.registry = registry or default_registry(self.runner)
        self.locks = SRLocks()
        self.lock_timeout = lock_timeout

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
        def work():
            with self.locks.hold(drv.sr_uuid, op, drv.info.exclusive, self.lock_timeout):
                return getattr(drv, op)(*args)
        try:
            result = await self.run_blocking(work)
        except SMError as e:
            log.info("storage %s on SR %s failed: %s", op, drv.sr_uuid, e)
            raise StorageError(e.code, e.params) from None
        return _plain(result)

    async def validate(self, drv):
        await self.call(drv, "validate_config")


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
