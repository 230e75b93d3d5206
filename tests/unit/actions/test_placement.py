"""actions/placement.py over a store of three hosts: which host VM.start picks, and why
VM.start_on / resume_on refuse one (xapi's order: live, enabled, SRs, networks, memory)."""

import pytest

from hostagent.actions import placement
from hostagent.datamodel.api import build_api
from hostagent.datamodel.errors import ApiError
from hostagent.db.store import Store

GiB = 1 << 30


@pytest.fixture
def pool():
    """Hosts m (the master), a and b, 8 GiB each on libvirt's test driver; each has a local
    SR plugged and a PIF on network `lan`; `inner` is a network without PIFs."""
    s = Store(build_api())
    hosts, srs = {}, {}
    with s.transaction():
        lan = s.create("network", {"name_label": "lan", "bridge": "xenbr0"})
        inner = s.create("network", {"name_label": "inner", "bridge": "xapi1"})
        for name in ("m", "a", "b"):
            metrics = s.create("host_metrics", {"live": True, "memory_total": 8 * GiB})
            h = hosts[name] = s.create("host", {"name_label": name, "metrics": metrics, "enabled": True,
                                                "software_version": {"test": "1"}})
            s.create("PIF", {"device": "eth0", "host": h, "network": lan})
            sr = srs[name] = s.create("SR", {"name_label": f"local on {name}"})
            s.create("PBD", {"host": h, "SR": sr, "currently_attached": True})
    return s, hosts, srs, lan, inner


def vm(s, memory=GiB, **fields):
    with s.transaction():
        return s.create("VM", {"name_label": "guest", "power_state": "Halted", "memory_static_min": memory,
                               "memory_dynamic_min": memory, "memory_dynamic_max": memory,
                               "memory_static_max": memory, **fields})


def disk_on(s, v, sr):
    with s.transaction():
        vdi = s.create("VDI", {"SR": sr, "name_label": "disk"})
        s.create("VBD", {"VM": v, "VDI": vdi, "type": "Disk", "empty": False})
    return vdi


def nic_on(s, v, net):
    with s.transaction():
        return s.create("VIF", {"VM": v, "network": net, "device": str(len(s.get("VM", v)["VIFs"]))})


def error(fn, *args):
    with pytest.raises(ApiError) as e:
        fn(*args)
    return e.value.description


def test_the_affinity_host_first_then_the_most_memory_free(pool):
    s, h, _, _, _ = pool
    busy = vm(s, 3 * GiB, power_state="Running", resident_on=h["m"])
    with s.transaction():
        s.create("VM", {"name_label": "on a", "power_state": "Running", "resident_on": h["a"],
                        "memory_static_max": 1 * GiB})
    v = vm(s, affinity=h["a"])
    assert placement.choose(s, v, h["m"]) == h["a"]
    with s.transaction():
        s.set("VM", v, "affinity", "OpaqueRef:NULL")
    assert placement.choose(s, v, h["m"]) == h["b"]  # 8 GiB free, a 7, m 5
    assert placement.possible(s, v, h["m"]) == [h["b"], h["a"], h["m"]]
    assert placement.free_memory(s, h["m"], busy) == 8 * GiB  # what the VM itself holds is its own


def test_the_master_first_among_equals(pool):
    s, h, _, _, _ = pool
    assert placement.choose(s, vm(s), h["m"]) == h["m"]


def test_a_disabled_or_dead_affinity_host_is_skipped(pool):
    s, h, _, _, _ = pool
    v = vm(s, affinity=h["a"])
    with s.transaction():
        s.set("host", h["a"], "enabled", False)
    assert placement.choose(s, v, h["m"]) == h["m"]
    assert error(placement.check, s, v, h["a"], h["m"]) == ["HOST_DISABLED", h["a"]]
    with s.transaction():
        s.set("host", h["a"], "enabled", True)
        s.set("host_metrics", s.get("host", h["a"])["metrics"], "live", False)
    assert placement.choose(s, v, h["m"]) == h["m"]
    assert error(placement.check, s, v, h["a"], h["m"]) == ["HOST_OFFLINE", h["a"]]
    assert placement.problem(s, v, h["m"], h["m"]) is None  # this host is live whatever its record says


def test_a_disk_on_one_members_sr_places_the_vm_there(pool):
    s, h, srs, _, _ = pool
    v = vm(s)
    disk_on(s, v, srs["b"])
    with s.transaction():  # an empty CD drive needs no SR
        s.create("VBD", {"VM": v, "VDI": "OpaqueRef:NULL", "type": "CD", "empty": True})
    assert placement.choose(s, v, h["m"]) == h["b"]
    assert error(placement.check, s, v, h["a"], h["m"]) == ["VM_REQUIRES_SR", v, srs["b"]]
    [pbd] = s.get("SR", srs["b"])["PBDs"]
    with s.transaction():
        s.set("PBD", pbd, "currently_attached", False)  # a PBD that is not plugged is no access
    assert error(placement.choose, s, v, h["m"]) == ["NO_HOSTS_AVAILABLE"]


def test_a_suspended_vm_needs_its_images_sr(pool):
    s, h, srs, _, _ = pool
    v = vm(s)
    image = disk_on(s, vm(s), srs["a"])
    with s.transaction():
        s.update("VM", v, power_state="Suspended", suspend_VDI=image)
    assert placement.required_srs(s, v) == [srs["a"]]
    assert placement.choose(s, v, h["m"]) == h["a"]
    assert error(placement.check, s, v, h["b"], h["m"]) == ["VM_REQUIRES_SR", v, srs["a"]]


def test_networks_a_host_cannot_reach(pool):
    s, h, _, lan, inner = pool
    with s.transaction():
        wan = s.create("network", {"name_label": "wan", "bridge": "xenbr1"})
        s.create("PIF", {"device": "eth1", "host": h["b"], "network": wan})
    v = vm(s)
    nic_on(s, v, lan)
    nic_on(s, v, wan)
    assert error(placement.check, s, v, h["m"], h["m"]) == ["VM_REQUIRES_NETWORK", v, wan]
    assert placement.choose(s, v, h["m"]) == h["b"]
    # an internal network: anywhere while no running VM uses it, then only beside those that do
    w = vm(s)
    nic_on(s, w, inner)
    assert placement.problem(s, w, h["a"], h["m"]) is None
    other = vm(s, power_state="Running", resident_on=h["b"])
    nic_on(s, other, inner)
    assert error(placement.check, s, w, h["a"], h["m"]) == ["VM_REQUIRES_NETWORK", w, inner]
    assert placement.choose(s, w, h["m"]) == h["b"]
    with s.transaction():
        s.set("network", inner, "other_config", {"assume_network_is_shared": "true"})
    assert placement.problem(s, w, h["a"], h["m"]) is None


def test_memory(pool):
    s, h, _, _, _ = pool
    big = vm(s, 16 * GiB)
    assert error(placement.check, s, big, h["a"], h["m"]) == ["HOST_NOT_ENOUGH_FREE_MEMORY", str(16 * GiB), str(8 * GiB)]
    # as xapi: with no host that has the memory, the choice is made again without it (the
    # start then fails on the host chosen)
    assert placement.choose(s, big, h["m"]) == h["m"]
    with s.transaction():
        for ref in h.values():
            s.set("host", ref, "enabled", False)
    assert error(placement.choose, s, big, h["m"]) == ["NO_HOSTS_AVAILABLE"]
    wrong = vm(s)
    with s.transaction():
        s.set("VM", wrong, "memory_static_min", 2 * GiB)
    assert error(placement.choose, s, wrong, h["m"])[0] == "MEMORY_CONSTRAINT_VIOLATION"


def test_checks_in_xapis_order(pool):
    s, h, srs, _, _ = pool
    with s.transaction():
        nowhere = s.create("network", {"name_label": "nowhere", "bridge": "xenbr9"})
        s.create("PIF", {"device": "eth9", "host": h["b"], "network": nowhere})
    v = vm(s, 16 * GiB)
    disk_on(s, v, srs["b"])
    nic_on(s, v, nowhere)
    a = h["a"]
    assert error(placement.check, s, v, a, h["m"])[0] == "VM_REQUIRES_SR"
    with s.transaction():
        s.set("host", a, "enabled", False)
    assert error(placement.check, s, v, a, h["m"])[0] == "HOST_DISABLED"
    with s.transaction():
        s.set("host_metrics", s.get("host", a)["metrics"], "live", False)
    assert error(placement.check, s, v, a, h["m"])[0] == "HOST_OFFLINE"
    assert error(placement.check, s, v, h["b"], h["m"])[0] == "HOST_NOT_ENOUGH_FREE_MEMORY"


def test_memory_held_for_a_vm_starting_there_counts(pool):
    s, h, _, _, _ = pool
    starting = vm(s, 7 * GiB)
    v = vm(s, 2 * GiB, affinity=h["b"])
    with placement.reserved(s, starting, h["b"]):
        assert s.get("VM", starting)["scheduled_to_be_resident_on"] == h["b"]
        assert placement.free_memory(s, h["b"], v) == 8 * GiB  # no operation in progress: a leftover
        with s.transaction():
            s.set("VM", starting, "current_operations", {"task": "start"})
        assert placement.free_memory(s, h["b"], v) == 1 * GiB
        assert placement.free_memory(s, h["b"], starting) == 8 * GiB  # not its own
        assert placement.choose(s, v, h["m"]) == h["m"]  # its affinity host has no room left
        with s.transaction():
            s.update("VM", starting, power_state="Running", resident_on=h["b"])
        assert placement.free_memory(s, h["b"], v) == 1 * GiB  # counted once when it runs there
    assert s.get("VM", starting)["scheduled_to_be_resident_on"] == "OpaqueRef:NULL"
    with pytest.raises(ApiError), placement.reserved(s, v, h["b"]):
        raise ApiError("HOST_OFFLINE", h["b"])
    assert s.get("VM", v)["scheduled_to_be_resident_on"] == "OpaqueRef:NULL"  # cleared on failure too
