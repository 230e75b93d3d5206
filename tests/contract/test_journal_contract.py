"""The journal port's contract, run against both adapters: SQLite (a file of the test's) and
etcd (a real member started for this module, each test under a pool prefix of its own)."""

import json
import uuid

import pytest

from hostagent.backends.etcd_member import MAX_REQUEST_BYTES, MAX_TXN_OPS
from hostagent.db.journal import Journal
from hostagent.db.journal_etcd import EtcdJournal
from hostagent.db.journal_port import JournalPort, WatchedJournal

from .etcd_support import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def etcd_member(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("etcd")).start()
    yield cluster
    cluster.stop()


class SqliteJournals:
    def __init__(self, tmp_path):
        self.path = str(tmp_path / "state.db")
        self.current = None

    def open(self, **kw):
        if self.current is not None:
            self.current.close()  # one open journal per database (its lock)
        self.current = Journal(self.path, **kw)
        return self.current

    def close(self):
        if self.current is not None:
            self.current.close()


class EtcdJournals:
    def __init__(self, cluster):
        self.cluster = cluster
        self.pool = str(uuid.uuid4())

    def open(self, **kw):
        # a new client each time: nothing carried over in memory between "runs"
        return EtcdJournal(self.cluster.client(), self.pool, max_ops=MAX_TXN_OPS,
                           max_bytes=MAX_REQUEST_BYTES, **kw)

    def close(self):
        pass


@pytest.fixture(params=["sqlite", "etcd"])
def journals(request, tmp_path):
    if request.param == "sqlite":
        j = SqliteJournals(tmp_path)
    else:
        j = EtcdJournals(request.getfixturevalue("etcd_member"))
    yield j
    j.close()


def data(n, pad=0):
    return json.dumps({"r": {"uuid": f"u{n}", "name_label": f"vm {n}", "pad": "x" * pad}, "p": {"n": n}})


def objects(loaded):
    return {(cls, ref): (json.loads(d), born, gen) for cls, ref, d, born, gen in loaded.rows}


# ------------------------------------------------------------------------------ tests
def test_both_adapters_are_the_port(journals):
    j = journals.open()
    assert isinstance(j, JournalPort)
    assert isinstance(j, WatchedJournal) == isinstance(journals, EtcdJournals)  # only etcd watches


def test_written_batches_load_after_reopen(journals):
    j = journals.open()
    j.write([[("VM", "OpaqueRef:a", data(1), 1, 1), ("VM", "OpaqueRef:b", data(2), 2, 2)],
             [("host", "OpaqueRef:h", data(3), 0, 0)]])
    j.write([[("VM", "OpaqueRef:a", data(4), 3, 1), ("VM", "OpaqueRef:b", None, 4, 2)]])
    loaded = journals.open().load()
    assert objects(loaded) == {("VM", "OpaqueRef:a"): (json.loads(data(4)), 1, 3),
                               ("host", "OpaqueRef:h"): (json.loads(data(3)), 0, 0)}
    assert loaded.generation == 4
    assert loaded.deletions == [(4, "VM", "OpaqueRef:b", 2)]
    assert loaded.horizon == 0


def test_a_later_batch_of_one_write_wins(journals):
    j = journals.open()
    j.write([[("VM", "OpaqueRef:a", data(1), 1, 1)], [("VM", "OpaqueRef:a", None, 2, 1)],
             [("VM", "OpaqueRef:a", data(2), 3, 3)], [("VM", "OpaqueRef:z", data(9), 4, 4)],
             [("VM", "OpaqueRef:z", None, 5, 4)]])
    loaded = journals.open().load()
    assert objects(loaded) == {("VM", "OpaqueRef:a"): (json.loads(data(2)), 3, 3)}
    assert loaded.deletions == [(2, "VM", "OpaqueRef:a", 1), (5, "VM", "OpaqueRef:z", 4)]
    assert loaded.generation == 5


def test_intents_are_kept_oldest_first_until_removed(journals):
    j = journals.open()
    for key in ("k3", "k1", "k2"):
        j.put_intent(key, json.dumps({"op": key}))
    j.remove_intent("k1")
    j.remove_intent("never-recorded")
    assert journals.open().intents() == [("k3", '{"op": "k3"}'), ("k2", '{"op": "k2"}')]


def test_meta_values_are_kept(journals):
    j = journals.open()
    assert j.get_meta("colour") is None and j.get_meta("colour", "none") == "none"
    j.set_meta("colour", "blue")
    j.set_meta("colour", "green")
    assert journals.open().get_meta("colour") == "green"


def test_a_group_of_many_batches_is_one_write(journals):
    j = journals.open()
    batches = [[("VM", f"OpaqueRef:{i}", data(i), i + 1, i + 1), ("task", f"OpaqueRef:t{i}", data(i), 0, 0)]
               for i in range(300)]
    j.write(batches)
    loaded = journals.open().load()
    assert len(loaded.rows) == 600 and loaded.generation == 300
    assert objects(loaded)[("VM", "OpaqueRef:299")] == (json.loads(data(299)), 300, 300)


def test_a_write_larger_than_etcds_limits_is_whole(journals):
    # more operations than one etcd transaction takes (MAX_TXN_OPS) and more bytes than one
    # request (MAX_REQUEST_BYTES): written in steps by the etcd journal, loaded whole
    n = MAX_TXN_OPS * 2 + 17
    pad = MAX_REQUEST_BYTES // 600
    j = journals.open()
    j.write([[("VM", f"OpaqueRef:{i}", data(i, pad), i + 1, i + 1)] for i in range(n)])
    loaded = journals.open().load()
    assert len(loaded.rows) == n and loaded.generation == n
    assert objects(loaded)[("VM", f"OpaqueRef:{n - 1}")] == (json.loads(data(n - 1, pad)), n, n)
    j = journals.open()
    j.write([[("VM", f"OpaqueRef:{i}", None, n + 1 + i, i + 1)] for i in range(n)])
    loaded = journals.open().load()
    assert loaded.rows == [] and len(loaded.deletions) == n and loaded.generation == 2 * n


def test_old_deletions_are_forgotten_past_the_horizon(journals):
    j = journals.open(deletions=10)
    gen = 0
    for i in range(150):
        gen += 2
        j.write([[("VM", f"OpaqueRef:{i}", data(i), gen - 1, gen - 1)], [("VM", f"OpaqueRef:{i}", None, gen, gen - 1)]])
    loaded = journals.open(deletions=10).load()
    assert loaded.rows == [] and loaded.generation == gen
    assert 10 <= len(loaded.deletions) <= 10 + 100 + 1
    assert loaded.deletions[-1] == (gen, "VM", "OpaqueRef:149", gen - 1)
    assert loaded.horizon == loaded.deletions[0][0] - 2  # the newest forgotten one
