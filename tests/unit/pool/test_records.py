"""A joining host's records carried into the master's database, and dropped again at eject."""

import pytest

from hostagent.datamodel.api import build_api
from hostagent.datamodel.types import NULL_REF
from hostagent.db.store import Store
from hostagent.pool.records import export_host, forget_host, import_host


@pytest.fixture(scope="module")
def api():
    return build_api()


def lone_host(api, name, bridges=("xenbr0",)):
    """A store as a lone host has it: its pool, host, metrics, CPU, dom0, PIFs, local SR."""
    s = Store(api)
    with s.transaction():
        metrics = s.create("host_metrics", {"live": True})
        host = s.create("host", {"name_label": name, "metrics": metrics})
        pool = s.create("pool", {"name_label": "", "master": host})
        s.create("host_cpu", {"host": host, "number": 0})
        vm_metrics = s.create("VM_metrics", {})
        dom0 = s.create("VM", {"name_label": "dom0", "is_control_domain": True, "resident_on": host,
                               "power_state": "Running", "metrics": vm_metrics})
        s.set("host", host, "control_domain", dom0)
        for i, bridge in enumerate(bridges):
            net = s.create("network", {"name_label": f"net {bridge}", "bridge": bridge})
            pm = s.create("PIF_metrics", {})
            s.create("PIF", {"device": f"eth{i}", "host": host, "network": net, "metrics": pm,
                             "management": i == 0})
        sr = s.create("SR", {"name_label": f"local on {name}", "shared": False})
        s.create("PBD", {"host": host, "SR": sr})
        base = s.create("VDI", {"SR": sr, "name_label": "base", "metadata_of_pool": pool})
        s.create("VDI", {"SR": sr, "name_label": "snap", "snapshot_of": base})
        # a VM of this host's own, not carried (as in xapi, a joiner's guests stay behind)
        s.create("VM", {"name_label": "guest", "power_state": "Halted"})
    return s, host, pool


def test_export_takes_what_is_bound_to_the_host(api):
    s, host, _ = lone_host(api, "j", bridges=("xenbr0", "xenbr1"))
    b = export_host(s, host)
    assert list(b["host"]) == [host]
    assert len(b["host_cpu"]) == 1 and len(b["PIF"]) == 2 and len(b["network"]) == 2
    assert len(b["SR"]) == 1 and len(b["PBD"]) == 1 and len(b["VDI"]) == 2
    assert [r["name_label"] for r in b["VM"].values()] == ["dom0"]


def test_import_matches_networks_by_bridge_and_rebuilds_relations(api):
    j, jhost, _ = lone_host(api, "j", bridges=("xenbr0", "xenbr1"))
    m, mhost, mpool = lone_host(api, "m")
    [mnet] = m.find("network", bridge="xenbr0")
    bundle = export_host(j, jhost)
    with m.transaction():
        remap = import_host(m, bundle, mpool)
    assert set(m.all("host")) == {mhost, jhost}
    h = m.get("host", jhost)
    assert m.get("host_metrics", h["metrics"])["live"] is True
    assert len(h["PIFs"]) == 2 and len(h["host_CPUs"]) == 1 and len(h["PBDs"]) == 1
    by_bridge = {m.get("network", m.get("PIF", p)["network"])["bridge"]: p for p in h["PIFs"]}
    assert m.get("PIF", by_bridge["xenbr0"])["network"] == mnet  # the master's own network
    assert by_bridge["xenbr0"] in m.get("network", mnet)["PIFs"]
    assert len(m.find("network", bridge="xenbr0")) == 1 and len(m.find("network", bridge="xenbr1")) == 1
    assert set(remap.values()) == {mnet}
    [sr] = [m.get("PBD", b)["SR"] for b in h["PBDs"]]
    vdis = {m.get("VDI", v)["name_label"]: v for v in m.get("SR", sr)["VDIs"]}
    assert set(vdis) == {"base", "snap"}
    assert m.get("VDI", vdis["snap"])["snapshot_of"] == vdis["base"]
    assert m.get("VDI", vdis["base"])["snapshots"] == [vdis["snap"]]
    assert m.get("VDI", vdis["base"])["metadata_of_pool"] == mpool
    assert h["resident_VMs"] == [h["control_domain"]]
    assert len(m.find("VM", name_label="guest")) == 1  # the master's own, not the joiner's


def test_forget_removes_the_host_and_leaves_the_pool_as_it_was(api):
    j, jhost, _ = lone_host(api, "j", bridges=("xenbr0", "xenbr1"))
    m, mhost, mpool = lone_host(api, "m")
    before = {cls: set(m.all(cls)) for cls in m.tables}
    with m.transaction():
        import_host(m, export_host(j, jhost), mpool)
    with m.transaction():
        forget_host(m, jhost)
    after = {cls: set(m.all(cls)) for cls in m.tables}
    added = {cls: after[cls] - before[cls] for cls in after if after[cls] - before[cls]}
    assert added == {"network": set(m.find("network", bridge="xenbr1"))}  # networks are the pool's
    assert m.get("network", m.find("network", bridge="xenbr1")[0])["PIFs"] == []
    [mnet] = m.find("network", bridge="xenbr0")
    assert len(m.get("network", mnet)["PIFs"]) == 1
    # joins again after its eject: the same refs come back
    with m.transaction():
        import_host(m, export_host(j, jhost), mpool)
    assert m.exists("host", jhost) and m.get("host", jhost)["control_domain"] != NULL_REF
