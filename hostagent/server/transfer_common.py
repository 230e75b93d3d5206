"""What the transfer handlers (/export, /import and their metadata and raw-disk kin) share.

A transfer runs under a task: the request's `task_id` (a client's task.create) or a new
one, named in the `task-id` response header; its failure is the task's error_info. The
bulk work (tar, checksums, compression, disk reads and writes) runs in the agent's
transfer thread pool, one thread per transfer, while the reactor only moves bytes:
`BodyPipe` hands a request body to that thread holding at most `PIPE_LIMIT` bytes (the
body is paused beyond that), `ResponseSink` lets it write a response no faster than the
client reads. Memory stays bounded whatever the size of the disks.
"""

import collections
import logging
import threading
from dataclasses import dataclass

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from zope.interface import implementer

from ..actions.storage_errors import api_error
from ..backends.storage import StorageError
from ..datamodel.errors import ApiError
from ..xva import XvaError

log = logging.getLogger("hostagent.transfer")

PIPE_LIMIT = 4 << 20  # bytes of a request body held for the worker thread at most
READ_SIZE = 1 << 20  # bytes a socket read of a streamed body asks for (Twisted: 64 KiB)
SINK_DEPTH = 4  # response pieces (about a MiB each) waiting for the reactor at most
POLL = 0.5  # seconds between progress reports and cancellation checks
TRUE = ("true", "yes", "on", "1")


def flag(query, name: str) -> bool:
    return query.get(name, "").strip().lower() in TRUE


class Cancelled(Exception):
    """The task was cancelled (or the client left): the worker stops."""


class Gone(Exception):
    """The client closed the connection before the transfer ended."""


@dataclass
class Transfers:
    """The agent's parts the handlers use (built by wiring.py)."""

    runtime: object  # actions.context.Runtime
    encoder: object  # rpc.xmlrpc.XmlEncoder: records as XML-RPC values for ova.xml
    reactor: object
    pool: object  # a started twisted ThreadPool for the transfers' blocking work

    def in_pool(self, fn, *args):
        return deferToThreadPool(self.reactor, self.pool, fn, *args)


def as_api_error(e: BaseException, task: str, store) -> ApiError:
    """Whatever stopped a transfer, as the XenAPI error its task carries."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, XvaError):
        return ApiError(e.code, *e.params)
    if isinstance(e, StorageError):
        return api_error(store, e, task)
    if isinstance(e, Cancelled):
        return ApiError("TASK_CANCELLED", task)
    if isinstance(e, Gone):
        return ApiError("IMPORT_ERROR_PREMATURE_EOF")
    log.error("transfer failed", exc_info=e)
    return ApiError("INTERNAL_ERROR", f"{type(e).__name__}: {e}")


def _may_adopt(rt, call, task: str) -> bool:
    """A caller adopts a task its own session made, or any as a local superuser; another
    session's task is left alone (the transfer gets a task of its own, as for an unknown one)."""
    session = call.caller.session
    if session and rt.tasks.owner(task) == session:
        return True
    return bool(session and rt.store.exists("session", session)
                and rt.store.get("session", session)["is_local_superuser"])


class Work:
    """One transfer's task and call context: adopted from `task_id` or made."""

    def __init__(self, transfers: Transfers, call, label: str, exporting: bool = False):
        rt = transfers.runtime
        self.exporting = exporting  # a client that leaves is then no premature end of a body
        self.tasks = rt.tasks
        given = call.query.get("task_id", "")
        if given and rt.store.exists("task", given) and \
                rt.store.get("task", given)["status"] == "pending" and _may_adopt(rt, call, given):
            self.task = given
        else:
            self.task = self.tasks.create(label, "", call.caller.session or None)
        self.ctx = rt.context(None, call.caller.session or None, call.origin, self.task)
        self.cancel = threading.Event()  # set on the reactor; the worker thread checks it
        self.done = 0  # bytes moved so far, written by the worker thread
        self.total = 1

    def cancellable(self, yes: bool = True) -> None:
        self.tasks.set_cancellable(self.task, yes)

    def check(self) -> None:
        """In the worker: stop if asked to."""
        if self.cancel.is_set():
            raise Cancelled()

    async def watch(self, job: defer.Deferred, on_cancel=None):
        """Await the worker's Deferred, reporting progress and passing on cancellation
        (`on_cancel()` then unblocks a worker waiting on the network)."""
        reported = 0.0
        state = {"ended": False, "waiter": None}

        def wake(result=None):
            waiter = state["waiter"]
            if waiter is not None and not waiter.called:
                waiter.callback(None)
            return result

        def ended(result):
            state["ended"], state["result"] = True, result
            wake()
            # the failure, if any, is raised below
        job.addBoth(ended)
        while not state["ended"]:
            state["waiter"] = defer.Deferred()
            self.ctx.rt.sleep(POLL).addBoth(wake)
            await state["waiter"]
            if self.tasks.cancel_requested(self.task) and not self.cancel.is_set():
                self.cancel.set()
                if on_cancel is not None:
                    on_cancel()
            fraction = min(0.99, self.done / max(1, self.total))
            if fraction - reported >= 0.01:
                reported = fraction
                self.tasks.set_progress(self.task, fraction)
        result = state["result"]
        if isinstance(result, Failure):
            result.raiseException()
        return result

    async def stream(self, job: defer.Deferred, sink: "ResponseSink"):
        """Await a worker writing a response through `sink` (it ends with `sink.drain()`),
        cancellable meanwhile. A cancel asked for before the end, even one that came as
        the worker finished, cuts the stream and raises Cancelled: the response is not
        finished yet, so the client sees it cut and the task ends `cancelled`."""
        self.cancellable(True)
        try:
            result = await self.watch(job, on_cancel=sink.abort)
        finally:
            self.cancellable(False)
        if self.cancel.is_set() or self.tasks.cancel_requested(self.task):
            self.cancel.set()
            sink.abort()
            raise Cancelled()
        return result

    def succeed(self, fragment: str) -> None:
        self.tasks.succeed(self.task, fragment)

    def fail(self, e: BaseException) -> ApiError:
        if self.cancel.is_set():
            e = Cancelled()
        elif isinstance(e, Gone) and self.exporting:
            e = ApiError("INTERNAL_ERROR", f"{e} before the transfer ended")
        err = as_api_error(e, self.task, self.ctx.store)
        if self.ctx.store.exists("task", self.task):
            self.tasks.fail(self.task, err.description)
        log.info("task %s failed: %s", self.task, err.description, exc_info=e)
        return err


class BodyPipe:
    """A streaming request body on its way to a worker thread: the router's receiver on
    the reactor side, a blocking `read(n)` on the thread side."""

    def __init__(self, call, reactor, limit: int = PIPE_LIMIT):
        self.call, self.reactor, self.limit = call, reactor, limit
        self._cond = threading.Condition()
        self._pieces = collections.deque()
        self._held = 0
        self._ended = False
        self._error: BaseException | None = None
        self._paused = False
        self.received = 0
        call.at_end(self._gone)
        transport = getattr(call.request.channel, "transport", None)
        if transport is not None and hasattr(transport, "bufferSize"):
            transport.bufferSize = READ_SIZE  # fewer, larger socket reads for a bulk body

    # reactor side
    def dataReceived(self, data: bytes) -> None:
        with self._cond:
            self._pieces.append(data)
            self._held += len(data)
            self.received += len(data)
            self._cond.notify_all()
            full = self._held >= self.limit and not self._paused
            if full:
                self._paused = True
        if full:
            self.call.pause_body()

    def bodyEnded(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def _gone(self) -> None:
        with self._cond:
            if not self._ended:
                self._error = Gone("the client closed the connection before the body ended")
                self._ended = True
            self._cond.notify_all()

    def _resume(self) -> None:
        if self._paused and not self.call.over:
            self._paused = False
            self.call.resume_body()

    # thread side
    def read(self, n: int = -1) -> bytes:
        with self._cond:
            while not self._pieces and not self._ended:
                self._cond.wait()
            if not self._pieces:
                if self._error is not None:
                    raise self._error
                return b""
            piece = self._pieces.popleft()
            if 0 <= n < len(piece):
                piece, rest = piece[:n], piece[n:]
                self._pieces.appendleft(rest)
            self._held -= len(piece)
            resume = self._paused and self._held < self.limit // 2
        if resume:
            self.reactor.callFromThread(self._resume)
        return piece

    def stop(self) -> None:
        """The worker is done with the body: wake any reader, drop what is held."""
        with self._cond:
            self._ended = True
            self._pieces.clear()
            self._held = 0
            self._cond.notify_all()


@implementer(IPushProducer)
class ResponseSink:
    """A response written from a worker thread: up to `depth` pieces wait for the reactor
    (so the worker prepares the next ones while the last are sent), and `write` blocks
    beyond that while the client is slow."""

    def __init__(self, call, reactor, depth: int = SINK_DEPTH):
        self.call, self.reactor, self.depth = call, reactor, depth
        self._slots = threading.Semaphore(depth)
        self._queue = collections.deque()
        self._paused = False
        self._flowing = threading.Event()  # set while the connection takes more (or is gone)
        self._flowing.set()
        self._closing = False
        self.gone = False
        # pieces handed to write() and not yet given to the connection, and whether the
        # connection went while some were (or while it held data back): a client that
        # leaves once it has the whole response (Content-Length) has not cut it
        self._unsent = 0
        self._count = threading.Lock()
        self.cut = False
        if call.over:  # the client left before the stream began
            self.stopProducing()
            raise Gone("the client closed the connection")
        call.request.registerProducer(self, True)
        call.at_end(self.stopProducing)

    # the producer, on the reactor
    def pauseProducing(self):
        self._paused = True
        if not self.gone:
            self._flowing.clear()

    def resumeProducing(self):
        self._paused = False
        self._pump()
        if not self._paused:
            self._flowing.set()

    def stopProducing(self):
        """The connection is gone (or being cut): drop what waits and wake the worker,
        whether it waits for a slot or for a paused connection to drain."""
        if not self.gone:
            with self._count:  # with gone, so that no write() counts a piece after this
                self.cut = self._unsent > 0 or self._paused
                self.gone = True
            self._queue.clear()
            for _ in range(self.depth + 1):  # whoever waits for a slot: wake up and see
                self._slots.release()
            self._flowing.set()

    def _push(self, pieces) -> None:
        if self.gone:
            return
        self._queue.append(pieces)
        self._pump()

    def _pump(self) -> None:
        while self._queue and not self._paused and not self.gone:
            for piece in self._queue.popleft():
                self.call.request.write(piece)
            with self._count:
                self._unsent -= 1
            self._slots.release()
        if self._closing and not self._queue and not self.call.over:
            self.call.request.unregisterProducer()
            self.call.request.finish()

    # the worker thread
    def write(self, data) -> None:
        """Queue data (bytes, or a list of them to send in order, not copied) for the
        client, waiting while `depth` writes already wait."""
        pieces = [data] if isinstance(data, bytes) else [p for p in data if p]
        if not pieces:
            return
        self._slots.acquire()
        with self._count:
            if self.gone:
                raise Gone("the client closed the connection")
            self._unsent += 1
        self.reactor.callFromThread(self._push, pieces)

    def drain(self) -> None:
        """Wait until every piece written has been handed to the connection and the
        connection is not holding the response back (what is left is in the kernel's
        buffers, as after xapi's last write); Gone if the client left before that. A client
        that closes as soon as it has the whole response (curl does) has not cut it. What the
        connection holds below its pause threshold (Twisted's transport buffer) counts as
        given, as what the kernel holds does."""
        for _ in range(self.depth):  # every slot back: nothing waits for the reactor
            self._slots.acquire()
        for _ in range(self.depth):
            self._slots.release()
        self._flowing.wait()
        if self.gone and self.cut:
            raise Gone("the client closed the connection")

    # the reactor again
    def abort(self) -> None:
        """Drop the connection now (a cancelled transfer), unblocking the worker."""
        self.stopProducing()
        transport = self.call.request.channel.transport if self.call.request.channel else None
        if transport is not None:
            transport.abortConnection()

    def close(self) -> None:
        """End the response once what waits has been sent."""
        self._closing = True
        self._pump()
