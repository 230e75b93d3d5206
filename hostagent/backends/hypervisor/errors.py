"""libvirt's errors as the hypervisor port's own, translated in this one place."""

import libvirt

# libvirt prints every error to stderr by default; the adapter reports them itself
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


class HypervisorError(Exception):
    """A libvirt failure: `code` is libvirt's error number (0 when unknown)."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.code = code


class HypervisorUnavailable(HypervisorError):
    """The connection cannot be opened now (the daemon is down, the URI is wrong)."""


class NoSuchDomain(HypervisorError):
    """The domain does not exist (any more)."""


class Unsupported(HypervisorError):
    """The driver cannot do this (the test driver cannot hot-plug devices, say)."""


class MigrationFailed(HypervisorError):
    """A live migration did not happen (the domain runs on where it was)."""


class NeedsHVM(Unsupported):
    """The domain cannot run on this hypervisor as described (a PV guest on KVM)."""


def translate(e: "libvirt.libvirtError") -> HypervisorError:
    code = e.get_error_code() or 0
    message = e.get_error_message() or str(e)
    if code in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN):
        return HypervisorUnavailable(message, code)
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return NoSuchDomain(message, code)
    if code in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED):
        return Unsupported(message, code)
    return HypervisorError(message, code)
