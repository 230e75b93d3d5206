"""The master's database copies on its members (actions/pool_emergency.py) and
pool.recover_slaves, with a fake peer (the real ones run in
tests/functional/test_pool_emergency.py)."""

import asyncio

import pytest

from hostagent.actions.pool_emergency import (
    emergency_reset_master,
    recover_slaves,
    send_copies,
)
from hostagent.datamodel.errors import ApiError
from hostagent.pool import replica
from hostagent.pool.client import Answer
from hostagent.pool.handover import snapshot
from hostagent.pool.identity import ensure_identity
from hostagent.rpc.dispatch import Origin

from .test_designate import pool  # noqa: F401  (the fixture: a master and one member)


def _live(rt, member):
    with rt.store.transaction():
        rt.store.update("host_metrics", rt.store.get("host", member)["metrics"], live=True)


def _run(rt, fn):
    return asyncio.run(fn(rt.context(None, None, Origin("tcp", "127.0.0.9:5"), None)))


def test_copies_go_to_live_members_when_the_database_changed(pool):  # noqa: F811
    rt, member, with_peer = pool
    sent = []
    m = with_peer(lambda op, payload: sent.append((op, payload)) or True)
    _live(rt, member)
    assert _run(rt, send_copies) == 1
    op, payload = sent[-1]
    assert op == "db_copy" and payload["master"] == rt.store.get("host", rt.host)["uuid"]
    assert payload["generation"] == rt.store.gen
    assert m.calls[-1][1:3] == ("127.0.0.2:4443", "B-PEM")  # pinned to the member's certificate
    rows = {(c, r): d for c, r, d in payload["rows"]}
    assert '"pool_endpoint":"127.0.0.1:4443"' in rows[("host", rt.host)]  # how to reach this master
    # nothing changed: nothing sent, however long after
    assert _run(rt, send_copies) == 0
    pool_ref = next(iter(rt.store.all("pool")))
    with rt.store.transaction():
        rt.store.set("pool", pool_ref, "name_description", "changed")
    assert _run(rt, send_copies) == 0  # within the interval since the last copy
    rt.clock = lambda: 10_000.0  # the interval has passed
    assert _run(rt, send_copies) == 1
    assert '"name_description":"changed"' in {(c, r): d for c, r, d in sent[-1][1]["rows"]}[("pool", pool_ref)]


def test_a_member_not_live_or_unreachable_has_no_current_copy(pool):  # noqa: F811
    rt, member, with_peer = pool

    def unreachable(op, payload):
        raise ApiError("CANNOT_CONTACT_HOST", member)

    m = with_peer(unreachable)
    with rt.store.transaction():
        rt.store.update("host_metrics", rt.store.get("host", member)["metrics"], live=False)
    assert _run(rt, send_copies) == 0 and m.calls == []
    _live(rt, member)
    assert _run(rt, send_copies) == 0 and len(m.calls) == 1
    assert m.copy_gens == {}  # tried again at a later heartbeat


def test_recover_slaves_repoints_the_members_it_reaches(pool):  # noqa: F811
    rt, member, with_peer = pool
    told = []
    m = with_peer(lambda op, payload: told.append((op, payload)) or True)
    assert _run(rt, recover_slaves) == [member]
    op, payload = told[0]
    assert op == "repoint" and payload["master_address"] == "127.0.0.1:4443"
    assert payload["master_host"] == rt.host and payload["master_cert"] == m.identity.cert_pem

    def unreachable(op, payload):
        raise ApiError("CANNOT_CONTACT_HOST", member)

    with_peer(unreachable)
    assert _run(rt, recover_slaves) == []


def test_reset_master_checks_the_certificate_recorded_in_the_copy(pool, tmp_path):  # noqa: F811
    rt, member, with_peer = pool
    real = ensure_identity(str(tmp_path), "b", ["127.0.0.2"]).cert_pem
    (tmp_path / "x").mkdir()
    other = ensure_identity(str(tmp_path / "x"), "x", ["127.0.0.2"]).cert_pem
    with rt.store.transaction():
        rt.store.set_private("host", member, pool_cert=real)
    member_uuid = rt.store.get("host", member)["uuid"]
    shown = {"cert": other, "master": True}
    m = with_peer(lambda op, payload: Answer({"host_uuid": member_uuid, "master": shown["master"],
                                              "master_address": "elsewhere:1"}, shown["cert"]))

    async def run_blocking(fn):
        return fn()

    m.run_blocking = run_blocking
    replica.save_copy(m.state_dir, "old-master", rt.store.gen, snapshot(rt.store))
    m.become_slave("127.0.0.1:4443", rt.host, "old-master", m.identity.cert_pem, m.secret)

    def reset(address):
        ctx = rt.context(None, None, Origin("unix", ""), None)
        return asyncio.run(emergency_reset_master(ctx, address))

    with pytest.raises(ApiError) as e:  # another certificate than the one recorded
        reset("127.0.0.2:4443")
    assert e.value.description == ["CANNOT_CONTACT_HOST", "127.0.0.2:4443"]
    assert m.role.master_address == "127.0.0.1:4443"
    shown.update(cert=real, master=False)
    with pytest.raises(ApiError) as e:  # the right host, but not a master
        reset("127.0.0.2:4443")
    assert e.value.description == ["HOST_IS_SLAVE", "elsewhere:1"]
    shown["master"] = True
    assert reset("127.0.0.2:4443") == ""
    assert (m.role.master_address, m.role.master_host, m.role.master_uuid, m.role.master_cert) == \
        ("127.0.0.2:4443", member, member_uuid, real)
