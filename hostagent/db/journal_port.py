"""The store's durable journal as a port: what every journal adapter offers.

Two adapters: `journal.Journal` (SQLite, a lone host and two-host pools) and
`journal_etcd.EtcdJournal` (etcd, pools of three or more). Both are blocking:
the server calls them from its own threads (the group-commit writer thread for
`write`, worker threads for the rest), never from the reactor.

A write takes the committed batches of several transactions at once (group
commit) and is durable, all of them or none, when it returns. `load` reads
back everything at start-up. Errors are `JournalError` or a subclass, so the
server can stop accepting changes whatever the adapter.
"""

from collections.abc import Iterable, Iterator
from typing import NamedTuple, Protocol, runtime_checkable

# (class, ref, data JSON or None for a delete, generation of this change (0 for classes
# without events), generation that created the object)
Row = tuple[str, str, str | None, int, int]


class JournalError(Exception):
    """The database could not be read or written."""


class JournalUnavailable(JournalError):
    """The database cannot be reached now (no etcd member answers, or no quorum)."""


class NotLeader(JournalError):
    """A write was refused because its leadership condition no longer holds (fencing):
    nothing of it was stored."""


class JournalCompacted(JournalError):
    """A watch asked for changes the database no longer keeps: load everything again."""


class Loaded(NamedTuple):
    """What `load` reads back at start."""

    rows: list[tuple[str, str, str, int, int]]  # (class, ref, data, created gen, changed gen)
    generation: int  # the newest generation written
    deletions: list[tuple[int, str, str, int]]  # (gen, class, ref, created gen), oldest first
    horizon: int  # deletions up to this generation are forgotten
    revision: int = 0  # where a watch goes on from (etcd's revision; 0 for SQLite)


class WatchBatch(NamedTuple):
    """The changes of one committed write, as a watch sees them."""

    revision: int
    rows: list[tuple[str, str, str | None, int, int]]  # (class, ref, data or None, created, changed)
    deletions: list[tuple[int, str, str, int]]  # (gen, class, ref, created gen)


class Watch(Protocol):
    def __iter__(self) -> Iterator[WatchBatch]:
        """Blocks for the next batch; ends once cancelled. Raises JournalCompacted."""

    def cancel(self) -> None:
        """Stop the watch (from any thread): the iteration ends."""


@runtime_checkable
class JournalPort(Protocol):
    def load(self) -> Loaded:
        """Everything written so far (start-up)."""

    def write(self, batches: Iterable[list[Row]]) -> None:
        """Apply the batches in order, all or none, durably before returning."""

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        ...

    def set_meta(self, key: str, value: str) -> None:
        ...

    def put_intent(self, key: str, data: str) -> None:
        """Record (durably, at once) an operation about to change storage."""

    def remove_intent(self, key: str) -> None:
        ...

    def intents(self) -> list[tuple[str, str]]:
        """Every recorded intent as (id, data), oldest first."""

    def close(self) -> None:
        ...


@runtime_checkable
class WatchedJournal(JournalPort, Protocol):
    """A journal others can follow (etcd): the changes after a revision, as they commit."""

    def watch(self, revision: int) -> Watch:
        """The batches committed after `revision` (a `Loaded.revision`)."""
