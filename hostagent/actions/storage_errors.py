"""StorageError (the storage port's failures) as XenAPI errors, in one table.

Drivers name volumes and SRs by uuid and cannot know task refs; xapi's
parameters are refs. `api_error(store, e, task)` swaps in the refs the store
knows (keeping the uuid when it knows none) and fills in the task of a
cancelled call. Every other code (SR_BACKEND_FAILURE_<n>, SR_FULL,
SR_UNKNOWN_DRIVER) passes through with its parameters.
"""

from ..backends.storage import StorageError
from ..datamodel.errors import ApiError
from ..datamodel.error_table import ERRORS


def _ref(store, cls: str, uuid: str) -> str:
    return store.by_uuid(cls, uuid) or uuid


# code -> (store, params, task) -> the parameters of the API error
_TRANSLATE = {
    "VDI_IN_USE": lambda store, p, task: (_ref(store, "VDI", p[0]), p[1]),
    "VDI_READONLY": lambda store, p, task: (_ref(store, "VDI", p[0]),),
    "VDI_MISSING": lambda store, p, task: (_ref(store, "SR", p[0]), _ref(store, "VDI", p[1])),
    "TASK_CANCELLED": lambda store, p, task: (task or (p[0] if p else ""),),
}


def api_error(store, e: StorageError, task: str = None) -> ApiError:
    """The XenAPI error a storage failure becomes."""
    translate = _TRANSLATE.get(e.code)
    params = translate(store, e.params, task) if translate else e.params
    names = ERRORS.get(e.code)
    if names is not None and len(names) != len(params):
        # a driver error with an unexpected shape: say what it was rather than crash
        return ApiError("INTERNAL_ERROR", f"storage error {e.code} {list(e.params)}")
    try:
        return ApiError(e.code, *params)
    except KeyError:
        return ApiError("INTERNAL_ERROR", f"unknown storage error {e.code} {list(e.params)}")


class translated:
    """`with translated(ctx):` turns a StorageError raised inside into its ApiError."""

    def __init__(self, ctx):
        self.ctx = ctx

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, StorageError):
            raise api_error(self.ctx.store, exc, self.ctx.task) from None
        return False
