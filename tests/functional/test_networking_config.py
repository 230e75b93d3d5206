"""other_config of PIFs through the API on real links (root), read back through the kernel.

Every key of seed §5.5 on a veth NIC in the agent's namespace: applied at
plug and on every change, put back on removal, refused before anything is
applied when invalid; what a veth cannot do (speed, duplex, autoneg, UFO) is
logged and the rest applied. Speed, duplex and autoneg on a tap are in
test_networking_vif.py (a VIF's backend is a tap).
"""

import pytest
import XenAPI

from ..contract.ethtool_support import kernel_ethtool
from .events_support import login, logout
from .net_support import kernel, netns  # noqa: F401 - a fixture

pytestmark = [pytest.mark.root, pytest.mark.slow]

OFFLOADS = ("rx", "tx", "sg", "tso", "gso")

INVALID = [("mtu", "67"), ("mtu", "65536"), ("mtu", "jumbo"), ("promiscuous", "maybe"),
           ("ethtool-rx", "yes"), ("ethtool-tx", "1"), ("ethtool-sg", "enabled"), ("ethtool-tso", ""),
           ("ethtool-ufo", "no"), ("ethtool-gso", "of"), ("ethtool-autoneg", "auto"),
           ("ethtool-speed", "2500"), ("ethtool-speed", "fast"), ("ethtool-duplex", "quarter")]


def seen(ns, dev="eth2"):
    link = kernel(ns)[dev]
    return {**kernel_ethtool(ns, dev), "mtu": link["mtu"], "promisc": link["promiscuity"] > 0 and
            "PROMISC" in link["flags"]}


def test_every_pif_key_reaches_the_kernel_changes_and_goes(agents, netns):
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-config")
    x = s.xenapi
    try:
        eth2 = [p for p in x.PIF.get_all() if x.PIF.get_device(p) == "eth2"][0]
        # recorded while unplugged, applied at plug
        x.PIF.set_other_config(eth2, {"ethtool-rx": "off", "ethtool-tx": "false", "ethtool-sg": "on",
                                      "ethtool-tso": "off", "ethtool-gso": "off", "mtu": "9000",
                                      "promiscuous": "on", "HideFromXenCenter": "true"})
        assert seen(netns)["rx"] is True
        x.PIF.plug(eth2)
        now = seen(netns)
        assert [now[k] for k in OFFLOADS] == [False, False, True, False, False]
        assert now["mtu"] == 9000 and now["promisc"]

        # a change: what differs is applied
        x.PIF.set_other_config(eth2, {"ethtool-rx": "true", "ethtool-tx": "on", "ethtool-sg": "on",
                                      "ethtool-tso": "on", "ethtool-gso": "true", "mtu": "1400",
                                      "promiscuous": "off", "HideFromXenCenter": "true"})
        now = seen(netns)
        assert [now[k] for k in OFFLOADS] == [True] * 5 and now["mtu"] == 1400 and not now["promisc"]
        x.PIF.remove_from_other_config(eth2, "ethtool-sg")
        x.PIF.add_to_other_config(eth2, "ethtool-sg", "off")
        assert seen(netns)["sg"] is False

        # what a veth cannot do is logged; the rest is applied
        x.PIF.add_to_other_config(eth2, "ethtool-speed", "100")
        x.PIF.add_to_other_config(eth2, "ethtool-duplex", "half")
        x.PIF.add_to_other_config(eth2, "ethtool-autoneg", "on")
        x.PIF.add_to_other_config(eth2, "ethtool-ufo", "on")
        x.PIF.remove_from_other_config(eth2, "ethtool-rx")
        x.PIF.add_to_other_config(eth2, "ethtool-rx", "off")
        now = seen(netns)
        assert now["rx"] is False and now["speed"] == 10000 and now["duplex"] == "full"
        log = agent.log_text()
        for key in ("speed=100", "duplex=half", "autoneg=True", "ufo=True"):
            assert f"link eth2: ethtool {key} not applied" in log
        assert x.PIF.get_other_config(eth2)["ethtool-speed"] == "100"

        # removal: the values the link had before the agent changed them come back
        for key in ("ethtool-rx", "ethtool-sg", "mtu", "promiscuous"):
            x.PIF.remove_from_other_config(eth2, key)
        now = seen(netns)
        assert now["rx"] is True and now["sg"] is True and now["mtu"] == 1500 and not now["promisc"]
        x.PIF.set_other_config(eth2, {"ethtool-tso": "off"})
        x.PIF.set_other_config(eth2, {"HideFromXenCenter": "false"})
        now = seen(netns)
        assert [now[k] for k in OFFLOADS] == [True] * 5
        assert x.PIF.get_other_config(eth2) == {"HideFromXenCenter": "false"}
    finally:
        logout(s)


def test_each_invalid_value_is_refused_with_nothing_applied(agents, netns):
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-config")
    x = s.xenapi
    try:
        eth1 = [p for p in x.PIF.get_all() if x.PIF.get_device(p) == "eth1"][0]
        x.PIF.plug(eth1)
        before = seen(netns, "eth1")
        for key, value in INVALID:
            for call in (lambda: x.PIF.set_other_config(eth1, {"mtu": "9000", "ethtool-rx": "off", key: value}),
                         lambda: x.PIF.add_to_other_config(eth1, key, value)):
                with pytest.raises(XenAPI.Failure) as e:
                    call()
                assert e.value.details == ["INVALID_VALUE", f"other_config:{key}", value]
                assert seen(netns, "eth1") == before and x.PIF.get_other_config(eth1) == {}
    finally:
        logout(s)
