"""Port calls between pool members as JSON: what may be called, and how values travel.

The master runs host-bound work on a member by calling that member's ports (the same
interfaces the actions use on their own host) through `POST /pool/v1/port`. Only the
methods listed in `ALLOWED` may be called. Arguments and results are JSON-safe:
scalars and lists as they are, tuples, dicts and the ports' own dataclasses tagged
(`{"~": name, "v": ...}`), anything else refused (`WireError`). The ports' exceptions
(hypervisor and storage failures) travel by class name and come back as the same class,
so the master's actions translate them into the same XenAPI errors as for local work.
"""

import dataclasses
from typing import Any

from ..backends.domain import Boot, Disk, Domain, Nic
from ..backends.hypervisor import (
    Capabilities,
    DomainState,
    HypervisorError,
    HypervisorUnavailable,
    MigrationFailed,
    NeedsHVM,
    NoSuchDomain,
    Unsupported,
)
from ..backends.storage import Attached, StorageError

TAG, VALUE = "~", "v"


@dataclasses.dataclass(frozen=True)
class DriverRef:
    """An SR driver named by what makes one (`Storage.driver`'s arguments): the member makes
    its own driver object from it."""

    sr_type: str
    sr_uuid: str
    device_config: dict


# the ports' methods a master may call on a member. Not here: calls whose arguments name
# files on the master (save, restore, vol_fill_from), or that run arbitrary functions (run)
ALLOWED = {
    "domains": frozenset({"capabilities", "state", "list", "start", "shutdown", "reboot", "destroy", "pause",
                          "unpause", "attach_disk", "detach_disk", "change_media", "attach_nic", "detach_nic",
                          "set_memory", "set_vcpus", "migrate", "migration_uri"}),
    "storage": frozenset({"attach", "detach"}),
}

TYPES = {cls.__name__: cls for cls in (Boot, Disk, Nic, Domain, DomainState, Capabilities, Attached, DriverRef)}
ERRORS = {cls.__name__: cls for cls in (HypervisorError, HypervisorUnavailable, NoSuchDomain, Unsupported,
                                        NeedsHVM, MigrationFailed)}


class WireError(ValueError):
    """A value that cannot travel, or a message that is not a port call."""


def encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {TAG: "tuple", VALUE: [encode(v) for v in value]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise WireError("a dict whose keys are not all strings cannot travel")
        return {TAG: "dict", VALUE: {k: encode(v) for k, v in value.items()}}
    name = type(value).__name__
    if dataclasses.is_dataclass(value) and TYPES.get(name) is type(value):
        return {TAG: name, VALUE: {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    raise WireError(f"a {name} cannot travel between pool members")


def decode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict) or set(value) != {TAG, VALUE}:
        raise WireError("not a value encoded for the wire")
    tag, inner = value[TAG], value[VALUE]
    if tag == "tuple" and isinstance(inner, list):
        return tuple(decode(v) for v in inner)
    if tag == "dict" and isinstance(inner, dict):
        return {k: decode(v) for k, v in inner.items()}
    cls = TYPES.get(tag) if isinstance(tag, str) else None
    if cls is None or not isinstance(inner, dict):
        raise WireError(f"unknown type on the wire: {tag!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    if not set(inner) <= names:
        raise WireError(f"{tag} has no field {min(set(inner) - names)}")
    try:
        return cls(**{k: decode(v) for k, v in inner.items()})
    except TypeError as e:
        raise WireError(f"{tag}: {e}") from None


def request(port: str, op: str, args) -> dict[str, Any]:
    """The body of a port call; WireError when the call is not allowed or cannot travel."""
    check(port, op)
    return {"port": port, "op": op, "args": [encode(a) for a in args]}


def check(port, op) -> None:
    if not isinstance(port, str) or not isinstance(op, str) or op not in ALLOWED.get(port, ()):
        raise WireError(f"{port}.{op} is not a port call members take")


def parse(payload) -> tuple:
    """(port, op, args) of a port call's body, checked against the allow-list."""
    if not isinstance(payload, dict) or not isinstance(payload.get("args"), list):
        raise WireError("a port call names its port, op and args")
    check(payload.get("port"), payload.get("op"))
    return payload["port"], payload["op"], [decode(a) for a in payload["args"]]


def encode_error(e: Exception) -> dict[str, Any]:
    """A port's exception as JSON (HypervisorError family, StorageError)."""
    if isinstance(e, StorageError):
        return {"class": "StorageError", "code": e.code, "params": list(e.params)}
    name = type(e).__name__
    if ERRORS.get(name) is type(e):
        return {"class": name, "message": str(e), "code": e.code}
    raise WireError(f"a {name} cannot travel between pool members")


def decode_error(d) -> Exception:
    if not isinstance(d, dict):
        raise WireError("not an error encoded for the wire")
    if d.get("class") == "StorageError" and isinstance(d.get("code"), str) and isinstance(d.get("params"), list):
        return StorageError(d["code"], d["params"])
    cls = ERRORS.get(d.get("class"))
    if cls is None or not isinstance(d.get("message"), str) or not isinstance(d.get("code"), int):
        raise WireError(f"unknown error on the wire: {d.get('class')!r}")
    return cls(d["message"], d["code"])
