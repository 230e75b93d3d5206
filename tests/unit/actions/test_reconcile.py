"""Backend reports into the store: the reconcilers, the domain and host-figure handlers,
the feed that serialises reports onto the reactor, and host-bound work refused for
another host."""

import asyncio
import dataclasses

import pytest

from hostagent.actions import all_handlers
from hostagent.actions.bootstrap import ensure_host, machine
from hostagent.actions.domains import lifecycle
from hostagent.actions.host_facts import HostMonitor
from hostagent.actions.reconcile import Reconcilers
from hostagent.backends.hostinfo import Cpu, HostFacts
from hostagent.backends.hypervisor import NodeFacts, Sample
from hostagent.datamodel.api import build_api
from hostagent.db.store import Store
from hostagent.rpc.dispatch import Dispatcher, Origin
from hostagent.rpc.sessions import SessionManager

from ..rpc.runtime import make_runtime
from ..rpc.test_dispatch import FACTS

HOST_UUID = "0b4e3f7a-5a35-4a6c-9d7b-6c1f2a1e0001"


@pytest.fixture(scope="module")
def api():
    return build_api()


@pytest.fixture
def env(api):
    store = Store(api)
    clock = lambda: 1_000_000.0  # noqa: E731
    host = ensure_host(store, FACTS, "test", clock, HOST_UUID)
    rt = make_runtime(store, SessionManager(store, clock, lambda: host), host, clock)
    changes = []
    store.listeners.append(changes.extend)
    return store, rt, host, changes


def run(coro):
    return asyncio.run(coro)


def new_vm(store, **values):
    with store.transaction():
        return store.create("VM", {"name_label": "v", "power_state": "Halted", "domid": -1, **values})


# ------------------------------------------------------------------ identity and facts
def test_the_host_is_the_one_the_state_dir_names(api):
    store = Store(api)
    host = ensure_host(store, FACTS, "test", lambda: 0.0, HOST_UUID)
    assert store.get("host", host)["uuid"] == HOST_UUID
    with store.transaction():  # a second host in the pool, made master
        other = store.create("host", {"name_label": "other"})
        pool = next(iter(store.all("pool")))
        store.set("pool", pool, "master", other)
    assert ensure_host(store, FACTS, "test", lambda: 0.0, HOST_UUID) == host  # not the master
    with pytest.raises(LookupError, match="does not hold"):
        ensure_host(store, FACTS, "test", lambda: 0.0, "0b4e3f7a-5a35-4a6c-9d7b-6c1f2a1effff")


def test_machine_facts_are_the_hypervisors_and_dom0_keeps_its_own():
    proc = HostFacts("h", "192.0.2.9", [Cpu(0, "GenuineIntel", 1000, "Xeon")], 2 << 30, 1 << 30)
    node = NodeFacts("Xen", "4.17.3", "9.0.0", "h", cpus=8, mhz=2400, sockets=2, memory_total=64 << 30,
                     memory_free=60 << 30, capabilities=["hvm-3.0-x86_64", "xen-3.0-x86_64"])
    m = machine(proc, node)
    assert len(m.cpus) == 8 and {c.modelname for c in m.cpus} == {"Xeon"} and m.cpus[7].speed_mhz == 2400
    assert (m.memory_total, m.memory_free, m.sockets) == (64 << 30, 60 << 30, 2)
    assert m.versions == {"xen": "4.17.3", "libvirt": "9.0.0"}
    store = Store(build_api())
    host = ensure_host(store, m, "test", lambda: 0.0, HOST_UUID)
    rec = store.get("host", host)
    assert rec["software_version"]["xen"] == "4.17.3" and rec["capabilities"] == node.capabilities
    assert len(rec["host_CPUs"]) == 8
    dom0 = store.get("VM", rec["control_domain"])
    assert dom0["VCPUs_max"] == 1 and dom0["memory_static_max"] == 2 << 30  # dom0's, from /proc
    assert machine(proc, None) is proc


def test_host_monitor_writes_memory_and_utilisation_only_when_they_move(env):
    store, rt, host, changes = env
    ctx = rt.internal()
    mon = HostMonitor()
    cpus = {c: store.get("host_cpu", c)["number"] for c in store.get("host", host)["host_CPUs"]}
    metrics = store.get("host", host)["metrics"]
    mon.apply(ctx, Sample(8 << 30, 3 << 30, {0: (0, 0), 1: (0, 0)}))
    assert store.get("host_metrics", metrics)["memory_free"] == 3 << 30
    changes.clear()
    mon.apply(ctx, Sample(8 << 30, (3 << 30) + 4096, {0: (250, 1000), 1: (1000, 1000)}))
    util = {cpus[c]: store.get("host_cpu", c)["utilisation"] for c in cpus}
    assert util == {0: 0.25, 1: 1.0}
    assert {ch.cls for ch in changes} == {"host_cpu"}  # 4 KiB of memory is not worth an event
    changes.clear()
    mon.apply(ctx, Sample(8 << 30, (3 << 30) + 4096, {0: (500, 2000), 1: (2000, 2000)}))
    assert changes == []  # nothing moved


# ------------------------------------------------------------------ domains
def test_a_domain_stopped_behind_our_back_halts_its_vm(env):
    store, rt, host, changes = env
    vm = new_vm(store, power_state="Running", domid=7, resident_on=host)
    uuid = store.get("VM", vm)["uuid"]
    changes.clear()
    run(lifecycle(rt.internal(), (uuid, "v", "stopped", 0)))
    rec = store.get("VM", vm)
    assert (rec["power_state"], rec["domid"], rec["resident_on"]) == ("Halted", -1, "OpaqueRef:NULL")
    assert ("VM", vm) in {(c.cls, c.ref) for c in changes}  # clients hear of it


def test_domain_events_leave_other_domains_and_suspended_vms_alone(env):
    store, rt, host, changes = env
    suspended = new_vm(store, power_state="Suspended")
    dom0 = store.get("host", host)["control_domain"]
    changes.clear()
    run(lifecycle(rt.internal(), (store.get("VM", suspended)["uuid"], "s", "stopped", 4)))
    run(lifecycle(rt.internal(), (store.get("VM", dom0)["uuid"], "Domain-0", "stopped", 0)))
    run(lifecycle(rt.internal(), ("7c6c1b0e-0000-0000-0000-000000000000", "stranger", "started", 0)))
    assert changes == [] and store.get("VM", suspended)["power_state"] == "Suspended"


def test_reconcilers_run_start_passes_in_order_and_route_reports(env):
    store, rt, host, changes = env
    r = Reconcilers(rt)
    order = []
    r.at_start("one", lambda ctx: order.append(("one", ctx.task, ctx.origin.transport)))

    async def two(ctx):
        order.append(("two", ctx.session, ctx.host))
    r.at_start("two", two)
    r.on("domain", lifecycle)
    with pytest.raises(LookupError):
        r.on("domain", lifecycle)
    run(r.start())
    assert order == [("one", None, "internal"), ("two", None, host)]
    vm = new_vm(store, power_state="Halted")
    run(r.apply("domain", (store.get("VM", vm)["uuid"], "v", "started", 0)))
    assert store.get("VM", vm)["power_state"] == "Running" and store.get("VM", vm)["resident_on"] == host
    run(r.apply("nobody-listens", None))  # unknown kinds are ignored


def test_feed_applies_reports_one_at_a_time_in_order():
    from twisted.internet.defer import Deferred

    from hostagent.server.feed import Feed

    class Reactor:
        def callFromThread(self, f, *a):
            f(*a)

    gates, applied = {}, []

    async def apply(kind, value):
        gates[value] = Deferred()
        await gates[value]
        applied.append(value)
        if value == "boom":
            raise RuntimeError("a bad report")
    feed = Feed(Reactor(), apply)
    feed.put("x", 1)
    feed.put("x", "boom")
    feed.put("x", 3)
    assert list(gates) == [1]  # the second waits for the first
    gates[1].callback(None)
    assert list(gates) == [1, "boom"]
    gates["boom"].callback(None)  # fails, and the next one runs all the same
    gates[3].callback(None)
    assert applied == [1, "boom", 3] and feed.applied == 3


# ------------------------------------------------------------------ another host's work
def test_another_hosts_work_is_refused(api):
    store = Store(api)
    clock = lambda: 1_000_000.0  # noqa: E731
    host = ensure_host(store, FACTS, "test", clock, HOST_UUID)
    with store.transaction():
        other = store.create("host", {"name_label": "elsewhere"})
        sr = store.create("SR", {"name_label": "remote", "type": "file"})
        pbd = store.create("PBD", {"host": other, "SR": sr, "device_config": {"location": "/nonexistent"}})
    sessions = SessionManager(store, clock, lambda: host)
    d = Dispatcher(api, make_runtime(store, sessions, host, clock), all_handlers())

    def call(method, *params):
        out = d.call(method, list(params), Origin())
        if hasattr(out, "error"):
            return out

        async def drive():
            return await out
        return asyncio.run(drive())
    s = call("session.login_with_password", "root", "secret", "1.0", "t").value
    # another host's storage work goes to that host's agent (actions/pool_storage.py); this
    # runtime has no pool to reach it through (a pool's member that is not live: HOST_OFFLINE,
    # tests/functional/test_pool_storage.py)
    assert call("PBD.plug", s, pbd).error == ["CANNOT_CONTACT_HOST", other]
    assert call("SR.create", s, other, {"location": "/tmp/x"}, 0, "n", "", "file", "user", False, {}).error \
        == ["CANNOT_CONTACT_HOST", other]
    assert store.get("PBD", pbd)["currently_attached"] is False
    assert [r["name_label"] for r in store.all("SR").values()] == ["remote"]


def test_dom0_memory_is_xens_allocation_when_the_hypervisor_reports_domain_0():
    proc = HostFacts("h", "192.0.2.9", [Cpu(0, "GenuineIntel", 1000, "Xeon")], 890 << 20, 500 << 20)
    node = NodeFacts("Xen", "4.17.3", "9.0.0", "h", cpus=2, mhz=2400, sockets=1, memory_total=2 << 30,
                     memory_free=1 << 30, dom0_memory=1 << 30, dom0_vcpus=2)
    m = machine(proc, node)
    assert (m.dom0_memory, m.dom0_vcpus) == (1 << 30, 2)
    store = Store(build_api())
    host = ensure_host(store, m, "test", lambda: 0.0, HOST_UUID)
    dom0 = store.get("VM", store.get("host", host)["control_domain"])
    assert store.get("VM_metrics", dom0["metrics"])["memory_actual"] == 1 << 30
    assert dom0["memory_static_max"] == 1 << 30 and dom0["VCPUs_max"] == 2
    # a later start with dom0 resized (xl mem-set 0 ...) follows Xen's figure
    ensure_host(store, dataclasses.replace(m, dom0_memory=768 << 20), "test", lambda: 0.0, HOST_UUID)
    assert store.get("VM_metrics", dom0["metrics"])["memory_actual"] == 768 << 20


def test_control_domain_facts_come_from_domid_0_on_xen_only():
    import libvirt

    from hostagent.backends.hypervisor.facts import control_domain

    class Dom:
        def info(self):
            return [1, 1048576, 1048576, 2, 0]

    class Conn:
        def __init__(self, fail=False):
            self.fail = fail

        def lookupByID(self, domid):
            assert domid == 0
            if self.fail:
                raise libvirt.libvirtError("Domain not found")
            return Dom()

    assert control_domain(Conn(), "Xen") == (1 << 30, 2)
    assert control_domain(Conn(), "QEMU") == (0, 0)
    assert control_domain(Conn(fail=True), "Xen") == (0, 0)


def test_running_guests_publish_metrics_later_and_they_are_read_again(env):
    """A guest agent writes its keys after boot: the periodic read fills VM_guest_metrics in,
    rewrites it only when the guest's keys change, and leaves halted VMs alone."""
    from hostagent.actions.domains import guest_metrics
    from hostagent.backends.guest_agent import GuestFacts

    store, rt, host, changes = env

    class Agent:
        periodic = True
        published = None

        def facts(self, domid, vm, vifs):
            return self.published

    class Domains:
        async def run(self, fn, *args):
            return fn(*args)

    agent = Agent()
    object.__setattr__(rt.ports, "guest_agent", agent)   # Ports is frozen; this runtime is the test's
    object.__setattr__(rt.ports, "domains", Domains())
    vm = new_vm(store, power_state="Running", domid=3, resident_on=host)
    halted = new_vm(store)
    ctx = rt.internal()
    run(guest_metrics(ctx))
    assert store.get("VM", vm)["guest_metrics"] == "OpaqueRef:NULL"   # nothing published yet
    agent.published = GuestFacts({"name": "lab busybox guest"}, {"0/ip": "192.0.2.10"})
    run(guest_metrics(ctx))
    gm = store.get("VM_guest_metrics", store.get("VM", vm)["guest_metrics"])
    assert gm["os_version"] == {"name": "lab busybox guest"} and gm["networks"]["0/ip"] == "192.0.2.10"
    assert store.get("VM", halted)["guest_metrics"] == "OpaqueRef:NULL"
    changes.clear()
    run(guest_metrics(ctx))
    assert changes == []                                              # unchanged: no write
    agent.published = GuestFacts({"name": "lab busybox guest"}, {"0/ip": "192.0.2.11"})
    run(guest_metrics(ctx))
    assert store.get("VM_guest_metrics", store.get("VM", vm)["guest_metrics"])["networks"]["0/ip"] == "192.0.2.11"
    agent.periodic = False                                            # the test driver's stand-in
    agent.published = GuestFacts({"name": "other"})
    run(guest_metrics(ctx))
    assert store.get("VM_guest_metrics", store.get("VM", vm)["guest_metrics"])["os_version"]["name"] != "other"


def test_vm_metrics_follow_what_libvirt_lists_for_running_domains(env):
    """A balloon target or VCPU count changed behind the agent's back reaches VM_metrics at
    the next sample; unchanged figures write nothing; halted VMs and replaced domains
    (another domid) are left to the lifecycle events."""
    from hostagent.actions.domains import figures
    from hostagent.backends.hypervisor import DomainState

    store, rt, host, changes = env
    MiB = 1 << 20

    class Domains:
        listed = []

        async def call(self, op, *args):
            assert op == "list"
            return self.listed

    domains = Domains()
    object.__setattr__(rt.ports, "domains", domains)   # Ports is frozen; this runtime is the test's
    with store.transaction():
        metrics = store.create("VM_metrics", {"memory_actual": 256 * MiB, "VCPUs_number": 2})
        other = store.create("VM_metrics", {"memory_actual": 64 * MiB, "VCPUs_number": 1})
    vm = new_vm(store, power_state="Running", domid=3, resident_on=host, metrics=metrics)
    replaced = new_vm(store, power_state="Running", domid=4, resident_on=host, metrics=other)
    uuid, uuid2 = store.get("VM", vm)["uuid"], store.get("VM", replaced)["uuid"]
    domains.listed = [DomainState(uuid, "v", "running", 3, 256 * MiB, 2, 0),
                      DomainState(uuid2, "w", "running", 9, 32 * MiB, 1, 0)]
    ctx = rt.internal()
    changes.clear()
    run(figures(ctx))
    assert changes == []   # nothing moved for the VM; the replaced domain is not its
    domains.listed[0] = DomainState(uuid, "v", "running", 3, 128 * MiB, 1, 0)
    run(figures(ctx))
    m = store.get("VM_metrics", metrics)
    assert (m["memory_actual"], m["VCPUs_number"]) == (128 * MiB, 1)
    assert store.get("VM_metrics", other)["memory_actual"] == 64 * MiB
