"""VIF locking filters (backends/nftables.py) against this kernel's bridge netfilter (root).

A namespace holds a bridge with two ports: `vif1.0`, a VIF's backend whose peer
is eth0 of a "guest" namespace (MAC 02:00:00:00:00:01, 10.0.0.1), and `port1`,
whose peer is eth0 of a "peer" namespace (10.0.0.2). The guest pings the peer
under each mode, with its own addresses and with spoofed ones.
"""

import shutil
import subprocess

import pytest

from hostagent.backends import nftables as N

from .netns_support import throwaway_netns
from .traffic_support import ping, ping6

GUEST_MAC = "02:00:00:00:00:01"


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def lan():
    if shutil.which(N.NFT) is None:
        pytest.skip("nft is not installed (Debian package nftables)")
    with throwaway_netns() as ns, throwaway_netns() as guest, throwaway_netns() as peer:
        probe = subprocess.run(["ip", "netns", "exec", ns, "nft", "add", "table", "bridge", "probe"],
                               check=False, capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"this kernel has no nf_tables for bridges (CONFIG_NF_TABLES_BRIDGE): {probe.stderr}")
        ip("-n", ns, "link", "add", "br0", "type", "bridge")
        ip("-n", ns, "link", "set", "br0", "up")
        ip("-n", ns, "link", "add", "vif1.0", "type", "veth", "peer", "name", "eth0", "netns", guest)
        ip("-n", ns, "link", "add", "port1", "type", "veth", "peer", "name", "eth0", "netns", peer)
        for port in ("vif1.0", "port1"):
            ip("-n", ns, "link", "set", port, "master", "br0")
            ip("-n", ns, "link", "set", port, "up")
        ip("-n", guest, "link", "set", "eth0", "address", GUEST_MAC)
        for other, addr in ((guest, "10.0.0.1/24"), (peer, "10.0.0.2/24")):
            ip("-n", other, "link", "set", "eth0", "up")
            ip("-n", other, "addr", "add", addr, "dev", "eth0")
        yield ns, guest, peer


def readdress(ns, addr):
    ip("-n", ns, "addr", "flush", "dev", "eth0")
    ip("-n", ns, "addr", "add", addr, "dev", "eth0")


def test_unlocked_passes_everything(lan):
    ns, guest, _ = lan
    N.apply("vif1.0", "unlocked", GUEST_MAC, netns=ns)
    assert ping(guest, "10.0.0.2")
    readdress(guest, "10.0.0.9/24")
    assert ping(guest, "10.0.0.2")
    assert N.filtered(ns) == []


def test_locked_passes_only_the_vifs_mac_and_addresses(lan):
    ns, guest, _ = lan
    N.apply("vif1.0", "locked", GUEST_MAC, ["10.0.0.1"], [], netns=ns)
    assert ping(guest, "10.0.0.2")  # its own MAC and address
    readdress(guest, "10.0.0.9/24")  # a spoofed address
    assert not ping(guest, "10.0.0.2")
    N.apply("vif1.0", "locked", GUEST_MAC, ["10.0.0.1", "10.0.0.9"], [], netns=ns)  # now allowed
    assert ping(guest, "10.0.0.2")
    ip("-n", guest, "link", "set", "eth0", "address", "02:00:00:00:00:99")  # a spoofed MAC
    assert not ping(guest, "10.0.0.2")
    ip("-n", guest, "link", "set", "eth0", "address", GUEST_MAC)
    assert ping(guest, "10.0.0.2")
    N.apply("vif1.0", "locked", GUEST_MAC, [], [], netns=ns)  # locked with no address: nothing
    assert not ping(guest, "10.0.0.2")
    N.remove("vif1.0", netns=ns)
    assert ping(guest, "10.0.0.2") and N.filtered(ns) == []


def test_disabled_drops_both_ways_and_applying_twice_changes_nothing(lan):
    ns, guest, peer = lan
    N.apply("vif1.0", "disabled", GUEST_MAC, netns=ns)
    before = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"], capture_output=True,
                            text=True, check=True).stdout
    N.apply("vif1.0", "disabled", GUEST_MAC, netns=ns)
    after = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"], capture_output=True,
                           text=True, check=True).stdout
    assert before == after
    assert not ping(guest, "10.0.0.2")
    assert not ping(peer, "10.0.0.1")
    N.apply("vif1.0", "unlocked", GUEST_MAC, netns=ns)
    assert ping(peer, "10.0.0.1")


def test_a_refused_batch_changes_nothing(lan):
    ns, guest, _ = lan
    N.apply("vif1.0", "locked", GUEST_MAC, ["10.0.0.1"], [], netns=ns)
    with pytest.raises(N.FilterError):
        N.apply("vif1.0", "locked", "not-a-mac", ["10.0.0.1"], [], netns=ns)
    assert N.filtered(ns) == ["vif1.0"]
    readdress(guest, "10.0.0.9/24")
    assert not ping(guest, "10.0.0.2")  # still locked as before


def test_locked_ipv6_passes_only_the_allowed_address(lan):
    ns, guest, peer = lan
    ip("-n", guest, "addr", "add", "fd00::1/64", "dev", "eth0", "nodad")
    ip("-n", peer, "addr", "add", "fd00::2/64", "dev", "eth0", "nodad")
    N.apply("vif1.0", "locked", GUEST_MAC, ["10.0.0.1"], ["fd00::1"], netns=ns)
    assert ping6(guest, "fd00::2")
    ip("-n", guest, "addr", "del", "fd00::1/64", "dev", "eth0")
    ip("-n", guest, "addr", "add", "fd00::9/64", "dev", "eth0", "nodad")  # a spoofed address
    assert not ping6(guest, "fd00::2")
    N.apply("vif1.0", "locked", GUEST_MAC, ["10.0.0.1"], [], netns=ns)  # IPv4 only: no IPv6 at all
    ip("-n", guest, "addr", "del", "fd00::9/64", "dev", "eth0")
    ip("-n", guest, "addr", "add", "fd00::1/64", "dev", "eth0", "nodad")
    assert not ping6(guest, "fd00::2") and ping(guest, "10.0.0.2")
