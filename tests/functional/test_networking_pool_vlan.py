"""pool.create_VLAN_from_PIF and pool.create_VLAN through the XenAPI package (root).

This agent is a pool of one host, so each call makes at most one VLAN; the
checks, the returned set and the all-or-nothing rule are xapi's. The links part
needs 802.1Q in the kernel: without it the call must fail with nothing left.
"""

import pytest
import XenAPI

from . import net_support
from .events_support import login, logout
from .net_support import kernel, kernel_has_8021q

netns = net_support.netns  # a fixture

pytestmark = [pytest.mark.root, pytest.mark.slow]


def failure(call, *args):
    with pytest.raises(XenAPI.Failure) as e:
        call(*args)
    return e.value.details


@pytest.fixture
def session(agents, netns):
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-pool-vlan")
    yield s.xenapi
    logout(s)


def new_network(x, name):
    return x.network.create({"name_label": name, "name_description": "", "MTU": "1500", "other_config": {},
                             "tags": []})


def test_checks_come_first(session):
    x = session
    eth0 = next(p for p in x.PIF.get_all() if x.PIF.get_device(p) == "eth0")
    net = new_network(x, "vlan")
    assert failure(x.pool.create_VLAN_from_PIF, eth0, net, "4095") == ["VLAN_TAG_INVALID", "4095"]
    assert failure(x.pool.create_VLAN, "eth0", net, "-1") == ["VLAN_TAG_INVALID", "-1"]
    assert failure(x.pool.create_VLAN, "eth9", net, "42") == ["INVALID_VALUE", "device", "eth9"]
    assert failure(x.pool.create_VLAN_from_PIF, "OpaqueRef:nonesuch", net, "42")[0] == "HANDLE_INVALID"
    assert x.VLAN.get_all() == []


def test_a_vlan_on_each_host(session, netns):
    x = session
    pifs_before = set(x.PIF.get_all())
    eth0 = next(p for p in pifs_before if x.PIF.get_device(p) == "eth0")
    net = new_network(x, "vlan 42")
    bridge = x.network.get_bridge(net)
    if not kernel_has_8021q(netns):
        # the kernel cannot make the link: the answer is the link's error, and nothing is left
        assert failure(x.pool.create_VLAN_from_PIF, eth0, net, "42")[0] == "PIF_CONFIGURATION_ERROR"
        assert set(x.PIF.get_all()) == pifs_before and x.VLAN.get_all() == []
        assert "eth0.42" not in kernel(netns) and bridge not in kernel(netns)
        pytest.skip("this kernel has no 802.1Q support (CONFIG_VLAN_8021Q): only the refusal was checked")
    made = x.pool.create_VLAN_from_PIF(eth0, net, "42")
    assert len(made) == 1
    rec = x.PIF.get_record(made[0])
    assert (rec["device"], rec["VLAN"], rec["network"], rec["currently_attached"]) == ("eth0", "42", net, True)
    link = kernel(netns)["eth0.42"]
    assert link["linkinfo"]["info_data"]["id"] == 42 and link["master"] == bridge
    assert failure(x.pool.create_VLAN, "eth0", new_network(x, "again"), "42") == ["PIF_VLAN_EXISTS", "eth0"]
    other = new_network(x, "vlan 43")
    made43 = x.pool.create_VLAN("eth0", other, "43")
    assert x.PIF.get_VLAN(made43[0]) == "43" and "eth0.43" in kernel(netns)
    for pif in made + made43:
        x.VLAN.destroy(x.PIF.get_VLAN_master_of(pif))
    assert "eth0.42" not in kernel(netns) and "eth0.43" not in kernel(netns)
