"""Traffic through a VLAN on the agent's bridge (root; needs CONFIG_VLAN_8021Q).

The agent's namespace carries VLAN 42 on eth0 (VLAN.create: eth0.42 on the
network's bridge, which gets 10.42.0.1 through PIF.reconfigure_ip); the
"wire" namespace at eth0's other end tags its frames itself. Pings pass with
tag 42 on the wire and not with tag 43. Skips, saying why, on a kernel
without 802.1Q (see docs/networking.md for running it in the Xen lab's dom0).
"""

import socket
import struct
import threading

import pytest
from pyroute2.netns import setns

from .events_support import login, logout
from .net_support import WIRES, ip, kernel, kernel_has_8021q, netns  # noqa: F401 - a fixture

pytestmark = [pytest.mark.root, pytest.mark.slow]


def ping(ns, address, tries=3):
    """An ICMP echo from namespace `ns` to `address` answered (raw socket: no ping binary)."""
    box = {}

    def work():
        setns(ns, flags=0)
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
            sock.settimeout(1.0)
            for seq in range(tries):
                body = struct.pack("!BBHHH", 8, 0, 0, 0x4841, seq) + b"hostagent"
                padded = body + b"\0" * (len(body) % 2)
                total = sum(struct.unpack(f"!{len(padded) // 2}H", padded))
                total = (total >> 16) + (total & 0xFFFF)
                body = body[:2] + struct.pack("!H", ~(total + (total >> 16)) & 0xFFFF) + body[4:]
                sock.sendto(body, (address, 0))
                try:
                    while True:
                        data, (src, _) = sock.recvfrom(1500)
                        icmp = data[(data[0] & 0x0F) * 4:]
                        if src == address and icmp[0] == 0 and icmp[4:8] == struct.pack("!HH", 0x4841, seq):
                            box["ok"] = True
                            return
                except (socket.timeout, OSError):
                    continue
    t = threading.Thread(target=work)
    t.start()
    t.join()
    return box.get("ok", False)


def test_pings_pass_on_the_same_tag_and_not_on_another(agents, netns):
    if not kernel_has_8021q(netns):
        pytest.skip("this kernel has no 802.1Q support (CONFIG_VLAN_8021Q): run in the Xen lab's dom0")
    wire = WIRES[netns]
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-traffic")
    x = s.xenapi
    try:
        eth0 = [p for p in x.PIF.get_all() if x.PIF.get_device(p) == "eth0"][0]
        x.PIF.plug(eth0)
        net = x.network.create({"name_label": "vlan 42", "name_description": "", "MTU": "1500",
                                "other_config": {}, "tags": []})
        vlan = x.VLAN.create(eth0, "42", net)
        untagged = x.VLAN.get_untagged_PIF(vlan)
        x.PIF.reconfigure_ip(untagged, "Static", "10.42.0.1", "255.255.255.0", "", "")
        bridge = x.network.get_bridge(net)
        assert kernel(netns)["eth0.42"]["master"] == bridge
        ip("-n", wire, "link", "add", "link", "wire0", "name", "wire0.42", "type", "vlan", "id", "42")
        ip("-n", wire, "addr", "add", "10.42.0.2/24", "dev", "wire0.42")
        ip("-n", wire, "link", "set", "wire0.42", "up")
        assert ping(wire, "10.42.0.1")

        ip("-n", wire, "link", "del", "wire0.42")
        ip("-n", wire, "link", "add", "link", "wire0", "name", "wire0.43", "type", "vlan", "id", "43")
        ip("-n", wire, "addr", "add", "10.42.0.2/24", "dev", "wire0.43")
        ip("-n", wire, "link", "set", "wire0.43", "up")
        assert not ping(wire, "10.42.0.1")
        x.VLAN.destroy(vlan)
        assert not {"eth0.42", bridge} & set(kernel(netns))
    finally:
        logout(s)


def test_pings_pass_through_a_plugged_nic_and_stop_at_unplug(agents, netns):
    """The same path untagged, which any kernel with bridges has: the wire reaches the
    address on the NIC's bridge while the PIF is plugged, and not once it is unplugged."""
    wire = WIRES[netns]
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-traffic")
    x = s.xenapi
    try:
        eth1 = [p for p in x.PIF.get_all() if x.PIF.get_device(p) == "eth1"][0]
        x.PIF.reconfigure_ip(eth1, "Static", "10.1.0.1", "255.255.255.0", "", "")
        ip("-n", wire, "addr", "add", "10.1.0.2/24", "dev", "wire1")
        assert not ping(wire, "10.1.0.1")
        x.PIF.plug(eth1)
        assert ping(wire, "10.1.0.1")
        x.PIF.unplug(eth1)
        assert not ping(wire, "10.1.0.1")
    finally:
        logout(s)
