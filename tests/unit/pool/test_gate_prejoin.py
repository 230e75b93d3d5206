"""A slave's client gate (HOST_IS_SLAVE, proxy, served here) and pool.join's own checks."""

import pytest

from hostagent.actions.pool import prejoin_problem, version_problem
from hostagent.datamodel.api import build_api
from hostagent.db.store import Store
from hostagent.rpc import pool_gate
from hostagent.rpc.sessions import SessionManager

MASTER = "10.0.0.1:443"


@pytest.fixture
def store():
    s = Store(build_api())
    with s.transaction():
        metrics = s.create("host_metrics", {})
        host = s.create("host", {"metrics": metrics})
        s.create("pool", {"master": host})
        s.create("VM", {"is_control_domain": True, "power_state": "Running", "resident_on": host})
    return s


def sessions(store):
    host = next(iter(store.all("host")))
    return SessionManager(store, lambda: 1000.0, lambda: host)


def decide(store, method, params=(), transport="tcp"):
    return pool_gate.decide(store, MASTER, method, list(params), transport)


def test_clients_over_tcp_are_sent_to_the_master(store):
    normal = sessions(store).create("root", "", superuser=True)
    for method, params in (("session.login_with_password", ["root", "pw"]), ("VM.get_all", [normal]),
                           ("Async.VM.start", [normal, "OpaqueRef:x", False, False]),
                           ("host.get_all", ["OpaqueRef:unknown"])):
        e = decide(store, method, params)
        assert e.description == ["HOST_IS_SLAVE", MASTER], method


def test_the_unix_socket_is_proxied(store):
    normal = sessions(store).create("root", "", superuser=True)
    assert decide(store, "session.login_with_password", ["root", ""], "unix") == pool_gate.PROXY
    assert decide(store, "VM.get_all", [normal], "unix") == pool_gate.PROXY


def test_the_whitelist_and_this_hosts_own_sessions_are_served_here(store):
    mgr = sessions(store)
    pool_session = mgr.create("", "", superuser=True, pool=True)
    local = mgr.create("root", "", superuser=True, local=True)
    for transport in ("tcp", "unix"):
        assert decide(store, "session.slave_login", ["OpaqueRef:h", "secret"], transport) == pool_gate.SERVE
        assert decide(store, "session.slave_local_login_with_password", ["root", "pw"],
                      transport) == pool_gate.SERVE
        assert decide(store, "VM.get_all", [pool_session], transport) == pool_gate.SERVE
        assert decide(store, "host.get_all", [local], transport) == pool_gate.SERVE


def test_a_master_serves_everything(store):
    class Lone:
        is_slave = False
    assert pool_gate.verdict_for(Lone(), store, "session.login_with_password", [], "tcp") is None


def test_prejoin_checks_in_xapis_order(store):
    host = next(iter(store.all("host")))
    assert prejoin_problem(store, host) is None  # dom0 runs: that is no guest
    with store.transaction():
        sr = store.create("SR", {"shared": True})
        vm = store.create("VM", {"power_state": "Running"})
    assert prejoin_problem(store, host).code == "JOINING_HOST_CANNOT_HAVE_RUNNING_VMS"
    with store.transaction():
        store.set("VM", vm, "power_state", "Halted")
    assert prejoin_problem(store, host).code == "JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS"
    with store.transaction():
        store.set("SR", sr, "shared", False)
        store.create("host", {})
    assert prejoin_problem(store, host).code == "JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS"


def test_versions():
    assert version_problem((2, 21), [2, 21]) is None
    assert version_problem((2, 21), [2, 20]).description == [
        "POOL_JOINING_HOST_MUST_HAVE_SAME_API_VERSION", "2.21", "2.20"]
