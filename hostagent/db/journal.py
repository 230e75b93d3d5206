"""Durable copy of the object store in SQLite (WAL): the journal port's adapter for a
lone host (journal_port.py says what every journal offers).

Each row holds one object's record and private fields as JSON, with the
generations (event numbers) that created it and last changed it. `write`
applies one or more batches in a single SQLite transaction, so the server can
group commits from many calls; it returns only after the commit is on disk
(`synchronous=FULL` by default). The same transaction keeps the generation
counter and the newest deletions, so a restarted agent can still answer an
`event.from` token of its previous run. Blocking: call it from a worker thread.

The schema has a version (`meta.schema_version`): a database written by a newer
hostagent is refused, an older one is brought up to date at open by the steps
of `MIGRATIONS`, all in one transaction.
"""

import fcntl
import logging
import os
import sqlite3
import threading
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from .journal_port import JournalError, Loaded, Row

__all__ = ["Journal", "JournalError", "Loaded", "Row", "SCHEMA_VERSION", "DELETIONS_KEPT", "MIGRATIONS"]

log = logging.getLogger("hostagent.journal")

SCHEMA_VERSION = 2
DELETIONS_KEPT = 50000  # deletions remembered for event.from (EventLimits.deletions)


def _add_generations(db: sqlite3.Connection) -> None:
    """1 -> 2: event generations with each object, the counter and deletions (history starts here)."""
    db.execute("ALTER TABLE objects ADD COLUMN born INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE objects ADD COLUMN gen INTEGER NOT NULL DEFAULT 0")


# from_version -> step(db) that brings a database of that version to the next, run inside
# the opening transaction
MIGRATIONS: Dict[int, Callable[[sqlite3.Connection], None]] = {1: _add_generations}

_TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS objects (cls TEXT NOT NULL, ref TEXT NOT NULL, data TEXT NOT NULL,"
    " born INTEGER NOT NULL DEFAULT 0, gen INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (cls, ref)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS deletions (gen INTEGER PRIMARY KEY, cls TEXT NOT NULL, ref TEXT NOT NULL,"
    " born INTEGER NOT NULL)",
    # multi-step storage work in flight (actions/intents.py): written before the work,
    # removed after its records are durable, replayed at start-up
    "CREATE TABLE IF NOT EXISTS intents (id TEXT PRIMARY KEY, data TEXT NOT NULL)",
)


class Journal:
    def __init__(self, path: str, synchronous: str = "FULL", *, schema_version: int = SCHEMA_VERSION,
                 migrations: Dict[int, Callable] = MIGRATIONS, deletions: int = DELETIONS_KEPT):
        self.path = path
        self.keep = deletions
        self._lock = threading.Lock()
        self._owner = _claim(path + ".lock")
        self._db = None
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._open_schema(schema_version, migrations)
            self._deletions = self._db.execute("SELECT count(*) FROM deletions").fetchone()[0]
        except BaseException as e:
            if self._db is not None:
                self._db.close()
            os.close(self._owner)  # a refused start leaves the state free
            if isinstance(e, sqlite3.Error):
                raise JournalError(f"cannot open database {path}: {e}") from e
            raise

    def _open_schema(self, version: int, migrations: Dict[int, Callable]) -> None:
        db = self._db
        found = _version_of(db, self.path)
        if found is not None and found > version:
            raise JournalError(f"database {self.path} has schema version {found}, newer than version "
                               f"{version} that this hostagent knows: run a newer hostagent")
        db.execute("BEGIN IMMEDIATE")
        try:
            if found is not None and found < version:
                db.execute(_TABLES[0])  # a database from before versioning has no meta table
                for v in range(found, version):
                    step = migrations.get(v)
                    if step is None:
                        raise JournalError(f"database {self.path} has schema version {found} and this "
                                           f"hostagent cannot migrate version {v} (it knows {version})")
                    try:
                        step(db)
                    except Exception as e:  # noqa: BLE001 - any failure of a step stops the start
                        raise JournalError(f"database {self.path}: migrating schema version {v} to "
                                           f"{v + 1} failed ({e}); nothing was changed") from e
            for sql in _TABLES:
                db.execute(sql)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(version),))
            db.execute("COMMIT")
        except BaseException:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        if found is not None and found < version:
            log.warning("database %s migrated from schema version %d to %d", self.path, found, version)

    def load(self) -> Loaded:
        with self._lock:
            try:
                db = self._db
                rows = db.execute("SELECT cls, ref, data, born, gen FROM objects").fetchall()
                deletions = db.execute("SELECT gen, cls, ref, born FROM deletions ORDER BY gen").fetchall()
                meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('generation', 'horizon')"))
            except sqlite3.Error as e:
                raise JournalError(f"cannot read database {self.path}: {e}") from e
        horizon = int(meta.get("horizon", 0))
        generation = max([int(meta.get("generation", 0)), horizon] + [r[4] for r in rows]
                         + [d[0] for d in deletions[-1:]])
        return Loaded(rows, generation, deletions, horizon)

    def write(self, batches: Iterable[List[Row]]) -> None:
        """Apply the batches in order, in one transaction, durably."""
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                top = dels = 0
                for rows in batches:
                    for cls, ref, data, gen, born in rows:
                        if data is None:
                            db.execute("DELETE FROM objects WHERE cls=? AND ref=?", (cls, ref))
                            if gen:
                                db.execute("INSERT OR REPLACE INTO deletions VALUES (?,?,?,?)",
                                           (gen, cls, ref, born))
                                dels += 1
                        else:
                            db.execute("INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?)",
                                       (cls, ref, data, born, gen))
                        if gen > top:
                            top = gen
                if top:
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (str(top),))
                kept = self._deletions + dels
                if kept > self.keep + max(100, self.keep // 10):  # prune now and then, not per delete
                    kept = self._prune(db)
                db.execute("COMMIT")
                self._deletions = kept
            except sqlite3.Error as e:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise JournalError(f"cannot write database {self.path}: {e}") from e

    def _prune(self, db: sqlite3.Connection) -> int:
        """Forget all but the newest `keep` deletions; the newest forgotten one is the horizon."""
        row = db.execute("SELECT gen FROM deletions ORDER BY gen DESC LIMIT 1 OFFSET ?", (self.keep,)).fetchone()
        if row is None:
            return db.execute("SELECT count(*) FROM deletions").fetchone()[0]
        db.execute("DELETE FROM deletions WHERE gen <= ?", row)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('horizon', ?)", (str(row[0]),))
        return self.keep

    def get_meta(self, key: str, default: Optional[str] = None) -> Optional[str]:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, value))

    def put_intent(self, key: str, data: str) -> None:
        """Record (durably, at once) an operation about to change storage."""
        self._exec("INSERT OR REPLACE INTO intents VALUES (?,?)", (key, data))

    def remove_intent(self, key: str) -> None:
        self._exec("DELETE FROM intents WHERE id=?", (key,))

    def intents(self) -> List[Tuple[str, str]]:
        """Every recorded intent as (id, data), oldest first."""
        with self._lock:
            try:
                return self._db.execute("SELECT id, data FROM intents ORDER BY rowid").fetchall()
            except sqlite3.Error as e:
                raise JournalError(f"cannot read database {self.path}: {e}") from e

    def _exec(self, sql: str, args: tuple) -> None:
        with self._lock:
            try:
                self._db.execute(sql, args)
            except sqlite3.Error as e:
                raise JournalError(f"cannot write database {self.path}: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._db.close()
        os.close(self._owner)  # releases the claim on the state


def _version_of(db: sqlite3.Connection, path: str) -> Optional[int]:
    """The schema version of an existing database (1 if it predates versioning), None if new."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "objects" not in tables:
        return None
    if "meta" not in tables:
        return 1
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        return 1
    try:
        return int(row[0])
    except ValueError:
        raise JournalError(f"database {path} has an unreadable schema version {row[0]!r}") from None


def _claim(lock_path: str) -> int:
    """One agent per database: hold an exclusive lock for as long as the journal is open.

    The kernel drops it when the process dies, so a killed agent never blocks its restart."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        finally:
            os.close(fd)
        raise JournalError(f"another hostagent (pid {holder}) is using {os.path.dirname(lock_path) or '.'}; "
                           "stop it first, or give this one its own --state-dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
