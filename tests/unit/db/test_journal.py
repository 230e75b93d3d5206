"""The SQLite journal: schema versions and migrations, generations and remembered deletions."""

import sqlite3

import pytest

from hostagent.db.journal import MIGRATIONS, SCHEMA_VERSION, Journal, JournalError


def db_path(tmp_path):
    return str(tmp_path / "state.db")


def version_of(path):
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])


def make_version_1(path, with_meta=True):
    """A database as hostagent wrote it before generations (with_meta=False: before versioning)."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE objects (cls TEXT NOT NULL, ref TEXT NOT NULL, data TEXT NOT NULL,"
               " PRIMARY KEY (cls, ref)) WITHOUT ROWID")
    db.execute("INSERT INTO objects VALUES ('VM', 'OpaqueRef:a', '{\"r\": {}}')")
    if with_meta:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.commit()
    db.close()


# ------------------------------------------------------------------ schema versions
def test_a_new_database_has_this_versions_schema(tmp_path):
    j = Journal(db_path(tmp_path))
    j.close()
    assert version_of(db_path(tmp_path)) == SCHEMA_VERSION


def test_a_newer_database_refuses_to_open_and_says_why(tmp_path):
    path = db_path(tmp_path)
    Journal(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 7),))
    with pytest.raises(JournalError) as ei:
        Journal(path)
    message = str(ei.value)
    assert f"schema version {SCHEMA_VERSION + 7}" in message and f"version {SCHEMA_VERSION}" in message
    assert "run a newer hostagent" in message
    assert version_of(path) == SCHEMA_VERSION + 7  # untouched
    # the refused start released the state: a hostagent that knows the version opens it
    Journal(path, schema_version=SCHEMA_VERSION + 7).close()


def test_an_older_database_is_migrated_by_the_registered_steps_once(tmp_path):
    path = db_path(tmp_path)
    j = Journal(path)
    j.write([[("VM", "OpaqueRef:a", '{"r": {}}', 1, 1)]])
    j.close()
    ran = []

    def step(db):
        ran.append(True)
        db.execute("CREATE TABLE added_by_step (x TEXT)")

    later = SCHEMA_VERSION + 1
    Journal(path, schema_version=later, migrations={**MIGRATIONS, SCHEMA_VERSION: step}).close()
    assert ran == [True] and version_of(path) == later
    j = Journal(path, schema_version=later, migrations={**MIGRATIONS, SCHEMA_VERSION: step})
    assert ran == [True]  # already at that version: nothing to do
    assert [r[:2] for r in j.load().rows] == [("VM", "OpaqueRef:a")]
    j.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM added_by_step").fetchone() == (0,)


def test_a_failing_migration_changes_nothing(tmp_path):
    path = db_path(tmp_path)
    Journal(path).close()

    def step(db):
        db.execute("CREATE TABLE half_done (x TEXT)")
        raise ValueError("cannot convert")

    with pytest.raises(JournalError, match="cannot convert"):
        Journal(path, schema_version=SCHEMA_VERSION + 1, migrations={SCHEMA_VERSION: step})
    assert version_of(path) == SCHEMA_VERSION
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name='half_done'").fetchall() == []


def test_a_missing_step_refuses_to_open(tmp_path):
    path = db_path(tmp_path)
    Journal(path).close()
    with pytest.raises(JournalError, match=f"cannot migrate version {SCHEMA_VERSION}"):
        Journal(path, schema_version=SCHEMA_VERSION + 1, migrations={})
    assert version_of(path) == SCHEMA_VERSION


@pytest.mark.parametrize("with_meta", [True, False], ids=["version-1", "before-versioning"])
def test_a_version_1_database_gets_generations(tmp_path, with_meta):
    path = db_path(tmp_path)
    make_version_1(path, with_meta)
    j = Journal(path)
    loaded = j.load()
    assert loaded.rows == [("VM", "OpaqueRef:a", '{"r": {}}', 0, 0)]
    assert (loaded.generation, loaded.deletions, loaded.horizon) == (0, [], 0)
    j.write([[("VM", "OpaqueRef:a", None, 1, 0)]])
    j.close()
    assert version_of(path) == SCHEMA_VERSION


# ------------------------------------------------------------ generations, deletions
def test_generations_and_deletions_come_back(tmp_path):
    path = db_path(tmp_path)
    j = Journal(path)
    j.write([[("VM", "OpaqueRef:a", "{}", 1, 1), ("VM", "OpaqueRef:b", "{}", 2, 2)],
             [("session", "OpaqueRef:s", "{}", 0, 0)]])
    j.write([[("VM", "OpaqueRef:a", '{"x": 1}', 3, 1), ("VM", "OpaqueRef:b", None, 4, 2),
              ("session", "OpaqueRef:s", None, 0, 0)]])  # no events for sessions: no tombstone
    j.close()
    j = Journal(path)
    loaded = j.load()
    j.close()
    assert loaded.rows == [("VM", "OpaqueRef:a", '{"x": 1}', 1, 3)]
    assert loaded.generation == 4
    assert loaded.deletions == [(4, "VM", "OpaqueRef:b", 2)]
    assert loaded.horizon == 0


def test_only_the_newest_deletions_are_kept_and_the_cut_is_recorded(tmp_path):
    path = db_path(tmp_path)
    j = Journal(path, deletions=5)
    gen = 0
    for i in range(300):
        gen += 2
        j.write([[("network", f"OpaqueRef:{i}", "{}", gen - 1, gen - 1)],
                 [("network", f"OpaqueRef:{i}", None, gen, gen - 1)]])
    j.close()
    j = Journal(path, deletions=5)
    loaded = j.load()
    j.close()
    kept = [d[0] for d in loaded.deletions]
    assert 5 <= len(kept) < 300 and kept == sorted(kept) and kept[-1] == gen
    assert loaded.horizon > 0 and all(g > loaded.horizon for g in kept)
    # every deletion after the cut is still known: nothing between is missing
    assert kept == list(range(loaded.horizon + 2, gen + 1, 2))
    assert loaded.generation == gen
