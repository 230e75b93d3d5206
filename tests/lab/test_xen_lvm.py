"""An LVM SR on the lab VM's second virtual disk (dom0's /dev/vdb, lab/boot.py), through the API.

dom0 has a real device-mapper (unlike the containers `make test` runs in), so the lvm driver
offers VDI_ATTACH there: a VDI is a raw LV, activated when a domain uses it and handed to
blkback as `phy` (/dev/VG_XenStorage-<SR>/LV-<VDI>). One guest is provisioned on the SR (the
template's disk, with sr= naming the LVM SR), boots from its LV and reads from it what dom0
wrote into it; then everything goes again, the physical volume last.
"""

import os

import pytest

from .test_xen_guest import GUEST_KERNEL, GUEST_MIB, GUEST_RAMDISK, MiB, timed, xs
from .test_xen_host import SSH, dom0, wait

DISK = "/dev/vdb"   # lab/boot.py's second virtual disk
ROOT_MIB = 32
PATTERN = "a5" * 16

pytestmark = [
    pytest.mark.xen,
    pytest.mark.skipif(not (SSH and GUEST_KERNEL and GUEST_RAMDISK),
                       reason="needs the Xen lab and its guest (lab/run.py: make lab-test)"),
]


def lv_active(vg, lv):
    # lv_attr's fifth character: 'a' while the LV is active
    return dom0(f"lvs --noheadings -o lv_attr {vg}/{lv}").strip()[4] == "a"


@pytest.mark.timeout(900)
def test_guest_boots_from_a_vdi_on_an_lvm_sr_on_the_second_disk(api):
    assert dom0(f"lsblk -dno TYPE {DISK}").strip() == "disk"
    host = api.host.get_all()[0]
    sr = timed("SR.create lvm", api.SR.create, host, {"device": DISK}, "0", "lab LVM", "", "lvm",
               "", False, {})
    vm = None
    try:
        sr_uuid = api.SR.get_uuid(sr)
        vg = f"VG_XenStorage-{sr_uuid}"
        assert dom0(f"pvs --noheadings -o vg_name {DISK}").strip() == vg
        [lvm] = [r for r in api.SM.get_all_records().values() if r["type"] == "lvm"]
        assert "VDI_ATTACH" in lvm["capabilities"], "dom0 has device-mapper: LVs can be attached"
        # a guest from the template, provisioned on the LVM SR
        [template] = [ref for ref, rec in api.VM.get_all_records().items()
                      if rec["is_a_template"] and rec["name_label"] == "Debian Etch 4.0"]
        vm = api.VM.clone(template, f"lab-lvm-{os.getpid()}")
        disks = api.VM.get_other_config(vm)["disks"]
        assert f'size="{4 << 30}"' in disks and 'sr=""' in disks, disks
        api.VM.remove_from_other_config(vm, "disks")
        api.VM.add_to_other_config(vm, "disks", disks.replace(f'size="{4 << 30}"', f'size="{ROOT_MIB * MiB}"')
                                   .replace('sr=""', f'sr="{sr_uuid}"'))
        timed("VM.provision", api.VM.provision, vm)
        [vbd] = api.VM.get_VBDs(vm)
        disk = api.VBD.get_VDI(vbd)
        assert api.VDI.get_SR(disk) == sr and api.VDI.get_virtual_size(disk) == str(ROOT_MIB * MiB)
        lv = f"LV-{api.VDI.get_uuid(disk)}"
        assert not lv_active(vg, lv), "an LV is active only while in use"
        # something for the guest to read: written into the LV by dom0
        dom0(f"lvchange -ay {vg}/{lv} && qemu-io -f raw -c 'write -P 0xa5 0 64k' /dev/{vg}/{lv}"
             f" && lvchange -an {vg}/{lv}")
        api.VM.set_PV_bootloader(vm, "")
        api.VM.set_PV_kernel(vm, GUEST_KERNEL)
        api.VM.set_PV_ramdisk(vm, GUEST_RAMDISK)
        api.VM.set_PV_args(vm, "console=hvc0 quiet")
        api.VM.set_memory_limits(vm, *[str(GUEST_MIB * MiB)] * 4)
        timed("VM.start", api.VM.start, vm, False, False)
        domid = int(api.VM.get_domid(vm))
        assert lv_active(vg, lv)
        # blkback's disk is the activated LV itself
        params = dom0(f"xenstore-read /local/domain/0/backend/vbd/{domid}/51712/params").strip()
        assert params == f"/dev/{vg}/{lv}", params
        wait(lambda: "xvda" in (xs(domid, "data/blocks") or ""), 120, "the guest to see xvda")
        assert wait(lambda: xs(domid, "data/head/xvda"), 30, "the guest to read xvda") == PATTERN
        timed("VM.hard_shutdown", api.VM.hard_shutdown, vm)
        assert not lv_active(vg, lv), "the LV stays active after the guest stopped"
        api.VBD.destroy(vbd)
        api.VDI.destroy(disk)
        assert dom0(f"lvs --noheadings -o lv_name {vg}").strip() == ""
    finally:
        if vm is not None:
            if api.VM.get_power_state(vm) != "Halted":
                api.VM.hard_shutdown(vm)
            for vbd in api.VM.get_VBDs(vm):
                vdi = api.VBD.get_VDI(vbd)
                api.VBD.destroy(vbd)
                api.VDI.destroy(vdi)
            api.VM.destroy(vm)
        for pbd in api.SR.get_PBDs(sr):
            api.PBD.unplug(pbd)
        api.SR.destroy(sr)
    assert dom0(f"pvs --noheadings -o vg_name {DISK} 2>/dev/null || true").strip() == ""
