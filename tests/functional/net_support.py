"""Namespaces and kernel read-backs for the networking tests (root).

`netns` is a namespace with three veth ends eth0..eth2 as its NICs, their
peers in a second namespace (the "wire"); `kernel(ns)` is what
`ip -d -j link` says; `kernel_has_8021q` and `kernel_has_bonding` probe the
kernel so tests that need those link types can skip saying why.
"""

import contextlib
import json
import os
import subprocess
import uuid

import pytest


def ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


WIRES = {}  # the agent's namespace -> the namespace holding its NICs' peers (the "wire")


@contextlib.contextmanager
def made_netns():
    """A namespace with NICs eth0..eth2 (veths whose peers are in its "wire" namespace)."""
    name, wire = "ha-" + uuid.uuid4().hex[:8], "hw-" + uuid.uuid4().hex[:8]
    ip("netns", "add", name)
    ip("netns", "add", wire)
    WIRES[name] = wire
    try:
        for n in range(3):
            ip("-n", name, "link", "add", f"eth{n}", "type", "veth", "peer", "name", f"wire{n}", "netns", wire)
            ip("-n", wire, "link", "set", f"wire{n}", "up")
        yield name
    finally:
        WIRES.pop(name, None)
        ip("netns", "del", name, check=False)
        ip("netns", "del", wire, check=False)


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    with made_netns() as name:
        yield name


def kernel(ns):
    """Every link of the namespace, by name, as `ip -d -j link` reports it."""
    return {li["ifname"]: li for li in json.loads(ip("-n", ns, "-d", "-j", "link", "show").stdout)}


def kernel_has_8021q(ns) -> bool:
    probe = ip("-n", ns, "link", "add", "link", "eth2", "name", "probe.9", "type", "vlan", "id", "9", check=False)
    if probe.returncode == 0:
        ip("-n", ns, "link", "del", "probe.9")
    return probe.returncode == 0


def kernel_has_bonding(ns) -> bool:
    probe = ip("-n", ns, "link", "add", "probe-bond", "type", "bond", check=False)
    if probe.returncode == 0:
        ip("-n", ns, "link", "del", "probe-bond")
    return probe.returncode == 0
