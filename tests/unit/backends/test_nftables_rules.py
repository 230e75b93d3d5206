"""The nft batches VIF filters are made of (backends/nftables.py), without a kernel."""

import pytest

from hostagent.backends.nftables import base, chain_name, locked_rules, rules_for

EMPTY = {"from_vif": {}, "to_vif": {}, "chains": set()}
MAC = "02:00:00:00:00:01"


def verbs(cmds):
    return [(verb, kind, body.get("name") or body.get("chain")) for c in cmds for verb, o in c.items()
            for kind, body in o.items()]


def test_the_first_filter_makes_the_table_its_maps_and_base_chains():
    cmds = rules_for("vif1.0", "unlocked", MAC, current=None)
    assert cmds == base()
    hooks = {o["chain"]["hook"] for c in cmds for o in c.values() if "chain" in o}
    assert hooks == {"forward", "input", "output"}
    assert rules_for("vif1.0", "unlocked", MAC, current=EMPTY) == []  # nothing to do


def test_locked_checks_the_mac_then_each_family_then_drops_the_rest():
    rules = [c["add"]["rule"]["expr"] for c in locked_rules("vif1.0", MAC.upper(), ["10.0.0.2", "10.0.0.1"], [])]
    assert rules[0] == [{"match": {"op": "!=", "left": {"payload": {"protocol": "ether", "field": "saddr"}},
                                   "right": MAC}}, {"drop": None}]
    arp = rules[1]
    assert {"match": {"op": "==", "left": {"payload": {"protocol": "arp", "field": "saddr ip"}},
                      "right": {"set": ["10.0.0.1", "10.0.0.2"]}}} in arp and arp[-1] == {"accept": None}
    assert rules[2][0]["match"]["left"] == {"payload": {"protocol": "ip", "field": "saddr"}}
    assert rules[-1] == [{"drop": None}] and len(rules) == 4  # no IPv6 rule without IPv6 addresses
    only_v6 = [c["add"]["rule"]["expr"] for c in locked_rules("vif1.0", MAC, [], ["fd00::1"])]
    assert len(only_v6) == 3 and only_v6[1][0]["match"]["left"]["payload"]["protocol"] == "ip6"
    # no address at all: only the MAC check and the final drop, so nothing passes
    assert [c["add"]["rule"]["expr"] for c in locked_rules("vif1.0", MAC, [], [])][1:] == [[{"drop": None}]]


def test_changing_mode_replaces_what_the_backend_had():
    chain = chain_name("vif1.0")
    locked = {"from_vif": {"vif1.0": {"jump": {"target": chain}}}, "to_vif": {}, "chains": {chain}}
    assert verbs(rules_for("vif1.0", "disabled", MAC, current=locked)) == [
        ("delete", "element", "from_vif"), ("delete", "chain", chain),
        ("add", "element", "from_vif"), ("add", "element", "to_vif")]
    again = verbs(rules_for("vif1.0", "locked", MAC, ["10.0.0.1"], current=locked))
    assert again[:3] == [("delete", "element", "from_vif"), ("add", "chain", chain), ("flush", "chain", chain)]
    assert again[-1] == ("add", "element", "from_vif")
    disabled = {"from_vif": {"vif1.0": {"drop": None}}, "to_vif": {"vif1.0": {"drop": None}}, "chains": set()}
    assert verbs(rules_for("vif1.0", "unlocked", MAC, current=disabled)) == [
        ("delete", "element", "from_vif"), ("delete", "element", "to_vif")]
    other = rules_for("vif2.0", "unlocked", MAC, current=disabled)  # another backend's entries stay
    assert other == []


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError):
        rules_for("vif1.0", "network_default", MAC, current=EMPTY)


def test_without_nft_unlocked_needs_nothing_and_locked_is_refused(monkeypatch):
    from hostagent.backends import nftables as N
    monkeypatch.setattr(N, "NFT", "/nonexistent/nft")
    N.apply("vif1.0", "unlocked", MAC)  # nothing to take off, nothing to do
    N.remove("vif1.0")
    assert N.filtered() == []
    with pytest.raises(N.FilterNotSupported) as e:
        N.apply("vif1.0", "locked", MAC, ["10.0.0.1"])
    assert "nftables" in str(e.value)
