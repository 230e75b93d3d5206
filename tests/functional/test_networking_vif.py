"""VIFs of running VMs on their networks' bridges (root): the test driver, `--manage-network`.

libvirt's test driver makes no devices, so the test plays the hypervisor's
part: once the VM runs it makes the tap `vif<domid>.<device>` in the agent's
namespace (as Xen's netback or libvirt's tap would appear) and the agent puts
it on the network's bridge and applies the VIF's other_config; VIF.move
takes it to the other network's bridge; a tap whose VM has stopped is taken
off the bridge.
"""

import time

import pytest

from ..contract.ethtool_support import kernel_ethtool
from .events_support import login, logout
from .net_support import ip, kernel, netns  # noqa: F401 - a fixture

pytestmark = [pytest.mark.root, pytest.mark.slow]


def template(x, name):
    [t] = [ref for ref, rec in x.VM.get_all_records().items() if rec["is_a_template"] and rec["name_label"] == name]
    return t


def network(x, label):
    return x.network.create({"name_label": label, "name_description": "", "MTU": "1500", "other_config": {},
                             "tags": []})


def until(what, check, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


def master(ns, dev):
    return kernel(ns).get(dev, {}).get("master")


def test_a_running_vms_vif_is_on_its_bridge_configured_moved_and_released(agents, netns):
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-vif")
    x = s.xenapi
    try:
        red, blue = network(x, "red"), network(x, "blue")
        red_br, blue_br = x.network.get_bridge(red), x.network.get_bridge(blue)
        vm = x.VM.clone(template(x, "Debian Bookworm 12"), "vif guest")
        x.VM.provision(vm)
        vif = x.VIF.create({"device": "0", "network": red, "VM": vm, "MAC": "", "MTU": "0",
                            "other_config": {"ethtool-tx": "off", "ethtool-speed": "100", "ethtool-duplex": "half",
                                             "ethtool-autoneg": "on", "mtu": "1400", "promiscuous": "on"},
                            "qos_algorithm_type": "", "qos_algorithm_params": {}})
        assert kernel(netns)[red_br]["linkinfo"]["info_kind"] == "bridge"  # there before any start
        x.VIF.set_locking_mode(vif, "locked")
        assert x.VIF.get_locking_mode(vif) == "locked"
        x.VM.start(vm, False, False)
        domid = x.VM.get_domid(vm)
        tap = f"vif{domid}.0"
        ip("-n", netns, "tuntap", "add", "mode", "tap", "name", tap)  # the backend appears
        until(f"{tap} on {red_br}", lambda: master(netns, tap) == red_br)
        until(f"{tap} configured", lambda: kernel(netns)[tap]["mtu"] == 1400)
        seen = kernel_ethtool(netns, tap)
        assert (seen["speed"], seen["duplex"], seen["autoneg"], seen["tx"]) == (100, "half", True, False)
        assert "PROMISC" in kernel(netns)[tap]["flags"]

        # a change reaches the running backend; a removal puts its own value back
        x.VIF.add_to_other_config(vif, "ethtool-sg", "off")
        x.VIF.remove_from_other_config(vif, "ethtool-tx")
        x.VIF.remove_from_other_config(vif, "promiscuous")
        seen = kernel_ethtool(netns, tap)
        assert seen["sg"] is False and "PROMISC" not in kernel(netns)[tap]["flags"]

        # move: onto the other network's bridge while running; the emptied bridge goes
        x.VIF.move(vif, blue)
        assert master(netns, tap) == blue_br and x.VIF.get_network(vif) == blue
        assert red_br not in kernel(netns)

        # taken off behind the agent's back: the monitor puts it back
        ip("-n", netns, "link", "set", tap, "nomaster")
        until(f"{tap} back on {blue_br}", lambda: master(netns, tap) == blue_br)

        # the VM stops: a backend left behind is taken off the bridge
        x.VM.hard_shutdown(vm)
        ip("-n", netns, "link", "set", tap, "down")  # what a hypervisor does to a dead domain's tap
        until(f"{tap} off {blue_br}", lambda: master(netns, tap) is None)
        x.VIF.destroy(vif)
        assert blue_br not in kernel(netns)  # no VIF and no PIF on it any more
    finally:
        logout(s)


def test_an_invalid_vif_other_config_value_is_refused(agents, netns):
    agent = agents("--manage-network", "--netns", netns)
    s = login(agent, "networking-vif")
    x = s.xenapi
    try:
        vm = x.VM.clone(template(x, "Debian Bookworm 12"), "vif guest")
        net = network(x, "green")
        record = {"device": "0", "network": net, "VM": vm, "MAC": "", "MTU": "0",
                  "other_config": {"ethtool-gso": "maybe"}, "qos_algorithm_type": "", "qos_algorithm_params": {}}
        with pytest.raises(Exception) as e:
            x.VIF.create(record)
        assert e.value.details == ["INVALID_VALUE", "other_config:ethtool-gso", "maybe"]
        assert x.VM.get_VIFs(vm) == []
        vif = x.VIF.create(dict(record, other_config={"HideFromXenCenter": "true"}))
        with pytest.raises(Exception) as e:
            x.VIF.add_to_other_config(vif, "ethtool-duplex", "both")
        assert e.value.details == ["INVALID_VALUE", "other_config:ethtool-duplex", "both"]
        assert x.VIF.get_other_config(vif) == {"HideFromXenCenter": "true"}
    finally:
        logout(s)
