"""The real `XenAPI` package (PyPI) against the agent process.

What a XenAPI.py user sees: ints arrive as decimal strings (xapi sends them
untyped), booleans as bools, refs as "OpaqueRef:…", failures as
`XenAPI.Failure(details)`, and a SESSION_INVALID makes the client log in again
by itself.

Tests marked `lab` use the agent only through TCP and the API, so lab/run.py runs them against
the agent in the Xen lab's dom0 as well (lab_agent.py).
"""

import http.client
import os
import re
import socket
import time
import xmlrpc.client

import pytest
import XenAPI

from hostagent.datamodel.api import build_api

NULL = "OpaqueRef:NULL"
GiB = 1 << 30


# --------------------------------------------------------------------------- helpers

class RecordingTransport(xmlrpc.client.Transport):
    """A plain HTTP transport that remembers the path of every request."""

    def __init__(self):
        super().__init__()
        self.paths = []

    def request(self, host, handler, request_body, verbose=False):
        self.paths.append(handler)
        return super().request(host, handler, request_body, verbose)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def raw_call(conn, method, *params):
    """One XML-RPC call on a kept-alive connection; the decoded envelope."""
    body = xmlrpc.client.dumps(tuple(params), method, allow_none=True).encode()
    conn.request("POST", "/", body, {"Content-Type": "text/xml"})
    resp = conn.getresponse()
    data = resp.read()
    assert resp.status == 200, data
    (envelope,), _ = xmlrpc.client.loads(data)
    return envelope


def login(agent, originator="xenapi-client-test", url=None, transport=None):
    s = XenAPI.Session(url or agent.url, transport=transport)
    s.xenapi.login_with_password("root", agent.password, "2.21", originator)
    return s


def local_session(agent):
    s = XenAPI.Session("http://" + agent.socket.replace("/", "_") + "/", transport=XenAPI.UDSTransport())
    s.xenapi.login_with_password("", "")
    return s


def expected_cpus():
    """dom0's vCPUs as the agent reads them: /proc/cpuinfo's processors, else os.cpu_count()."""
    try:
        with open("/proc/cpuinfo") as f:
            n = sum(1 for line in f if re.match(r"processor\s*:", line))
    except OSError:
        n = 0
    return n or os.cpu_count()


def vm_record(name, **overrides):
    """A full VM.create record, every mandatory member present, ints as strings
    (as XenAPI.py users write them) except VCPUs_max, sent as an <int>."""
    rec = {
        "name_label": name,
        "name_description": "made by test_xenapi_client",
        "user_version": "1",
        "is_a_template": False,
        "affinity": NULL,
        "memory_static_max": str(2 * GiB),
        "memory_dynamic_max": str(2 * GiB),
        "memory_dynamic_min": str(GiB),
        "memory_static_min": str(GiB // 2),
        "VCPUs_params": {"weight": "256"},
        "VCPUs_max": 2,
        "VCPUs_at_startup": "1",
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart",
        "actions_after_crash": "preserve",
        "PV_bootloader": "pygrub",
        "PV_kernel": "",
        "PV_ramdisk": "",
        "PV_args": "console=hvc0",
        "PV_bootloader_args": "",
        "PV_legacy_args": "",
        "HVM_boot_policy": "",
        "HVM_boot_params": {},
        "platform": {"acpi": "1"},
        "PCI_bus": "",
        "other_config": {"made-by": "test"},
        "recommendations": "",
    }
    rec.update(overrides)
    return rec


@pytest.fixture(scope="module")
def s(agent):
    session = login(agent)
    yield session
    session.xenapi.session.logout()


# --------------------------------------------------------------------------- login paths

@pytest.mark.lab
def test_login_with_trailing_slash_posts_to_root(agent):
    assert agent.url.endswith("/")
    t = RecordingTransport()
    s = login(agent, url=agent.url, transport=t)
    try:
        assert s._session.startswith("OpaqueRef:")
        assert len(s.xenapi.pool.get_all()) == 1
    finally:
        s.xenapi.session.logout()
    assert t.paths == ["/", "/", "/"]


@pytest.mark.lab
def test_login_without_trailing_slash_posts_to_rpc2(agent):
    bare = agent.url.rstrip("/")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", bare)
    t = RecordingTransport()
    s = login(agent, url=bare, transport=t)
    try:
        assert s._session.startswith("OpaqueRef:")
        assert len(s.xenapi.pool.get_all()) == 1
    finally:
        s.xenapi.session.logout()
    assert t.paths == ["/RPC2", "/RPC2", "/RPC2"]


@pytest.mark.lab
def test_unknown_path_is_not_an_endpoint(agent):
    s = XenAPI.Session(agent.url + "nowhere/")
    with pytest.raises(xmlrpc.client.ProtocolError) as e:
        s.xenapi.login_with_password("root", agent.password, "2.21", "test")
    assert e.value.errcode == 404


def test_login_over_unix_socket_with_empty_credentials(agent):
    s = local_session(agent)
    try:
        ref = s._session
        assert ref.startswith("OpaqueRef:")
        rec = s.xenapi.session.get_record(ref)
        assert rec["is_local_superuser"] is True
        assert rec["auth_user_name"] == "root"
        assert rec["pool"] is False
        host = s.xenapi.pool.get_master(s.xenapi.pool.get_all()[0])
        assert s.xenapi.session.get_this_host(ref) == host
    finally:
        s.xenapi.session.logout()
    assert s._session is None


@pytest.mark.lab
def test_tcp_login_is_a_superuser_session_with_originator(agent):
    s = login(agent, originator="orig-check")
    try:
        rec = s.xenapi.session.get_record(s._session)
        assert rec["auth_user_name"] == "root"
        assert rec["originator"] == "orig-check"
        assert rec["is_local_superuser"] is True
        assert re.fullmatch(r"\d{8}T\d\d:\d\d:\d\dZ", str(rec["last_active"]))
    finally:
        s.xenapi.session.logout()


def test_bad_password_raises_failure(agent):
    s = XenAPI.Session(agent.url)
    with pytest.raises(XenAPI.Failure) as e:
        s.xenapi.login_with_password("root", agent.password + "x", "2.21", "test")
    assert e.value.details == ["SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"]


# --------------------------------------------------------------------------- reads

@pytest.mark.lab
def test_pool_has_exactly_one_object_whose_master_is_the_host(s):
    pools = s.xenapi.pool.get_all()
    hosts = s.xenapi.host.get_all()
    assert len(pools) == 1 and len(hosts) == 1
    assert s.xenapi.pool.get_master(pools[0]) == hosts[0]
    rec = s.xenapi.pool.get_record(pools[0])
    assert rec["master"] == hosts[0]
    assert rec["default_SR"] == NULL or rec["default_SR"].startswith("OpaqueRef:")
    assert list(s.xenapi.pool.get_all_records()) == pools


def test_host_record(s):
    host = s.xenapi.host.get_all()[0]
    rec = s.xenapi.host.get_record(host)
    sv = rec["software_version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", sv["product_version"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", sv["platform_version"])
    assert sv["product_brand"] != ""
    assert rec["API_version_major"] == "2"  # an untyped int: a string to XenAPI.py
    assert re.fullmatch(r"\d+", rec["API_version_minor"])
    assert rec["enabled"] is True
    assert rec["hostname"] == socket.gethostname()
    assert s.xenapi.host.get_API_version_major(host) == "2"
    assert s.xenapi.host.get_software_version(host) == sv


@pytest.mark.lab
def test_host_metrics_live(s):
    host = s.xenapi.host.get_all()[0]
    metrics = s.xenapi.host.get_metrics(host)
    assert s.xenapi.host_metrics.get_all() == [metrics]
    assert s.xenapi.host_metrics.get_live(metrics) is True
    rec = s.xenapi.host_metrics.get_record(metrics)
    assert rec["live"] is True
    assert int(rec["memory_total"]) > 0 and isinstance(rec["memory_total"], str)


def test_host_cpus_and_memory_come_from_the_hypervisor(s):
    """The host's CPUs and memory are the hypervisor's (libvirt's node info), not dom0's
    /proc: asked here of the same driver the agent uses (test:///default)."""
    import libvirt
    conn = libvirt.open("test:///default")
    try:
        _, mem_mib, n, mhz, *_ = conn.getInfo()
        free = conn.getFreeMemory()
    finally:
        conn.close()
    host = s.xenapi.host.get_all()[0]
    cpus = s.xenapi.host.get_host_CPUs(host)
    assert len(cpus) == n
    assert sorted(s.xenapi.host_cpu.get_all()) == sorted(cpus)
    records = s.xenapi.host_cpu.get_all_records()
    assert sorted(r["number"] for r in records.values()) == sorted(str(i) for i in range(n))
    assert {r["host"] for r in records.values()} == {host}
    assert {r["speed"] for r in records.values()} == {str(mhz)}
    assert s.xenapi.host.get_cpu_info(host)["cpu_count"] == str(n)
    metrics = s.xenapi.host_metrics.get_record(s.xenapi.host.get_metrics(host))
    assert metrics["memory_total"] == str(mem_mib << 20)
    assert metrics["memory_free"] == str(free)
    version = s.xenapi.host.get_software_version(host)
    assert version["test"] and version["libvirt"] and version["product_version"] == "8.4.0"
    # test:///default offers i686 guests, HVM and PV, with and without PAE
    assert s.xenapi.host.get_capabilities(host) == ["hvm-3.0-x86_32", "hvm-3.0-x86_32p", "xen-3.0-x86_32p"]


def test_control_domain_as_xenapi_sees_it(s):
    host = s.xenapi.host.get_all()[0]
    dom0 = s.xenapi.host.get_control_domain(host)
    rec = s.xenapi.VM.get_record(dom0)
    assert rec["is_control_domain"] is True
    assert rec["is_a_template"] is False
    assert rec["power_state"] == "Running"
    assert rec["domid"] == "0"
    assert rec["resident_on"] == host
    assert dom0 in s.xenapi.host.get_resident_VMs(host)
    assert s.xenapi.VM.get_domid(dom0) == "0"
    assert s.xenapi.VM.get_is_control_domain(dom0) is True
    assert rec["VCPUs_max"] == str(expected_cpus())
    controls = [r for r, v in s.xenapi.VM.get_all_records().items() if v["is_control_domain"]]
    assert controls == [dom0]


@pytest.mark.lab
def test_api_version_property_path(agent):
    t = RecordingTransport()
    s = login(agent, transport=t)
    try:
        assert s.API_version == "2.21"
        # pool.get_all, pool.get_master, host.get_API_version_major, _minor
        assert len(t.paths) == 1 + 4
        assert s.API_version == "2.21"  # cached: no further calls
        assert len(t.paths) == 5
    finally:
        s.xenapi.session.logout()


# --------------------------------------------------------------------------- VM CRUD

@pytest.mark.lab
def test_vm_create_record_has_every_field(s):
    vm = s.xenapi.VM.create(vm_record("crud-vm"))
    try:
        rec = s.xenapi.VM.get_record(vm)
        want = {f.name for f in build_api().public_fields("VM")}
        assert set(rec) == want
        assert rec["name_label"] == "crud-vm"
        assert rec["power_state"] == "Halted"
        assert rec["memory_static_max"] == str(2 * GiB)
        assert rec["memory_dynamic_min"] == str(GiB)
        assert rec["memory_static_min"] == str(GiB // 2)
        assert rec["VCPUs_max"] == "2"  # sent as <int>, read as a string
        assert rec["VCPUs_at_startup"] == "1"
        assert rec["user_version"] == "1"
        assert rec["is_a_template"] is False
        assert rec["is_control_domain"] is False
        assert rec["actions_after_crash"] == "preserve"
        assert rec["platform"] == {"acpi": "1"}
        # as xapi, VM.create adds a random mac_seed (for generated VIF MACs) when none is given
        seed = rec["other_config"].pop("mac_seed")
        assert len(seed) == 36 and seed.count("-") == 4
        assert rec["other_config"] == {"made-by": "test"}
        assert rec["VCPUs_params"] == {"weight": "256"}
        assert rec["HVM_shadow_multiplier"] == 1.0
        assert rec["tags"] == [] and rec["VIFs"] == [] and rec["VBDs"] == []
        assert rec["resident_on"] == NULL and rec["suspend_VDI"] == NULL
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", rec["uuid"])
        assert s.xenapi.VM.get_by_uuid(rec["uuid"]) == vm
        assert vm in s.xenapi.VM.get_all()
    finally:
        s.xenapi.VM.destroy(vm)


@pytest.mark.lab
def test_halted_vm_has_domid_minus_one(s):
    vm = s.xenapi.VM.create(vm_record("domid-vm"))
    try:
        assert s.xenapi.VM.get_domid(vm) == "-1"
    finally:
        s.xenapi.VM.destroy(vm)


@pytest.mark.lab
def test_vm_field_gets_and_sets(s):
    vm = s.xenapi.VM.create(vm_record("sets-vm"))
    try:
        s.xenapi.VM.set_name_label(vm, "sets-vm-2")
        assert s.xenapi.VM.get_name_label(vm) == "sets-vm-2"
        s.xenapi.VM.set_name_description(vm, "described")
        assert s.xenapi.VM.get_name_description(vm) == "described"
        s.xenapi.VM.set_other_config(vm, {"a": "1", "b": "2"})
        assert s.xenapi.VM.get_other_config(vm) == {"a": "1", "b": "2"}
        s.xenapi.VM.set_VCPUs_params(vm, {"cap": "50"})
        assert s.xenapi.VM.get_VCPUs_params(vm) == {"cap": "50"}
        s.xenapi.VM.set_user_version(vm, "7")
        assert s.xenapi.VM.get_user_version(vm) == "7"
        assert s.xenapi.VM.get_memory_static_max(vm) == str(2 * GiB)
        # RO/constructor fields have no implicit setter
        with pytest.raises(XenAPI.Failure) as e:
            s.xenapi.VM.set_power_state(vm, "Running")
        assert e.value.details == ["MESSAGE_METHOD_UNKNOWN", "VM.set_power_state"]
        # memory has explicit setters, which keep the limits in order
        with pytest.raises(XenAPI.Failure) as e:
            s.xenapi.VM.set_memory_static_max(vm, str(GiB))
        assert e.value.details[0] == "MEMORY_CONSTRAINT_VIOLATION"
        assert s.xenapi.VM.get_memory_static_max(vm) == str(2 * GiB)
    finally:
        s.xenapi.VM.destroy(vm)


@pytest.mark.lab
def test_vm_map_and_set_ops(s):
    # a mac_seed is given, so VM.create adds none of its own
    vm = s.xenapi.VM.create(vm_record("maps-vm", other_config={"mac_seed": "s"}))
    try:
        s.xenapi.VM.add_to_other_config(vm, "k", "v")
        s.xenapi.VM.add_to_other_config(vm, "k2", "v2")
        assert s.xenapi.VM.get_other_config(vm) == {"mac_seed": "s", "k": "v", "k2": "v2"}
        with pytest.raises(XenAPI.Failure) as e:
            s.xenapi.VM.add_to_other_config(vm, "k", "other")
        assert e.value.details == ["MAP_DUPLICATE_KEY", "VM", "other_config", vm, "k"]
        assert s.xenapi.VM.get_other_config(vm) == {"mac_seed": "s", "k": "v", "k2": "v2"}
        s.xenapi.VM.remove_from_other_config(vm, "k")
        s.xenapi.VM.remove_from_other_config(vm, "never-there")  # silent
        assert s.xenapi.VM.get_other_config(vm) == {"mac_seed": "s", "k2": "v2"}

        s.xenapi.VM.add_tags(vm, "red")
        s.xenapi.VM.add_tags(vm, "blue")
        s.xenapi.VM.add_tags(vm, "red")  # no duplicate
        assert s.xenapi.VM.get_tags(vm) == ["red", "blue"]
        s.xenapi.VM.remove_tags(vm, "red")
        s.xenapi.VM.remove_tags(vm, "green")  # silent
        assert s.xenapi.VM.get_tags(vm) == ["blue"]
    finally:
        s.xenapi.VM.destroy(vm)


@pytest.mark.lab
def test_vm_queries_by_name_uuid_and_where(s):
    a = s.xenapi.VM.create(vm_record("query-twin"))
    b = s.xenapi.VM.create(vm_record("query-twin"))
    c = s.xenapi.VM.create(vm_record("query-other"))
    try:
        assert sorted(s.xenapi.VM.get_by_name_label("query-twin")) == sorted([a, b])
        assert s.xenapi.VM.get_by_name_label("query-other") == [c]
        assert s.xenapi.VM.get_by_name_label("query-nobody") == []
        where = s.xenapi.VM.get_all_records_where('field "name__label"="query-other"')
        assert list(where) == [c]
        assert where[c]["name_label"] == "query-other"
        assert where[c] == s.xenapi.VM.get_record(c)
        twins = s.xenapi.VM.get_all_records_where('field "name__label"="query-twin"')
        assert sorted(twins) == sorted([a, b])
        assert sorted(s.xenapi.VM.get_all_where('field "name__label"="query-twin"')) == sorted([a, b])
        uuid = s.xenapi.VM.get_uuid(b)
        assert s.xenapi.VM.get_by_uuid(uuid) == b
        by_uuid = s.xenapi.VM.get_all_records_where(f'field "uuid"="{uuid}"')
        assert list(by_uuid) == [b]
    finally:
        for vm in (a, b, c):
            s.xenapi.VM.destroy(vm)


@pytest.mark.lab
def test_vm_destroy_then_handle_invalid(s):
    vm = s.xenapi.VM.create(vm_record("doomed"))
    uuid = s.xenapi.VM.get_uuid(vm)
    s.xenapi.VM.destroy(vm)
    with pytest.raises(XenAPI.Failure) as e:
        s.xenapi.VM.get_record(vm)
    assert e.value.details == ["HANDLE_INVALID", "VM", vm]
    with pytest.raises(XenAPI.Failure) as e:
        s.xenapi.VM.get_name_label(vm)
    assert e.value.details == ["HANDLE_INVALID", "VM", vm]
    with pytest.raises(XenAPI.Failure) as e:
        s.xenapi.VM.destroy(vm)
    assert e.value.details == ["HANDLE_INVALID", "VM", vm]
    with pytest.raises(XenAPI.Failure) as e:
        s.xenapi.VM.get_by_uuid(uuid)
    assert e.value.details == ["UUID_INVALID", "VM", uuid]
    assert vm not in s.xenapi.VM.get_all()
    assert s.xenapi.VM.get_by_name_label("doomed") == []


@pytest.mark.lab
def test_network_create(s):
    net = s.xenapi.network.create({"name_label": "test-net", "name_description": "d",
                                   "MTU": "9000", "other_config": {"x": "y"}})
    try:
        rec = s.xenapi.network.get_record(net)
        assert set(rec) == {f.name for f in build_api().public_fields("network")}
        assert rec["name_label"] == "test-net"
        assert rec["MTU"] == "9000"
        assert rec["other_config"] == {"x": "y"}
        assert rec["VIFs"] == [] and rec["PIFs"] == []
        assert rec["managed"] is True
        assert s.xenapi.network.get_by_name_label("test-net") == [net]
        assert net in s.xenapi.network.get_all()
    finally:
        s.xenapi.network.destroy(net)
    assert net not in s.xenapi.network.get_all()


# --------------------------------------------------------------------------- relations

@pytest.mark.lab
def test_vif_joins_and_leaves_vm_and_network_sets(s):
    vm = s.xenapi.VM.create(vm_record("vif-vm"))
    net = s.xenapi.network.create({"name_label": "vif-net", "other_config": {}})
    try:
        vif = s.xenapi.VIF.create({
            "device": "0", "network": net, "VM": vm, "MAC": "00:16:3e:00:00:01", "MTU": "1500",
            "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
        assert s.xenapi.VM.get_VIFs(vm) == [vif]
        assert s.xenapi.network.get_VIFs(net) == [vif]
        rec = s.xenapi.VIF.get_record(vif)
        assert rec["VM"] == vm and rec["network"] == net
        assert rec["device"] == "0" and rec["MAC"] == "00:16:3e:00:00:01" and rec["MTU"] == "1500"
        assert rec["currently_attached"] is False
        assert rec["locking_mode"] == "network_default"
        assert s.xenapi.VM.get_record(vm)["VIFs"] == [vif]

        vif2 = s.xenapi.VIF.create({
            "device": "1", "network": net, "VM": vm, "MAC": "00:16:3e:00:00:02", "MTU": 1500,
            "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
        assert sorted(s.xenapi.VM.get_VIFs(vm)) == sorted([vif, vif2])
        assert sorted(s.xenapi.network.get_VIFs(net)) == sorted([vif, vif2])

        s.xenapi.VIF.destroy(vif)
        assert s.xenapi.VM.get_VIFs(vm) == [vif2]
        assert s.xenapi.network.get_VIFs(net) == [vif2]
        s.xenapi.VIF.destroy(vif2)
        assert s.xenapi.VM.get_VIFs(vm) == []
        assert s.xenapi.network.get_VIFs(net) == []
        with pytest.raises(XenAPI.Failure) as e:
            s.xenapi.VIF.get_record(vif)
        assert e.value.details == ["HANDLE_INVALID", "VIF", vif]
    finally:
        s.xenapi.VM.destroy(vm)
        s.xenapi.network.destroy(net)


@pytest.mark.lab
def test_vif_create_with_unknown_vm_is_refused(s):
    net = s.xenapi.network.create({"name_label": "vif-net-2", "other_config": {}})
    ghost = "OpaqueRef:00000000-0000-0000-0000-00000000dead"
    try:
        with pytest.raises(XenAPI.Failure) as e:
            s.xenapi.VIF.create({
                "device": "0", "network": net, "VM": ghost, "MAC": "", "MTU": "1500",
                "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {}})
        assert e.value.details == ["HANDLE_INVALID", "VM", ghost]
        assert s.xenapi.network.get_VIFs(net) == []
    finally:
        s.xenapi.network.destroy(net)


# --------------------------------------------------------------------------- eviction

def test_evicted_session_is_replaced_by_xenapi_relogin(agent):
    originator = "evict-me"
    victim = login(agent, originator=originator)
    first = victim._session
    assert victim.xenapi.session.get_originator(first) == originator
    # from here on the victim is the least recently active session of its group
    conn = UnixHTTPConnection(agent.socket)
    made = []
    try:
        for _ in range(500):
            env = raw_call(conn, "session.login_with_password", "", "", "2.21", originator)
            assert env["Status"] == "Success", env
            made.append(env["Value"])
        # the 500th local login pushed the group over its cap: the victim went
        env = raw_call(conn, "VM.get_all", first)
        assert env == {"Status": "Failure", "ErrorDescription": ["SESSION_INVALID", first]}
        # the newest sessions survive
        assert raw_call(conn, "session.get_originator", made[-1], made[-1]) == {
            "Status": "Success", "Value": originator}

        pools = victim.xenapi.pool.get_all()  # SESSION_INVALID -> silent re-login -> retry
        assert len(pools) == 1
        assert victim._session != first
        assert victim._session.startswith("OpaqueRef:")
        assert victim.xenapi.session.get_originator(victim._session) == originator
        # the re-login evicted the least recently active local session in turn
        env = raw_call(conn, "VM.get_all", made[0])
        assert env == {"Status": "Failure", "ErrorDescription": ["SESSION_INVALID", made[0]]}
        assert raw_call(conn, "VM.get_all", made[1])["Status"] == "Success"
    finally:
        for ref in made:
            raw_call(conn, "session.logout", ref)
        conn.close()
        victim.xenapi.session.logout()
    short = first.split(":", 1)[1][:8]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and f"session {short} evicted" not in agent.log_text():
        time.sleep(0.05)
    log = agent.log_text()
    assert re.search(rf"session {short} evicted\b.*\b500\b.*evict-me", log), log[-3000:]
