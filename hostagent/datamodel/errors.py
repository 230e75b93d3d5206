"""XenAPI errors, built from the error table so codes and parameters cannot drift.

`ApiError("HANDLE_INVALID", "VM", ref)` checks the code exists and that it is
given exactly the parameters the table names. Everything the agent answers
with as an API failure is one of these.
"""

from .error_table import ERRORS


class ApiError(Exception):
    """An API-level failure: `code` plus string parameters, as on the wire."""

    def __init__(self, code: str, *params):
        names = ERRORS.get(code)
        if names is None and _numbered_backend_failure(code):
            names = ERRORS["SR_BACKEND_FAILURE"]  # SR_BACKEND_FAILURE_<n>: a storage driver's own code
        if names is None:
            raise KeyError(f"unknown XenAPI error code {code}")
        if len(names) == 1 and len(params) == 1 and isinstance(params[0], (list, tuple)) and params[0]:
            params = tuple(params[0])  # a list-valued parameter: one wire parameter per item, as xapi
        elif len(params) != len(names):
            raise TypeError(f"{code} takes {len(names)} parameters {names}, got {len(params)}")
        self.code = code
        self.params = tuple(_text(p) for p in params)
        super().__init__(code, *self.params)

    @property
    def description(self):
        """The ErrorDescription list: [code, param, ...]."""
        return [self.code, *self.params]

    def __repr__(self):
        return f"ApiError{tuple(self.description)!r}"


def _numbered_backend_failure(code: str) -> bool:
    head, _, number = code.rpartition("_")
    return head == "SR_BACKEND_FAILURE" and number.isdigit()


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def internal_error(message: str) -> ApiError:
    return ApiError("INTERNAL_ERROR", message)
