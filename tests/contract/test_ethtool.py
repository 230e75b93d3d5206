"""The ethtool part of the links adapter in a throwaway namespace (root), read back independently.

The adapter reads and writes the legacy per-offload ioctls and the link
settings ioctl; the tests read back through `ethtool` (when installed) or the
kernel's feature bitmaps (ETHTOOL_GFEATURES), a different path.
"""

import os

import pytest

from hostagent.backends import netlink
from hostagent.backends.netlink import LinkNotFound

from .ethtool_support import kernel_ethtool
from .netns_support import throwaway_netns

pytestmark = pytest.mark.root


@pytest.fixture
def netns():
    with throwaway_netns(["link", "add", "eth0", "type", "veth", "peer", "name", "peer0"],
                         ["tuntap", "add", "mode", "tap", "name", "vif1.0"]) as name:
        yield name


def test_offloads_change_on_a_veth_and_read_back(netns):
    before = netlink.ethtool_state("eth0", netns)
    assert before["rx"] is True and before["tso"] is True and before["ufo"] is None  # no UFO since 4.14
    result = netlink.apply_ethtool("eth0", {"rx": False, "tx": False, "sg": False, "tso": False, "gso": False},
                                   netns)
    assert result["refused"] == {} and result["before"] == before
    seen = kernel_ethtool(netns, "eth0")
    assert [seen[k] for k in ("rx", "tx", "sg", "tso", "gso")] == [False] * 5
    again = netlink.apply_ethtool("eth0", {"rx": False}, netns)  # nothing to change
    assert again["before"] == again["after"]
    netlink.apply_ethtool("eth0", {"sg": True, "rx": True, "tx": True, "tso": True, "gso": True}, netns)
    seen = kernel_ethtool(netns, "eth0")
    assert [seen[k] for k in ("rx", "tx", "sg", "tso", "gso")] == [True] * 5


def test_what_a_driver_cannot_do_is_reported_not_raised(netns):
    result = netlink.apply_ethtool("eth0", {"speed": 100, "duplex": "half", "ufo": True, "rx": False}, netns)
    assert set(result["refused"]) == {"speed", "duplex", "ufo"}
    assert result["after"]["rx"] is False and kernel_ethtool(netns, "eth0")["rx"] is False
    assert kernel_ethtool(netns, "eth0")["speed"] == 10000  # a veth's fixed speed


def test_speed_duplex_and_autoneg_on_a_tap(netns):
    result = netlink.apply_ethtool("vif1.0", {"speed": 100, "duplex": "half", "autoneg": True}, netns)
    assert result["refused"] == {}
    seen = kernel_ethtool(netns, "vif1.0")
    assert (seen["speed"], seen["duplex"], seen["autoneg"]) == (100, "half", True)
    netlink.apply_ethtool("vif1.0", {"speed": 1000, "duplex": "full", "autoneg": False}, netns)
    seen = kernel_ethtool(netns, "vif1.0")
    assert (seen["speed"], seen["duplex"], seen["autoneg"]) == (1000, "full", False)


def test_a_missing_link_is_ours_and_the_callers_namespace_is_untouched(netns):
    with pytest.raises(LinkNotFound):
        netlink.ethtool_state("nothere", netns)
    with pytest.raises(LinkNotFound):
        netlink.apply_ethtool("nothere", {"rx": False}, netns)
    # the work ran in a thread of its own: this thread still sees its own namespace
    assert os.readlink("/proc/thread-self/ns/net") == os.readlink("/proc/self/ns/net")
    with pytest.raises(LinkNotFound):
        netlink.ethtool_state("vif1.0")  # only inside the namespace
