"""What can go wrong in `xe`, and how each is told to the user (stderr, exit 1).

A XenAPI failure prints a sentence saying what it means, the error code, then one
`name: value` line per parameter (names from the error table). Usage errors
name the missing or unknown parameter and point at `xe help`.
"""

HINT = "For usage run: 'xe help'"


class XeError(Exception):
    """Base of everything `xe` reports instead of a traceback."""

    exit_code = 1

    def lines(self, model=None):
        return [str(self)]


class UsageError(XeError):
    def lines(self, model=None):
        return [str(self), HINT]


class ConnectError(XeError):
    """The agent could not be reached, or the connection broke."""


class Failure(XeError):
    """A XenAPI failure: `description` is [code, param, ...] as on the wire."""

    def __init__(self, description):
        super().__init__(*description)
        self.description = list(description)

    @property
    def code(self):
        return self.description[0]

    @property
    def params(self):
        return self.description[1:]

    def lines(self, model=None, describe=None):
        """`describe(name, value)` may turn a reference into `uuid (name-label)`, as xe prints it."""
        names = (model.errors.get(self.code) if model is not None else None)
        out = [sentence(self.code, self.params), f"code: {self.code}"]
        if names is not None and len(names) == len(self.params):
            out += [f"{n}: {describe(n, v) if describe else v}" for n, v in zip(names, self.params)]
        elif self.params:
            out.append("parameters: " + ", ".join(self.params))
        return out


# Our own sentences for the errors an xe user meets most; others are spelt from their code.
SENTENCES = {
    "SESSION_AUTHENTICATION_FAILED": "Authentication failed: the user name or password is wrong.",
    "HANDLE_INVALID": "The object no longer exists (or never did).",
    "UUID_INVALID": "No object of this class has that uuid.",
    "VM_BAD_POWER_STATE": "The VM is not in the power state this operation needs.",
    "VM_IS_TEMPLATE": "This operation cannot be performed on a template.",
    "VM_IS_SNAPSHOT": "This operation cannot be performed on a snapshot.",
    "OPERATION_NOT_ALLOWED": "The operation is not allowed now.",
    "OTHER_OPERATION_IN_PROGRESS": "Another operation is in progress on this object; try again when it ends.",
    "MAP_DUPLICATE_KEY": "The map already holds that key; remove it first.",
    "INVALID_VALUE": "A value given is not valid for this parameter.",
    "FIELD_TYPE_ERROR": "A value given is not of the field's type.",
    "MESSAGE_PARAMETER_COUNT_MISMATCH": "The call was made with the wrong number of parameters.",
    "MESSAGE_METHOD_UNKNOWN": "The agent does not know this call.",
    "SR_FULL": "There is not enough space left on the SR.",
    "SR_BACKEND_FAILURE": "The storage driver failed.",
    "VDI_IN_USE": "The disk is in use by a VM.",
    "TASK_CANCELLED": "The task was cancelled.",
    "INTERNAL_ERROR": "The agent met an internal error.",
    "PERMISSION_DENIED": "Permission denied.",
    "RBAC_PERMISSION_DENIED": "You are not allowed to do this.",
    "NOT_IMPLEMENTED": "The agent does not implement this.",
    "LICENCE_RESTRICTION": "The licence does not allow this.",
    "NETWORK_CONTAINS_VIF": "The network still has VIFs on it.",
    "NETWORK_CONTAINS_PIF": "The network still has PIFs on it.",
    "VLAN_TAG_INVALID": "The VLAN tag must be between 0 and 4094.",
    "PIF_VLAN_EXISTS": "That VLAN already exists on the interface.",
    "PIF_IS_VLAN": "The interface is a VLAN.",
    "PIF_ALREADY_BONDED": "The interface is already in a bond.",
    "PIF_BOND_NEEDS_MORE_MEMBERS": "A bond needs at least two interfaces.",
    "BRIDGE_NAME_EXISTS": "A network with this bridge name exists already.",
    "HOST_IS_SLAVE": "This host is a pool member: connect to the pool master instead.",
    "EVENTS_LOST": "Too many events happened to follow; start again.",
    "SESSION_INVALID": "The session is not (or no longer) valid.",
    "VALUE_NOT_SUPPORTED": "The value is not supported here.",
    "DEVICE_ALREADY_EXISTS": "A device with this number exists already.",
    "VM_HAS_VBD_MISSING": "The VM has no such disk.",
    "SR_HAS_NO_PBDS": "The SR is not attached to any host.",
    "SR_NOT_EMPTY": "The SR still holds disks.",
    "SR_UNKNOWN_DRIVER": "There is no storage driver of that type.",
    "VM_REQUIRES_SR": "The VM needs an SR that is not available.",
    "VM_NO_EMPTY_CD_VBD": "The VM has no empty CD drive.",
    "IMPORT_ERROR": "The file is not an export the agent can import.",
    "IMPORT_ERROR_PREMATURE_EOF": "The file ended before the export it holds did.",
    "IMPORT_INCOMPATIBLE_VERSION": "The export comes from a version the agent cannot import.",
    "VDI_IO_ERROR": "Reading or writing the disk's contents failed.",
}


def sentence(code: str, params) -> str:
    if code in SENTENCES:
        return SENTENCES[code]
    if code.startswith("SR_BACKEND_FAILURE"):
        return SENTENCES["SR_BACKEND_FAILURE"]
    words = code.replace("_", " ").lower()
    return f"The operation failed: {words}."
