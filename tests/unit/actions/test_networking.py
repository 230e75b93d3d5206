"""network, PIF and VLAN actions against an in-memory links port: checks, names, rollback."""

import asyncio

import pytest

from hostagent.actions import bond, network, pif, vlan
from hostagent.actions.context import Ports, Runtime
from hostagent.backends.netlink import LinkExists, LinkNotSupported
from hostagent.datamodel.api import build_api
from hostagent.datamodel.errors import ApiError
from hostagent.datamodel.types import NULL_REF
from hostagent.db.store import Store


class FakeLinks:
    """The links port's operations over a dict of links, as the kernel would keep them."""

    netns = "fake"  # the links of a namespace, where veths stand in for NICs

    def __init__(self, nics=("eth0", "eth1", "eth2"), vlans=True, bonds=True):
        self.state = {n: {"name": n, "kind": "veth", "master": None, "mac": f"02:00:00:00:00:0{i}",
                          "mtu": 1500, "carrier": False, "up": False}
                      for i, n in enumerate(nics)}
        self.vlans = vlans
        self.bonds = bonds

    async def scan(self):
        return [dict(li, physical=True) for li in self.state.values() if li["kind"] == "veth"]

    async def default_route_link(self):
        return "eth1"

    async def link(self, name):
        return self.state.get(name)

    async def links(self):
        return list(self.state.values())

    async def nic(self, name):
        li = self.state.get(name)
        if li is None:
            return None
        return dict(li, physical=li["kind"] == "veth", speed=10000 if li["carrier"] else 0, duplex=li["carrier"])

    async def ports(self, name):
        return [li["name"] for li in self.state.values() if li["master"] == name]

    def _ensure(self, name, kind, **extra):
        have = self.state.setdefault(name, {"name": name, "kind": kind, "master": None, **extra})
        if have["kind"] != kind:
            raise LinkExists(f"{name} is a {have['kind']}", name)

    async def ensure_bridge(self, name):
        self._ensure(name, "bridge")

    async def ensure_vlan(self, name, parent, tag):
        if not self.vlans:
            raise LinkNotSupported("no 802.1Q", name)
        self._ensure(name, "vlan", parent=parent, vlan=tag)

    async def ensure_bond(self, name, mode, members):
        if not self.bonds:
            raise LinkNotSupported("no bonding", name)
        self._ensure(name, "bond", mode=mode)
        for m in members:
            self.state[m]["master"] = name

    async def remove(self, name):
        self.state.pop(name, None)
        for li in self.state.values():
            if li["master"] == name:
                li["master"] = None

    async def enslave(self, name, master):
        self.state[name]["master"] = master

    async def release(self, name):
        self.state[name]["master"] = None

    async def set_mtu(self, name, mtu):
        self.state[name]["mtu"] = mtu

    async def set_promiscuous(self, name, on):
        self.state[name]["promiscuous"] = on

    async def set_up(self, name, up):
        self.state[name]["up"] = up

    async def apply_ethtool(self, name, wanted):
        """Offloads on by default; like a veth, no settable speed or duplex, and no ufo."""
        now = self.state[name].setdefault("ethtool", {"rx": True, "tso": True, "ufo": None, "speed": 10000})
        before = dict(now)
        refused = {k: "not supported" for k in wanted if k in ("speed", "duplex") or now.get(k, 0) is None}
        now.update({k: v for k, v in wanted.items() if k not in refused})
        return {"before": before, "after": dict(now), "refused": refused}


def run(coro):
    return asyncio.run(coro) if asyncio.iscoroutine(coro) else coro


@pytest.fixture
def env():
    store = Store(build_api())
    with store.transaction():
        host = store.create("host", {"name_label": "h"})
        other = store.create("host", {"name_label": "elsewhere"})
    links = FakeLinks()
    ports = Ports(storage=None, intents=None, authenticate=None, change_password=None, links=links)
    rt = Runtime(store=store, sessions=None, tasks=None, events=None, ports=ports, host=host,
                 clock=lambda: 0.0, sleep=None)
    return rt.internal(), host, other, links


def by_device(ctx):
    return {r["device"]: ref for ref, r in ctx.store.all("PIF").items() if r["VLAN"] < 0}


def test_network_create_picks_a_free_xapi_bridge_and_refuses_a_taken_one(env):
    ctx = env[0]
    a = network.create(ctx, {"name_label": "a"})
    b = network.create(ctx, {"name_label": "b"})
    assert [ctx.store.get("network", n)["bridge"] for n in (a, b)] == ["xapi0", "xapi1"]
    with pytest.raises(ApiError) as e:
        network.create(ctx, {"name_label": "c", "bridge": "xapi1"})
    assert e.value.description == ["BRIDGE_NAME_EXISTS", "xapi1"]


def test_scan_makes_one_network_per_nic_once(env):
    ctx, host, other, _ = env
    run(pif.scan(ctx, host))
    run(pif.scan(ctx, host))
    pifs = by_device(ctx)
    assert sorted(pifs) == ["eth0", "eth1", "eth2"]
    rec = ctx.store.get("PIF", pifs["eth1"])
    assert ctx.store.get("network", rec["network"])["bridge"] == "xenbr1"
    assert rec["physical"] and not rec["currently_attached"] and rec["VLAN"] == -1
    with pytest.raises(ApiError) as e:  # another host's NICs: scanned by its agent, which this
        run(pif.scan(ctx, other))        # runtime (no pool) cannot reach
    assert e.value.description == ["CANNOT_CONTACT_HOST", other]


def test_plug_and_unplug_follow_the_bridge(env):
    ctx, host, _, links = env
    run(pif.scan(ctx, host))
    eth0 = by_device(ctx)["eth0"]
    run(pif.plug(ctx, eth0))
    assert links.state["eth0"]["master"] == "xenbr0" and links.state["xenbr0"]["kind"] == "bridge"
    assert ctx.store.get("PIF", eth0)["currently_attached"]
    run(pif.unplug(ctx, eth0))
    assert "xenbr0" not in links.state and links.state["eth0"]["master"] is None
    assert not ctx.store.get("PIF", eth0)["currently_attached"]


def test_vlan_checks_come_before_anything_is_made(env):
    ctx, host, _, links = env
    run(pif.scan(ctx, host))
    eth0 = by_device(ctx)["eth0"]
    net = network.create(ctx, {"name_label": "v"})
    for tag in (-1, 4095):
        with pytest.raises(ApiError) as e:
            run(vlan.create(ctx, eth0, tag, net))
        assert e.value.description == ["VLAN_TAG_INVALID", str(tag)]
    v = run(vlan.create(ctx, eth0, 42, net))
    untagged = ctx.store.get("VLAN", v)["untagged_PIF"]
    assert links.state["eth0.42"] == {"name": "eth0.42", "kind": "vlan", "master": "xapi0", "parent": "eth0",
                                      "vlan": 42, "up": True, "mtu": 1500, "promiscuous": False}
    with pytest.raises(ApiError) as e:
        run(vlan.create(ctx, eth0, 42, network.create(ctx, {"name_label": "w"})))
    assert e.value.description == ["PIF_VLAN_EXISTS", "eth0"]
    with pytest.raises(ApiError) as e:
        run(vlan.create(ctx, untagged, 7, network.create(ctx, {"name_label": "x"})))
    assert e.value.description == ["PIF_IS_VLAN", untagged]
    with pytest.raises(ApiError) as e:
        run(network.destroy(ctx, net))
    assert e.value.description == ["NETWORK_CONTAINS_PIF", untagged]
    run(vlan.destroy(ctx, v))
    assert "eth0.42" not in links.state and "xapi0" not in links.state
    assert not ctx.store.exists("PIF", untagged) and not ctx.store.all("VLAN")
    run(network.destroy(ctx, net))


def test_a_vlan_the_kernel_cannot_make_leaves_nothing_behind(env):
    ctx, host, _, links = env
    links.vlans = False
    run(pif.scan(ctx, host))
    pifs_before = set(ctx.store.all("PIF"))
    net = network.create(ctx, {"name_label": "v"})
    with pytest.raises(ApiError) as e:
        run(vlan.create(ctx, by_device(ctx)["eth0"], 42, net))
    assert e.value.description[0] == "PIF_CONFIGURATION_ERROR"
    assert set(ctx.store.all("PIF")) == pifs_before and not ctx.store.all("VLAN")
    assert "xapi0" not in links.state


def test_without_a_links_port_plug_only_changes_records(env):
    ctx, host, _, _ = env
    run(pif.scan(ctx, host))
    eth0 = by_device(ctx)["eth0"]
    object.__setattr__(ctx.rt, "ports", Ports(storage=None, intents=None, authenticate=None,
                                              change_password=None))
    run(pif.unplug(ctx, eth0))
    run(pif.plug(ctx, eth0))
    assert ctx.store.get("PIF", eth0)["currently_attached"]


def test_an_active_backup_bond_takes_its_members_off_their_bridges(env):
    ctx, host, _, links = env
    run(pif.scan(ctx, host))
    pifs = by_device(ctx)
    run(pif.plug(ctx, pifs["eth0"]))
    net = network.create(ctx, {"name_label": "bonded"})
    for members, code in (([pifs["eth0"]], "PIF_BOND_NEEDS_MORE_MEMBERS"),):
        with pytest.raises(ApiError) as e:
            run(bond.create(ctx, net, members, "", "active-backup"))
        assert e.value.description[0] == code
    b = run(bond.create(ctx, net, [pifs["eth0"], pifs["eth1"]], "", "active-backup"))
    rec = ctx.store.get("Bond", b)
    master = ctx.store.get("PIF", rec["master"])
    assert master["device"] == "bond0" and master["MAC"] == ctx.store.get("PIF", pifs["eth0"])["MAC"]
    assert master["currently_attached"] and sorted(rec["slaves"]) == sorted([pifs["eth0"], pifs["eth1"]])
    assert links.state["bond0"]["mode"] == "active-backup" and links.state["bond0"]["master"] == "xapi0"
    assert links.state["eth0"]["master"] == "bond0" == links.state["eth1"]["master"]
    assert "xenbr0" not in links.state and not ctx.store.get("PIF", pifs["eth0"])["currently_attached"]
    with pytest.raises(ApiError) as e:
        run(bond.create(ctx, network.create(ctx, {}), [pifs["eth1"], pifs["eth2"]], "", "lacp"))
    assert e.value.description == ["PIF_ALREADY_BONDED", pifs["eth1"]]
    with pytest.raises(ApiError) as e:
        run(pif.plug(ctx, pifs["eth0"]))
    assert e.value.description == ["CANNOT_PLUG_BOND_SLAVE", pifs["eth0"]]
    with pytest.raises(ApiError) as e:
        run(vlan.create(ctx, pifs["eth0"], 5, network.create(ctx, {})))
    assert e.value.description == ["CANNOT_ADD_VLAN_TO_BOND_SLAVE", pifs["eth0"]]
    run(bond.destroy(ctx, b))
    assert "bond0" not in links.state and "xapi0" not in links.state
    assert links.state["eth0"]["master"] is None
    assert not ctx.store.all("Bond") and ctx.store.get("PIF", pifs["eth0"])["bond_slave_of"] == NULL_REF


def test_a_bond_the_kernel_cannot_make_puts_its_members_back(env):
    ctx, host, _, links = env
    links.bonds = False
    run(pif.scan(ctx, host))
    pifs = by_device(ctx)
    run(pif.plug(ctx, pifs["eth0"]))
    with pytest.raises(ApiError) as e:
        run(bond.create(ctx, network.create(ctx, {}), [pifs["eth0"], pifs["eth1"]], "", "active-backup"))
    assert e.value.description[0] == "PIF_CONFIGURATION_ERROR"
    assert not ctx.store.all("Bond") and len(ctx.store.all("PIF")) == 3
    assert links.state["eth0"]["master"] == "xenbr0" and ctx.store.get("PIF", pifs["eth0"])["currently_attached"]


@pytest.mark.parametrize("key, value", [
    ("mtu", "67"), ("mtu", "jumbo"), ("promiscuous", "maybe"), ("ethtool-tso", "yes"),
    ("ethtool-speed", "2500"), ("ethtool-duplex", "quarter")])
def test_an_invalid_other_config_value_is_refused_with_nothing_applied(env, key, value):
    ctx, host, _, links = env
    run(pif.scan(ctx, host))
    eth0 = by_device(ctx)["eth0"]
    run(pif.plug(ctx, eth0))
    before = dict(links.state["eth0"])
    with pytest.raises(ApiError) as e:
        run(pif.add_to_other_config(ctx, eth0, key, value))
    assert e.value.description == ["INVALID_VALUE", f"other_config:{key}", value]
    with pytest.raises(ApiError):
        run(pif.set_other_config(ctx, eth0, {"mtu": "9000", key: value}))
    assert links.state["eth0"] == before and ctx.store.get("PIF", eth0)["other_config"] == {}


def test_mtu_and_promiscuous_follow_other_config_on_a_plugged_pif(env):
    ctx, host, _, links = env
    run(pif.scan(ctx, host))
    eth0 = by_device(ctx)["eth0"]
    run(pif.add_to_other_config(ctx, eth0, "mtu", "9000"))  # unplugged: recorded only
    assert links.state["eth0"]["mtu"] == 1500
    run(pif.plug(ctx, eth0))
    assert links.state["eth0"]["mtu"] == 9000
    run(pif.add_to_other_config(ctx, eth0, "promiscuous", "on"))
    assert links.state["eth0"]["promiscuous"] is True
    run(pif.add_to_other_config(ctx, eth0, "ethtool-tso", "off"))
    assert links.state["eth0"]["ethtool"]["tso"] is False
    run(pif.remove_from_other_config(ctx, eth0, "mtu"))
    run(pif.remove_from_other_config(ctx, eth0, "promiscuous"))
    assert links.state["eth0"]["mtu"] == 1500 and links.state["eth0"]["promiscuous"] is False
    assert ctx.store.get("PIF", eth0)["other_config"] == {"ethtool-tso": "off"}


def test_ethtool_keys_are_applied_refusals_logged_and_removal_restores(env, caplog):
    ctx, host, _, links = env
    run(pif.scan(ctx, host))
    eth0 = by_device(ctx)["eth0"]
    run(pif.plug(ctx, eth0))
    run(pif.set_other_config(ctx, eth0, {"ethtool-rx": "off", "ethtool-speed": "100", "ethtool-ufo": "on",
                                         "HideFromXenCenter": "true"}))
    assert links.state["eth0"]["ethtool"]["rx"] is False
    assert links.state["eth0"]["ethtool"]["speed"] == 10000  # refused by the driver: logged, not fatal
    assert "ethtool speed=100 not applied" in caplog.text and "ethtool ufo=True not applied" in caplog.text
    assert ctx.store.get("PIF", eth0)["other_config"]["HideFromXenCenter"] == "true"
    run(pif.set_other_config(ctx, eth0, {"ethtool-rx": "on"}))
    assert links.state["eth0"]["ethtool"]["rx"] is True
    run(pif.remove_from_other_config(ctx, eth0, "ethtool-rx"))  # back to what it was before the agent
    assert links.state["eth0"]["ethtool"]["rx"] is True
    run(pif.add_to_other_config(ctx, eth0, "ethtool-rx", "false"))
    run(pif.remove_from_other_config(ctx, eth0, "ethtool-rx"))
    assert links.state["eth0"]["ethtool"]["rx"] is True
    assert ctx.store.private_of("PIF", eth0).get("ethtool_originals") == {}


def test_a_first_start_records_the_nics_and_marks_the_management_one(env):
    ctx, _host, _, links = env
    run(pif.at_start(ctx))
    pifs = by_device(ctx)
    assert sorted(pifs) == ["eth0", "eth1", "eth2"]
    assert [d for d, p in pifs.items() if ctx.store.get("PIF", p)["management"]] == ["eth1"]
    assert not any(li["master"] for li in links.state.values())  # nothing plugged
    run(pif.at_start(ctx))  # a later start adds nothing
    assert len(ctx.store.all("PIF")) == 3


def test_link_reports_keep_carrier_and_catch_removals(env):
    ctx, host, _, links = env
    run(pif.scan(ctx, host))
    eth0 = by_device(ctx)["eth0"]
    run(pif.plug(ctx, eth0))
    metrics = ctx.store.get("PIF", eth0)["metrics"]
    links.state["eth0"]["carrier"] = True  # the report makes the agent read the NIC again
    run(pif.link_changed(ctx, {"name": "eth0", "deleted": False, "carrier": True, "up": True, "master": 3}))
    assert ctx.store.get("PIF_metrics", metrics)["carrier"] is True
    assert ctx.store.get("PIF_metrics", metrics)["speed"] == 10000
    # a removal the kernel no longer confirms (re-made since) changes nothing
    run(pif.link_changed(ctx, {"name": "xenbr0", "deleted": True, "carrier": False, "up": False, "master": None}))
    assert ctx.store.get("PIF", eth0)["currently_attached"]
    links.state.pop("xenbr0")
    run(pif.link_changed(ctx, {"name": "xenbr0", "deleted": True, "carrier": False, "up": False, "master": None}))
    assert not ctx.store.get("PIF", eth0)["currently_attached"]


def test_nic_reports_follow_a_nic_that_goes_comes_back_renamed_or_is_new(env):
    from hostagent.actions import pif_metrics
    ctx, host, _, links = env
    run(pif.scan(ctx, host))
    eth1 = by_device(ctx)["eth1"]
    metrics = ctx.store.get("PIF", eth1)["metrics"]
    links.state["eth1"].update(carrier=True, mac="02:00:00:00:00:aa")
    run(pif_metrics.nic_changed(ctx, {"action": "add", "name": "eth1"}))
    assert ctx.store.get("PIF", eth1)["MAC"] == "02:00:00:00:00:aa"
    assert (ctx.store.get("PIF_metrics", metrics)["carrier"], ctx.store.get("PIF_metrics", metrics)["speed"]) == \
        (True, 10000)
    # renamed away: the PIF's NIC is gone
    links.state["eth7"] = dict(links.state.pop("eth1"), name="eth7")
    run(pif_metrics.nic_changed(ctx, {"action": "move", "name": "eth7", "old_name": "eth1"}))
    got = ctx.store.get("PIF_metrics", metrics)
    assert (got["carrier"], got["speed"], got["duplex"]) == (False, 0, False)
    # a NIC no PIF knows gets none (PIF.scan records it)
    before = set(ctx.store.all("PIF"))
    run(pif_metrics.nic_changed(ctx, {"action": "add", "name": "eth7"}))
    assert set(ctx.store.all("PIF")) == before
    eth0_metrics = ctx.store.get("PIF", by_device(ctx)["eth0"])["metrics"]
    links.state["eth0"]["carrier"] = True
    run(pif_metrics.nic_changed(ctx, {"action": "add", "name": "eth0"}))
    assert ctx.store.get("PIF_metrics", eth0_metrics)["speed"] == 10000
    links.state.pop("eth0")
    run(pif_metrics.nic_changed(ctx, {"action": "remove", "name": "eth0"}))
    assert ctx.store.get("PIF_metrics", eth0_metrics)["speed"] == 0


def _pif_elsewhere(ctx, host, device, network):
    with ctx.store.transaction():
        return pif.create_virtual(ctx, {"device": device, "network": network, "host": host,
                                        "MAC": "02:00:00:00:01:00", "MTU": 1500, "VLAN": -1, "managed": True})


def test_pool_create_vlan_from_pif_on_each_live_host_all_or_none(env):
    from hostagent.actions import pool_vlan
    ctx, host, other, links = env
    run(pif.scan(ctx, host))
    eth0 = by_device(ctx)["eth0"]
    net = network.create(ctx, {"name_label": "v"})
    with pytest.raises(ApiError) as e:
        run(pool_vlan.create_VLAN_from_PIF(ctx, eth0, net, 4095))
    assert e.value.description == ["VLAN_TAG_INVALID", "4095"]
    # another host's PIF on eth0's network: skipped while that host is not live (as xapi)
    theirs = _pif_elsewhere(ctx, other, "eth0", ctx.store.get("PIF", eth0)["network"])
    made = run(pool_vlan.create_VLAN_from_PIF(ctx, eth0, net, 42))
    assert len(made) == 1 and ctx.store.get("PIF", made[0])["VLAN"] == 42 and "eth0.42" in links.state
    assert ctx.store.get("PIF", made[0])["currently_attached"]
    run(vlan.destroy(ctx, ctx.store.get("PIF", made[0])["VLAN_master_of"]))
    # live: its VLAN is made by its agent, which this runtime (no pool) cannot reach: all or
    # none, so this host's VLAN (made first) is undone and nothing is left
    with ctx.store.transaction():
        metrics = ctx.store.create("host_metrics", {"live": True})
        ctx.store.update("host", other, metrics=metrics)
    with pytest.raises(ApiError) as e:
        run(pool_vlan.create_VLAN_from_PIF(ctx, theirs, net, 42))
    assert e.value.description == ["CANNOT_CONTACT_HOST", other]
    assert not ctx.store.all("VLAN") and "eth0.42" not in links.state and "xapi0" not in links.state


def test_pool_create_vlan_needs_the_device_on_every_host(env):
    from hostagent.actions import pool_vlan
    ctx, host, other, links = env
    run(pif.scan(ctx, host))
    net = network.create(ctx, {"name_label": "v"})
    with pytest.raises(ApiError) as e:
        run(pool_vlan.create_VLAN(ctx, "eth1", net, 7))
    assert e.value.description == ["INVALID_VALUE", "device", "eth1"]  # the other host has none
    assert not ctx.store.all("VLAN") and "eth1.7" not in links.state
    with ctx.store.transaction():
        ctx.store.delete("host", other)
    made = run(pool_vlan.create_VLAN(ctx, "eth1", net, 7))
    assert [ctx.store.get("PIF", p)["device"] for p in made] == ["eth1"] and "eth1.7" in links.state


def test_a_libvirt_tap_is_known_as_its_vifs_backend_by_mac(env):
    from hostagent.actions import vif_links
    ctx, host, _, links = env
    net = network.create(ctx, {"name_label": "n"})
    with ctx.store.transaction():
        vm = ctx.store.create("VM", {"name_label": "g", "power_state": "Running", "domid": 7, "resident_on": host})
        vif = ctx.store.create("VIF", {"device": "0", "network": net, "VM": vm, "MAC": "52:54:00:12:34:56",
                                       "currently_attached": True, "MTU": 1500})
        other = ctx.store.create("VIF", {"device": "1", "network": net, "VM": vm, "MAC": "fe:54:00:12:34:57",
                                         "currently_attached": True, "MTU": 1500})
    assert vif_links.tap_owner(ctx, "FE:54:00:12:34:56") == vif
    assert vif_links.tap_owner(ctx, "fa:54:00:12:34:57") == other  # a guest MAC that begins with fe
    assert vif_links.tap_owner(ctx, "52:54:00:12:34:56") is None  # not a tap's MAC
    assert vif_links.backend_of(ctx, vif) == "vif7.0"  # until a tap is known
    links.state["vnet3"] = {"name": "vnet3", "kind": "tun", "master": None, "mac": "fe:54:00:12:34:56",
                            "mtu": 1500, "up": False}
    links.state["vnet4"] = {"name": "vnet4", "kind": "tun", "master": None, "mac": "fe:00:00:00:00:01",
                            "mtu": 1500, "up": False}
    run(vif_links.link_changed(ctx, {"name": "vnet3", "deleted": False, "new": True, "up": False,
                                     "carrier": False, "master": None}))
    assert vif_links.backend_of(ctx, vif) == "vnet3" and vif_links.owner(ctx, "vnet3") == vif
    assert links.state["vnet3"]["master"] == "xapi0" and links.state["vnet3"]["up"]
    # a tap no VIF stands behind is libvirt's business: left where it is
    object.__setattr__(ctx.rt, "sleep", lambda s: asyncio.sleep(0))
    run(vif_links.link_changed(ctx, {"name": "vnet4", "deleted": False, "new": True, "up": False,
                                     "carrier": False, "master": "virbr0"}))
    assert links.state["vnet4"]["master"] is None
    # the tap goes: no backend recorded any more; the next domain's is vif<domid>.<n> again
    links.state.pop("vnet3")
    run(vif_links.link_changed(ctx, {"name": "vnet3", "deleted": True, "new": False, "up": False,
                                     "carrier": False, "master": None}))
    assert vif_links.backend_of(ctx, vif) == "vif7.0"


class FakeFilters:
    """The VIF filters port over a dict (backend -> (mode, MAC, ipv4, ipv6)), as nft would keep it."""

    def __init__(self):
        self.rules = {}

    async def apply(self, name, mode, mac, ipv4=(), ipv6=()):
        if mode == "unlocked":
            self.rules.pop(name, None)
        else:
            self.rules[name] = (mode, mac, list(ipv4), list(ipv6))

    async def remove(self, name):
        self.rules.pop(name, None)

    async def filtered(self):
        return sorted(self.rules)


def test_filters_follow_locking_and_a_start_drops_stale_ones(env):
    from hostagent.actions import vif_links, vif_locking
    ctx, host, _, links = env
    filters = FakeFilters()
    object.__setattr__(ctx.rt, "ports", Ports(storage=None, intents=None, authenticate=None, change_password=None,
                                              links=links, filters=filters))
    net = network.create(ctx, {"name_label": "n"})
    with ctx.store.transaction():
        vm = ctx.store.create("VM", {"name_label": "g", "power_state": "Running", "domid": 7, "resident_on": host})
        vif = ctx.store.create("VIF", {"device": "0", "network": net, "VM": vm, "MAC": "02:00:00:00:00:07",
                                       "currently_attached": True, "MTU": 1500, "locking_mode": "locked",
                                       "ipv4_allowed": ["10.0.0.1"]})
    links.state["vif7.0"] = {"name": "vif7.0", "kind": "tun", "master": None, "mac": "fe:ff:ff:ff:ff:ff",
                             "mtu": 1500, "up": False}
    filters.rules["vif99.0"] = ("disabled", "", [], [])  # left by a VM gone while the agent was down
    run(vif_links.at_start(ctx))
    assert filters.rules == {"vif7.0": ("locked", "02:00:00:00:00:07", ["10.0.0.1"], [])}
    assert links.state["vif7.0"]["master"] == "xapi0"
    with pytest.raises(ApiError) as e:
        run(vif_locking.HANDLERS["VIF.add_ipv4_allowed"](ctx, vif, "10.0.0.256"))
    assert e.value.description == ["INVALID_VALUE", "ipv4_allowed", "10.0.0.256"]
    run(vif_locking.HANDLERS["VIF.add_ipv6_allowed"](ctx, vif, "FD00::0001"))
    assert filters.rules["vif7.0"][3] == ["fd00::1"] and ctx.store.get("VIF", vif)["ipv6_allowed"] == ["fd00::1"]
    run(vif_locking.set_locking_mode(ctx, vif, "network_default"))
    assert "vif7.0" not in filters.rules  # the network's default: unlocked
    run(vif_locking.set_default_locking_mode(ctx, net, "disabled"))
    assert filters.rules["vif7.0"][0] == "disabled"
    run(vif_links.release_backend(ctx, "vif7.0"))
    assert filters.rules == {}


class BrokenFilters(FakeFilters):
    """A filters port whose kernel refuses every change (no nft, no bridge nf_tables)."""

    async def apply(self, name, mode, mac, ipv4=(), ipv6=()):
        from hostagent.backends.nftables import FilterNotSupported
        raise FilterNotSupported("nft is not installed (Debian package nftables)")


def test_a_filter_the_kernel_refuses_changes_nothing_and_keeps_a_locked_backend_off(env):
    from hostagent.actions import vif_links, vif_locking
    ctx, host, _, links = env
    object.__setattr__(ctx.rt, "ports", Ports(storage=None, intents=None, authenticate=None, change_password=None,
                                              links=links, filters=BrokenFilters()))
    net = network.create(ctx, {"name_label": "n"})
    with ctx.store.transaction():
        vm = ctx.store.create("VM", {"name_label": "g", "power_state": "Running", "domid": 7, "resident_on": host})
        vif = ctx.store.create("VIF", {"device": "0", "network": net, "VM": vm, "MAC": "02:00:00:00:00:07",
                                       "currently_attached": True, "MTU": 1500, "locking_mode": "unlocked"})
    links.state["vif7.0"] = {"name": "vif7.0", "kind": "tun", "master": "xapi0", "mac": "fe:ff:ff:ff:ff:ff",
                             "mtu": 1500, "up": True}
    links.state["xapi0"] = {"name": "xapi0", "kind": "bridge", "master": None}
    with pytest.raises(ApiError) as e:
        run(vif_locking.set_locking_mode(ctx, vif, "locked"))
    assert e.value.description[0] == "INTERNAL_ERROR" and "nft is not installed" in e.value.description[1]
    assert ctx.store.get("VIF", vif)["locking_mode"] == "unlocked"
    with ctx.store.transaction():
        ctx.store.update("VIF", vif, locking_mode="disabled")
    assert run(vif_links.attach_backend(ctx, vif)) is False
    assert links.state["vif7.0"]["master"] is None  # fail closed: off the bridge the hypervisor put it on


def test_a_carrier_change_reads_metrics_but_leaves_the_records_mtu(env):
    ctx, host, _, links = env
    run(pif.scan(ctx, host))
    eth0 = by_device(ctx)["eth0"]
    links.state["eth0"].update(mtu=9000, carrier=True)  # other_config:mtu on the link, say
    run(pif.link_changed(ctx, {"name": "eth0", "deleted": False, "carrier": True, "up": True, "master": None}))
    assert ctx.store.get("PIF_metrics", ctx.store.get("PIF", eth0)["metrics"])["carrier"] is True
    assert ctx.store.get("PIF", eth0)["MTU"] == 1500
