"""Default locations of the agent's state (shared by `serve` and `passwd`)."""

import os
from typing import Mapping, Optional

USERS_FILE = "users.json"            # local user database, in the state dir
ROOT_PASSWORD_FILE = "root-password"  # generated root password, in the state dir
HOST_UUID_FILE = "host-uuid"          # names this host's record in the database
SYSTEM_STATE_DIR = "/var/lib/hostagent"


def default_state_dir(euid: Optional[int] = None,
                      environ: Optional[Mapping[str, str]] = None) -> str:
    """`/var/lib/hostagent` for root, else `$XDG_STATE_HOME/hostagent`.

    XDG_STATE_HOME defaults to `~/.local/state`; a relative value is ignored, as
    the XDG base directory specification requires.
    """
    if euid is None:
        euid = os.geteuid()
    if euid == 0:
        return SYSTEM_STATE_DIR
    if environ is None:
        environ = os.environ
    base = environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):
        home = environ.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".local", "state")
    return os.path.join(base, "hostagent")
