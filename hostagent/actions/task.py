"""task: explicit messages (create, destroy, cancel, and setters for owners)."""

from ..datamodel.errors import ApiError
from ..rpc.coerce import now_text

TERMINAL = ("success", "failure", "cancelled")


def create(ctx, label, description):
    return ctx.tasks.create(label, description, ctx.session)


def destroy(ctx, self):
    ctx.need("task", self)
    ctx.tasks.destroy(self)
    return ""


def cancel(ctx, task):
    ctx.need("task", task)
    ctx.tasks.request_cancel(task)
    return ""


def _own(ctx, ref):
    ctx.need("task", ref)
    if ctx.tasks.owner(ref) != ctx.session:
        raise ApiError("RBAC_PERMISSION_DENIED", ctx.entry.wire,
                       "only the session that owns a task may set its fields")


def set_status(ctx, self, value):
    _own(ctx, self)
    with ctx.store.transaction():
        ctx.store.set("task", self, "status", value)
        if value in TERMINAL:
            ctx.store.set("task", self, "finished", now_text(ctx.clock()))
            ctx.store.set_private("task", self, finished_at=ctx.clock(), cancellable=False)
    return ""


def set_progress(ctx, self, value):
    _own(ctx, self)
    ctx.tasks.set_progress(self, value)
    return ""


def set_result(ctx, self, value):
    _own(ctx, self)
    with ctx.store.transaction():
        ctx.store.set("task", self, "result", value)
    return ""


def set_error_info(ctx, self, value):
    _own(ctx, self)
    with ctx.store.transaction():
        ctx.store.set("task", self, "error_info", value)
    return ""


HANDLERS = {f"task.{f.__name__}": f for f in
            (create, destroy, cancel, set_status, set_progress, set_result, set_error_info)}
