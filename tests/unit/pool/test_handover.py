"""The pure parts of a planned handover: the freeze, the database copy and its installation."""

import json

import pytest

from hostagent.datamodel.api import build_api
from hostagent.db.store import Store
from hostagent.pool.handover import Freeze, SnapshotError, check_snapshot, snapshot

from .test_records import lone_host


@pytest.fixture(scope="module")
def api():
    return build_api()


def test_the_freeze_holds_calls_but_not_long_polls_nor_itself():
    f = Freeze()
    assert not f.holds("VM.start")
    assert f.start() and not f.start()  # a second handover is refused while one runs
    assert f.holds("VM.add_to_other_config") and f.holds("Async.VM.start") and f.holds("session.login_with_password")
    assert not f.holds("event.from") and not f.holds("pool.designate_new_master")
    assert f.counts("VM.start") and not f.counts("event.from") and not f.counts("Async.pool.designate_new_master")
    released = []
    f.wait(lambda: released.append(1))
    f.wait(lambda: released.append(2))
    f.begin()
    f.begin()
    f.end()
    assert f.active == 1
    f.thaw()
    assert released == [1, 2] and not f.frozen and not f.holds("VM.start")
    f.thaw()
    assert released == [1, 2]  # released once
    f.end()
    f.end()
    assert f.active == 0


def _journal_like(store):
    """What the journal would hold: (cls, ref) -> {"r", "p"}."""
    return {(c, r): {"r": rec, "p": store.private[c][r]} for c, t in store.tables.items() for r, rec in t.items()}


def test_a_copy_installed_replaces_the_database_whole(api):
    master, mhost, _ = lone_host(api, "master")
    member, _, _ = lone_host(api, "member")
    with master.transaction():
        master.set_private("host", mhost, pool_endpoint="127.0.0.1:8443", pool_cert="PEM")
    copy = check_snapshot(json.loads(json.dumps(snapshot(master))), master.get("host", mhost)["uuid"])
    seen = []
    member.listeners.append(seen.extend)
    before = set(member.all("VM"))
    with member.transaction():
        member.replace_all(copy)
    assert _journal_like(member) == _journal_like(master)
    assert member.by_uuid("host", master.get("host", mhost)["uuid"]) == mhost
    assert all(member.by_uuid("VM", member.get("VM", v)["uuid"]) == v for v in member.all("VM"))
    assert not before & set(member.all("VM"))  # the member's own records are gone
    assert {c.op for c in seen} == {"add", "del"}  # clients see the change in events


def test_a_failed_install_leaves_the_database_as_it_was(api):
    master, mhost, _ = lone_host(api, "master")
    member, _, _ = lone_host(api, "member")
    before = _journal_like(member)
    copy = check_snapshot(snapshot(master), master.get("host", mhost)["uuid"])
    with pytest.raises(RuntimeError), member.transaction():
        member.replace_all(copy)
        raise RuntimeError("the journal refused the batch")
    assert _journal_like(member) == before
    assert all(member.by_uuid(c, rec["uuid"]) == r
               for c, t in member.tables.items() for r, rec in t.items() if "uuid" in rec)
    assert sum(len(u) for u in member.uuids.values()) == sum(
        1 for t in member.tables.values() for rec in t.values() if "uuid" in rec)


def test_a_copy_must_name_this_host_and_a_pool(api):
    master, mhost, _ = lone_host(api, "master")
    rows = snapshot(master)
    with pytest.raises(SnapshotError, match="does not list this host"):
        check_snapshot(rows, "another-uuid")
    with pytest.raises(SnapshotError, match="no pool"):
        check_snapshot([r for r in rows if r[0] != "pool"], master.get("host", mhost)["uuid"])
    for bad in ("rows", [["host", "r"]], [["host", "r", "{not json"]], [["host", "r", "[]"]]):
        with pytest.raises(SnapshotError):
            check_snapshot(bad, master.get("host", mhost)["uuid"])


def test_replace_all_needs_a_transaction(api):
    s = Store(api)
    with pytest.raises(Exception, match="transaction"):
        s.replace_all({})
