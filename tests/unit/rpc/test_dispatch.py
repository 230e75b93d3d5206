"""The dispatcher: lookup, session checks, counting, coercion, errors (no network)."""

import asyncio
import inspect

import pytest

from hostagent.actions import all_handlers
from hostagent.actions.bootstrap import ensure_host
from hostagent.backends.hostinfo import Cpu, HostFacts
from hostagent.datamodel.api import build_api
from hostagent.db.store import Store
from hostagent.rpc.dispatch import Dispatcher, Origin
from hostagent.rpc.sessions import SessionManager

from .runtime import make_runtime

FACTS = HostFacts("h1", "192.0.2.1", [Cpu(0, "GenuineIntel", 2000), Cpu(1, "GenuineIntel", 2000)],
                  8 << 30, 4 << 30)


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def api():
    return build_api()


@pytest.fixture
def env(api):
    store = Store(api)
    clock = Clock()
    host = ensure_host(store, FACTS, "test", clock)
    sessions = SessionManager(store, clock, lambda: host)
    d = Dispatcher(api, make_runtime(store, sessions, host, clock), all_handlers())
    return d, clock


def call(d, method, *params, origin=Origin()):
    out = d.call(method, list(params), origin)
    if inspect.isawaitable(out):
        async def drive():
            return await out
        out = asyncio.run(drive())
    return out


def ok(d, method, *params, **kw):
    r = call(d, method, *params, **kw)
    assert r.error is None, r.error
    return r.value


def err(d, method, *params, **kw):
    r = call(d, method, *params, **kw)
    assert r.error is not None, f"{method} succeeded with {r.value!r}"
    return r.error


def login(d, origin=Origin()):
    return ok(d, "session.login_with_password", "root", "secret", origin=origin)


def test_login_variants_and_bad_password(env):
    d, _ = env
    assert ok(d, "session.login_with_password", "root", "secret").startswith("OpaqueRef:")
    ok(d, "session.login_with_password", "root", "secret", "2.21")
    ok(d, "session.login_with_password", "root", "secret", "2.21", "tool")
    assert err(d, "session.login_with_password", "root", "wrong") == [
        "SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"]
    assert err(d, "session.login_with_password", "root") == [
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "session.login_with_password", "2", "1"]
    assert err(d, "session.login_with_password", "a", "b", "c", "d", "e")[0] == "MESSAGE_PARAMETER_COUNT_MISMATCH"


def test_unix_socket_needs_no_password(env):
    d, _ = env
    s = ok(d, "session.login_with_password", "", "", origin=Origin("unix"))
    rec = ok(d, "session.get_record", s, s)
    assert rec["is_local_superuser"] is True and rec["auth_user_name"] == "root"


def test_session_errors(env):
    d, _ = env
    assert err(d, "VM.get_all", "OpaqueRef:bogus") == ["SESSION_INVALID", "OpaqueRef:bogus"]
    s = login(d)
    ok(d, "session.logout", s)
    assert err(d, "VM.get_all", s) == ["SESSION_INVALID", s]


def test_unknown_method_checks_session_first(env):
    d, _ = env
    assert err(d, "VM.frobnicate", "OpaqueRef:bogus") == ["SESSION_INVALID", "OpaqueRef:bogus"]
    s = login(d)
    assert err(d, "VM.frobnicate", s) == ["MESSAGE_METHOD_UNKNOWN", "VM.frobnicate"]
    assert err(d, "nonsense") == ["MESSAGE_METHOD_UNKNOWN", "nonsense"]


def test_count_excludes_session_and_alias_works(env):
    d, _ = env
    s = login(d)
    assert err(d, "VM.get_record", s) == ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_record", "1", "0"]
    pools = ok(d, "pool_get_all", s)
    assert len(pools) == 1
    assert ok(d, "VM_metrics_get_all", s)


def test_handles_and_uuids(env):
    d, _ = env
    s = login(d)
    assert err(d, "VM.get_record", s, "OpaqueRef:NULL") == ["HANDLE_INVALID", "VM", "OpaqueRef:NULL"]
    pool = ok(d, "pool.get_all", s)[0]
    assert err(d, "VM.get_record", s, pool) == ["HANDLE_INVALID", "VM", pool]
    assert err(d, "VM.get_by_uuid", s, "nope") == ["UUID_INVALID", "VM", "nope"]


def test_create_get_set_maps_sets_where_destroy(env):
    d, _ = env
    s = login(d)
    vm = ok(d, "VM.create", s, {
        "name_label": "web", "name_description": "", "user_version": "1", "is_a_template": False,
        "affinity": "OpaqueRef:NULL", "memory_static_max": str(2 << 30), "memory_dynamic_max": str(2 << 30),
        "memory_dynamic_min": str(1 << 30), "memory_static_min": str(1 << 30), "VCPUs_params": {},
        "VCPUs_max": 2, "VCPUs_at_startup": "2", "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart", "actions_after_crash": "restart", "PV_bootloader": "",
        "PV_kernel": "", "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "dc"}, "platform": {},
        "PCI_bus": "", "other_config": {}, "recommendations": ""})
    assert ok(d, "VM.get_memory_static_max", s, vm) == 2 << 30
    ok(d, "VM.set_name_label", s, vm, "web2")
    assert ok(d, "VM.get_by_name_label", s, "web2") == [vm]
    ok(d, "VM.add_to_other_config", s, vm, "k", "v")
    assert err(d, "VM.add_to_other_config", s, vm, "k", "w") == ["MAP_DUPLICATE_KEY", "VM", "other_config", vm, "k"]
    ok(d, "VM.remove_from_other_config", s, vm, "missing")
    ok(d, "VM.add_tags", s, vm, "a")
    ok(d, "VM.add_tags", s, vm, "a")
    assert ok(d, "VM.get_tags", s, vm) == ["a"]
    where = ok(d, "VM.get_all_records_where", s, 'field "name__label"="web2"')
    assert list(where) == [vm]
    assert err(d, "VM.get_all_records_where", s, "field (")[0] == "INVALID_VALUE"
    ok(d, "VM.destroy", s, vm)
    assert err(d, "VM.get_record", s, vm) == ["HANDLE_INVALID", "VM", vm]


def test_type_errors(env):
    d, _ = env
    s = login(d)
    net = ok(d, "network.create", s, {"name_label": "n", "other_config": {}})
    assert err(d, "network.set_MTU", s, net, "lots") == ["FIELD_TYPE_ERROR", "value"]
    assert err(d, "network.set_MTU", s, net, True) == ["FIELD_TYPE_ERROR", "value"]
    ok(d, "network.set_MTU", s, net, "9000")
    assert ok(d, "network.get_MTU", s, net) == 9000
    assert err(d, "network.create", s, {"name_label": "n"}) == ["FIELD_TYPE_ERROR", "other_config"]
    assert err(d, "network.set_bridge", s, net, "xenbr9")[0] == "MESSAGE_METHOD_UNKNOWN"  # RO: no setter
    vm = ok(d, "VM.get_all", s)[0]
    assert err(d, "VM.set_actions_after_shutdown", s, vm, "Destroy") == [
        "INVALID_VALUE", "value", "Destroy"]


def test_bootstrap_objects(env):
    d, _ = env
    s = login(d)
    pool = ok(d, "pool.get_all", s)[0]
    host = ok(d, "pool.get_master", s, pool)
    assert ok(d, "host.get_API_version_major", s, host) == 2
    assert len(ok(d, "host.get_host_CPUs", s, host)) == 2
    dom0 = ok(d, "host.get_control_domain", s, host)
    rec = ok(d, "VM.get_record", s, dom0)
    assert rec["is_control_domain"] and rec["power_state"] == "Running" and rec["domid"] == 0
    assert rec["resident_on"] == host and dom0 in ok(d, "host.get_resident_VMs", s, host)
    assert ok(d, "session.get_this_host", s, s) == host


def test_eviction_least_recently_active_first(env, api):
    d, clock = env
    d.sessions.limits = type(d.sessions.limits)(per_originator=3)
    refs = []
    for _ in range(3):
        clock.now += 10
        refs.append(ok(d, "session.login_with_password", "root", "secret", "1.0", "tool"))
    clock.now += 10
    ok(d, "VM.get_all", refs[0])  # refs[1] is now the least recently active
    clock.now += 10
    ok(d, "session.login_with_password", "root", "secret", "1.0", "tool")
    assert err(d, "VM.get_all", refs[1]) == ["SESSION_INVALID", refs[1]]
    ok(d, "VM.get_all", refs[0])
    ok(d, "VM.get_all", refs[2])


def test_idle_sessions_expire_after_a_day(env):
    d, clock = env
    old = login(d)
    clock.now += 23 * 3600
    fresh = login(d)
    clock.now += 2 * 3600
    assert d.sessions.expire_idle() == 1
    assert err(d, "VM.get_all", old) == ["SESSION_INVALID", old]
    ok(d, "VM.get_all", fresh)


def test_change_password(env):
    d, _ = env
    s = login(d)
    ok(d, "session.change_password", s, "secret", "new")
    assert ok(d, "session.login_with_password", "root", "new")
    assert err(d, "session.change_password", s, "bad", "x")[0] == "SESSION_AUTHENTICATION_FAILED"


def test_list_methods_without_session(env):
    d, _ = env
    r = call(d, "system.listMethods")
    assert r.bare and "task.get_all_records" in r.value and "VM.get_record" in r.value


def test_missing_implementation_refused(api):
    store = Store(api)
    rt = make_runtime(store, SessionManager(store, lambda: 0.0, lambda: ""), "", lambda: 0.0)
    with pytest.raises(LookupError, match="without an implementation"):
        Dispatcher(api, rt, {})


def test_misspelled_override_refused(api):
    """An override of a message the datamodel does not declare (a typo of an implicit
    message's name) fails at start, as a missing implementation does."""
    store = Store(api)
    rt = make_runtime(store, SessionManager(store, lambda: 0.0, lambda: ""), "", lambda: 0.0)
    with pytest.raises(LookupError, match="VM.get_nmae_label"):
        Dispatcher(api, rt, {**all_handlers(), "VM.get_nmae_label": lambda ctx, vm: ""})
