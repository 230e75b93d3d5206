"""udev's monitor of network links (NetDeviceEvents) against this kernel, in a throwaway namespace (root)."""

import select
import subprocess
import time

from hostagent.backends.udev import NetDeviceEvents

from .netns_support import throwaway_netns


def events_until(source, wanted, timeout=5.0):
    """What the source reports until `wanted` (a set of (action, name)) have all been seen."""
    seen, deadline = [], time.monotonic() + timeout
    while not wanted <= {(e["action"], e["name"]) for e in seen} and time.monotonic() < deadline:
        if select.select([source.fileno()], [], [], 0.2)[0]:
            seen.extend(source.read())
    return seen


def test_links_added_renamed_and_removed_inside_a_namespace():
    with throwaway_netns() as ns:
        source = NetDeviceEvents(ns)
        try:
            assert source.source == "kernel"  # no udevd listens inside a namespace
            assert source.read() == []  # nothing waiting, and it does not block
            subprocess.run(["ip", "-n", ns, "link", "add", "nic0", "type", "veth", "peer", "name", "nic1"],
                           check=True)
            seen = events_until(source, {("add", "nic0"), ("add", "nic1")})
            assert {("add", "nic0"), ("add", "nic1")} <= {(e["action"], e["name"]) for e in seen}
            subprocess.run(["ip", "-n", ns, "link", "set", "nic1", "name", "eth7"], check=True)
            seen = events_until(source, {("move", "eth7")})
            [move] = [e for e in seen if e["action"] == "move"]
            assert (move["name"], move["old_name"], move["devtype"], move["virtual"]) == ("eth7", "nic1", "", True)
            subprocess.run(["ip", "-n", ns, "link", "del", "nic0"], check=True)
            seen = events_until(source, {("remove", "nic0"), ("remove", "eth7")})
            assert {("remove", "nic0"), ("remove", "eth7")} <= {(e["action"], e["name"]) for e in seen}
        finally:
            source.close()


def test_a_namespace_sees_only_its_own_links():
    with throwaway_netns() as ns, throwaway_netns() as other:
        source = NetDeviceEvents(ns)
        try:
            subprocess.run(["ip", "-n", other, "link", "add", "elsewhere0", "type", "veth", "peer", "name", "elsewhere1"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "add", "here0", "type", "veth", "peer", "name", "here1"], check=True)
            seen = events_until(source, {("add", "here0")})
            names = {e["name"] for e in seen}
            assert "here0" in names and "elsewhere0" not in names
        finally:
            source.close()
