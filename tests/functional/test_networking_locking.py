"""VIF locking_mode filters through the XenAPI package, on real bridge traffic (root).

libvirt's test driver makes no devices, so the test plays the hypervisor: once
the VM runs it makes the VIF's backend `vif<domid>.0` as a veth in the agent's
namespace whose other end is eth0 of a "guest" namespace (the VIF's MAC,
10.0.0.1). The VIF's network is eth0's, plugged, whose wire end answers on
10.0.0.2. The guest pings it under each mode, with its own address and a
spoofed one. Skips without nft or bridge nf_tables.
"""

import json
import shutil
import subprocess
import time
import uuid

import pytest
import XenAPI

from ..contract.traffic_support import ping
from . import net_support
from .events_support import login, logout
from .net_support import WIRES, ip, kernel

pytestmark = [pytest.mark.root, pytest.mark.slow]
netns = net_support.netns  # a fixture


def failure(call, *args):
    with pytest.raises(XenAPI.Failure) as e:
        call(*args)
    return e.value.details


def until(what, check, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


def filtered(ns):
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "bridge", "hostagent"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {}
    maps = [i["map"] for i in json.loads(out.stdout)["nftables"] if "map" in i]
    return {m["name"]: {k: v for k, v in m.get("elem", [])} for m in maps}


@pytest.fixture
def guest():
    name = "hg-" + uuid.uuid4().hex[:8]
    ip("netns", "add", name)
    yield name
    ip("netns", "del", name, check=False)


def readdress(ns, addr):
    ip("-n", ns, "addr", "flush", "dev", "eth0")
    ip("-n", ns, "addr", "add", addr, "dev", "eth0")


def test_locking_modes_filter_a_running_vifs_traffic(agents, netns, guest):
    if shutil.which("nft") is None:
        pytest.skip("nft is not installed (Debian package nftables)")
    probe = ip("netns", "exec", netns, "nft", "add", "table", "bridge", "probe", check=False)
    if probe.returncode != 0:
        pytest.skip(f"this kernel has no nf_tables for bridges: {probe.stderr.strip()}")
    ip("netns", "exec", netns, "nft", "delete", "table", "bridge", "probe")
    wire = WIRES[netns]
    ip("-n", wire, "addr", "add", "10.0.0.2/24", "dev", "wire0")
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-locking")
    x = s.xenapi
    try:
        eth0 = next(p for p in x.PIF.get_all() if x.PIF.get_device(p) == "eth0")
        x.PIF.plug(eth0)
        net = x.PIF.get_network(eth0)
        bridge = x.network.get_bridge(net)
        [tmpl] = [r for r, rec in x.VM.get_all_records().items()
                  if rec["is_a_template"] and rec["name_label"] == "Debian Bookworm 12"]
        vm = x.VM.clone(tmpl, "locked guest")
        x.VM.provision(vm)
        record = {"device": "0", "network": net, "VM": vm, "MAC": "", "MTU": "0", "other_config": {},
                  "qos_algorithm_type": "", "qos_algorithm_params": {}, "locking_mode": "locked"}
        assert failure(x.VIF.create, dict(record, ipv4_allowed=["10.0.0.300"])) == \
            ["INVALID_VALUE", "ipv4_allowed", "10.0.0.300"]
        vif = x.VIF.create(dict(record, ipv4_allowed=["10.0.0.1"]))
        x.VM.start(vm, False, False)
        backend = f"vif{x.VM.get_domid(vm)}.0"
        ip("-n", netns, "link", "add", backend, "type", "veth", "peer", "name", "eth0", "netns", guest)
        ip("-n", guest, "link", "set", "eth0", "address", x.VIF.get_MAC(vif))
        ip("-n", guest, "link", "set", "eth0", "up")
        readdress(guest, "10.0.0.1/24")
        until(f"{backend} on {bridge}", lambda: kernel(netns).get(backend, {}).get("master") == bridge)
        assert backend in filtered(netns)["from_vif"]

        assert ping(guest, "10.0.0.2")  # locked, from its own MAC and address
        readdress(guest, "10.0.0.9/24")
        assert not ping(guest, "10.0.0.2")  # a spoofed address
        x.VIF.add_ipv4_allowed(vif, "10.0.0.9")
        assert sorted(x.VIF.get_ipv4_allowed(vif)) == ["10.0.0.1", "10.0.0.9"]
        assert ping(guest, "10.0.0.2")
        x.VIF.remove_ipv4_allowed(vif, "10.0.0.9")
        assert not ping(guest, "10.0.0.2")
        assert failure(x.VIF.add_ipv4_allowed, vif, "fd00::1") == ["INVALID_VALUE", "ipv4_allowed", "fd00::1"]
        assert failure(x.VIF.set_ipv6_allowed, vif, ["10.0.0.1"]) == ["INVALID_VALUE", "ipv6_allowed", "10.0.0.1"]
        assert x.VIF.get_ipv6_allowed(vif) == []
        readdress(guest, "10.0.0.1/24")

        x.VIF.set_locking_mode(vif, "disabled")
        assert not ping(guest, "10.0.0.2")
        x.VIF.set_locking_mode(vif, "network_default")  # the network's default: unlocked
        assert ping(guest, "10.0.0.2")
        x.network.set_default_locking_mode(net, "disabled")
        assert x.network.get_default_locking_mode(net) == "disabled"
        assert not ping(guest, "10.0.0.2")
        x.network.set_default_locking_mode(net, "unlocked")
        x.VIF.set_locking_mode(vif, "unlocked")
        readdress(guest, "10.0.0.9/24")
        assert ping(guest, "10.0.0.2")  # unlocked: any address
        assert backend not in filtered(netns).get("from_vif", {})

        x.VIF.set_locking_mode(vif, "disabled")
        assert backend in filtered(netns)["to_vif"]
        x.VM.hard_shutdown(vm)
        ip("-n", netns, "link", "del", backend)  # the backend goes with its domain
        until("the filter gone with its backend", lambda: backend not in filtered(netns).get("to_vif", {}))
        x.VIF.destroy(vif)
    finally:
        logout(s)
