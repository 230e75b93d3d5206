"""The store and its group commit (server/durability.py) over the etcd journal, as the agent
will run them: batches grouped into one etcd transaction, and a write refused by the
leadership condition stopping the journal with nothing of it stored (fencing)."""

import json
import uuid

import pytest
from twisted.python.failure import Failure

from hostagent.backends import etcd
from hostagent.datamodel.api import build_api
from hostagent.db.journal_etcd import EtcdJournal, Leadership
from hostagent.db.journal_port import NotLeader
from hostagent.db.store import Store
from hostagent.server.durability import GroupCommit, JournalFailed

from ..unit.server.test_durability import InlineReactor, ManualPool
from .etcd_support import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def member(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("etcd")).start()
    yield cluster
    cluster.stop()


def names(journal):
    return sorted(json.loads(d)["r"]["name_label"] for cls, _, d, *_ in journal.load().rows if cls == "VM")


def test_group_commit_over_etcd_and_a_lost_leadership_stops_it(member):
    client = member.client()
    pool_uuid = str(uuid.uuid4())
    lease = client.grant(30)
    key = f"/hostagent/{pool_uuid}/leader".encode()
    held = client.txn([etcd.created_at(key, 0)], [etcd.put(key, b"this host", lease)])
    journal = EtcdJournal(client, pool_uuid, leader=Leadership(key.decode(), held.revision))
    pool = ManualPool()
    commit = GroupCommit(InlineReactor(), journal, pool=pool)
    store = Store(build_api(), submit=commit.submit)
    commit.on_durable.append(store.settled)
    failures = []
    commit.on_failure.append(failures.append)

    def create(name):
        with store.transaction():
            store.create("VM", {"name_label": name})

    create("a")  # write 1 starts with "a" alone
    create("b")  # "b" and "c" queue behind it: one write, one etcd transaction
    create("c")
    pool.run_next()
    before = int(client.status()["header"]["revision"])
    pool.run_next()
    assert int(client.status()["header"]["revision"]) == before + 1
    assert commit.done == commit.issued and not store.pending
    assert names(EtcdJournal(member.client(), pool_uuid)) == ["a", "b", "c"]

    client.revoke(lease)  # another host takes over, or the lease ran out
    create("d")
    waited = []
    commit.wait(store.last_durable).addBoth(waited.append)
    pool.run_next()
    assert len(waited) == 1 and isinstance(waited[0], Failure) and waited[0].check(JournalFailed)
    assert len(failures) == 1 and isinstance(commit.failed, NotLeader)
    with pytest.raises(JournalFailed):
        create("e")
    assert names(EtcdJournal(member.client(), pool_uuid)) == ["a", "b", "c"]
