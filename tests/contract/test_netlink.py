"""The links adapter in a throwaway network namespace (root): the management address."""

import subprocess

import pytest

from hostagent.backends.netlink import management_address

from .netns_support import throwaway_netns

pytestmark = pytest.mark.root


@pytest.fixture
def netns():
    with throwaway_netns() as name:
        yield name


def ns(name, *args):
    subprocess.run(["ip", "-n", name, *args], check=True)


def test_the_default_routes_interface_wins(netns):
    ns(netns, "link", "set", "lo", "up")
    ns(netns, "link", "add", "mgmt0", "type", "veth", "peer", "name", "mgmt0p")
    ns(netns, "link", "add", "other0", "type", "veth", "peer", "name", "other0p")
    ns(netns, "addr", "add", "198.51.100.7/24", "dev", "other0")  # first, but not the way out
    ns(netns, "addr", "add", "192.0.2.10/24", "dev", "mgmt0")
    ns(netns, "link", "set", "mgmt0p", "up")
    ns(netns, "link", "set", "mgmt0", "up")
    ns(netns, "link", "set", "other0", "up")
    ns(netns, "route", "add", "default", "via", "192.0.2.1", "dev", "mgmt0")
    assert management_address(netns) == "192.0.2.10"


def test_a_preferred_source_wins_over_the_interfaces_first_address(netns):
    ns(netns, "link", "add", "mgmt0", "type", "veth", "peer", "name", "mgmt0p")
    ns(netns, "addr", "add", "192.0.2.10/24", "dev", "mgmt0")
    ns(netns, "addr", "add", "192.0.2.20/24", "dev", "mgmt0")
    ns(netns, "link", "set", "mgmt0p", "up")
    ns(netns, "link", "set", "mgmt0", "up")
    ns(netns, "route", "add", "default", "via", "192.0.2.1", "dev", "mgmt0", "src", "192.0.2.20")
    assert management_address(netns) == "192.0.2.20"


def test_without_a_default_route_any_global_address_then_loopback(netns):
    ns(netns, "link", "set", "lo", "up")
    assert management_address(netns) == "127.0.0.1"
    ns(netns, "link", "add", "only0", "type", "veth", "peer", "name", "only0p")
    ns(netns, "addr", "add", "198.51.100.7/24", "dev", "only0")
    ns(netns, "link", "set", "only0", "up")
    assert management_address(netns) == "198.51.100.7"
