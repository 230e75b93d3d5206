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
import re
from typing import Any

from ..backends.domain import Boot, Disk, Domain, Nic
from ..backends.guest_agent import GuestFacts
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
from ..backends.netlink import OPERATIONS as LINK_OPERATIONS
from ..backends.netlink import (
    LinkBusy,
    LinkError,
    LinkExists,
    LinkNotFound,
    LinkNotSupported,
)
from ..backends.storage import Attached, Stat, StorageError, Volume

TAG, VALUE = "~", "v"


class WireError(ValueError):
    """A value that cannot travel, or a message that is not a port call."""


@dataclasses.dataclass(frozen=True)
class DriverRef:
    """An SR driver named by what makes one (`Storage.driver`'s arguments): the member makes
    its own driver object from it."""

    sr_type: str
    sr_uuid: str
    device_config: dict

    def __post_init__(self):
        # the uuid names directories on the member (mount points, attachment books)
        if not isinstance(self.sr_uuid, str) or not UUID.fullmatch(self.sr_uuid):
            raise WireError(f"not an SR uuid: {self.sr_uuid!r}")


UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
SCRATCH_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,99}\.img")


@dataclasses.dataclass(frozen=True)
class ScratchFile:
    """A file in the member's own scratch dir (a suspend image on its way to or from a VDI):
    the master names it, the member finds it in its dir. Never a path."""

    name: str

    def __post_init__(self):
        if not isinstance(self.name, str) or not SCRATCH_NAME.fullmatch(self.name):
            raise WireError(f"not a scratch file name: {self.name!r}")


# the ports' methods a master may call on a member ("sr": an SR driver's own calls, through
# the storage port's `call`; "scratch": the member's scratch files). Not here: calls that run
# arbitrary functions (run), and file names other than a ScratchFile (see FILE_ARGS)
ALLOWED = {
    "domains": frozenset({"capabilities", "state", "list", "start", "shutdown", "reboot", "destroy", "pause",
                          "unpause", "attach_disk", "detach_disk", "change_media", "attach_nic", "detach_nic",
                          "set_memory", "set_vcpus", "migrate", "migration_uri", "save", "restore"}),
    "storage": frozenset({"attach", "detach", "validate"}),
    # the SR's own work on the member whose PBD is plugged (actions/pool_storage.py); not
    # vol_copy_to, which moves data between two drivers, perhaps of two hosts
    "sr": frozenset({"create", "destroy", "attach", "detach", "probe", "stat", "scan", "vol_create",
                     "vol_destroy", "vol_stat", "vol_resize", "vol_clone", "vol_snapshot", "vol_fill_from",
                     "vol_dump_to"}),
    "scratch": frozenset({"size", "remove"}),
    # a member's guests: vm-data keys written into, and keys read from, its xenstore; what its
    # guest agent reads of a guest
    "guest": frozenset({"write", "read_tree", "facts"}),
    # a member's links (bridges, VLANs, addresses of its PIFs), when its agent manages them
    "links": frozenset(LINK_OPERATIONS) | {"scan", "nic"},
}
LINK_ERRORS = {cls.__name__: cls for cls in (LinkError, LinkNotFound, LinkExists, LinkNotSupported, LinkBusy)}
# calls that name a file: the index of that argument, which must be a ScratchFile
FILE_ARGS = {("domains", "save"): 1, ("domains", "restore"): 1, ("sr", "vol_fill_from"): 2,
             ("sr", "vol_dump_to"): 2, ("scratch", "size"): 0, ("scratch", "remove"): 0}

TYPES = {cls.__name__: cls for cls in (Boot, Disk, Nic, Domain, DomainState, Capabilities, Attached, DriverRef,
                                       Volume, Stat, ScratchFile, GuestFacts)}
ERRORS = {cls.__name__: cls for cls in (HypervisorError, HypervisorUnavailable, NoSuchDomain, Unsupported,
                                        NeedsHVM, MigrationFailed)}


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
    check_files(port, op, args)
    return {"port": port, "op": op, "args": [encode(a) for a in args]}


def check(port, op) -> None:
    if not isinstance(port, str) or not isinstance(op, str) or op not in ALLOWED.get(port, ()):
        raise WireError(f"{port}.{op} is not a port call members take")


def check_files(port: str, op: str, args) -> None:
    """A call that names a file names a ScratchFile there (never a path); a driver call's
    first argument is a DriverRef."""
    at = FILE_ARGS.get((port, op))
    if at is not None and (len(args) <= at or not isinstance(args[at], ScratchFile)):
        raise WireError(f"{port}.{op} takes a scratch file, not a path")
    if port == "sr" and (not args or not isinstance(args[0], DriverRef)):
        raise WireError(f"sr.{op} names its SR's driver first")
    if port == "guest":
        check_guest(op, args)


GUEST_TREES = frozenset({"vm-data", "data", "attr"})  # what the master reads of a guest's home


def check_guest(op: str, args) -> None:
    """A guest call names a guest's domain (not dom0's), writes only its vm-data keys and
    reads only the trees a guest publishes."""
    if not args or type(args[0]) is not int or args[0] < 1:
        raise WireError(f"guest.{op} names a guest's domain id first")
    if op == "write" and not (len(args) == 2 and isinstance(args[1], dict) and all(
            isinstance(k, str) and isinstance(v, str) and (k == "vm-data" or k.startswith("vm-data/"))
            for k, v in args[1].items())):
        raise WireError("guest.write writes the VM's vm-data keys only")
    if op == "read_tree" and not (len(args) == 2 and args[1] in GUEST_TREES):
        raise WireError(f"guest.read_tree reads one of {sorted(GUEST_TREES)}")


def parse(payload) -> tuple:
    """(port, op, args) of a port call's body, checked against the allow-list."""
    if not isinstance(payload, dict) or not isinstance(payload.get("args"), list):
        raise WireError("a port call names its port, op and args")
    check(payload.get("port"), payload.get("op"))
    args = [decode(a) for a in payload["args"]]
    check_files(payload["port"], payload["op"], args)
    return payload["port"], payload["op"], args


def encode_error(e: Exception) -> dict[str, Any]:
    """A port's exception as JSON (HypervisorError family, StorageError, LinkError family)."""
    if isinstance(e, StorageError):
        return {"class": "StorageError", "code": e.code, "params": list(e.params)}
    name = type(e).__name__
    if LINK_ERRORS.get(name) is type(e):
        return {"class": name, "message": str(e), "name": e.name, "errno": e.errno}
    if ERRORS.get(name) is type(e):
        return {"class": name, "message": str(e), "code": e.code}
    raise WireError(f"a {name} cannot travel between pool members")


def decode_error(d) -> Exception:
    if not isinstance(d, dict):
        raise WireError("not an error encoded for the wire")
    if d.get("class") == "StorageError" and isinstance(d.get("code"), str) and isinstance(d.get("params"), list):
        return StorageError(d["code"], d["params"])
    link = LINK_ERRORS.get(d.get("class"))
    if link is not None and isinstance(d.get("message"), str) and isinstance(d.get("name"), str) \
            and isinstance(d.get("errno"), int):
        return link(d["message"], d["name"], d["errno"])
    cls = ERRORS.get(d.get("class"))
    if cls is None or not isinstance(d.get("message"), str) or not isinstance(d.get("code"), int):
        raise WireError(f"unknown error on the wire: {d.get('class')!r}")
    return cls(d["message"], d["code"])
