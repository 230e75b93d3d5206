"""PIF.introduce, PIF.forget, PIF.reconfigure_ip and host.management_reconfigure on real links (root)."""

import pytest
import XenAPI

from .events_support import login, logout
from .net_support import ip, kernel, netns  # noqa: F401 - a fixture

pytestmark = [pytest.mark.root, pytest.mark.slow]


def failure(call, *args):
    with pytest.raises(XenAPI.Failure) as e:
        call(*args)
    return e.value.details


def addresses(ns, dev):
    out = ip("-n", ns, "-j", "addr", "show", "dev", dev).stdout
    import json
    return [f"{a['local']}/{a['prefixlen']}" for li in json.loads(out) for a in li.get("addr_info", [])
            if a["family"] == "inet"]


def test_introduce_and_forget(agents, netns):
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-pif")
    x = s.xenapi
    try:
        host = x.host.get_all()[0]
        eth1 = [p for p in x.PIF.get_all() if x.PIF.get_device(p) == "eth1"][0]
        mac = x.PIF.get_MAC(eth1)
        x.PIF.plug(eth1)
        x.PIF.forget(eth1)
        assert eth1 not in x.PIF.get_all() and "xenbr1" not in kernel(netns)  # unplugged first
        assert failure(x.PIF.introduce, host, "02:xx", "eth1", True) == ["MAC_INVALID", "02:xx"]
        assert failure(x.PIF.introduce, host, "", "eth9", True) == ["PIF_DEVICE_NOT_FOUND"]
        assert failure(x.PIF.introduce, host, "02:00:00:00:00:99", "eth1", True) == ["MAC_INVALID",
                                                                                       "02:00:00:00:00:99"]
        pif = x.PIF.introduce(host, mac.upper(), "eth1", True)
        rec = x.PIF.get_record(pif)
        assert rec["device"] == "eth1" and rec["MAC"] == mac and rec["physical"] and not rec["currently_attached"]
        assert failure(x.PIF.introduce, host, "", "eth1", True) == ["DUPLICATE_PIF_DEVICE_NAME", "eth1"]
        x.PIF.plug(pif)
        assert kernel(netns)["eth1"]["master"] == x.network.get_bridge(rec["network"])
        x.PIF.forget(pif)
        assert pif not in x.PIF.get_all()
    finally:
        logout(s)


def test_reconfigure_ip_and_management_reconfigure(agents, netns):
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-pif")
    x = s.xenapi
    try:
        pifs = {x.PIF.get_device(p): p for p in x.PIF.get_all()}
        eth0, eth2 = pifs["eth0"], pifs["eth2"]
        assert failure(x.PIF.reconfigure_ip, eth0, "Static", "192.0.2.300", "255.255.255.0", "", "") == \
            ["INVALID_IP_ADDRESS_SPECIFIED", "IP"]
        assert failure(x.PIF.reconfigure_ip, eth0, "Static", "192.0.2.10", "255.0.255.0", "", "") == \
            ["INVALID_IP_ADDRESS_SPECIFIED", "netmask"]
        assert failure(x.PIF.reconfigure_ip, eth0, "Static", "192.0.2.10", "255.255.255.0", "gw", "") == \
            ["INVALID_IP_ADDRESS_SPECIFIED", "gateway"]
        assert x.PIF.get_ip_configuration_mode(eth0) == "None"
        x.PIF.reconfigure_ip(eth0, "Static", "192.0.2.10", "255.255.255.0", "192.0.2.1", "192.0.2.53")
        rec = x.PIF.get_record(eth0)
        assert (rec["ip_configuration_mode"], rec["IP"], rec["netmask"], rec["gateway"], rec["DNS"]) == \
            ("Static", "192.0.2.10", "255.255.255.0", "192.0.2.1", "192.0.2.53")
        x.PIF.plug(eth0)  # applied at plug: on the bridge, where xapi puts it
        assert addresses(netns, "xenbr0") == ["192.0.2.10/24"]
        x.PIF.reconfigure_ip(eth0, "Static", "192.0.2.11", "255.255.255.0", "", "")
        assert addresses(netns, "xenbr0") == ["192.0.2.11/24"]
        x.PIF.reconfigure_ip(eth0, "DHCP", "", "", "", "")
        assert x.PIF.get_ip_configuration_mode(eth0) == "DHCP" and x.PIF.get_IP(eth0) == ""
        assert addresses(netns, "xenbr0") == ["192.0.2.11/24"]  # no DHCP client: left as it was
        x.PIF.reconfigure_ip(eth0, "None", "", "", "", "")
        assert addresses(netns, "xenbr0") == []

        # the management role moves only once the new address answers; the old keeps its address
        x.PIF.reconfigure_ip(eth0, "Static", "192.0.2.10", "255.255.255.0", "", "")
        # the namespace's loopback is down: nothing local answers, so the role does not move
        details = failure(x.host.management_reconfigure, eth0)
        assert details[:2] == ["PIF_CONFIGURATION_ERROR", eth0] and "does not answer" in details[2]
        assert not x.PIF.get_management(eth0) and addresses(netns, "xenbr0") == ["192.0.2.10/24"]
        ip("-n", netns, "link", "set", "lo", "up")
        x.host.management_reconfigure(eth0)
        assert x.PIF.get_management(eth0)
        assert failure(x.host.management_reconfigure, eth2) == ["PIF_HAS_NO_NETWORK_CONFIGURATION", eth2]
        x.PIF.reconfigure_ip(eth2, "Static", "198.51.100.2", "255.255.255.0", "", "")
        assert addresses(netns, "xenbr0") == ["192.0.2.10/24"]
        x.PIF.reconfigure_ip(eth0, "Static", "192.0.2.99", "255.255.255.0", "", "")  # management: recorded
        assert addresses(netns, "xenbr0") == ["192.0.2.10/24"]
        x.host.management_reconfigure(eth2)
        assert x.PIF.get_management(eth2) and not x.PIF.get_management(eth0)
        assert addresses(netns, "xenbr2") == ["198.51.100.2/24"] and addresses(netns, "xenbr0") == ["192.0.2.10/24"]
        assert x.host.get_address(x.host.get_all()[0]) == "198.51.100.2"
        assert failure(x.PIF.forget, eth2) == ["PIF_IS_MANAGEMENT_INTERFACE", eth2]
    finally:
        logout(s)
