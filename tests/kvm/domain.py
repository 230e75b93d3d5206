"""Domain XML for the kit's own bare test boot, the accelerator to ask for, and a qemu-reachable
work directory. The agent renders its own XML; this is only what the kit's contract test boots.
"""

import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

# Debian's amd64 kernel needs 63.6 MiB to decompress itself at 16 MiB (the bzImage's init_size),
# so 64 and 80 MiB reset before the first console line; 96 MiB boots.
MEMORY_MIB = 96
WORK_PARENT = Path("/var/tmp")
DOMAIN_TYPE_ENV = "HOSTAGENT_TEST_DOMAIN_TYPE"


def domain_type() -> str:
    """"kvm" where /dev/kvm runs a stock kernel (hardware VMX/SVM), else "qemu" (TCG).

    Some machines (this project's among them) have a /dev/kvm without VMX/SVM (kvm-pvm) that only
    runs specially built guest kernels: Debian's kernel triple-faults there before its first line
    and qemu resets it forever. Such machines get TCG, about 8 s to READY. The environment
    variable HOSTAGENT_TEST_DOMAIN_TYPE=kvm|qemu overrides the guess.
    """
    forced = os.environ.get(DOMAIN_TYPE_ENV)
    if forced:
        return forced
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), "").split()
    except OSError:
        flags = []
    hardware = "vmx" in flags or "svm" in flags
    return "kvm" if hardware and os.access("/dev/kvm", os.R_OK | os.W_OK) else "qemu"


@pytest.fixture
def qemu_workdir():
    """A fresh directory that qemu (running as libvirt-qemu) can reach, removed after the test.

    pytest's tmp_path is under a 0700 directory, and so may be the checkout, so disk images,
    sockets, save files and a copy of the kit's kernel live here instead.
    """
    path = Path(tempfile.mkdtemp(prefix="hostagent-kvm-", dir=WORK_PARENT))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def stage_kit(kit, workdir: Path):
    """Copies of the kit's kernel and initramfs in `workdir`: (kernel, initrd) paths."""
    kernel, initrd = workdir / "vmlinuz", workdir / "initrd.gz"
    shutil.copyfile(kit.kernel, kernel)
    shutil.copyfile(kit.initrd, initrd)
    return kernel, initrd


def raw_disk(path: Path, size_mib: int, data: bytes = b"") -> Path:
    """A sparse raw disk image of `size_mib` MiB that starts with `data`."""
    with open(path, "wb") as image:
        image.write(data)
        image.truncate(size_mib << 20)
    path.chmod(0o644)
    return path


def bare_domain_xml(name: str, kit, workdir: Path, disk: Path, memory_mib: int = MEMORY_MIB,
                    kind: str = None) -> str:
    """A transient domain that direct-boots the kit with ACPI on, one virtio disk (vda) and its
    serial console on the Unix socket console_socket(workdir), logged to console_log(workdir).
    """
    kernel, initrd = stage_kit(kit, workdir)
    domain = ET.Element("domain", type=kind or domain_type())
    ET.SubElement(domain, "name").text = name
    ET.SubElement(domain, "memory", unit="MiB").text = str(memory_mib)
    ET.SubElement(domain, "vcpu").text = "1"
    os_ = ET.SubElement(domain, "os")
    ET.SubElement(os_, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_, "kernel").text = str(kernel)
    ET.SubElement(os_, "initrd").text = str(initrd)
    ET.SubElement(os_, "cmdline").text = kit.cmdline
    features = ET.SubElement(domain, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(domain, "clock", offset="utc")
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        ET.SubElement(domain, event).text = "destroy"
    devices = ET.SubElement(domain, "devices")
    devices.append(disk_element(disk, "vda"))
    serial = ET.SubElement(devices, "serial", type="unix")
    ET.SubElement(serial, "source", mode="bind", path=str(console_socket(workdir)))
    ET.SubElement(serial, "log", file=str(console_log(workdir)), append="on")
    ET.SubElement(serial, "target", port="0")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(domain, encoding="unicode")


def disk_element(path: Path, target: str) -> ET.Element:
    disk = ET.Element("disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="raw")
    ET.SubElement(disk, "source", file=str(path))
    ET.SubElement(disk, "target", dev=target, bus="virtio")
    return disk


def disk_xml(path: Path, target: str) -> str:
    """A raw virtio disk for attachDeviceFlags/detachDeviceFlags."""
    return ET.tostring(disk_element(path, target), encoding="unicode")


def console_socket(workdir: Path) -> Path:
    return workdir / "console.sock"


def console_log(workdir: Path) -> Path:
    return workdir / "console.log"
