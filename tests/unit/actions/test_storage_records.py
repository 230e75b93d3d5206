"""VDI records kept in step with a driver's scan; the intent log; probe's XML."""

import asyncio
import json
import xml.etree.ElementTree as ET

import pytest

from hostagent.actions.intents import IntentLog
from hostagent.actions.sr import probe_xml
from hostagent.actions.storage_records import BASE_NAME, sync_vdis, volume_of
from hostagent.backends.storage import Volume
from hostagent.datamodel.api import build_api
from hostagent.datamodel.types import NULL_REF
from hostagent.db.store import Store

A, B, C, D = (f"{n}0000000-0000-4000-8000-000000000000" for n in "abcd")


def vol(uuid, size=1 << 20, parent=None, read_only=False):
    return Volume(uuid, uuid, size, 4096, parent, read_only, "vhd")


@pytest.fixture
def env():
    store = Store(build_api())
    with store.transaction():
        sr = store.create("SR", {"name_label": "sr"})
        vm = store.create("VM", {"name_label": "vm"})
    return store, sr, vm


def sync(store, sr, volumes, **kw):
    with store.transaction():
        return sync_vdis(store, sr, volumes, **kw)


def test_new_volumes_become_records_bases_unmanaged(env):
    store, sr, _ = env
    refs = sync(store, sr, [vol(A, parent=B), vol(B, read_only=True)])
    a, b = store.get("VDI", refs[A]), store.get("VDI", refs[B])
    assert (a["uuid"], a["location"], a["SR"], a["virtual_size"]) == (A, A, sr, 1 << 20)
    assert a["managed"] is True and a["sm_config"] == {"vhd-parent": B} and a["read_only"] is False
    assert b["managed"] is False and b["name_label"] == BASE_NAME and b["read_only"] is True
    assert sorted(store.get("SR", sr)["VDIs"]) == sorted(refs.values())


def test_existing_records_are_updated_not_replaced(env):
    store, sr, _ = env
    ref = sync(store, sr, [vol(A)])[A]
    with store.transaction():
        store.update("VDI", ref, name_label="mine", read_only=True,
                     sm_config={"keep": "me", "vhd-parent": "old"})
    assert sync(store, sr, [vol(A, size=2 << 20, parent=B), vol(B, read_only=True)])[A] == ref
    rec = store.get("VDI", ref)
    assert rec["name_label"] == "mine" and rec["virtual_size"] == 2 << 20
    assert rec["read_only"] is True  # the user's flag is kept
    assert rec["sm_config"] == {"keep": "me", "vhd-parent": B}
    sync(store, sr, [vol(A)])
    assert store.get("VDI", ref)["sm_config"] == {"keep": "me"}


def test_vanished_volumes_are_forgotten_unless_attached(env):
    store, sr, vm = env
    refs = sync(store, sr, [vol(A), vol(B), vol(C)])
    with store.transaction():
        loose = store.create("VBD", {"VM": vm, "VDI": refs[A], "userdevice": "0"})
        plugged = store.create("VBD", {"VM": vm, "VDI": refs[B], "userdevice": "1",
                                       "currently_attached": True})
    sync(store, sr, [vol(C)])
    assert not store.exists("VDI", refs[A]) and not store.exists("VBD", loose)
    assert store.get("VDI", refs[B])["missing"] is True and store.exists("VBD", plugged)
    assert store.get("VM", vm)["VBDs"] == [plugged]
    sync(store, sr, [vol(B), vol(C)])
    assert store.get("VDI", refs[B])["missing"] is False


def test_volumes_of_running_operations_are_skipped(env):
    store, sr, _ = env
    refs = sync(store, sr, [vol(A), vol(B)])
    out = sync(store, sr, [vol(A), vol(C)], skip={B, C})
    assert set(out) == {A} and store.exists("VDI", refs[B])
    assert [store.get("VDI", r)["uuid"] for r in store.get("SR", sr)["VDIs"]] == [A, B]


def test_new_records_take_given_values(env):
    store, sr, _ = env
    refs = sync(store, sr, [vol(A), vol(D)],
                values={D: {"name_label": "clone", "is_a_snapshot": True, "snapshot_of": NULL_REF}})
    assert store.get("VDI", refs[D])["name_label"] == "clone"
    assert store.get("VDI", refs[D])["is_a_snapshot"] is True
    assert store.get("VDI", refs[A])["name_label"] == ""


def test_a_taken_uuid_gets_a_fresh_one_but_keeps_its_volume(env):
    store, sr, _ = env
    with store.transaction():
        other = store.create("SR", {"name_label": "other"})
    first = sync(store, other, [vol(A)])[A]
    second = sync(store, sr, [vol(A)])[A]
    assert store.get("VDI", first)["uuid"] == A
    assert store.get("VDI", second)["uuid"] != A and volume_of(store, second) == A
    assert sync(store, sr, [vol(A)])[A] == second  # matched by volume, not by record uuid


def run(coro):
    return asyncio.run(coro)


async def in_thread(fn, *args):
    return fn(*args)


def test_intent_log():
    rows = {}
    log = IntentLog(rows.__setitem__, rows.pop, lambda: list(rows.items()), in_thread)
    key = run(log.begin("vdi_clone", "sr-1", [A], of=B))
    assert json.loads(rows[key]) == {"op": "vdi_clone", "sr": "sr-1", "new": [A], "of": B}
    other = run(log.begin("vdi_copy", "sr-1", [C]))
    run(log.begin("vdi_create", "sr-2", [D]))
    assert log.in_flight("sr-1") == {A, C}
    assert log.in_flight("sr-1", exclude=key) == {C}
    run(log.end(key))
    assert key not in rows and log.in_flight("sr-1") == {C}
    rows["junk"] = "{not json"
    recorded = dict(log.recorded())
    assert recorded[other]["new"] == [C] and recorded["junk"]["op"] == "unreadable"


def test_intent_is_not_pending_when_it_could_not_be_written():
    def refuse(key, text):
        raise OSError("disk full")
    log = IntentLog(refuse, None, None, in_thread)
    with pytest.raises(OSError):
        run(log.begin("vdi_create", "sr-1", [A]))
    assert log.in_flight("sr-1") == set()


def test_probe_xml():
    text = probe_xml([{"uuid": A, "path": "/srv/" + A}, {"uuid": B, "path": "/srv/" + B}])
    assert text.startswith('<?xml version="1.0" ?>\n<SRlist>')
    root = ET.fromstring(text)
    assert [(e.findtext("UUID"), e.findtext("path")) for e in root] == \
        [(A, "/srv/" + A), (B, "/srv/" + B)]
    assert ET.fromstring(probe_xml([])).tag == "SRlist"
