"""VM actions' rules that need no hypervisor: xenstore vm-data, PV driver checks on Xen,
memory constraints, and the domain description the policy makes."""

import asyncio

import pytest

from hostagent.actions import domain_policy as policy
from hostagent.actions import vm_power, vm_runtime
from hostagent.actions.bootstrap import ensure_host
from hostagent.backends.hypervisor import CAPABILITIES
from hostagent.backends.xenstore import FakeXenstore
from hostagent.datamodel.api import build_api
from hostagent.datamodel.errors import ApiError
from hostagent.db.store import Store
from hostagent.rpc.sessions import SessionManager

from ..rpc.runtime import make_runtime
from ..rpc.test_dispatch import FACTS
from ..rpc.test_tasks_events import vm_record


class FakeDomains:
    """A stand-in for the domains port: a driver's capabilities, blocking calls run inline."""

    def __init__(self, driver):
        self.caps = CAPABILITIES[driver]

    async def capabilities(self):
        return self.caps

    async def run(self, fn, *args):
        return fn(*args)


@pytest.fixture
def env():
    store = Store(build_api())
    clock = lambda: 1_000_000.0  # noqa: E731
    host = ensure_host(store, FACTS, "test", clock)
    rt = make_runtime(store, SessionManager(store, clock, lambda: host), host, clock)
    return store, rt


def make_vm(store, **values):
    with store.transaction():
        metrics = store.create("VM_metrics", {})
        return store.create("VM", {**vm_record("v"), "metrics": metrics, **values})


def with_ports(rt, **ports):
    import dataclasses
    rt.ports = dataclasses.replace(rt.ports, **ports)
    return rt.internal()


def test_only_vm_data_keys_reach_xenstore(env):
    store, rt = env
    xs = FakeXenstore()
    ctx = with_ports(rt, xenstore=xs, domains=FakeDomains("TEST"))
    vm = make_vm(store, xenstore_data={"vm-data/foo": "bar", "vm-data": "x", "other/key": "no",
                                        "vm-datafoo": "no"})
    asyncio.run(vm_runtime.write_vm_data(ctx, vm, 7))
    assert xs.domains == {7: {"vm-data/foo": "bar", "vm-data": "x"}}


def test_xen_hvm_guests_need_pv_drivers_for_clean_operations(env):
    store, rt = env
    hvm = make_vm(store, domain_type="hvm", HVM_boot_policy="BIOS order")
    pv = make_vm(store, domain_type="pv", HVM_boot_policy="")
    xen = with_ports(rt, domains=FakeDomains("Xen"))
    with pytest.raises(ApiError) as e:
        asyncio.run(vm_power.need_pv_drivers(xen, hvm, store.get("VM", hvm), "feature-suspend"))
    assert e.value.description == ["VM_MISSING_PV_DRIVERS", hvm]
    asyncio.run(vm_power.need_pv_drivers(xen, pv, store.get("VM", pv), "feature-suspend"))
    with store.transaction():
        gm = store.create("VM_guest_metrics", {"other": {"feature-suspend": "1"}})
        store.set("VM", hvm, "guest_metrics", gm)
    asyncio.run(vm_power.need_pv_drivers(xen, hvm, store.get("VM", hvm), "feature-suspend"))
    kvm = with_ports(rt, domains=FakeDomains("QEMU"))  # ACPI and external saves: no drivers needed
    asyncio.run(vm_power.need_pv_drivers(kvm, pv, store.get("VM", pv), "feature-shutdown"))


def test_memory_constraints():
    ok = {"memory_static_min": 1, "memory_dynamic_min": 2, "memory_dynamic_max": 3, "memory_static_max": 4}
    assert policy.memory_problem(ok) is None
    assert policy.memory_problem({**ok, "memory_dynamic_min": 5}) is not None
    assert policy.memory_problem({**ok, "memory_static_max": 0, "memory_dynamic_max": 0,
                                  "memory_dynamic_min": 0, "memory_static_min": 0}) is not None


def test_description_of_a_pv_vm(env):
    store, _ = env
    vm = make_vm(store, PV_bootloader="pygrub", PV_bootloader_args="--kernel=/vmlinuz", HVM_boot_policy="",
                 VCPUs_max=4, VCPUs_at_startup=2, VCPUs_params={"weight": "512", "cap": "50"},
                 platform={"viridian": "true", "device-model": "qemu-upstream"},
                 other_config={"disable_pv_vnc": "1"})
    d = policy.describe(store.get("VM", vm), [], [])
    assert (d.boot.kind, d.boot.bootloader, d.boot.bootloader_args) == ("pv", "pygrub", "--kernel=/vmlinuz")
    assert (d.vcpus, d.vcpus_max, d.vcpu_weight, d.vcpu_cap) == (2, 4, 512, 50)
    assert d.vnc is False and d.viridian is True and d.extra == {"device-model": "qemu-upstream"}
    assert d.name == store.get("VM", vm)["uuid"]
    assert policy.disk_target("Xen", "pv", 1, False) == "xvdb"
    assert policy.disk_target("Xen", "hvm", 3, True) == "hdd"
    assert policy.disk_target("QEMU", "hvm", 0, False) == "vda"
    assert policy.disk_target("QEMU", "hvm", 3, True) == "sdd"
