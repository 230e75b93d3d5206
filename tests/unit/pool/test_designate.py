"""pool.designate_new_master on the master: it waits for the calls under way, sends the copy,
and stays master when the target does not take it. The target is a fake peer (the real one
runs in tests/functional/test_pool_handover.py)."""

import asyncio

import pytest

from hostagent.actions.pool_handover import DRAIN_TIMEOUT, designate_new_master
from hostagent.datamodel.api import build_api
from hostagent.datamodel.errors import ApiError
from hostagent.pool.identity import ensure_identity
from hostagent.pool.membership import Membership
from hostagent.pool.records import export_host, import_host
from hostagent.rpc.dispatch import Origin
from hostagent.rpc.sessions import SessionManager

from ..rpc.runtime import make_runtime
from .test_records import lone_host


class FakePeerMembership(Membership):
    """The real Membership, its calls to other members answered here (`answer(op, payload)`)."""

    def __init__(self, *a, answer, **kw):
        super().__init__(*a, **kw)
        self.answer, self.calls = answer, []

    async def call(self, address, op, payload, *, pinned, host, secret="", timeout=0):
        self.calls.append((op, address, pinned, self.freeze.active))
        return self.answer(op, payload)


@pytest.fixture
def pool(tmp_path):
    api = build_api()
    store, host, pool_ref = lone_host(api, "m")
    member_store, member, _ = lone_host(api, "b")
    with store.transaction():
        import_host(store, export_host(member_store, member), pool_ref)
        store.set_private("host", member, pool_endpoint="127.0.0.2:4443", pool_cert="B-PEM")
    clock = [1000.0]

    async def sleep(seconds):
        clock[0] += seconds
        await asyncio.sleep(0)

    rt = make_runtime(store, SessionManager(store, lambda: clock[0], lambda: host), host, lambda: clock[0],
                      sleep=sleep)

    def with_peer(answer):
        (tmp_path / "m").mkdir(exist_ok=True)
        identity = ensure_identity(str(tmp_path / "m"), "m", ["127.0.0.1"])
        rt.pool = FakePeerMembership(str(tmp_path / "m"), identity, None, lambda: clock[0], answer=answer)
        rt.pool.endpoint = "127.0.0.1:4443"
        return rt.pool

    return rt, member, with_peer


def designate(rt, host, *others):
    ctx = rt.context(None, None, Origin("tcp", "127.0.0.9:5"), None)

    async def both():
        return (await asyncio.gather(designate_new_master(ctx, host), *others))[0]

    return asyncio.run(both())


def test_the_copy_is_sent_after_the_calls_under_way_end(pool):
    rt, member, with_peer = pool
    ended, at_call = [], []
    m = with_peer(lambda op, payload: at_call.append(list(ended)) or {"host": member})
    m.freeze.begin()  # a call being served
    async_task = rt.tasks.create("Async.VM.clean_shutdown")
    rt.tasks.create("made by a client with task.create")  # not waited for

    async def finish():
        for _ in range(5):
            await asyncio.sleep(0)
        with rt.store.transaction():
            rt.store.set("pool", next(iter(rt.store.all("pool"))), "name_label", "written by the call")
        m.freeze.end()
        ended.append("call")
        for _ in range(5):
            await asyncio.sleep(0)
        rt.tasks.succeed(async_task, "")
        ended.append("task")

    assert designate(rt, member, finish()) == ""
    [(op, address, pinned, active)] = m.calls
    assert (op, address, pinned, active) == ("take_over", "127.0.0.2:4443", "B-PEM", 0)
    assert at_call == [["call", "task"]]
    assert m.is_slave and m.role.master_address == "127.0.0.2:4443" and m.role.master_host == member
    assert not m.freeze.frozen


def test_the_copy_holds_what_the_calls_wrote_and_how_to_reach_the_old_master(pool):
    rt, member, with_peer = pool
    sent = {}
    m = with_peer(lambda op, payload: sent.update(payload) or {"host": member})
    with rt.store.transaction():
        rt.store.set("pool", next(iter(rt.store.all("pool"))), "name_description", "acknowledged")
    designate(rt, member)
    rows = {(c, r): d for c, r, d in sent["rows"]}
    assert '"name_description":"acknowledged"' in rows[("pool", next(iter(rt.store.all("pool"))))]
    assert '"pool_endpoint":"127.0.0.1:4443"' in rows[("host", rt.host)]
    assert m.identity.cert_pem.replace("\n", "\\n") in rows[("host", rt.host)]


def test_a_target_that_does_not_take_it_leaves_the_master_serving(pool):
    rt, member, with_peer = pool
    seen, released = [], []

    def unreachable(op, payload):
        seen.append(rt.pool.freeze.holds("VM.start"))  # new calls wait meanwhile
        rt.pool.freeze.wait(lambda: released.append(True))
        raise ApiError("CANNOT_CONTACT_HOST", member)

    m = with_peer(unreachable)
    with pytest.raises(ApiError) as e:
        designate(rt, member)
    assert e.value.description == ["CANNOT_CONTACT_HOST", member]
    assert seen == [True] and released == [True]  # held calls go on, served here
    assert not m.is_slave and not m.freeze.frozen and not m.freeze.holds("VM.start")


def test_calls_that_never_end_abandon_the_handover(pool):
    rt, member, with_peer = pool
    m = with_peer(lambda op, payload: {"host": member})
    m.freeze.begin()
    with pytest.raises(ApiError) as e:
        designate(rt, member)
    assert e.value.code == "OPERATION_NOT_ALLOWED" and f"{DRAIN_TIMEOUT:.0f} s" in e.value.description[1]
    assert m.calls == [] and not m.is_slave and not m.freeze.frozen


def test_refusals(pool):
    rt, member, with_peer = pool
    m = with_peer(lambda op, payload: {"host": member})
    assert designate(rt, rt.host) == "" and m.calls == []  # the master itself: nothing to do
    with rt.store.transaction():
        rt.store.set("host_metrics", rt.store.get("host", member)["metrics"], "live", False)
    with pytest.raises(ApiError) as e:
        designate(rt, member)
    assert e.value.description == ["HOST_OFFLINE", member]
    with rt.store.transaction():
        rt.store.set("host_metrics", rt.store.get("host", member)["metrics"], "live", True)
    m.freeze.start()  # another handover under way
    with pytest.raises(ApiError) as e:
        designate(rt, member)
    assert e.value.code == "OTHER_OPERATION_IN_PROGRESS"
    assert m.calls == []
