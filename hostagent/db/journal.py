"""Durable copy of the object store in SQLite (WAL).

Each row holds one object's record and private fields as JSON. `write` applies
one or more batches in a single SQLite transaction, so the server can group
commits from many calls; it returns only after the commit is on disk
(`synchronous=FULL` by default). Blocking: call it from a worker thread.
"""

import fcntl
import os
import sqlite3
import threading
from typing import Iterable, List, Optional, Tuple

Row = Tuple[str, str, Optional[str]]  # (class, ref, data JSON or None for a delete)

SCHEMA_VERSION = 1


class JournalError(Exception):
    """The database could not be read or written."""


class Journal:
    def __init__(self, path: str, synchronous: str = "FULL"):
        self.path = path
        self._lock = threading.Lock()
        self._owner = _claim(path + ".lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("CREATE TABLE IF NOT EXISTS objects (cls TEXT NOT NULL, ref TEXT NOT NULL,"
                             " data TEXT NOT NULL, PRIMARY KEY (cls, ref)) WITHOUT ROWID")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            # multi-step storage work in flight (actions/intents.py): written before the work,
            # removed after its records are durable, replayed at start-up
            self._db.execute("CREATE TABLE IF NOT EXISTS intents (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
        except sqlite3.Error as e:
            raise JournalError(f"cannot open database {path}: {e}") from e

    def load(self) -> List[Row]:
        with self._lock:
            try:
                return self._db.execute("SELECT cls, ref, data FROM objects").fetchall()
            except sqlite3.Error as e:
                raise JournalError(f"cannot read database {self.path}: {e}") from e

    def write(self, batches: Iterable[List[Row]]) -> None:
        """Apply the batches in order, in one transaction, durably."""
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                for rows in batches:
                    for cls, ref, data in rows:
                        if data is None:
                            db.execute("DELETE FROM objects WHERE cls=? AND ref=?", (cls, ref))
                        else:
                            db.execute("INSERT OR REPLACE INTO objects VALUES (?,?,?)", (cls, ref, data))
                db.execute("COMMIT")
            except sqlite3.Error as e:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise JournalError(f"cannot write database {self.path}: {e}") from e

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
