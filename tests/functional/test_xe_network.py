"""xe's networking commands on real links (root): pif-scan, network-create, vlan-create,
bond-create and their destroy commands, read back through the API and the kernel.
VLANs and bonds skip, saying why, on a kernel without 8021q or bonding.
"""

import pytest

from .events_support import login, logout
from .net_support import kernel, kernel_has_8021q, kernel_has_bonding, netns  # noqa: F401 - a fixture
from .test_xe_support import XeRunner

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def net(agents, netns, tmp_path):  # noqa: F811 - a fixture
    agent = agents("--manage-network", "--netns", netns)
    xe = XeRunner(agent, tmp_path / "home")
    s = login(agent, "xe-network-test")
    xe("pif-scan", f"host-uuid={xe('host-list', '--minimal')}")
    yield xe, s.xenapi, netns
    logout(s)


def pif_of(xe, device):
    return xe("pif-list", f"device={device}", "VLAN=-1", "params=uuid", "--minimal")


def test_pif_scan_and_network_create(net):
    xe, x, _ = net
    devices = set(xe("pif-list", "params=device", "--minimal").split(","))
    assert {"eth0", "eth1", "eth2"} <= devices
    assert len(devices) == len(x.PIF.get_all())
    netw = xe("network-create", "name-label=xe-net", "name-description=made by xe")
    ref = x.network.get_by_uuid(netw)
    assert x.network.get_name_description(ref) == "made by xe"
    assert xe("network-list", f"uuid={netw}", "params=bridge", "--minimal") == x.network.get_bridge(ref)


def test_vlan_create_and_destroy(net):
    xe, x, ns = net
    eth1 = pif_of(xe, "eth1")
    netw = xe("network-create", "name-label=vlan-42")
    if not kernel_has_8021q(ns):
        # the command reaches VLAN.create, whose refusal leaves nothing behind
        p = xe.fails("vlan-create", f"pif-uuid={eth1}", "vlan=42", f"network-uuid={netw}")
        assert "code: PIF_CONFIGURATION_ERROR" in p.stderr and xe("vlan-list", "--minimal") == ""
        pytest.skip("the kernel has no 8021q (VLAN) support")
    vlan_pif = xe("vlan-create", f"pif-uuid={eth1}", "vlan=42", f"network-uuid={netw}")
    assert x.PIF.get_VLAN(x.PIF.get_by_uuid(vlan_pif)) == "42"
    assert "eth1.42" in kernel(ns)
    vlan = xe("vlan-list", "tag=42", "--minimal")
    assert xe("vlan-param-get", f"uuid={vlan}", "param-name=untagged-PIF") == vlan_pif
    p = xe.fails("vlan-create", f"pif-uuid={eth1}", "vlan=5000", f"network-uuid={netw}")
    assert "VLAN_TAG_INVALID" in p.stderr
    xe("vlan-destroy", f"uuid={vlan}")
    assert "eth1.42" not in kernel(ns) and xe("vlan-list", "--minimal") == ""


def test_bond_create_and_destroy(net):
    xe, x, ns = net
    members = [pif_of(xe, "eth0"), pif_of(xe, "eth1")]
    netw = xe("network-create", "name-label=bonded")
    if not kernel_has_bonding(ns):
        p = xe.fails("bond-create", f"network-uuid={netw}", f"pif-uuids={','.join(members)}")
        assert "code: PIF_CONFIGURATION_ERROR" in p.stderr and xe("bond-list", "--minimal") == ""
        pytest.skip("the kernel has no bonding support")
    bond = xe("bond-create", f"network-uuid={netw}", f"pif-uuids={','.join(members)}", "mode=active-backup")
    ref = x.Bond.get_by_uuid(bond)
    assert sorted(x.PIF.get_uuid(p) for p in x.Bond.get_slaves(ref)) == sorted(members)
    assert x.Bond.get_mode(ref) == "active-backup"
    master = x.PIF.get_device(x.Bond.get_master(ref))
    assert master in kernel(ns)
    xe("bond-destroy", f"uuid={bond}")
    assert master not in kernel(ns) and xe("bond-list", "--minimal") == ""
