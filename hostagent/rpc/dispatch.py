"""From a method name and decoded parameters to a result or a XenAPI error.

The dispatcher is protocol-neutral: the server decodes a request, calls
`call()`, and encodes the `Reply` it gets (at once for plain reads, or through
an awaitable when the call waits on work or on the journal). The order of
checks follows xapi: method lookup (with the session checked first for
unknown methods), parameter count, session, parameter types, then the call.
"""

import asyncio
import inspect
import logging
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from ..datamodel.api import Api, Entry
from ..datamodel.errors import ApiError
from ..datamodel.types import Ref, SetOf, STRING, Type, VOID
from ..db.store import NotFound, new_ref
from . import implicit
from .coerce import Coercer
from .oplocks import OpLocks
from .sessions import SessionManager

log = logging.getLogger("hostagent.dispatch")

LIST_METHODS = SetOf(STRING)
TASK_REF = Ref("task")


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


class Dispatcher:
    def __init__(self, api: Api, runtime, handlers: Dict[str, Callable], oplock_tables=(),
                 spawn: Callable = None, fragment: Callable = None, cancelled: tuple = ()):
        """`runtime` holds the store, sessions, tasks, events, `wait_durable(ticket)`,
        `shield(coroutine)` and `context(entry, session, origin, task)` (actions.context);
        `spawn(coroutine)` runs Async work in the background; `fragment(value, type)`
        encodes a task result as an XML-RPC value; `cancelled` are the exception types
        that mean the caller went away (they pass through, unreported)."""
        self.api = api
        self.runtime = runtime
        self.store = runtime.store
        self.sessions = runtime.sessions
        self.tasks = runtime.tasks
        self.events = runtime.events
        self.wait_durable = runtime.wait_durable
        self.handlers = dict(handlers)
        self.spawn = spawn
        self.fragment = fragment
        self.cancelled = tuple(cancelled) + (asyncio.CancelledError,)
        self.oplocks = OpLocks(self.store, oplock_tables, self.implemented) if oplock_tables else None
        self.coerce = Coercer(api)
        self.aliases = {}
        for wire, e in api.entries.items():
            alias = f"{e.cls}_{e.name}"
            prev = self.aliases.get(alias)
            if prev is None or len(api.entries[prev].cls) < len(e.cls):
                self.aliases[alias] = wire
        missing = [w for w, e in api.entries.items()
                   if e.message is not None and e.implicit is None and w not in self.handlers]
        if missing:
            raise LookupError("declared messages without an implementation: " + ", ".join(sorted(missing)))
        unknown = [w for w in self.handlers if w not in api.entries]
        if unknown:
            raise LookupError("implementations of messages the datamodel does not declare: "
                              + ", ".join(sorted(unknown)))

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

    def implemented(self, wire: str) -> bool:
        e = self.api.entries.get(wire)
        return e is not None and (e.implicit is not None or wire in self.handlers)

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
        is_async = method.startswith("Async.")
        entry = self.lookup(method[6:] if is_async else method)
        if entry is None:
            if params:
                self.sessions.check(params[0])
            raise ApiError("MESSAGE_METHOD_UNKNOWN", method)
        if is_async and not entry.async_:
            # an rpc-level refusal xapi words this way; it is not a datamodel error
            return Reply(error=["Fault", f"No async mode for this operation (rpc: {entry.wire})"])
        # as xapi: the count (without the session) first, then the session
        received = len(params) - 1 if entry.session else len(params)
        if not entry.required_count <= received <= len(entry.params):
            raise ApiError("MESSAGE_PARAMETER_COUNT_MISMATCH", entry.wire, str(entry.required_count),
                           str(received))
        session = None
        if entry.session:
            session = params[0]
            self.sessions.check(session)
            params = params[1:]
        args = [self.coerce.value(p.type, v, p.name) for p, v in zip(entry.params, params)]
        args += [p.default for p in entry.params[len(args):]]
        handler = self.handlers.get(entry.wire)
        guard = self.oplocks.guard(entry.wire, args) if self.oplocks else None
        if is_async:
            return self._start_async(entry, handler, args, session, origin, guard)
        commits = self.store.commits
        if guard is not None and inspect.iscoroutinefunction(handler):
            return self._start_sync(entry, handler, args, session, origin, guard, commits)
        if guard is not None:
            table, op, ref = guard
            if not self.store.exists(table.cls, ref):
                raise ApiError("HANDLE_INVALID", table.cls, ref)
            err = self.oplocks.problem(table, op, ref, self.store.get(table.cls, ref))
            if err is not None:
                raise err
        result = self._invoke(entry, handler, args, session, origin, None)
        if inspect.isawaitable(result):
            return self._await(entry, result, commits)
        if self.store.commits != commits and self.wait_durable is not None:
            return self._await(entry, _ready(result), commits)
        if self.store.pending and self.wait_durable is not None:
            ticket = self._unsettled(entry, args)
            if ticket is not None:  # what the answer reports is not on disk yet
                return self._settle(entry, result, ticket)
        return Reply(result, entry.result)

    def _unsettled(self, entry, args):
        """The journal ticket a read must wait for: the newest change of the object it
        names, or, for a read of many objects, the newest change of all."""
        first = entry.params[0].type if entry.params else None
        if first is not None and first.kind == "ref" and first.cls == entry.cls and args:
            return self.store.unsettled(entry.cls, args[0])
        return self.store.unsettled()

    async def _settle(self, entry, result, ticket):
        await self.wait_durable(ticket)
        return Reply(result, entry.result)

    def _invoke(self, entry, handler, args, session, origin, task):
        if handler is None:
            return implicit.run(self.store, entry, args)
        return handler(self.runtime.context(entry, session, origin, task), *args)

    def _start_sync(self, entry, handler, args, session, origin, guard, commits):
        """A long synchronous call on a guarded object: as in xapi it runs under a task of
        its own, whose ref keys its operation lock; the work (and so the lock) lasts until
        it ends, even if the client hangs up, and the task goes with it."""
        task = self.tasks.create(entry.wire, "", session) if self.tasks else new_ref()
        try:
            self.oplocks.begin(*guard, task)
        except BaseException:
            if self.tasks:
                self.tasks.discard(task)
            raise
        work = self._sync_work(entry, handler, args, session, origin, guard, task)
        shield = self.runtime.shield
        return self._await(entry, shield(work) if shield is not None else work, commits)

    async def _sync_work(self, entry, handler, args, session, origin, guard, task):
        try:
            return await self._guarded(entry, handler, args, session, origin,
                                       task if self.tasks else None, guard, task)
        finally:
            if self.tasks:
                self.tasks.discard(task)

    async def _guarded(self, entry, handler, args, session, origin, task, guard, key):
        try:
            out = self._invoke(entry, handler, args, session, origin, task)
            return (await out) if inspect.isawaitable(out) else out
        finally:
            self.oplocks.end(guard[0], guard[2], key)

    def _start_async(self, entry, handler, args, session, origin, guard):
        if guard is not None:  # refuse at once rather than in the task
            table, op, ref = guard
            if not self.store.exists(table.cls, ref):
                raise ApiError("HANDLE_INVALID", table.cls, ref)
        commits = self.store.commits
        task = self.tasks.create(f"Async.{entry.wire}", "", session)
        if guard is not None:
            try:
                self.oplocks.begin(*guard, task)
            except ApiError as e:  # as xapi: the task exists and carries the refusal
                self.tasks.fail(task, e.description)
                return self._await(entry, _ready(task), commits, TASK_REF)
        self.spawn(self._run_task(entry, handler, args, session, origin, task, guard))
        return self._await(entry, _ready(task), commits, TASK_REF)

    async def _run_task(self, entry, handler, args, session, origin, task, guard):
        try:
            if guard is not None:
                value = await self._guarded(entry, handler, args, session, origin, task, guard, task)
            else:
                out = self._invoke(entry, handler, args, session, origin, task)
                value = (await out) if inspect.isawaitable(out) else out
            self.tasks.succeed(task, self.fragment(value, entry.result))
        except Exception as e:  # noqa: BLE001 - the task records every failure
            self.tasks.fail(task, self._failure(f"Async.{entry.wire}", e).error)
        if self.wait_durable is not None:
            await self.wait_durable(self.store.last_durable)

    async def _await(self, entry, result, commits, result_type=None):
        value = await result
        if self.wait_durable is not None and (self.store.commits != commits or self.store.pending):
            await self.wait_durable(self.store.last_durable)
        return Reply(value, result_type or entry.result)

    async def _finish_async(self, method, awaitable):
        try:
            return await awaitable
        except self.cancelled:
            raise  # the client hung up: nobody to answer
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
