"""This host's place in its pool, kept in the state dir: its role and the pool secret.

`pool-role.json` holds `{"role": "master"}` or `{"role": "slave", "master_address":
"HOST[:PORT]", "master_host": ref, "master_uuid": uuid, "master_cert": PEM}` (xapi's
pool.conf plus the master's pinned certificate). `pool-secret` holds the secret members
present to each other (xapi's ptoken). Both are written whole or not at all and are
durable before a change is acknowledged; both are 0600.
"""

import contextlib
import json
import os
import secrets
from dataclasses import asdict, dataclass

from .identity import write_private

ROLE_FILE = "pool-role.json"
SECRET_FILE = "pool-secret"
MASTER, SLAVE = "master", "slave"
DEFAULT_PORT = 443


class RoleError(Exception):
    """The role file cannot be read or holds something else."""


@dataclass(frozen=True)
class Role:
    role: str = MASTER
    master_address: str = ""  # as given to pool.join: what HOST_IS_SLAVE names
    master_host: str = ""  # the master's host ref
    master_uuid: str = ""
    master_cert: str = ""  # PEM, pinned at join

    @property
    def is_slave(self) -> bool:
        return self.role == SLAVE


def split_address(address: str, default_port: int = DEFAULT_PORT):
    """(host, port) of `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT`; ValueError otherwise."""
    address = address.strip()
    if not address:
        raise ValueError("empty address")
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad address {address!r}")
    elif address.count(":") == 1:
        host, _, port = address.partition(":")
        if not port:
            raise ValueError(f"bad address {address!r}")
    else:
        host, port = address, ""  # a name, an IPv4 address or a bare IPv6 address
    if not host or (port and not port.isdigit()) or (port and not 0 < int(port) < 65536):
        raise ValueError(f"bad address {address!r}")
    return host, int(port) if port else default_port


def load_role(state_dir: str) -> Role:
    path = os.path.join(state_dir, ROLE_FILE)
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return Role()
    except (OSError, ValueError) as e:
        raise RoleError(f"{path}: {e}") from e
    if not isinstance(data, dict) or data.get("role") not in (MASTER, SLAVE):
        raise RoleError(f"{path} holds no role (master or slave)")
    known = {k: str(v) for k, v in data.items() if k in Role.__dataclass_fields__}
    role = Role(**known)
    if role.is_slave and not (role.master_address and role.master_cert):
        raise RoleError(f"{path}: a slave's role names its master's address and certificate")
    return role


def save_role(state_dir: str, role: Role) -> None:
    write_private(os.path.join(state_dir, ROLE_FILE), json.dumps(asdict(role), indent=1).encode("utf-8"))


def ensure_secret(state_dir: str) -> str:
    """The pool secret, made on the first call."""
    path = os.path.join(state_dir, SECRET_FILE)
    with contextlib.suppress(FileNotFoundError):  # none yet: made below
        with open(path) as f:
            value = f.read().strip()
        if value:
            return value
    return new_secret(state_dir)


def new_secret(state_dir: str) -> str:
    value = secrets.token_urlsafe(32)
    save_secret(state_dir, value)
    return value


def save_secret(state_dir: str, value: str) -> None:
    write_private(os.path.join(state_dir, SECRET_FILE), (value + "\n").encode("ascii"))
