"""The exceptions of sm: every driver error is an SMError carrying a XenAPI code.

``code`` is the XenAPI error code string and ``params`` its parameters (all
strings), so the agent can turn any driver failure into an API error without
knowing the driver. Volumes and SRs are named by uuid: the agent swaps in refs
where xapi's parameter is a ref (``VDI_MISSING [sr, vdi]``, ``VDI_IN_USE``).
Back-end failures take their number and message from ``sm.errorcodes``.
"""

from sm import errorcodes


class SMError(Exception):
    """Root of every sm error: a XenAPI error code and its string parameters."""

    def __init__(self, code: str, params=()):
        self.code = code
        self.params = tuple(str(p) for p in params)
        super().__init__(code, *self.params)

    def __str__(self):
        return f"{self.code} {list(self.params)}"


class UnknownDriver(SMError):
    """No driver is registered for an SR type."""

    def __init__(self, type: str):
        self.type = type
        super().__init__("SR_UNKNOWN_DRIVER", [type])


class BackendFailure(SMError):
    """SR_BACKEND_FAILURE_<n> ["", message [opterr=...], stderr] from a table entry."""

    def __init__(self, name: str, opterr: str | None = None, stderr: str = ""):
        self.name = name
        self.opterr = opterr
        number, _ = errorcodes.lookup(name)
        self.number = number
        super().__init__(errorcodes.xenapi_code(name),
                         ["", errorcodes.message(name, opterr), stderr])


class ConfigMissing(BackendFailure):
    """A required device_config key is absent; the driver declares which error that is."""

    def __init__(self, key: str, driver: str, error: str = "ConfigParamsMissing"):
        self.key = key
        self.driver = driver
        # Specific entries ("missing the server parameter") already name the key,
        # as xapi sm reports them; the generic one needs it spelled out.
        opterr = (f"device_config key {key!r} is required by the {driver} driver"
                  if error == "ConfigParamsMissing" else None)
        super().__init__(error, opterr)


class ConfigInvalid(BackendFailure):
    """A device_config value is present but unusable (bad path, bad version...)."""

    def __init__(self, key: str, value: str, reason: str, error: str = "InvalidArg"):
        self.key = key
        self.value = value
        super().__init__(error, f"{key}={value!r}: {reason}")


class SRFull(SMError):
    """Not enough space: SR_FULL [requested, maximum] in bytes."""

    def __init__(self, requested: int, maximum: int):
        self.requested = requested
        self.maximum = maximum
        super().__init__("SR_FULL", [requested, maximum])


class SRNotEmpty(BackendFailure):
    """SR destroy while volumes remain (xapi sm's SRNotEmpty, 39)."""

    def __init__(self, count: int):
        self.count = count
        super().__init__("SRNotEmpty", f"{count} volume(s) still exist in the SR")


class VolumeInUse(SMError):
    """The volume is attached (or a base other volumes depend on): VDI_IN_USE [vdi, op]."""

    def __init__(self, uuid: str, operation: str):
        self.uuid = uuid
        self.operation = operation
        super().__init__("VDI_IN_USE", [uuid, operation])


class VolumeNotFound(SMError):
    """No such volume in this SR: VDI_MISSING [sr, vdi]."""

    def __init__(self, uuid: str, sr_uuid: str = ""):
        self.uuid = uuid
        self.sr_uuid = sr_uuid
        super().__init__("VDI_MISSING", [sr_uuid, uuid])


class VolumeExists(BackendFailure):
    """A volume with this uuid already exists (xapi sm's VDIExists, 43)."""

    def __init__(self, uuid: str):
        self.uuid = uuid
        super().__init__("VDIExists", uuid)


class VolumeReadOnly(SMError):
    """Write access to a read-only volume: VDI_READONLY [vdi]."""

    def __init__(self, uuid: str):
        self.uuid = uuid
        super().__init__("VDI_READONLY", [uuid])


class Unsupported(BackendFailure):
    """The driver (or this host) cannot do the operation; says why (xapi sm's 38)."""

    def __init__(self, operation: str, reason: str):
        self.operation = operation
        self.reason = reason
        super().__init__("Unimplemented", f"{operation}: {reason}")


class ToolFailed(BackendFailure):
    """An external command exited with a status outside its ok codes."""

    def __init__(self, cmd, rc: int, stdout: str, stderr: str, error: str = "SMGeneral"):
        self.cmd = tuple(cmd)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        detail = (stderr or stdout).strip().splitlines()
        opterr = f"{self.cmd[0] if self.cmd else '?'} exited {rc}"
        if detail:
            opterr += f": {detail[-1]}"
        super().__init__(error, opterr, stderr)


class Timeout(BackendFailure):
    """An external command (or a lock wait) did not finish in time."""

    def __init__(self, cmd, seconds: float, error: str = "SMGeneral"):
        self.cmd = tuple(cmd)
        self.seconds = seconds
        what = " ".join(self.cmd) if self.cmd else "operation"
        super().__init__(error, f"{what} timed out after {seconds:g}s")


class Cancelled(SMError):
    """A long operation was cancelled through its progress callback: TASK_CANCELLED."""

    def __init__(self, operation: str = ""):
        self.operation = operation
        # xapi's parameter is the task ref, which only the agent knows.
        super().__init__("TASK_CANCELLED", [operation])
