"""Task objects: creation, progress, completion, cancellation, collection.

A task belongs to the session that made it (`session.tasks`). It is
`pending` until its operation ends in `success` (with `result` as an XML-RPC
value fragment), `failure` (with `error_info`) or `cancelled`. Collection
follows xapi: completed tasks go 65 minutes after finishing, pending tasks
that made no progress for 24 hours go, and at most 200 completed tasks are
kept (the oldest go first). All timing comes from the injected clock.
"""

import logging
from dataclasses import dataclass
from typing import Callable, Optional

from ..datamodel.errors import ApiError
from ..datamodel.types import EPOCH, NULL_REF
from ..db.store import Store
from .coerce import now_text

log = logging.getLogger("hostagent.tasks")

RESTARTED = "the agent restarted while this task was pending; its work did not finish"


@dataclass(frozen=True)
class TaskLimits:
    completed_timeout: float = 65 * 60.0
    pending_timeout: float = 24 * 3600.0
    max_completed: int = 200


class TaskManager:
    def __init__(self, store: Store, clock: Callable[[], float], host_ref: Callable[[], str],
                 limits: TaskLimits = TaskLimits()):
        self.store = store
        self.clock = clock
        self.host_ref = host_ref
        self.limits = limits

    # --------------------------------------------------------------- creation
    def create(self, label: str, description: str = "", session: Optional[str] = None,
               cancellable: bool = False, subtask_of: str = NULL_REF) -> str:
        now = self.clock()
        with self.store.transaction():
            ref = self.store.create("task", {
                "name_label": label, "name_description": description, "status": "pending",
                "progress": 0.0, "created": now_text(now), "finished": EPOCH,
                "resident_on": self.host_ref(), "type": "<none/>", "subtask_of": subtask_of,
            }, private={"session": session, "cancellable": cancellable, "cancel_requested": False,
                        "destroy_when_done": False, "progress_at": now, "finished_at": None})
            if session and self.store.exists("session", session):
                tasks = self.store.get("session", session)["tasks"]
                self.store.set("session", session, "tasks", tasks + [ref])
        return ref

    def owner(self, ref: str) -> Optional[str]:
        return self.store.private_of("task", ref).get("session")

    # --------------------------------------------------------------- progress
    def set_progress(self, ref: str, progress: float) -> None:
        if not self.store.exists("task", ref):
            return
        progress = min(1.0, max(-1.0, float(progress)))
        with self.store.transaction():
            self.store.set("task", ref, "progress", progress)
            self.store.set_private("task", ref, progress_at=self.clock())

    def set_cancellable(self, ref: str, cancellable: bool) -> None:
        with self.store.transaction():
            self.store.set_private("task", ref, cancellable=cancellable)

    def cancel_requested(self, ref: str) -> bool:
        return self.store.exists("task", ref) and self.store.private["task"][ref]["cancel_requested"]

    def request_cancel(self, ref: str) -> None:
        rec = self.store.get("task", ref)
        priv = self.store.private["task"][ref]
        if rec["status"] != "pending" or not priv["cancellable"]:
            raise ApiError("OPERATION_NOT_ALLOWED", "the task is not pending or cannot be cancelled")
        with self.store.transaction():
            self.store.set_private("task", ref, cancel_requested=True)
            self.store.set("task", ref, "status", "cancelling")
        log.info("task %s: cancel requested", rec["name_label"])

    # ------------------------------------------------------------- completion
    def succeed(self, ref: str, result_fragment: str) -> None:
        self._finish(ref, "success", result=result_fragment, progress=1.0)

    def fail(self, ref: str, description: list) -> None:
        status = "cancelled" if description and description[0] == "TASK_CANCELLED" else "failure"
        self._finish(ref, status, error_info=[str(x) for x in description])

    def _finish(self, ref: str, status: str, **values) -> None:
        if not self.store.exists("task", ref):
            return
        now = self.clock()
        with self.store.transaction():
            self.store.update("task", ref, status=status, finished=now_text(now), **values)
            self.store.set_private("task", ref, finished_at=now, cancellable=False)
            if self.store.private["task"][ref]["destroy_when_done"]:
                self._delete(ref)

    def destroy(self, ref: str) -> None:
        """Delete a finished task now; a pending one when it finishes."""
        rec = self.store.get("task", ref)
        with self.store.transaction():
            if rec["status"] in ("pending", "cancelling"):
                self.store.set_private("task", ref, destroy_when_done=True)
            else:
                self._delete(ref)

    def discard(self, ref: str) -> None:
        """Delete a task whatever its state (the internal task of a synchronous call)."""
        if self.store.exists("task", ref):
            with self.store.transaction():
                self._delete(ref)

    def fail_interrupted(self) -> int:
        """At start-up: a task still pending belonged to work that died with the agent.
        It fails with INTERNAL_ERROR saying so (xapi keeps no tasks across a restart; ours
        stay so that a client polling one learns how it ended). Returns how many."""
        stale = [ref for ref, rec in self.store.all("task").items()
                 if rec["status"] in ("pending", "cancelling")]
        for ref in stale:
            self.fail(ref, ["INTERNAL_ERROR", RESTARTED])
            log.warning("task %s failed: %s", self.store.get("task", ref)["name_label"]
                        if self.store.exists("task", ref) else ref, RESTARTED)
        return len(stale)

    def _delete(self, ref: str) -> None:
        session = self.store.private["task"][ref].get("session")
        if session and self.store.exists("session", session):
            tasks = self.store.get("session", session)["tasks"]
            self.store.set("session", session, "tasks", [t for t in tasks if t != ref])
        self.store.delete("task", ref)

    # ------------------------------------------------------------- collection
    def collect(self) -> int:
        """Garbage-collect tasks as xapi does; returns how many went."""
        now = self.clock()
        doomed, completed = [], []
        for ref, rec in self.store.all("task").items():
            priv = self.store.private["task"][ref]
            if rec["status"] in ("pending", "cancelling"):
                if now - priv["progress_at"] > self.limits.pending_timeout:
                    doomed.append(ref)
            elif now - (priv["finished_at"] or now) > self.limits.completed_timeout:
                doomed.append(ref)
            else:
                completed.append((priv["finished_at"] or now, ref))
        excess = len(completed) - self.limits.max_completed
        if excess > 0:
            doomed += [ref for _, ref in sorted(completed)[:excess]]
        if doomed:
            with self.store.transaction():
                for ref in doomed:
                    self._delete(ref)
            log.info("collected %d tasks", len(doomed))
        return len(doomed)
