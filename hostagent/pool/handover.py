"""A planned master handover (pool.designate_new_master): the freeze and the database copy.

While the master hands over, new API calls are held (`Freeze.hold` says which) and the
calls already being served are counted (`Freeze.begin`/`end`) so the master can wait for
them to finish, and for their writes to be durable, before it takes the copy of the
database it sends to the new master. When the handover ends, either way, the held calls
are released (`thaw`) and the client gate decides again what to do with them: served
here (the handover failed), or `HOST_IS_SLAVE [new master]` / proxied (it succeeded).

`snapshot` and `check_snapshot` are the copy: every stored object with its private fields,
as the journal keeps them. Pure logic: no I/O, no Twisted.
"""

import json
from collections.abc import Callable

# long polls and the handover itself: neither held nor waited for (they write nothing)
NOT_HELD = frozenset({
    "event.from", "event.next", "event.register", "event.unregister",
    "pool.designate_new_master",
})


def method_name(method) -> str:
    return method[6:] if isinstance(method, str) and method.startswith("Async.") else str(method)


class Freeze:
    """Whether this host is handing over, the calls it serves meanwhile, the calls it holds."""

    def __init__(self):
        self.frozen = False
        self.active = 0  # calls being served (not counting NOT_HELD ones)
        self._waiting: list[Callable[[], None]] = []

    def holds(self, method) -> bool:
        """Whether a new call of `method` must wait for the handover to end."""
        return self.frozen and method_name(method) not in NOT_HELD

    def counts(self, method) -> bool:
        return method_name(method) not in NOT_HELD

    def begin(self) -> None:
        self.active += 1

    def end(self) -> None:
        self.active = max(0, self.active - 1)

    def start(self) -> bool:
        """Freeze; False if a handover is under way already."""
        if self.frozen:
            return False
        self.frozen = True
        return True

    def wait(self, release: Callable[[], None]) -> None:
        """Call `release` when the handover ends."""
        self._waiting.append(release)

    def thaw(self) -> None:
        self.frozen = False
        waiting, self._waiting = self._waiting, []
        for release in waiting:
            release()


def snapshot(store) -> list[list]:
    """Every stored object as [class, ref, JSON of its record and private fields]."""
    out = []
    for cls, table in store.tables.items():
        private = store.private[cls]
        for ref, rec in table.items():
            out.append([cls, ref, json.dumps({"r": rec, "p": private.get(ref, {})}, separators=(",", ":"))])
    return out


class SnapshotError(Exception):
    """A database copy that cannot be installed; the message says why."""


def check_snapshot(rows, host_uuid: str) -> dict[tuple, dict]:
    """{(class, ref): {"r": record, "p": private}} of a received copy, which must name this
    host (by uuid) and a pool; SnapshotError otherwise."""
    if not isinstance(rows, list):
        raise SnapshotError("the database copy is not a list of rows")
    out: dict[tuple, dict] = {}
    for row in rows:
        if not (isinstance(row, list) and len(row) == 3 and all(isinstance(x, str) for x in row)):
            raise SnapshotError("a row of the database copy is not [class, ref, data]")
        try:
            blob = json.loads(row[2])
        except ValueError:
            raise SnapshotError(f"the row of {row[0]} {row[1]} is not JSON") from None
        if not isinstance(blob, dict) or not isinstance(blob.get("r"), dict) or not isinstance(blob.get("p", {}), dict):
            raise SnapshotError(f"the row of {row[0]} {row[1]} holds no record")
        out[(row[0], row[1])] = {"r": blob["r"], "p": blob.get("p", {})}
    if not any(cls == "host" and b["r"].get("uuid") == host_uuid for (cls, _), b in out.items()):
        raise SnapshotError(f"the database copy does not list this host ({host_uuid})")
    if not any(cls == "pool" for cls, _ in out):
        raise SnapshotError("the database copy holds no pool")
    return out
