"""From a method name and decoded parameters to a result or a XenAPI error.

The dispatcher is protocol-neutral: the server decodes a request, calls
`call()`, and encodes the `Reply` it gets (at once for plain reads, or through
an awaitable when the call waits on work or on the journal). The order of
checks follows xapi: method lookup (with the session checked first for
unknown methods), session, parameter count, parameter types, then the call.
"""

import inspect
import logging
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

from ..datamodel.api import Api, Entry
from ..datamodel.errors import ApiError
from ..datamodel.types import SetOf, STRING, Type, VOID
from ..db.store import NotFound, Store
from . import implicit
from .coerce import Coercer
from .sessions import SessionManager

log = logging.getLogger("hostagent.dispatch")

LIST_METHODS = SetOf(STRING)


@dataclass(frozen=True)
class Origin:
    """Where a call came from."""

    transport: str = "tcp"  # "tcp" | "unix" | "internal"
    peer: str = ""
    originator: str = ""

    @property
    def local_root(self) -> bool:
        return self.transport == "unix"


@dataclass
class Reply:
    value: Any = None
    type: Type = VOID
    error: Optional[list] = None  # ErrorDescription on failure
    bare: bool = False  # system.* replies carry no Status wrapper

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Context:
    """What an action sees of its call."""

    dispatcher: "Dispatcher"
    entry: Entry
    session: Optional[str]
    origin: Origin
    services: Any
    store: Store = field(init=False)

    def __post_init__(self):
        self.store = self.dispatcher.store

    def need(self, cls: str, ref) -> dict:
        return implicit.need(self.store, cls, ref)


class Dispatcher:
    def __init__(self, api: Api, store: Store, sessions: SessionManager,
                 handlers: Dict[str, Callable], services: Any = None,
                 wait_durable: Callable[[Any], Any] = None):
        self.api = api
        self.store = store
        self.sessions = sessions
        self.handlers = dict(handlers)
        self.services = services
        self.wait_durable = wait_durable
        self.coerce = Coercer(api)
        self.aliases = {}
        for wire, e in api.entries.items():
            alias = f"{e.cls}_{e.name}"
            prev = self.aliases.get(alias)
            if prev is None or len(api.entries[prev].cls) < len(e.cls):
                self.aliases[alias] = wire
        missing = [w for w, e in api.entries.items() if e.message is not None and w not in self.handlers]
        if missing:
            raise LookupError("declared messages without an implementation: " + ", ".join(sorted(missing)))

    # ------------------------------------------------------------------ entry
    def call(self, method: str, params: list, origin: Origin = Origin()):
        """A `Reply`, or an awaitable of one when the call must wait."""
        try:
            out = self._call(method, params, origin)
        except Exception as e:  # noqa: BLE001 - every failure becomes an API error
            return self._failure(method, e)
        if inspect.isawaitable(out):
            return self._finish_async(method, out)
        return out

    def lookup(self, method: str) -> Optional[Entry]:
        e = self.api.entries.get(method)
        if e is None and "." not in method:
            wire = self.aliases.get(method)
            e = self.api.entries.get(wire) if wire else None
        return e

    def _call(self, method, params, origin):
        if not isinstance(method, str):
            raise ApiError("MESSAGE_METHOD_UNKNOWN", str(method))
        if method == "system.listMethods":
            return Reply(sorted(self.api.entries), LIST_METHODS, bare=True)
        entry = self.lookup(method)
        if entry is None:
            if params:
                self.sessions.check(params[0])
            raise ApiError("MESSAGE_METHOD_UNKNOWN", method)
        session = None
        if entry.session:
            if not params:
                raise ApiError("MESSAGE_PARAMETER_COUNT_MISMATCH", entry.wire, str(entry.required_count), "0")
            session = params[0]
            self.sessions.check(session)
            params = params[1:]
        if not entry.required_count <= len(params) <= len(entry.params):
            raise ApiError("MESSAGE_PARAMETER_COUNT_MISMATCH", entry.wire, str(entry.required_count),
                           str(len(params)))
        args = [self.coerce.value(p.type, v, p.name) for p, v in zip(entry.params, params)]
        args += [p.default for p in entry.params[len(args):]]
        commits = self.store.commits
        handler = self.handlers.get(entry.wire)
        if handler is None:
            result = implicit.run(self.store, entry, args)
        else:
            result = handler(Context(self, entry, session, origin, self.services), *args)
        if inspect.isawaitable(result):
            return self._await(entry, result, commits)
        if self.store.commits != commits and self.wait_durable is not None:
            return self._await(entry, _ready(result), commits)
        return Reply(result, entry.result)

    async def _await(self, entry, result, commits):
        value = await result
        if self.store.commits != commits and self.wait_durable is not None:
            await self.wait_durable(self.store.last_durable)
        return Reply(value, entry.result)

    async def _finish_async(self, method, awaitable):
        try:
            return await awaitable
        except Exception as e:  # noqa: BLE001
            return self._failure(method, e)

    def _failure(self, method, e) -> Reply:
        if isinstance(e, ApiError):
            return Reply(error=e.description)
        if isinstance(e, NotFound):
            return Reply(error=["HANDLE_INVALID", e.cls, e.ref])
        log.error("internal error in %s:\n%s", method, "".join(traceback.format_exception(e)))
        return Reply(error=["INTERNAL_ERROR", f"{type(e).__name__}: {e}"])


async def _ready(value):
    return value
