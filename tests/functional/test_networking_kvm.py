"""A real KVM guest's VIF on its network's bridge (root, /dev/kvm or TCG, the kit's libvirtd).

The agent manages the host's own namespace here (libvirt makes the guest's
taps there): a network's bridge is made at VIF.create, the guest's tap
(libvirt's vnet<N>, found by its MAC) is on it with the VIF's other_config and
its locking filter while the VM runs, VIF.unplug (a PCI hot-unplug the guest acknowledges)
takes it off, VIF.plug brings back a tap named as xapi names backends,
vif<domid>.<device>, with the VIF's other_config applied.
"""

import json
import shutil
import subprocess

import libvirt
import pytest

from tests.kvm.domain import qemu_workdir, stage_kit  # noqa: F401 - fixture
from tests.kvm.guestkit import guest_kit  # noqa: F401 - fixture
from tests.kvm.libvirtd import libvirtd  # noqa: F401 - fixture
from tests.kvm.serial import Console
from tests.support import wait_for

from ..contract.ethtool_support import kernel_ethtool
from .agent import AgentProcess
from .test_vm_kvm import login, vm_record

NFT = shutil.which("nft") is not None  # the filter checks need nft (and bridge nf_tables)

pytestmark = [pytest.mark.kvm, pytest.mark.root]


def ports(bridge):
    out = subprocess.run(["ip", "-j", "link", "show", "master", bridge], capture_output=True, text=True, check=False)
    return sorted(li["ifname"] for li in json.loads(out.stdout or "[]")) if out.returncode == 0 else []


def filtered():
    """The backends in the agent's VIF filter table, with their verdicts (from_vif)."""
    out = subprocess.run(["nft", "-j", "list", "map", "bridge", "hostagent", "from_vif"], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        return {}
    return {k: v for item in json.loads(out.stdout)["nftables"] if "map" in item
            for k, v in item["map"].get("elem", [])}


def bridge_exists(bridge):
    return subprocess.run(["ip", "link", "show", "dev", bridge], capture_output=True, check=False).returncode == 0


@pytest.fixture
def kvm_agent(libvirtd, guest_kit, qemu_workdir):  # noqa: F811 - pytest fixtures by name
    state = qemu_workdir / "state"
    state.mkdir(mode=0o755)
    agent = AgentProcess(str(state), extra_args=("--libvirt-uri", libvirtd, "--manage-network")).start()
    kernel, initrd = stage_kit(guest_kit, qemu_workdir)
    yield agent, (kernel, initrd, guest_kit.cmdline), qemu_workdir, libvirtd
    agent.cleanup()


def test_a_kvm_guests_vif_follows_plug_and_unplug(kvm_agent):
    agent, kit, workdir, uri = kvm_agent
    x = login(agent).xenapi
    net = x.network.create({"name_label": "kvm net", "name_description": "", "MTU": "1500",
                            "other_config": {}, "tags": [], "bridge": "xapikvm0"})
    vm = x.VM.create(vm_record(kit, workdir / "console.sock", "kvm vif guest"))
    vif = x.VIF.create({"device": "0", "network": net, "VM": vm, "MAC": "", "MTU": "0",
                        "other_config": {"ethtool-sg": "off"}, "qos_algorithm_type": "",
                        "qos_algorithm_params": {}, "locking_mode": "locked", "ipv4_allowed": ["192.0.2.7"]})
    try:
        assert bridge_exists("xapikvm0")  # made for the VIF, before any domain wants it
        x.VM.start(vm, False, False)
        [tap] = wait_for(lambda: ports("xapikvm0"), 20.0, what="the guest's tap on the bridge")
        assert tap.startswith("vnet")  # libvirt's name at start: the domid was not known before
        # the agent knows it as the VIF's backend: the VIF's other_config reaches it from the start
        wait_for(lambda: kernel_ethtool(None, tap)["sg"] is False or None, 20.0, what=f"sg off on {tap}")
        if NFT:  # locked: its filter is on libvirt's tap too
            assert filtered()[tap] == {"jump": {"target": f"from-{tap}"}}
        dom = libvirt.open(uri).lookupByUUIDString(x.VM.get_uuid(vm))
        with Console.of_domain(dom) as console:
            console.wait_ready(timeout=180)
            x.VIF.unplug(vif)
            wait_for(lambda: ports("xapikvm0") == [] or None, 30.0, what="the tap off the bridge")
            assert not x.VIF.get_currently_attached(vif)
            x.VIF.plug(vif)
            backend = f"vif{x.VM.get_domid(vm)}.0"
            wait_for(lambda: ports("xapikvm0") == [backend] or None, 30.0, what=f"{backend} on the bridge")
            assert kernel_ethtool(None, backend)["sg"] is False
            assert not NFT or (backend in filtered() and tap not in filtered())
        x.VM.hard_shutdown(vm)
        wait_for(lambda: ports("xapikvm0") == [] or None, 30.0, what="the tap gone with the domain")
        wait_for(lambda: backend not in filtered() or None, 10.0, what="its filter gone with it")
    finally:
        if x.VM.get_power_state(vm) != "Halted":
            x.VM.hard_shutdown(vm)
        x.VIF.destroy(vif)
        x.network.destroy(net)
    assert not bridge_exists("xapikvm0")
