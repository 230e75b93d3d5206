"""Golden domain XML per driver: the renderers' output compared byte for byte.

`HOSTAGENT_UPDATE_GOLDEN=1 pytest tests/unit/backends/test_domxml_golden.py` rewrites
the files under golden/ from the current renderers; review the diff before committing.
The descriptions here are the shared cases of the other domxml tests too.
"""

import difflib
import os
from pathlib import Path

import pytest

from hostagent.backends import domain as D
from hostagent.backends import domxml

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("HOSTAGENT_UPDATE_GOLDEN") == "1"
GiB, MiB = 1 << 30, 1 << 20
SR = "5f1c0d3e-7b8a-4c55-9e21-3a6b0f9d2c10"
VIF_SCRIPT = "/etc/xen/scripts/vif-bridge"

# A PV guest on its own kernel: an LVM volume (phy) and a parentless VHD (qdisk, vpc),
# two VIFs, a weight and a cap (the cap is not XML on Xen).
XEN_PV = D.Domain(
    uuid="0b6f3a52-9c1e-4d7a-8f03-2e5d6c7b8a91", name="0b6f3a52-9c1e-4d7a-8f03-2e5d6c7b8a91",
    memory_max=1 * GiB, memory=512 * MiB, vcpus_max=4, vcpus=2,
    boot=D.Boot(kind=D.PV, kernel="/var/lib/hostagent/boot/vmlinuz-6.1.0-18-amd64",
                ramdisk="/var/lib/hostagent/boot/initrd.img-6.1.0-18-amd64",
                cmdline="root=/dev/xvda ro console=hvc0"),
    disks=(
        D.Disk(0, "xvda", source_type=D.BLOCK, source=f"/dev/VG_hostagent-{SR}/VDI-61c5e8f2",
               bootable=True, serial="61c5e8f2-4b1d-4e8a-9"),
        D.Disk(1, "xvdb", source_type=D.FILE, source=f"/var/lib/hostagent/sr/{SR}/7d2a9b40.vhd",
               format="vpc", serial="7d2a9b40-13c6-4f0e-a"),
    ),
    nics=(
        D.Nic(0, "00:16:3e:4a:1b:01", "xenbr0", script=VIF_SCRIPT, target="vif7.0"),
        D.Nic(1, "00:16:3e:4a:1b:02", "xenbr1", mtu=9000, script=VIF_SCRIPT),
    ),
    vcpu_weight=512, vcpu_cap=50,
)

# A PV guest booted by pygrub from a VHD chain that nbd-client made /dev/nbd0; no VNC
# (other_config:disable_pv_vnc).
XEN_PYGRUB = D.Domain(
    uuid="1c7e4b63-ad2f-4e8b-9014-3f6e7d8c9ba2", name="1c7e4b63-ad2f-4e8b-9014-3f6e7d8c9ba2",
    memory_max=512 * MiB, memory=512 * MiB, vcpus_max=1, vcpus=1,
    boot=D.Boot(kind=D.PV, bootloader="pygrub", bootloader_args="--kernel=/vmlinuz --ramdisk=/initrd.img"),
    disks=(D.Disk(0, "xvda", source_type=D.NBD, source="/dev/nbd0", bootable=True),),
    nics=(D.Nic(0, "00:16:3e:4a:1b:03", "xenbr0", script=VIF_SCRIPT),),
    vnc=False, on_crash=D.RESTART,
)

XEN_PVH = D.Domain(
    uuid="2d8f5c74-be30-4f9c-a125-407f8e9dacb3", name="2d8f5c74-be30-4f9c-a125-407f8e9dacb3",
    memory_max=256 * MiB, memory=256 * MiB, vcpus_max=2, vcpus=2,
    boot=D.Boot(kind=D.PVH, kernel="/var/lib/hostagent/boot/vmlinuz-6.1.0-18-amd64",
                ramdisk="/var/lib/hostagent/boot/initrd.img-6.1.0-18-amd64",
                cmdline="root=/dev/xvda ro console=hvc0"),
    disks=(D.Disk(0, "xvda", source=f"/var/lib/hostagent/sr/{SR}/8e3bac51.raw", bootable=True),),
    nics=(D.Nic(0, "00:16:3e:4a:1b:04", "xenbr0", script=VIF_SCRIPT),),
)

# An HVM guest on UEFI with a disk, an installer ISO in one CD drive and another drive
# empty, Viridian on, CD first then disk.
XEN_HVM = D.Domain(
    uuid="3e906d85-cf41-40ad-b236-518f9faebdc4", name="3e906d85-cf41-40ad-b236-518f9faebdc4",
    memory_max=2 * GiB, memory=2 * GiB, vcpus_max=2, vcpus=2,
    boot=D.Boot(kind=D.HVM, order="dc", firmware="uefi"),
    disks=(
        D.Disk(0, "hda", source=f"/var/lib/hostagent/sr/{SR}/9f4cbd62.vhd", format="vpc", bootable=True),
        D.Disk(2, "hdc", kind=D.CDROM, source_type=D.EMPTY, read_only=True),
        D.Disk(3, "hdd", kind=D.CDROM, source="/var/lib/hostagent/iso/debian-12.5.0-amd64-netinst.iso",
               read_only=True),
    ),
    nics=(D.Nic(0, "00:16:3e:4a:1b:05", "xenbr0", script=VIF_SCRIPT),),
    viridian=True, on_reboot=D.RESTART, on_crash=D.PRESERVE,
)

# KVM: direct kernel boot, a parentless VHD and a chain served over NBD, a CD drive, two
# NICs with the agent's tap names, the serial port on a socket the tests read.
QEMU_HVM = D.Domain(
    uuid="4fa17e96-d052-41be-8347-62a0a0bfced5", name="4fa17e96-d052-41be-8347-62a0a0bfced5",
    memory_max=256 * MiB, memory=128 * MiB, vcpus_max=2, vcpus=1,
    boot=D.Boot(kind=D.HVM, kernel="/var/lib/hostagent/boot/vmlinuz-6.1.0-18-amd64",
                ramdisk="/var/lib/hostagent/boot/busybox-initramfs.cpio.gz",
                cmdline="console=ttyS0 root=/dev/vda"),
    disks=(
        D.Disk(0, "vda", source=f"/var/lib/hostagent/sr/{SR}/a05dce73.vhd", format="vpc", bootable=True,
               serial="a05dce73-5e94-4b2f-8"),
        D.Disk(1, "vdb", source_type=D.NBD, source="/run/hostagent/nbd/b16edf84.sock",
               serial="b16edf84-6fa5-4c30-9"),
        D.Disk(3, "sdd", kind=D.CDROM, source="/var/lib/hostagent/iso/tools.iso", read_only=True),
    ),
    nics=(
        D.Nic(0, "00:16:3e:4a:1b:06", "xenbr0", target="vif3.0"),
        D.Nic(1, "00:16:3e:4a:1b:07", "xapi1", mtu=9000, target="vif3.1"),
    ),
    vcpu_weight=256, vcpu_cap=150, serial_socket="/var/lib/hostagent/consoles/4fa17e96.serial",
)

# name -> (libvirt driver type, description)
CASES = {
    "xen-pv": ("Xen", XEN_PV),
    "xen-pv-pygrub": ("Xen", XEN_PYGRUB),
    "xen-pvh": ("Xen", XEN_PVH),
    "xen-hvm-uefi-cdrom": ("Xen", XEN_HVM),
    "qemu-hvm-kernel-nbd": ("QEMU", QEMU_HVM),
    "test-pv": ("TEST", XEN_PV),
    "test-pvh": ("TEST", XEN_PVH),
    "test-hvm-cdrom": ("TEST", XEN_HVM),
    "test-hvm-kernel-nbd": ("TEST", QEMU_HVM),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name):
    driver, domain = CASES[name]
    path = GOLDEN / f"{name}.xml"
    xml = domxml.render(driver, domain)
    if UPDATE:
        path.write_text(xml)
        return
    assert path.exists(), f"{path} is missing: run with HOSTAGENT_UPDATE_GOLDEN=1 to write it"
    want = path.read_text()
    diff = "".join(difflib.unified_diff(want.splitlines(True), xml.splitlines(True), str(path), "rendered"))
    assert xml == want, f"rendered XML differs from {path.name}:\n{diff}"


def test_every_golden_file_has_a_case():
    stale = sorted(p.stem for p in GOLDEN.glob("*.xml") if p.stem not in CASES)
    assert not stale, f"golden files no case renders: {stale}"

