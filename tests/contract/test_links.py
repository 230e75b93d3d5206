"""The links adapter in a throwaway network namespace (root), read back through `ip -d -j link`."""

import json
import subprocess

import pytest

from hostagent.backends import netlink
from hostagent.backends.netlink import LinkExists, LinkNotFound, LinkNotSupported

from .netns_support import throwaway_netns

pytestmark = pytest.mark.root


@pytest.fixture
def netns():
    with throwaway_netns(*[["link", "add", f"eth{n}", "type", "veth", "peer", "name", f"peer{n}"]
                           for n in range(2)]) as name:
        yield name


def kernel(ns, name):
    """What iproute2 says about one link: a dict, or None when it does not exist."""
    out = subprocess.run(["ip", "-n", ns, "-d", "-j", "link", "show", "dev", name], capture_output=True, text=True,
                         check=False)
    return json.loads(out.stdout)[0] if out.returncode == 0 else None


def test_a_bridge_is_made_once_and_comes_up(netns):
    first = netlink.ensure_bridge("xenbr0", netns)
    again = netlink.ensure_bridge("xenbr0", netns)
    assert first == again
    seen = kernel(netns, "xenbr0")
    assert seen["linkinfo"]["info_kind"] == "bridge"
    assert "UP" in seen["flags"]
    assert first["kind"] == "bridge" and first["up"] and first["mac"] == seen["address"]


def test_a_nic_is_enslaved_and_released(netns):
    netlink.ensure_bridge("xenbr0", netns)
    netlink.enslave("eth0", "xenbr0", netns)
    netlink.enslave("eth0", "xenbr0", netns)  # twice: nothing changes
    assert kernel(netns, "eth0")["master"] == "xenbr0"
    assert netlink.link("eth0", netns)["master"] == "xenbr0"
    netlink.release("eth0", netns)
    assert "master" not in kernel(netns, "eth0")
    assert netlink.link("eth0", netns)["master"] is None


def test_mtu_promiscuous_and_state_read_back(netns):
    netlink.set_mtu("eth0", 9000, netns)
    netlink.set_promiscuous("eth0", True, netns)
    netlink.set_promiscuous("eth0", True, netns)
    netlink.set_up("eth0", True, netns)
    seen = kernel(netns, "eth0")
    assert seen["mtu"] == 9000 and seen["promiscuity"] == 1 and "UP" in seen["flags"]
    mine = netlink.link("eth0", netns)
    assert mine["mtu"] == 9000 and mine["promiscuous"] and mine["up"]
    netlink.set_promiscuous("eth0", False, netns)
    netlink.set_up("eth0", False, netns)
    seen = kernel(netns, "eth0")
    assert seen["promiscuity"] == 0 and "UP" not in seen["flags"]


def test_removal_is_idempotent(netns):
    netlink.ensure_bridge("xapi1", netns)
    netlink.remove("xapi1", netns)
    netlink.remove("xapi1", netns)
    assert kernel(netns, "xapi1") is None
    assert netlink.link("xapi1", netns) is None


def test_errors_are_ours(netns):
    with pytest.raises(LinkNotFound):
        netlink.set_mtu("nothere", 1500, netns)
    with pytest.raises(LinkNotFound):
        netlink.enslave("nothere", "alsonot", netns)
    with pytest.raises(LinkExists):
        netlink.ensure_bridge("eth0", netns)  # a veth, not a bridge


def test_nics_inside_a_namespace_are_its_veths(netns):
    names = {n["name"] for n in netlink.nics(netns)}
    assert names == {"eth0", "eth1", "peer0", "peer1"}
    netlink.ensure_bridge("xenbr0", netns)
    assert "xenbr0" not in {n["name"] for n in netlink.nics(netns)}


def test_a_vlan_is_an_8021q_link_on_its_parent(netns):
    try:
        made = netlink.ensure_vlan("eth0.42", "eth0", 42, netns)
    except LinkNotSupported:
        pytest.skip("this kernel has no 802.1Q support (CONFIG_VLAN_8021Q)")
    assert netlink.ensure_vlan("eth0.42", "eth0", 42, netns) == made
    seen = kernel(netns, "eth0.42")
    assert seen["linkinfo"]["info_kind"] == "vlan"
    assert seen["linkinfo"]["info_data"]["id"] == 42 and seen["link"] == "eth0"
    assert made["vlan"] == 42 and made["parent"] == "eth0"
    with pytest.raises(LinkExists):
        netlink.ensure_vlan("eth0.42", "eth0", 43, netns)
    netlink.remove("eth0.42", netns)
    assert kernel(netns, "eth0.42") is None


def test_an_active_backup_bond_holds_its_members(netns):
    try:
        made = netlink.ensure_bond("bond0", "active-backup", ["eth0", "eth1"], netns)
    except LinkNotSupported:
        pytest.skip("this kernel has no bonding support (CONFIG_BONDING)")
    assert made["bond_mode"] == "active-backup"
    seen = kernel(netns, "bond0")
    assert seen["linkinfo"]["info_data"]["mode"] == "active-backup"
    assert kernel(netns, "eth0")["master"] == "bond0" == kernel(netns, "eth1")["master"]
    netlink.ensure_bond("bond0", "active-backup", ["eth0"], netns)
    assert "master" not in kernel(netns, "eth1")
    netlink.remove("bond0", netns)
    assert kernel(netns, "bond0") is None


def test_the_port_runs_the_functions_in_its_namespace(netns):
    import asyncio
    port = netlink.NetworkPort(netns, run=asyncio.to_thread)  # never on an event loop: pyroute2 runs its own

    async def go():
        await port.ensure_bridge("xapi0")
        return await port.scan()
    found = asyncio.run(go())
    assert kernel(netns, "xapi0") is not None
    assert {n["name"] for n in found} == {"eth0", "eth1", "peer0", "peer1"}


def test_the_default_route_link(netns):
    assert netlink.default_route_link(netns) is None
    subprocess.run(["ip", "-n", netns, "addr", "add", "192.0.2.10/24", "dev", "eth1"], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "eth1", "up"], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "peer1", "up"], check=True)
    subprocess.run(["ip", "-n", netns, "route", "add", "default", "via", "192.0.2.1", "dev", "eth1"], check=True)
    assert netlink.default_route_link(netns) == "eth1"


def _until(events, source, done, timeout=5.0):
    import select
    import time
    deadline = time.monotonic() + timeout
    while not done(events):
        assert time.monotonic() < deadline, f"not seen in {events}"
        if select.select([source.fileno()], [], [], 0.2)[0]:
            events.extend(source.read())
    return events


def test_the_monitor_reports_links_made_changed_renamed_and_removed(netns):
    source = netlink.LinkEvents(netns)
    try:
        assert source.read() == []  # nothing waiting, and it does not block
        netlink.ensure_bridge("xapi7", netns)
        seen = _until([], source, lambda ev: any(v["name"] == "xapi7" and v.get("new") for v in ev))
        assert not any(v["deleted"] for v in seen)
        netlink.enslave("eth0", "xapi7", netns)
        _until(seen, source, lambda ev: any(v["name"] == "eth0" and v["master"] == "xapi7" for v in ev))
        netlink.set_up("eth0", True, netns)
        netlink.set_up("peer0", True, netns)  # its peer up: carrier
        _until(seen, source, lambda ev: any(v["name"] == "eth0" and v["carrier"] and v["up"] for v in ev))
        subprocess.run(["ip", "-n", netns, "link", "set", "eth1", "name", "nic1"], check=True)
        _until(seen, source, lambda ev: any(v["name"] == "nic1" and v.get("new") for v in ev))
        assert any(v["name"] == "eth1" and v["deleted"] for v in seen)
        mark = len(seen)
        netlink.remove("xapi7", netns)
        _until(seen, source, lambda ev: any(v["name"] == "xapi7" and v["deleted"] for v in ev[mark:]))
        _until(seen, source, lambda ev: any(v["name"] == "eth0" and v["master"] is None for v in ev[mark:]))
        assert source.read() == []  # nothing more: a report only when something changed
    finally:
        source.close()


def test_ports_and_link_states_read_the_kernel(netns):
    netlink.ensure_bridge("xapi3", netns)
    assert netlink.ports("xapi3", netns) == []
    netlink.enslave("eth0", "xapi3", netns)
    netlink.enslave("eth1", "xapi3", netns)
    assert sorted(netlink.ports("xapi3", netns)) == ["eth0", "eth1"]
    assert netlink.ports("eth0", netns) == [] and netlink.ports("nothere", netns) == []
    states = {li["name"]: li for li in netlink.link_states(netns)}
    assert states["eth0"]["master"] == "xapi3" and states["xapi3"]["up"] and not states["eth0"]["up"]
    assert set(states) == {li["ifname"] for li in json.loads(subprocess.run(
        ["ip", "-n", netns, "-j", "link"], capture_output=True, text=True, check=True).stdout)}


def test_after_lost_notifications_the_monitor_reports_the_differences(netns):
    source = netlink.LinkEvents(netns)
    try:
        netlink.ensure_bridge("xapi8", netns)
        netlink.enslave("eth0", "xapi8", netns)
        subprocess.run(["ip", "-n", netns, "link", "del", "eth1"], check=True)  # eth1 and peer1 go
        seen = source._resync()  # what read() does on ENOBUFS, without overflowing the socket
        by_name = {v["name"]: v for v in seen}
        assert by_name["xapi8"].get("new") and by_name["eth0"]["master"] == "xapi8"
        assert by_name["eth1"]["deleted"] and by_name["peer1"]["deleted"]
        assert source._resync() == []  # nothing changed since
    finally:
        source.close()
