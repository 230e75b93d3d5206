"""The hypervisor port's failures as XenAPI errors, in one table."""

import logging

from ..backends.hypervisor import HypervisorError, HypervisorUnavailable, NoSuchDomain, Unsupported
from ..datamodel.errors import ApiError

log = logging.getLogger("hostagent.vm")


def api_error(e: HypervisorError, vm: str, what: str) -> ApiError:
    if isinstance(e, HypervisorUnavailable):
        return ApiError("INTERNAL_ERROR", f"the hypervisor cannot be reached: {e}")
    if isinstance(e, NoSuchDomain):
        return ApiError("VM_BAD_POWER_STATE", vm, "running", "halted")
    if isinstance(e, Unsupported):
        return ApiError("OPERATION_NOT_ALLOWED",
                        f"{what}: the hypervisor cannot do this ({e})")
    return ApiError("INTERNAL_ERROR", f"{what} failed in the hypervisor: {e}")


class translated:
    """`with translated(vm, "VM.start"):` turns a HypervisorError into its ApiError."""

    def __init__(self, vm: str, what: str):
        self.vm, self.what = vm, what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, HypervisorError):
            log.warning("%s of %s: %s", self.what, self.vm, exc)
            raise api_error(exc, self.vm, self.what) from None
        return False
