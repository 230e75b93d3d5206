"""A slave's copy of the pool database, kept current by the master (for emergencies).

The master sends each live member the whole database (`handover.snapshot`'s rows) when it
has changed, at heartbeat time and at most once every `MIN_INTERVAL` seconds (`Debounce`).
The member keeps the copy in its state dir (`pool-db-copy.json`, written whole or not at
all, 0600), apart from its own local database, which stays as it is. When the master is
dead, `pool.emergency_transition_to_master` installs the copy as the member's database.
"""

import contextlib
import json
import os

from .identity import write_private

COPY_FILE = "pool-db-copy.json"
MIN_INTERVAL = 2.0  # seconds between two copies sent to the members


class CopyError(Exception):
    """The stored copy cannot be read."""


class Debounce:
    """When the master sends the next copy: the database changed (its generation moved)
    since the last copy sent, and `MIN_INTERVAL` has passed since."""

    def __init__(self, min_interval: float = MIN_INTERVAL):
        self.min_interval = min_interval
        self.sent_gen: int | None = None
        self.sent_at: float | None = None
        self.busy = False

    def due(self, gen: int, now: float, members: frozenset = frozenset(), known: frozenset = frozenset()) -> bool:
        """Whether to send now; a member not sent the current copy yet (`members` - `known`)
        makes it due too."""
        if self.busy:
            return False
        if self.sent_at is not None and now - self.sent_at < self.min_interval:
            return False
        return gen != self.sent_gen or not members <= known

    def sent(self, gen: int, now: float) -> None:
        self.sent_gen, self.sent_at = gen, now


def save_copy(state_dir: str, master_uuid: str, generation: int, rows: list) -> None:
    data = {"master": master_uuid, "generation": generation, "rows": rows}
    write_private(os.path.join(state_dir, COPY_FILE), json.dumps(data, separators=(",", ":")).encode("utf-8"))


def load_copy(state_dir: str) -> dict | None:
    """{"master", "generation", "rows"} of the stored copy; None if there is none."""
    path = os.path.join(state_dir, COPY_FILE)
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise CopyError(f"{path}: {e}") from e
    if not (isinstance(data, dict) and isinstance(data.get("rows"), list)
            and isinstance(data.get("generation"), int) and isinstance(data.get("master"), str)):
        raise CopyError(f"{path} holds no copy of the pool database")
    return data


def drop_copy(state_dir: str) -> None:
    with contextlib.suppress(FileNotFoundError):  # no copy: nothing to drop
        os.unlink(os.path.join(state_dir, COPY_FILE))
