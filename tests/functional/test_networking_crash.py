"""The agent killed (SIGKILL) in the middle of links work (root): after a restart, links and
records agree.

The links port's test hook HOSTAGENT_FAULT_DELAY_LINK_<OP> holds the call
once the kernel has changed, so the kill lands after the link is made and
before the records say so. PIF.plug (bridges and enslaving) runs here; the
VLAN and bond cases need CONFIG_VLAN_8021Q and CONFIG_BONDING and skip,
saying so, on a kernel without them (the Xen lab's dom0 kernel has both).
"""

import pytest

from tests.support import wait_for

from .events_support import login
from .net_support import kernel, kernel_has_8021q, kernel_has_bonding, netns  # noqa: F401 - a fixture

pytestmark = [pytest.mark.root, pytest.mark.slow]


def devices(x):
    return {x.PIF.get_device(p): p for p in x.PIF.get_all() if x.PIF.get_VLAN(p) == "-1"}


def network(x, label):
    return x.network.create({"name_label": label, "name_description": "", "MTU": "1500", "other_config": {},
                             "tags": []})


@pytest.mark.parametrize("op,made", [("ensure_bridge", lambda k: "xenbr0" in k),
                                     ("enslave", lambda k: k["eth0"].get("master") == "xenbr0")])
def test_kill_during_pif_plug_leaves_it_unplugged_and_no_bridge(agents, netns, op, made):
    agent = agents("--manage-network", "--netns", netns, **{f"HOSTAGENT_FAULT_DELAY_LINK_{op.upper()}": "60"})
    x = login(agent, "networking-crash").xenapi
    eth0 = devices(x)["eth0"]
    x.Async.PIF.plug(eth0)
    wait_for(lambda: made(kernel(netns)), 20.0, what=f"the plug's {op}")
    agent.kill()
    assert made(kernel(netns))  # the kernel has it; the records do not

    agent = agents("--manage-network", "--netns", netns)
    x = login(agent, "networking-crash").xenapi
    links = kernel(netns)
    assert not x.PIF.get_currently_attached(eth0)
    assert "xenbr0" not in links and "master" not in links["eth0"]
    x.PIF.plug(eth0)  # and it plugs as before
    assert kernel(netns)["eth0"]["master"] == "xenbr0" and x.PIF.get_currently_attached(eth0)


def test_kill_during_vlan_create_removes_the_half_made_vlan(agents, netns):
    if not kernel_has_8021q(netns):
        pytest.skip("this kernel has no 802.1Q support (CONFIG_VLAN_8021Q): run in the Xen lab's dom0")
    agent = agents("--manage-network", "--netns", netns, HOSTAGENT_FAULT_DELAY_LINK_ENSURE_VLAN="60")
    x = login(agent, "networking-crash").xenapi
    eth0 = devices(x)["eth0"]
    net = network(x, "vlan 42")
    x.Async.VLAN.create(eth0, "42", net)
    wait_for(lambda: "eth0.42" in kernel(netns), 20.0, what="the VLAN link")
    agent.kill()

    agent = agents("--manage-network", "--netns", netns)
    x = login(agent, "networking-crash").xenapi
    assert x.VLAN.get_all() == [] and sorted(devices(x)) == ["eth0", "eth1", "eth2"]
    assert len(x.PIF.get_all()) == 3 and x.network.get_PIFs(net) == []
    assert not {"eth0.42", x.network.get_bridge(net)} & set(kernel(netns))
    vlan = x.VLAN.create(eth0, "42", net)  # and it can be made again
    assert kernel(netns)["eth0.42"]["master"] == x.network.get_bridge(net)
    x.VLAN.destroy(vlan)


def test_kill_during_bond_create_removes_the_bond_and_replugs_its_members(agents, netns):
    if not kernel_has_bonding(netns):
        pytest.skip("this kernel has no bonding support (CONFIG_BONDING): run in the Xen lab's dom0")
    agent = agents("--manage-network", "--netns", netns, HOSTAGENT_FAULT_DELAY_LINK_ENSURE_BOND="60")
    x = login(agent, "networking-crash").xenapi
    pifs = devices(x)
    x.PIF.plug(pifs["eth0"])
    net = network(x, "bond")
    x.Async.Bond.create(net, [pifs["eth0"], pifs["eth1"]], "", "active-backup", {})
    wait_for(lambda: "bond0" in kernel(netns), 20.0, what="the bonding device")
    agent.kill()

    agent = agents("--manage-network", "--netns", netns)
    x = login(agent, "networking-crash").xenapi
    links = kernel(netns)
    assert x.Bond.get_all() == [] and len(x.PIF.get_all()) == 3
    assert "bond0" not in links and x.network.get_bridge(net) not in links
    assert links["eth0"]["master"] == "xenbr0" and x.PIF.get_currently_attached(pifs["eth0"])
    assert "master" not in links["eth1"] and not x.PIF.get_currently_attached(pifs["eth1"])
    assert x.PIF.get_bond_slave_of(pifs["eth0"]) == "OpaqueRef:NULL"
