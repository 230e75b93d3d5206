"""Networking through the API on real links (root): an agent managing a throwaway namespace.

The agent runs with `--manage-network --netns NS`; NS holds three veth ends
eth0..eth2 as its NICs, their peers live in a second namespace (the "wire").
What the records say is compared with `ip -n NS -d -j link`.
"""

import time

import pytest
import XenAPI

from .events_support import login, logout
from .net_support import ip, kernel, kernel_has_8021q, kernel_has_bonding, netns  # noqa: F401 - a fixture

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_scan_plug_vlan_and_back(agents, netns):
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-test")
    x = s.xenapi
    try:
        host = x.host.get_all()[0]
        assert len(x.PIF.get_all()) == 3  # the first start recorded the NICs
        x.PIF.scan(host)
        pifs = {x.PIF.get_device(p): p for p in x.PIF.get_all()}
        assert set(pifs) == {"eth0", "eth1", "eth2"}
        assert not any(x.PIF.get_management(p) for p in pifs.values())  # no default route here
        links = kernel(netns)
        for device, pif in pifs.items():
            rec = x.PIF.get_record(pif)
            assert rec["MAC"] == links[device]["address"] and int(rec["MTU"]) == links[device]["mtu"]
            assert rec["physical"] and rec["VLAN"] == "-1" and not rec["currently_attached"]
            assert x.network.get_bridge(rec["network"]) == "xenbr" + device[-1]
            metrics = x.PIF_metrics.get_record(rec["metrics"])
            assert metrics["carrier"] is False  # the NIC is down until plugged
        x.PIF.scan(host)  # a second scan finds nothing new
        assert len(x.PIF.get_all()) == 3

        # plug: the network's bridge with the NIC enslaved, both up
        eth0 = pifs["eth0"]
        x.PIF.plug(eth0)
        links = kernel(netns)
        assert links["xenbr0"]["linkinfo"]["info_kind"] == "bridge" and "UP" in links["xenbr0"]["flags"]
        assert links["eth0"]["master"] == "xenbr0" and "UP" in links["eth0"]["flags"]
        assert x.PIF.get_currently_attached(eth0)
        x.PIF.plug(eth0)  # again: nothing changes
        assert kernel(netns)["eth0"]["master"] == "xenbr0"

        # network.create picks xapi<N>; its bridge appears only when something is plugged
        net = x.network.create({"name_label": "vlan 42", "name_description": "", "MTU": "1500",
                                "other_config": {}, "tags": []})
        assert x.network.get_bridge(net) == "xapi0"
        with pytest.raises(XenAPI.Failure) as e:
            x.VLAN.create(eth0, "4095", net)
        assert e.value.details == ["VLAN_TAG_INVALID", "4095"]

        if kernel_has_8021q(netns):
            vlan = x.VLAN.create(eth0, "42", net)
            untagged = x.VLAN.get_untagged_PIF(vlan)
            rec = x.PIF.get_record(untagged)
            assert rec["VLAN"] == "42" and rec["device"] == "eth0" and not rec["physical"]
            assert rec["currently_attached"]
            links = kernel(netns)
            assert links["eth0.42"]["linkinfo"]["info_kind"] == "vlan"
            assert links["eth0.42"]["linkinfo"]["info_data"]["id"] == 42
            assert links["eth0.42"]["link"] == "eth0" and links["eth0.42"]["master"] == "xapi0"
            with pytest.raises(XenAPI.Failure) as e:
                x.VLAN.create(eth0, "42", x.PIF.get_network(pifs["eth1"]))
            assert e.value.details == ["PIF_VLAN_EXISTS", "eth0"]
            with pytest.raises(XenAPI.Failure) as e:
                x.VLAN.create(untagged, "43", net)
            assert e.value.details == ["PIF_IS_VLAN", untagged]
            with pytest.raises(XenAPI.Failure) as e:
                x.network.destroy(net)
            assert e.value.details == ["NETWORK_CONTAINS_PIF", untagged]
            x.VLAN.destroy(vlan)
            assert not {"eth0.42", "xapi0"} & set(kernel(netns))
            assert untagged not in x.PIF.get_all()
        else:
            # no CONFIG_VLAN_8021Q in this kernel: refused, and neither records nor links are left
            with pytest.raises(XenAPI.Failure) as e:
                x.VLAN.create(eth0, "42", net)
            assert e.value.details[0] == "PIF_CONFIGURATION_ERROR"
            assert x.VLAN.get_all() == [] and len(x.PIF.get_all()) == 3
            assert not {"eth0.42", "xapi0"} & set(kernel(netns))
        x.network.destroy(net)
        assert net not in x.network.get_all()

        # unplug: the NIC leaves, the emptied bridge goes
        x.PIF.unplug(eth0)
        links = kernel(netns)
        assert "xenbr0" not in links and "master" not in links["eth0"]
        assert not x.PIF.get_currently_attached(eth0)
        with pytest.raises(XenAPI.Failure) as e:
            x.network.destroy(x.PIF.get_network(eth0))
        assert e.value.details == ["NETWORK_CONTAINS_PIF", eth0]
    finally:
        logout(s)


def test_links_are_adopted_after_a_restart(agents, netns):
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-test")
    x = s.xenapi
    x.PIF.scan(x.host.get_all()[0])
    eth1 = [p for p in x.PIF.get_all() if x.PIF.get_device(p) == "eth1"][0]
    x.PIF.plug(eth1)
    logout(s)
    agent.stop()
    ip("-n", netns, "link", "set", "eth1", "nomaster")  # changed behind the agent's back
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-test")
    try:
        links = kernel(netns)
        assert links["eth1"]["master"] == "xenbr1"
        assert sum(1 for li in links.values() if li.get("linkinfo", {}).get("info_kind") == "bridge") == 1
        assert s.xenapi.PIF.get_currently_attached(eth1)
    finally:
        logout(s)


def test_without_manage_network_pifs_are_records_only(agents, netns):
    agent = agents()
    s = login(agent, "networking-test")
    try:
        s.xenapi.PIF.scan(s.xenapi.host.get_all()[0])
        assert s.xenapi.PIF.get_all() == []
        assert "records only" in agent.log_text()
    finally:
        logout(s)


def test_an_active_backup_bond_of_two_nics(agents, netns):
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-test")
    x = s.xenapi
    try:
        x.PIF.scan(x.host.get_all()[0])
        pifs = {x.PIF.get_device(p): p for p in x.PIF.get_all()}
        x.PIF.plug(pifs["eth0"])
        net = x.network.create({"name_label": "bond", "name_description": "", "MTU": "1500",
                                "other_config": {}, "tags": []})
        members = [pifs["eth0"], pifs["eth1"]]
        if not kernel_has_bonding(netns):
            # no CONFIG_BONDING in this kernel: refused; eth0 back on its bridge, no records left
            with pytest.raises(XenAPI.Failure) as e:
                x.Bond.create(net, members, "", "active-backup", {})
            assert e.value.details[0] == "PIF_CONFIGURATION_ERROR"
            assert x.Bond.get_all() == [] and len(x.PIF.get_all()) == 3
            links = kernel(netns)
            assert links["eth0"]["master"] == "xenbr0" and "bond0" not in links
            return
        bond = x.Bond.create(net, members, "", "active-backup", {})
        master = x.Bond.get_master(bond)
        links = kernel(netns)
        assert links["bond0"]["linkinfo"]["info_data"]["mode"] == "active-backup"
        assert links["bond0"]["master"] == x.network.get_bridge(net)
        assert links["eth0"]["master"] == "bond0" == links["eth1"]["master"]
        assert "xenbr0" not in links
        assert x.PIF.get_device(master) == "bond0" and x.PIF.get_currently_attached(master)
        x.Bond.destroy(bond)
        links = kernel(netns)
        assert "bond0" not in links and "master" not in links["eth0"]
    finally:
        logout(s)


def test_mtu_and_promiscuous_other_config_reach_the_kernel(agents, netns):
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-test")
    x = s.xenapi
    try:
        x.PIF.scan(x.host.get_all()[0])
        eth2 = [p for p in x.PIF.get_all() if x.PIF.get_device(p) == "eth2"][0]
        x.PIF.plug(eth2)
        x.PIF.add_to_other_config(eth2, "mtu", "9000")
        x.PIF.add_to_other_config(eth2, "promiscuous", "true")
        seen = kernel(netns)["eth2"]  # a bridge port counts promiscuity already: the flag is ours
        assert seen["mtu"] == 9000 and "PROMISC" in seen["flags"]
        with pytest.raises(XenAPI.Failure) as e:
            x.PIF.set_other_config(eth2, {"mtu": "1400", "ethtool-speed": "2500"})
        assert e.value.details == ["INVALID_VALUE", "other_config:ethtool-speed", "2500"]
        assert kernel(netns)["eth2"]["mtu"] == 9000  # nothing applied
        x.PIF.set_other_config(eth2, {"mtu": "1400"})
        seen = kernel(netns)["eth2"]
        assert seen["mtu"] == 1400 and "PROMISC" not in seen["flags"]
        x.PIF.remove_from_other_config(eth2, "mtu")
        assert kernel(netns)["eth2"]["mtu"] == 1500
    finally:
        logout(s)


def test_a_bridge_removed_behind_the_agents_back_shows_the_pif_unplugged(agents, netns):
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-test")
    x = s.xenapi
    try:
        eth0 = [p for p in x.PIF.get_all() if x.PIF.get_device(p) == "eth0"][0]
        x.PIF.plug(eth0)
        metrics = x.PIF.get_metrics(eth0)
        deadline = time.monotonic() + 10
        while not x.PIF_metrics.get_carrier(metrics):  # its peer is up: carrier once eth0 is up
            assert time.monotonic() < deadline, "carrier never reported"
            time.sleep(0.2)
        ip("-n", netns, "link", "del", "xenbr0")
        while x.PIF.get_currently_attached(eth0):
            assert time.monotonic() < deadline, "the removal never reached the record"
            time.sleep(0.2)
        x.PIF.plug(eth0)  # plugging again rebuilds it
        assert kernel(netns)["eth0"]["master"] == "xenbr0"
    finally:
        logout(s)
