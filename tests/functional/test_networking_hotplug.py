"""NICs that appear, go or lose their carrier, followed by PIF_metrics with events (root).

The agent manages a namespace whose NICs are veth ends (net_support.netns): carrier
comes from the link monitor, NICs appearing and going from udev's monitor (the
kernel's uevents inside the namespace), speed and duplex from ethtool (a veth says
10000 Mb/s, full duplex).
"""

import time

import pytest

from . import net_support
from .events_support import event_from, login, logout
from .net_support import WIRES, ip, kernel

netns = net_support.netns  # a fixture

pytestmark = [pytest.mark.root, pytest.mark.slow]


def until(what, check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.1)


def metrics_events(x, token, metrics):
    """The PIF_metrics events for `metrics` from `token` on (one call), and the next token."""
    out = event_from(x, ["PIF_metrics"], token, 5.0)
    return [e for e in out["events"] if e["ref"] == metrics], out["token"]


def test_carrier_follows_the_wire_with_events(agents, netns):
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-hotplug")
    x = s.xenapi
    try:
        pifs = {x.PIF.get_device(p): p for p in x.PIF.get_all()}
        eth1 = pifs["eth1"]
        metrics = x.PIF.get_metrics(eth1)
        ip("-n", netns, "link", "set", "eth1", "up")  # its peer is up: carrier
        until("carrier", lambda: x.PIF_metrics.get_carrier(metrics))
        rec = x.PIF_metrics.get_record(metrics)
        assert (rec["speed"], rec["duplex"]) == ("10000", True)  # veth's ethtool figures
        token = event_from(x, ["PIF_metrics"], "", 0.0)["token"]
        ip("-n", WIRES[netns], "link", "set", "wire1", "down")  # the cable pulled at the other end
        until("carrier lost", lambda: not x.PIF_metrics.get_carrier(metrics))
        seen, token = metrics_events(x, token, metrics)
        assert any(e["operation"] == "mod" and e["snapshot"]["carrier"] is False for e in seen)
        ip("-n", WIRES[netns], "link", "set", "wire1", "up")
        until("carrier back", lambda: x.PIF_metrics.get_carrier(metrics))
        assert not x.PIF_metrics.get_carrier(x.PIF.get_metrics(pifs["eth0"]))  # eth0 was never up
    finally:
        logout(s)


def test_a_nic_that_goes_and_comes_back_and_one_that_is_new(agents, netns):
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-hotplug")
    x = s.xenapi
    try:
        host = x.host.get_all()[0]
        pifs = {x.PIF.get_device(p): p for p in x.PIF.get_all()}
        eth2 = pifs["eth2"]
        metrics = x.PIF.get_metrics(eth2)
        ip("-n", netns, "link", "set", "eth2", "up")
        until("carrier", lambda: x.PIF_metrics.get_carrier(metrics))
        old_mac = x.PIF.get_MAC(eth2)

        ip("-n", netns, "link", "del", "eth2")  # hot-unplugged: no carrier, no speed
        until("the NIC's going", lambda: x.PIF_metrics.get_speed(metrics) == "0")
        rec = x.PIF_metrics.get_record(metrics)
        assert (rec["carrier"], rec["duplex"]) == (False, False)
        assert eth2 in x.PIF.get_all()  # the record stays, as in xapi

        # a card with another MAC put in where it was: the PIF follows it
        ip("-n", netns, "link", "add", "eth2", "address", "02:00:00:00:0e:02", "type", "veth",
           "peer", "name", "wire2", "netns", WIRES[netns])
        until("the NIC's return", lambda: x.PIF.get_MAC(eth2) == "02:00:00:00:0e:02")
        assert old_mac != "02:00:00:00:0e:02"
        until("its speed", lambda: x.PIF_metrics.get_speed(metrics) == "10000")

        # a NIC never seen: no PIF until PIF.scan asks (xapi makes PIFs only in PIF.scan)
        ip("-n", netns, "link", "add", "eth3", "type", "veth", "peer", "name", "wire3", "netns", WIRES[netns])
        until("the link", lambda: "eth3" in kernel(netns))
        time.sleep(1.5)  # the udev report and a link monitor round have come by
        assert "eth3" not in [x.PIF.get_device(p) for p in x.PIF.get_all()]
        x.PIF.scan(host)
        assert "eth3" in [x.PIF.get_device(p) for p in x.PIF.get_all()]
    finally:
        logout(s)
