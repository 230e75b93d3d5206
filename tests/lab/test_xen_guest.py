"""The seed's §3.1 walkthrough on real Xen, with the lab's PV busybox guest (lab/guest.py).

One guest goes the whole way, since each step costs seconds under QEMU's emulation. A template
of the lab's own is made first (a clone of "Debian Etch 4.0" provisioned on the local file SR,
a known pattern written into its disk); the walkthrough's VM is a clone of it, so its disk is a
VHD chain (a child over the template's base), which reaches the guest through nbdkit and
`nbd-client -unix` as dom0's /dev/nbdN, handed to blkback as `phy`. The guest reads the
template's pattern through the chain. Then: `vm-data` keys in xenstore, VM_guest_metrics filled
from what its init publishes (as a guest agent does), its device model (the VNC framebuffer's
QEMU) running without root, suspended and resumed, a parentless disk (served by qemu-nbd)
hot-plugged and read inside the guest, shut down cleanly. The guest's init writes the block
devices it sees into `data/blocks` of its xenstore home and the first bytes of each into
`data/head/<dev>`.
"""

import os
import time

import pytest

from .test_xen_host import SSH, dom0, ssh, wait

GUEST_KERNEL = os.environ.get("HOSTAGENT_LAB_GUEST_KERNEL")
GUEST_RAMDISK = os.environ.get("HOSTAGENT_LAB_GUEST_RAMDISK")
GUEST_MIB = 128
ROOT_MIB = 64  # the provisioned system disk
MiB = 1 << 20
RANGE_BASE_UID = 131072  # xen-qemuuser-range-base (scripts/install-dom0)

pytestmark = [
    pytest.mark.xen,
    pytest.mark.skipif(not (SSH and GUEST_KERNEL and GUEST_RAMDISK),
                       reason="needs the Xen lab and its guest (lab/run.py: make lab-test)"),
]


def xs(domid, key):
    r = ssh(f"xenstore-read /local/domain/{domid}/{key}")
    return r.stdout.strip() if r.returncode == 0 else None


def vdi_record(sr, size, name):
    return {"SR": sr, "virtual_size": str(size), "name_label": name, "name_description": "",
            "type": "user", "sharable": False, "read_only": False, "other_config": {},
            "xenstore_data": {}, "sm_config": {}, "tags": []}


def timed(label, fn, *args):
    started = time.monotonic()
    out = fn(*args)
    print(f"{label}: {time.monotonic() - started:.1f} s")
    return out


def nbd_devices():
    return dom0("ls /sys/block | grep '^nbd' | while read d; do [ -e /sys/block/$d/pid ] && echo $d; done; true").split()


def nbd_server(dev):
    """The command line of the process behind dom0's /dev/nbdN (qemu-nbd or nbd-client)."""
    return dom0(f"cat /proc/$(cat /sys/block/{dev}/pid)/cmdline | tr '\\0' ' '").strip()


PATTERN = "5a" * 16  # what the template's disk starts with (qemu-io's write -P 0x5a)


@pytest.mark.timeout(1200)  # each step costs seconds to a minute under TCG (docs/lab.md)
def test_seed_walkthrough_on_xen(api):
    pool = api.pool.get_all()[0]
    sr = api.pool.get_default_SR(pool)
    assert api.SR.get_type(sr) in ("file", "ext")
    [template] = [ref for ref, rec in api.VM.get_all_records().items()
                  if rec["is_a_template"] and rec["name_label"] == "Debian Etch 4.0"]
    base = api.VM.clone(template, f"lab-template-{os.getpid()}")
    vm = None
    try:
        # The template's 4 GiB system disk is larger than the lab's SR (dom0's own 4 GiB root
        # filesystem), and the agent answers SR_FULL for a thin disk beyond the SR's capacity
        # (docs/storage.md); the guest needs only a small one.
        disks = api.VM.get_other_config(base)["disks"]
        assert f'size="{4 << 30}"' in disks, disks
        api.VM.remove_from_other_config(base, "disks")
        api.VM.add_to_other_config(base, "disks", disks.replace(f'size="{4 << 30}"', f'size="{ROOT_MIB * MiB}"'))
        api.VM.provision(base)
        [base_vbd] = api.VM.get_VBDs(base)
        base_disk = api.VBD.get_VDI(base_vbd)
        assert api.VDI.get_SR(base_disk) == sr
        # the lab's template: its disk starts with a pattern (written by qemu-io in dom0), the
        # guest boots from dom0's kernel and the lab's initramfs
        [pbd] = api.SR.get_PBDs(sr)
        location = api.PBD.get_device_config(pbd)["location"]
        vhd = f"{location}/{api.SR.get_uuid(sr)}/{api.VDI.get_uuid(base_disk)}.vhd"
        dom0(f"qemu-io -f vpc -c 'write -P 0x5a 0 64k' {vhd}")
        api.VM.set_PV_bootloader(base, "")
        api.VM.set_PV_kernel(base, GUEST_KERNEL)
        api.VM.set_PV_ramdisk(base, GUEST_RAMDISK)
        api.VM.set_PV_args(base, "console=hvc0 quiet")
        api.VM.set_memory_limits(base, *[str(GUEST_MIB * MiB)] * 4)
        api.VM.set_is_a_template(base, True)
        # §3.1 from that template: clone, provision (no disks left to make), start
        vm = api.VM.clone(base, f"lab-walkthrough-{os.getpid()}")
        api.VM.provision(vm)
        assert api.VM.get_is_a_template(vm) is False
        [root_vbd] = api.VM.get_VBDs(vm)
        root_disk = api.VBD.get_VDI(root_vbd)
        assert root_disk != base_disk and api.VDI.get_SR(root_disk) == sr
        assert api.VDI.get_sm_config(root_disk).get("vhd-parent"), "the clone's disk is no chain"
        api.VM.set_xenstore_data(vm, {"vm-data/walkthrough": "yes", "other/ignored": "x"})
        before = set(nbd_devices())
        timed("VM.start", api.VM.start, vm, False, False)
        rec = api.VM.get_record(vm)
        assert rec["power_state"] == "Running"
        domid = int(rec["domid"])
        # the chain reaches the guest through blkback as a dom0 /dev/nbdN that nbd-client made
        # of its nbdkit's socket, not through the domain's deprivileged QEMU (qdisk), which
        # cannot open the state dir's files (backends/nbd_block.py)
        [root_dev] = set(nbd_devices()) - before
        assert not nbd_server(root_dev).startswith("qemu-nbd")  # nbd-client leaves it to the kernel
        leaf = f"{api.VDI.get_uuid(root_disk)}.vhd"
        nbdkits = dom0("ps -eo args | grep '^nbdkit ' || true")
        assert f"/{leaf} " in nbdkits, nbdkits
        assert api.VBD.get_currently_attached(root_vbd) is True
        assert api.VBD.get_device(root_vbd) == "xvda"
        # xenstore_data: vm-data keys under the domain's home, others not written
        assert xs(domid, "vm-data/walkthrough") == "yes"
        assert xs(domid, "other/ignored") is None
        # the guest sees its disk and reads the template's pattern through the chain
        wait(lambda: "xvda" in (xs(domid, "data/blocks") or ""), 120, "the guest to see xvda")
        assert wait(lambda: xs(domid, "data/head/xvda"), 30, "the guest to read xvda") == PATTERN
        # VM_guest_metrics from the guest's own keys, read after start (the guest wrote them later)
        def guest_metrics():
            ref = api.VM.get_guest_metrics(vm)
            return None if ref == "OpaqueRef:NULL" else api.VM_guest_metrics.get_record(ref)
        gm = wait(lambda: (m := guest_metrics()) and m["networks"] and m, 60, "VM_guest_metrics")
        assert gm["os_version"]["name"] == "lab busybox guest", gm["os_version"]
        assert gm["os_version"]["uname"].endswith("-amd64")
        assert gm["networks"]["0/ip"] == "192.0.2.10"
        # the VNC framebuffer's device model runs as xen-qemuuser-range-base + domid, not root
        ps = dom0(f"ps -eo uid=,args= | grep -- '-xen-domid {domid} ' | grep -v grep || true").split("\n")
        uids = [int(line.split()[0]) for line in ps if line.strip()]
        assert uids == [RANGE_BASE_UID + domid], ps
        # suspend and resume
        timed("VM.suspend", api.VM.suspend, vm)
        assert api.VM.get_power_state(vm) == "Suspended"
        assert set(nbd_devices()) == before, "the suspended VM's disk is still connected"
        timed("VM.resume", api.VM.resume, vm, False, False)
        assert api.VM.get_power_state(vm) == "Running"
        domid = int(api.VM.get_domid(vm))
        wait(lambda: "xvda" in (xs(domid, "data/blocks") or ""), 120, "the resumed guest to run")
        # a new disk hot-plugged, seen inside the guest
        disk = api.VDI.create(vdi_record(sr, 16 * MiB, "lab hot-plug"))
        vbd = api.VBD.create({"VM": vm, "VDI": disk, "userdevice": "1", "bootable": False, "mode": "RW",
                              "type": "Disk", "empty": False, "other_config": {},
                              "qos_algorithm_type": "", "qos_algorithm_params": {}})
        plugged = set(nbd_devices())
        timed("VBD.plug", api.VBD.plug, vbd)
        assert api.VBD.get_currently_attached(vbd) is True
        # a parentless VHD: qemu-nbd serves the file itself
        [new_dev] = set(nbd_devices()) - plugged
        served = nbd_server(new_dev)
        assert served.startswith("qemu-nbd") and served.endswith(".vhd"), served
        wait(lambda: "xvdb" in (xs(domid, "data/blocks") or ""), 60, "the guest to see the new disk")
        assert wait(lambda: xs(domid, "data/head/xvdb"), 30, "the guest to read xvdb") == "00" * 16
        # a clean shutdown: the guest's kernel powers off on Xen's request
        timed("VM.clean_shutdown", api.VM.clean_shutdown, vm)
        rec = api.VM.get_record(vm)
        assert rec["power_state"] == "Halted" and rec["domid"] == "-1"
        assert dom0(f"xl list {domid} >/dev/null 2>&1 && echo present || echo gone").strip() == "gone"
        assert set(nbd_devices()) == before
        assert api.VBD.get_currently_attached(root_vbd) is False
    finally:
        if vm is not None and api.VM.get_power_state(vm) != "Halted":
            api.VM.hard_shutdown(vm)
        for v in (vm, base):  # the clone's disk first: the template's base goes with the last child
            if v is None:
                continue
            for vbd in api.VM.get_VBDs(v):
                vdi = api.VBD.get_VDI(vbd)
                api.VBD.destroy(vbd)
                if vdi != "OpaqueRef:NULL":
                    api.VDI.destroy(vdi)
            api.VM.destroy(v)
