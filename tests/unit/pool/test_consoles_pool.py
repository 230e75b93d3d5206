"""Consoles of a member's VMs (hostagent/actions/consoles_pool.py): the master tells each live
member which of its VMs want a terminal and records the vt100 consoles it serves; the member
keeps the master's set in memory, refusing uuids that could name a file elsewhere. The KVM
test (tests/functional/test_pool_consoles_kvm.py) drives the real thing."""

import asyncio
import dataclasses

import pytest

from hostagent.actions import consoles_pool
from hostagent.backends.consoles import ConsolePort, Terminal, Vncterms
from hostagent.datamodel.api import build_api
from hostagent.datamodel.errors import ApiError
from hostagent.pool import client
from hostagent.pool.identity import ensure_identity
from hostagent.pool.membership import Membership
from hostagent.pool.role import SLAVE, Role
from hostagent.rpc.sessions import SessionManager

from ..rpc.runtime import make_runtime
from .test_records import lone_host


async def _blocking(fn, *args):
    return fn(*args)


@pytest.fixture
def pool(tmp_path):
    api = build_api()
    store, host, _ = lone_host(api, "m")
    now = [1000.0]
    rt = make_runtime(store, SessionManager(store, lambda: now[0], lambda: host), host, lambda: now[0])
    rt.pool = Membership(str(tmp_path), ensure_identity(str(tmp_path), "m", []), None, lambda: now[0])
    rt.ports = dataclasses.replace(rt.ports, consoles=ConsolePort(Vncterms(str(tmp_path)), _blocking))
    with store.transaction():
        store.set("host", host, "address", "10.0.0.1")
        metrics = store.create("host_metrics", {"live": True})
        member = store.create("host", {"name_label": "member", "metrics": metrics, "address": "10.0.0.2"})
        store.set_private("host", member, pool_endpoint="10.0.0.2:4443", pool_cert="PEM")
        vm = store.create("VM", {"name_label": "guest", "power_state": "Running", "resident_on": member})
    return rt, member, metrics, vm, now


def test_the_master_tells_a_live_member_and_records_the_consoles_it_serves(pool):
    rt, member, metrics, vm, now = pool
    store, port = rt.store, rt.ports.consoles
    uuid = store.get("VM", vm)["uuid"]
    calls, gone = [], []
    port.on_vm_gone.append(gone.append)

    async def call(address, op, payload, *, pinned, host, timeout):
        calls.append((address, op, payload, pinned, host))
        return client.Answer([uuid, "not-a-vm"], "PEM")

    rt.pool.call = call
    asyncio.run(consoles_pool.tell_members(rt.internal()))
    assert calls == [("10.0.0.2:4443", "consoles", {"wanted": {uuid: "guest"}}, "PEM", member)]
    [console] = store.get("VM", vm)["consoles"]
    rec = store.get("console", console)
    assert rec["protocol"] == "vt100"
    assert rec["location"] == f"https://10.0.0.1/console?uuid={rec['uuid']}"  # the master's address
    asyncio.run(consoles_pool.tell_members(rt.internal()))
    assert len(store.get("VM", vm)["consoles"]) == 1 and len(calls) == 1  # nothing new: not told again
    now[0] += consoles_pool.RETELL
    asyncio.run(consoles_pool.tell_members(rt.internal()))
    assert len(calls) == 2 and len(store.get("VM", vm)["consoles"]) == 1  # told again after a while

    # the VM gets disable_pv_vnc: the member hears an empty set, the master's relays close
    with store.transaction():
        store.set("VM", vm, "other_config", {"disable_pv_vnc": "true"})
    asyncio.run(consoles_pool.tell_members(rt.internal()))
    assert calls[-1][2] == {"wanted": {}} and gone == [uuid]

    # a member that is not live is not called
    with store.transaction():
        store.set("host_metrics", metrics, "live", False)
    asyncio.run(consoles_pool.tell_members(rt.internal()))
    assert len(calls) == 3
    with store.transaction():  # live again, its agent restarted: told again
        store.set("host_metrics", metrics, "live", True)
        store.set("VM", vm, "other_config", {})
    rt.pool.instances[store.get("host", member)["uuid"]] = "new run"
    asyncio.run(consoles_pool.tell_members(rt.internal()))
    asyncio.run(consoles_pool.tell_members(rt.internal()))
    assert len(calls) == 4 and calls[-1][2] == {"wanted": {uuid: "guest"}}
    rt.pool.instances[store.get("host", member)["uuid"]] = "another run"
    asyncio.run(consoles_pool.tell_members(rt.internal()))
    assert len(calls) == 5


def test_a_member_keeps_the_masters_set_and_answers_what_runs(pool):
    rt, _, _, _, _ = pool
    port = rt.ports.consoles
    ctx = rt.internal()
    with pytest.raises(ApiError) as e:  # a lone host serves no pool consoles
        consoles_pool.serve_wanted(ctx, {"wanted": {}})
    assert e.value.code == "OPERATION_NOT_ALLOWED"
    rt.pool.role = Role(SLAVE, "10.0.0.1:443", "", "", "PEM")
    poked = []
    port.on_change = lambda: poked.append(1)
    for bad in ({"../../etc/x": "n"}, {"abc/def": "n"}, {"abc": 3}, ["abc"], None):
        with pytest.raises(ApiError) as e:
            consoles_pool.serve_wanted(ctx, {"wanted": bad})
        assert e.value.code == "INTERNAL_ERROR"
    assert port.pool_wanted is None and poked == []
    port.terms.running["vm-abc-1"] = Terminal("vm-abc-1", 1, "/dev/pts/1", 5901, "abc-1")
    port.terms.running["vm-old"] = Terminal("vm-old", 2, "/dev/pts/2", 5902, "old")
    assert consoles_pool.serve_wanted(ctx, {"wanted": {"ABC-1": "x" * 1000, "abc-2": "b"}}) == ["abc-1"]
    assert port.pool_wanted == {"abc-1": "x" * consoles_pool.MAX_TITLE, "abc-2": "b"} and poked == [1]
    consoles_pool.serve_wanted(ctx, {"wanted": {"ABC-1": "x" * 1000, "abc-2": "b"}})
    assert poked == [1]  # the same set: no settle asked


def test_a_relay_request_names_a_vm_and_a_protocol(pool):
    rt, _, _, _, _ = pool
    ctx = rt.internal()
    with pytest.raises(ApiError):
        consoles_pool.check_relay(ctx, {"uuid": "abc", "protocol": "rfb"})  # not a member
    rt.pool.role = Role(SLAVE, "10.0.0.1:443", "", "", "PEM")
    assert consoles_pool.check_relay(ctx, {"uuid": "ABC", "protocol": "rfb"}) == ("abc", "rfb")
    for query in ({"uuid": "abc", "protocol": "ssh"}, {"uuid": "../x", "protocol": "vt100"}, {"protocol": "rfb"}):
        with pytest.raises(ApiError):
            consoles_pool.check_relay(ctx, query)


def test_guests_console_locations_are_rewritten_to_name_the_master(pool):
    rt, _, _, vm, _ = pool
    store = rt.store
    with store.transaction():
        old = store.create("console", {"protocol": "rfb", "VM": vm})
        store.set("console", old, "location", "https://10.0.0.2/console?uuid=x")  # the former master's
        dom0 = store.get("host", rt.host)["control_domain"]
        host_console = store.create("console", {"protocol": "vt100", "VM": dom0})
        store.set("console", host_console, "location", "https://10.0.0.9/console?ref=y")
    assert consoles_pool.relocate(rt.internal()) == 1
    assert store.get("console", old)["location"] == f"https://10.0.0.1/console?uuid={store.get('console', old)['uuid']}"
    assert store.get("console", host_console)["location"] == "https://10.0.0.9/console?ref=y"  # a host's own
    assert consoles_pool.relocate(rt.internal()) == 0
