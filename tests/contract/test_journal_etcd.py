"""What only the etcd journal does, against a real member: writes in steps and their
recovery, the leadership condition (fencing), watches, and an unreachable database."""

import json
import threading
import uuid

import pytest

from hostagent.backends import etcd
from hostagent.backends.etcd import EtcdClient
from hostagent.db.journal_etcd import LAYOUT_VERSION, EtcdJournal, Leadership
from hostagent.db.journal_port import JournalError, JournalUnavailable, NotLeader

from .etcd_support import Cluster, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def member(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("etcd")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pool():
    return str(uuid.uuid4())


def rows(first, n, gen0=0, pad=100):
    return [[("VM", f"OpaqueRef:{i}", json.dumps({"r": {"n": i, "pad": "x" * pad}, "p": {}}),
              gen0 + i + 1, gen0 + i + 1)] for i in range(first, first + n)]


def keys(client, prefix):
    return [kv.key.decode() for kv in client.range(prefix, etcd.prefix_end(prefix)).kvs]


class Interrupted(Exception):
    pass


def test_a_large_write_goes_in_steps_and_leaves_no_staging(member, pool):
    client = member.client()
    j = EtcdJournal(client, pool, max_ops=20)
    before = client.status()["header"]["revision"]
    j.write(rows(0, 75))
    after = int(client.status()["header"]["revision"])
    assert after - int(before) >= 6  # parts, commit, four groups of 20, clean-up: not one transaction
    base = f"/hostagent/{pool}/".encode()
    assert keys(client, base + b"stage/") == [] and keys(client, base + b"commit/") == []
    assert len(EtcdJournal(member.client(), pool).load().rows) == 75


def test_a_large_write_interrupted_after_its_commit_is_redone(member, pool, monkeypatch):
    j = EtcdJournal(member.client(), pool, max_ops=20)
    j.write(rows(0, 5))
    applied = []
    real_txn = j._txn

    def crash_in_the_middle(success):  # dies after the commit point and two groups applied
        if any("request_put" in op and b"/obj/" in etcd._unb64(op["request_put"]["key"]) for op in success):
            if len(applied) == 2:
                raise Interrupted()
            applied.append(True)
        return real_txn(success)
    monkeypatch.setattr(j, "_txn", crash_in_the_middle)
    with pytest.raises(Interrupted):
        j.write(rows(5, 70, gen0=0) + [[("VM", "OpaqueRef:0", None, 100, 1)]])
    # a new writer (a restarted or new master) sees the whole write
    again = EtcdJournal(member.client(), pool, max_ops=20)
    loaded = again.load()
    assert {r[1] for r in loaded.rows} == {f"OpaqueRef:{i}" for i in range(1, 75)}
    assert loaded.generation == 100 and loaded.deletions == [(100, "VM", "OpaqueRef:0", 1)]
    # its first write finishes the interrupted one before its own
    again.write(rows(80, 1, gen0=100))
    base = f"/hostagent/{pool}/".encode()
    assert keys(member.client(), base + b"commit/") == [] and keys(member.client(), base + b"stage/") == []
    assert len(keys(member.client(), base + b"obj/")) == 75


def test_a_large_write_interrupted_before_its_commit_is_dropped(member, pool, monkeypatch):
    j = EtcdJournal(member.client(), pool, max_ops=20, max_bytes=80 * 1024)
    j.write(rows(0, 3))
    real_txn = j._txn

    def crash_at_commit(success):
        if b"/commit/" in etcd._unb64(success[0].get("request_put", {}).get("key", "")):
            raise Interrupted()
        return real_txn(success)
    monkeypatch.setattr(j, "_txn", crash_at_commit)
    with pytest.raises(Interrupted):
        j.write(rows(3, 60, pad=3000))  # 180 KB: several staged parts
    again = EtcdJournal(member.client(), pool, max_ops=20)
    assert {r[1] for r in again.load().rows} == {"OpaqueRef:0", "OpaqueRef:1", "OpaqueRef:2"}
    base = f"/hostagent/{pool}/".encode()
    assert keys(member.client(), base + b"stage/") != []  # left by the crash ...
    again.write(rows(90, 1))
    assert keys(member.client(), base + b"stage/") == []  # ... and dropped by the next writer


def test_a_write_whose_leadership_is_gone_stores_nothing(member, pool):
    client = member.client()
    lease = client.grant(30)
    key = f"/hostagent/{pool}/leader".encode()
    created = client.txn([etcd.created_at(key, 0)], [etcd.put(key, b"host-a", lease)])
    assert created.succeeded
    j = EtcdJournal(client, pool, max_ops=20, leader=Leadership(key.decode(), created.revision))
    j.write(rows(0, 2))
    j.put_intent("i1", "{}")
    client.revoke(lease)  # the lease ended (expired, or another host took over)
    with pytest.raises(NotLeader):
        j.write(rows(2, 1))
    with pytest.raises(NotLeader):
        j.write(rows(3, 50))  # in steps: refused at the first
    with pytest.raises(NotLeader):
        j.put_intent("i2", "{}")
    with pytest.raises(NotLeader):
        j.set_meta("x", "y")
    # a key of the same name made again later (a new election) is not this leadership
    assert client.txn([etcd.created_at(key, 0)], [etcd.put(key, b"host-b")]).succeeded
    with pytest.raises(NotLeader):
        j.write(rows(2, 1))
    fresh = EtcdJournal(member.client(), pool)
    loaded = fresh.load()
    assert sorted(r[1] for r in loaded.rows) == ["OpaqueRef:0", "OpaqueRef:1"] and loaded.generation == 2
    assert fresh.intents() == [("i1", "{}")] and fresh.get_meta("x") is None
    base = f"/hostagent/{pool}/".encode()
    assert keys(client, base + b"stage/") == [] and keys(client, base + b"commit/") == []


def test_a_watch_sees_each_write_after_the_loaded_revision(member, pool):
    j = EtcdJournal(member.client(), pool)
    j.write(rows(0, 1))
    loaded = EtcdJournal(member.client(), pool).load()
    watch = EtcdJournal(member.client(), pool).watch(loaded.revision)
    seen = []
    done = threading.Event()

    def follow():
        for batch in watch:
            seen.append(batch)
            if len(seen) == 2:
                done.set()
    t = threading.Thread(target=follow, daemon=True)
    t.start()
    j.write(rows(1, 1) + rows(2, 1, pad=5000))  # a short value and a long (compressed) one
    j.put_intent("not-an-object", "{}")
    j.write([[("VM", "OpaqueRef:0", None, 9, 1)]])
    assert done.wait(10), seen
    watch.cancel()
    t.join(10)
    assert not t.is_alive()
    first, second = seen
    assert sorted(first.rows) == sorted(r for [r] in rows(1, 1) + rows(2, 1, pad=5000))
    assert first.deletions == [] and second.revision > first.revision > loaded.revision
    assert second.rows == [("VM", "OpaqueRef:0", None, 0, 0)] and second.deletions == [(9, "VM", "OpaqueRef:0", 1)]


def test_nothing_answering_is_journal_unavailable():
    port = free_port("127.0.0.1")
    client = EtcdClient([f"http://127.0.0.1:{port}"], retry_for=0.5)
    with pytest.raises(JournalUnavailable) as ei:
        EtcdJournal(client, "p")
    assert f"127.0.0.1:{port}" in str(ei.value) and isinstance(ei.value, JournalError)


def test_a_newer_layout_is_refused(member, pool):
    client = member.client()
    EtcdJournal(client, pool)
    client.txn([], [etcd.put(f"/hostagent/{pool}/meta/layout_version".encode(), str(LAYOUT_VERSION + 1).encode())])
    with pytest.raises(JournalError) as ei:
        EtcdJournal(client, pool)
    assert "newer hostagent" in str(ei.value)


def test_load_reads_in_pages_at_one_revision(member, pool):
    j = EtcdJournal(member.client(), pool)
    j.write(rows(0, 120))
    paged = EtcdJournal(member.client(), pool, page=25)
    loaded = paged.load()
    assert sorted(int(r[1].partition(":")[2]) for r in loaded.rows) == list(range(120))
    assert loaded.generation == 120
    assert loaded.revision == int(member.client().status()["header"]["revision"])


def test_a_writer_that_did_not_load_finishes_an_interrupted_write_before_its_own(member, pool, monkeypatch):
    j = EtcdJournal(member.client(), pool, max_ops=20)
    real_txn = j._txn
    applied = []

    def crash_in_the_middle(success):
        if any(b"/obj/" in etcd._unb64(op.get("request_put", {}).get("key", "")) for op in success):
            if applied:
                raise Interrupted()
            applied.append(True)
        return real_txn(success)
    monkeypatch.setattr(j, "_txn", crash_in_the_middle)
    with pytest.raises(Interrupted):
        j.write(rows(0, 60))  # VM 59 is in a group never applied
    newer = json.dumps({"r": {"n": "newer"}, "p": {}})
    EtcdJournal(member.client(), pool, max_ops=20).write([[("VM", "OpaqueRef:59", newer, 61, 60)]])
    loaded = EtcdJournal(member.client(), pool).load()
    assert len(loaded.rows) == 60
    assert [r for r in loaded.rows if r[1] == "OpaqueRef:59"] == [("VM", "OpaqueRef:59", newer, 60, 61)]
