"""The object store: defaults, relations on both ends, rollback, journal rows."""

import json

import pytest

from hostagent.datamodel.api import build_api
from hostagent.datamodel.types import NULL_REF
from hostagent.db.store import NoTransaction, NotFound, Store


@pytest.fixture(scope="module")
def api():
    return build_api()


@pytest.fixture
def store(api):
    batches = []
    s = Store(api, submit=lambda rows: batches.append(rows) or len(batches))
    s.batches = batches
    return s


def make_vm(store, **extra):
    with store.transaction():
        return store.create("VM", {"name_label": "vm", **extra})


def test_create_fills_every_field_with_defaults(store, api):
    ref = make_vm(store)
    rec = store.get("VM", ref)
    assert set(rec) == {f.name for f in api.public_fields("VM")}
    assert rec["power_state"] == "Halted"
    assert rec["resident_on"] == NULL_REF
    assert rec["VBDs"] == [] and rec["other_config"] == {}
    assert store.by_uuid("VM", rec["uuid"]) == ref


def test_relation_kept_on_both_ends(store):
    vm = make_vm(store)
    with store.transaction():
        vdi = store.create("VDI", {"name_label": "disk"})
        vbd = store.create("VBD", {"VM": vm, "VDI": vdi})
    assert store.get("VM", vm)["VBDs"] == [vbd]
    assert store.get("VDI", vdi)["VBDs"] == [vbd]
    with store.transaction():
        store.delete("VBD", vbd)
    assert store.get("VM", vm)["VBDs"] == []
    assert store.get("VDI", vdi)["VBDs"] == []


def test_changing_a_ref_moves_it_between_sets(store):
    a, b = make_vm(store), make_vm(store)
    with store.transaction():
        vif = store.create("VIF", {"VM": a})
    with store.transaction():
        store.set("VIF", vif, "VM", b)
    assert store.get("VM", a)["VIFs"] == [] and store.get("VM", b)["VIFs"] == [vif]


def test_failed_transaction_leaves_nothing(store):
    vm = make_vm(store)
    before = json.dumps(store.get("VM", vm), sort_keys=True)
    commits = store.commits
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.set("VM", vm, "name_label", "changed")
            store.create("VBD", {"VM": vm})
            raise RuntimeError("boom")
    assert json.dumps(store.get("VM", vm), sort_keys=True) == before
    assert store.all("VBD") == {}
    assert store.commits == commits


def test_commit_sends_one_batch_with_touched_objects(store):
    vm = make_vm(store)
    store.batches.clear()
    with store.transaction():
        vbd = store.create("VBD", {"VM": vm})
    (rows,) = store.batches
    assert {(c, r) for c, r, *_ in rows} == {("VBD", vbd), ("VM", vm)}
    with store.transaction():
        store.delete("VBD", vbd)
    assert ("VBD", vbd, None) in {row[:3] for row in store.batches[-1]}


def test_rows_load_back_into_an_equal_store(store, api):
    vm = make_vm(store, other_config={"a": "b"})
    rows = [r for batch in store.batches for r in batch]
    fresh = Store(api)
    latest = {}
    for cls, ref, data, *_ in rows:
        latest[(cls, ref)] = data
    for (cls, ref), data in latest.items():
        if data is not None:
            fresh.load_row(cls, ref, data)
    assert fresh.get("VM", vm) == store.get("VM", vm)
    assert fresh.by_uuid("VM", store.get("VM", vm)["uuid"]) == vm


def test_writes_need_a_transaction_and_reads_report_missing(store):
    with pytest.raises(NoTransaction):
        store.create("VM", {})
    with pytest.raises(NotFound):
        store.get("VM", "OpaqueRef:nope")


def test_created_and_deleted_in_one_transaction_emits_nothing(store):
    seen = []
    store.listeners.append(seen.append)
    with store.transaction():
        ref = store.create("network", {})
        store.delete("network", ref)
    assert seen == []


# ------------------------------------------------------------------ generations
def test_each_change_gets_the_next_generation_in_its_row(store):
    vm = make_vm(store)
    (row,) = store.batches[-1]
    assert row[3] == row[4] == store.gen  # created now
    created = row[3]
    with store.transaction():
        store.set("VM", vm, "name_label", "renamed")
        session = store.create("session", {})
    rows = {r[0]: r for r in store.batches[-1]}
    assert rows["VM"][3:] == (created + 1, created)  # changed now, created earlier
    assert rows["session"][3:] == (0, 0)  # sessions have no events: no generation
    with store.transaction():
        store.delete("VM", vm)
        store.delete("session", session)
    rows = {r[0]: r for r in store.batches[-1]}
    assert rows["VM"] == ("VM", vm, None, created + 2, created)
    assert store.gen == created + 2 and store.deleted[-1] == (created + 2, ("VM", vm), created)
    assert ("VM", vm) not in store.changed and ("VM", vm) not in store.born


def test_a_refused_batch_uses_no_generation(api):
    def refuse(rows):
        raise RuntimeError("journal stopped")
    s = Store(api, submit=refuse)
    with pytest.raises(RuntimeError):
        make_vm(s)
    assert s.gen == 0 and s.changed == {} and s.all("VM") == {}


def test_load_restores_the_counter_and_the_history(store, api):
    from hostagent.db.journal import Loaded
    vm = make_vm(store)
    gone = make_vm(store)
    with store.transaction():
        store.delete("VM", gone)
    latest = {}
    for cls, ref, data, gen, born in (r for batch in store.batches for r in batch):
        latest[(cls, ref)] = (cls, ref, data, born, gen)
    rows = [r for r in latest.values() if r[2] is not None]
    deletions = [(gen, cls, ref, born) for gen, (cls, ref), born in store.deleted]
    fresh = Store(api, deletions=10)
    fresh.load(Loaded(rows, store.gen, deletions, 0))
    assert (fresh.gen, fresh.born, fresh.changed) == (store.gen, store.born, store.changed)
    assert list(fresh.deleted) == list(store.deleted)
    with fresh.transaction():
        fresh.set("VM", vm, "name_label", "after a restart")
    assert fresh.changed[("VM", vm)] == store.gen + 1


def test_forgotten_deletions_move_the_horizon(store):
    store.limit_deletions(2)
    refs = [make_vm(store) for _ in range(3)]
    gens = []
    for ref in refs:
        with store.transaction():
            store.delete("VM", ref)
        gens.append(store.gen)
    assert [d[0] for d in store.deleted] == gens[1:] and store.horizon == gens[0]
