"""VM.import: an XVA the agent fetches from an http(s) URL, imported as /import does.

The body is read in a transfer thread (backends.fetch.open_stream, blocking reads of at
most a chunk, so memory stays bounded) and goes through /import's own steps: compression
told by its magic bytes, ova.xml first, each chunk written once its checksum matched
(`force` takes mismatches), the records made only once every disk is complete, and on
any failure the new volumes destroyed again. `full_restore` is /import's `restore` (the
archive's UUIDs and MACs kept). The call's task (Async.VM.import) shows the progress and
can be cancelled. As xapi: a server answering with an error status fails the call with
IMPORT_ERROR [status line]; an unreachable server or a failed read, IMPORT_ERROR [why].
"""

import threading

from ..actions import xva_import
from ..backends.fetch import FetchError, open_stream
from ..datamodel.errors import ApiError
from ..xva import ovaxml
from .transfer_common import Work, as_api_error
from .transfer_import import import_disks, import_target, open_archive


class _NoTask:
    """The task manager as a call without a task sees it: nothing to report or cancel."""

    def set_progress(self, task, fraction):
        """No task shows the progress of a call made without one."""

    def set_cancellable(self, task, yes):
        """A call without a task cannot be cancelled."""

    def cancel_requested(self, task) -> bool:
        return False


class CallWork(Work):
    """A transfer's progress and cancellation for an API call's context (no HTTP request)."""

    def __init__(self, ctx):  # not Work.__init__: that adopts a request's task, this is the call's
        self.exporting = False
        self.ctx = ctx
        self.task = ctx.task
        self.tasks = ctx.tasks if ctx.task else _NoTask()
        self.cancel = threading.Event()
        self.done = 0
        self.total = 1


class UrlImport:
    """The port behind VM.import: `await url_import(ctx, url, sr, full_restore, force)`."""

    def __init__(self, transfers):
        self.t = transfers

    async def __call__(self, ctx, url: str, sr: str, full_restore: bool, force: bool) -> list[str]:
        sr = import_target(ctx, sr)
        work = CallWork(ctx)
        work.cancellable(True)
        stream = None
        try:
            stream = await self.t.in_pool(open_stream, url)
            reader, ova = await self.t.in_pool(open_archive, stream, force)
            _, objects = await self.t.in_pool(ovaxml.read, ova)
            plan = xva_import.plan(objects)
            return await import_disks(self.t, work, reader, plan, sr, full_restore)
        except FetchError as e:
            raise ApiError("IMPORT_ERROR", str(e)) from None
        except ApiError:
            if work.cancel.is_set():
                raise ApiError("TASK_CANCELLED", work.task) from None
            raise
        except Exception as e:  # noqa: BLE001 - the archive's and storage's errors, as XenAPI's
            if work.cancel.is_set():
                raise ApiError("TASK_CANCELLED", work.task) from None
            raise as_api_error(e, work.task, ctx.store) from None
        finally:
            if stream is not None:
                await self.t.in_pool(stream.close)
