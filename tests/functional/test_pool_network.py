"""Network work on the member whose links it is (docs/pools.md, "Networks on members"; root).

Two agents, each managing the links of its own network namespace (`--manage-network --netns`,
three veth NICs each, net_support.made_netns), form a pool over TLS on 127.0.0.1-2. The real
XenAPI package talks to the master only; each host's links are read back from its own
namespace with `ip`. The tests run in order.
"""

import json
import os
import signal

import pytest

from .net_support import ip, kernel, made_netns
from .pool_support import (
    HEARTBEAT,
    TIMEOUT,
    failure,
    live,
    template,
    two_host_pool,
    wait_for,
)

pytestmark = [pytest.mark.root]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    base = tmp_path_factory.mktemp("pool-network")
    with made_netns() as ns_a, made_netns() as ns_b:
        managing = (("--manage-network", "--netns", ns_a), ("--manage-network", "--netns", ns_b))
        with two_host_pool(base, managing) as (a, b, x):
            a.ns, b.ns = ns_a, ns_b
            yield a, b, x


def pif(x, host, device):
    [p] = [p for p in x.host.get_PIFs(host.ref) if x.PIF.get_device(p) == device and x.PIF.get_VLAN(p) == "-1"]
    return p


def addresses(ns, dev):
    out = json.loads(ip("-n", ns, "-j", "addr", "show", "dev", dev).stdout)
    return [f"{a['local']}/{a['prefixlen']}" for li in out for a in li.get("addr_info", []) if a["family"] == "inet"]


def test_a_members_pif_is_plugged_in_its_own_namespace(pool):
    a, b, x = pool
    eth1 = pif(x, b, "eth1")
    bridge = x.network.get_bridge(x.PIF.get_network(eth1))
    x.PIF.plug(eth1)
    assert x.PIF.get_currently_attached(eth1)
    assert kernel(b.ns)["eth1"]["master"] == bridge  # on b's links
    assert bridge not in kernel(a.ns) or kernel(a.ns)["eth1"].get("master") != bridge  # not a's
    x.PIF.unplug(eth1)
    assert not x.PIF.get_currently_attached(eth1)
    assert kernel(b.ns)["eth1"].get("master") != bridge


def test_a_members_pif_gets_its_static_address_there(pool):
    a, b, x = pool
    eth2 = pif(x, b, "eth2")
    assert failure(x.PIF.reconfigure_ip, eth2, "Static", "192.0.2.300", "255.255.255.0", "", "") == \
        ["INVALID_IP_ADDRESS_SPECIFIED", "IP"]
    x.PIF.reconfigure_ip(eth2, "Static", "192.0.2.20", "255.255.255.0", "", "")
    x.PIF.plug(eth2)
    bridge = x.network.get_bridge(x.PIF.get_network(eth2))
    assert "192.0.2.20/24" in addresses(b.ns, bridge)
    assert bridge not in kernel(a.ns)  # a's namespace has no such bridge
    x.PIF.reconfigure_ip(eth2, "None", "", "", "", "")
    assert "192.0.2.20/24" not in addresses(b.ns, bridge)
    x.PIF.unplug(eth2)


def test_a_vm_on_a_member_has_its_bridge_there(pool):
    _, b, x = pool
    eth1 = pif(x, b, "eth1")
    net = x.PIF.get_network(eth1)
    vm = x.VM.clone(template(x), "nic on b")
    x.VM.set_is_a_template(vm, False)
    x.VIF.create({"VM": vm, "network": net, "device": "0", "MAC": "", "MTU": "1500", "other_config": {},
                  "qos_algorithm_type": "", "qos_algorithm_params": {}})
    x.VM.start_on(vm, b.ref, False, False)
    bridge = x.network.get_bridge(net)
    assert kernel(b.ns)[bridge]["linkinfo"]["info_kind"] == "bridge"  # made by b's agent
    x.VM.hard_shutdown(vm)
    x.VM.destroy(vm)


def test_a_members_pif_is_offline_with_its_member(pool):
    _, b, x = pool
    eth1 = pif(x, b, "eth1")
    os.kill(b.agent.proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: not live(x, b.ref), TIMEOUT + 5 * HEARTBEAT + 5, "b not live")
        assert failure(x.PIF.plug, eth1) == ["HOST_OFFLINE", b.ref]
        assert not x.PIF.get_currently_attached(eth1)
    finally:
        os.kill(b.agent.proc.pid, signal.SIGCONT)
    wait_for(lambda: live(x, b.ref), TIMEOUT + 10, "b live again")
