"""Runtime.ports_for / Context.on_host with a pool member (hostagent/pool/membership.py):
HOST_OFFLINE unless live, proxies otherwise, a slave forwards nothing; a port call's own
lifecycle events are recognised for a while."""

import pytest

from hostagent.datamodel.api import build_api
from hostagent.datamodel.errors import ApiError
from hostagent.pool.identity import ensure_identity
from hostagent.pool.membership import OWN_EVENT_WINDOW, Membership
from hostagent.pool.remote import RemoteDomains, RemoteGuestAgent, RemoteStorage, RemoteXenstore
from hostagent.pool.role import SLAVE, Role
from hostagent.rpc.sessions import SessionManager

from ..rpc.runtime import make_runtime
from .test_records import lone_host


@pytest.fixture
def pool(tmp_path):
    api = build_api()
    store, host, _ = lone_host(api, "m")
    now = [1000.0]
    rt = make_runtime(store, SessionManager(store, lambda: now[0], lambda: host), host, lambda: now[0])
    rt.pool = Membership(str(tmp_path), ensure_identity(str(tmp_path), "m", []), None, lambda: now[0])
    with store.transaction():
        metrics = store.create("host_metrics", {"live": True})
        member = store.create("host", {"name_label": "member", "metrics": metrics})
        store.set_private("host", member, pool_endpoint="127.0.0.2:4443", pool_cert="PEM")
    return rt, member, metrics, now


def test_a_live_member_gets_proxies_and_this_host_its_own_ports(pool):
    rt, member, _, _ = pool
    assert rt.ports_for(rt.host) is rt.ports
    ports = rt.ports_for(member)
    assert isinstance(ports.domains, RemoteDomains) and isinstance(ports.storage, RemoteStorage)
    assert isinstance(ports.xenstore, RemoteXenstore) and isinstance(ports.guest_agent, RemoteGuestAgent)
    assert ports.consoles is None and ports.links is None  # not forwarded yet
    assert rt.ports_for(member) is ports  # made once per member, endpoint and certificate
    ctx = rt.internal().on_host(member)
    assert ctx.host == member and ctx.ports is ports and ctx.remote
    back = ctx.on_host(rt.host)
    assert back.host == rt.host and back.ports is rt.ports and not back.remote


def test_a_member_not_live_is_offline_and_an_unknown_one_cannot_be_contacted(pool):
    rt, member, metrics, _ = pool
    with rt.store.transaction():
        rt.store.set("host_metrics", metrics, "live", False)
    with pytest.raises(ApiError) as e:
        rt.ports_for(member)
    assert e.value.description == ["HOST_OFFLINE", member]
    with pytest.raises(ApiError) as e:
        rt.ports_for("OpaqueRef:nobody")
    assert e.value.description == ["CANNOT_CONTACT_HOST", "OpaqueRef:nobody"]


def test_a_slave_forwards_nothing(pool):
    rt, member, _, _ = pool
    rt.pool.role = Role(SLAVE, "127.0.0.1:443", "", "", "PEM")
    with pytest.raises(ApiError) as e:
        rt.ports_for(member)
    assert e.value.description == ["CANNOT_CONTACT_HOST", member]


def test_a_port_calls_own_event_is_recognised_once_and_for_a_while(pool):
    rt, _, _, now = pool
    m = rt.pool
    m.expect_event("u", "suspended")
    assert not m.expected_event("u", "resumed") and not m.expected_event("v", "suspended")
    assert m.expected_event("u", "suspended") and not m.expected_event("u", "suspended")
    m.expect_event("u", "stopped")
    now[0] += OWN_EVENT_WINDOW + 1
    assert not m.expected_event("u", "stopped")  # too late: a change behind the agent's back
