"""dom0's initramfs in the lab: busybox, the modules that reach the root disk, a shell /init.

Debian's initramfs (initramfs-tools) starts udev and lets it probe every device before it mounts
the root; under QEMU's TCG that alone took 60-120 s of every boot (docs/lab.md). This one loads
the root disk's and the NIC's modules with insmod (virtio_pci, virtio_blk, ext4, virtio_net and
what they depend on, in modprobe's order), gives the NIC QEMU's user-mode address (fixed:
10.0.2.15/24, gateway 10.0.2.2; ssh then answers without waiting for udev's coldplug and a DHCP
client, which took minutes of a loaded host), mounts /dev/vda and hands over to systemd, whose
own udev then probes the rest.
Made by lab/build.py from the image's tree, so busybox, its libraries and the modules are the
image's own.
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODULES = ("virtio_pci", "virtio_blk", "ext4", "crc32c_generic", "virtio_net")
APPLETS = ("sh", "mount", "umount", "insmod", "sleep", "switch_root", "cat", "echo", "ip")
INIT = """#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do
    insmod "$m" || echo "lab initramfs: insmod $m failed"
done
n=0
while { [ ! -b /dev/vda ] || [ ! -e /sys/class/net/eth0 ]; } && [ $n -lt 300 ]; do sleep 1; n=$((n + 1)); done
ip link set lo up
if ! { ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2; }; then
    echo "lab initramfs: eth0 not configured"
fi
if ! mount -t ext4 -o rw /dev/vda /root; then
    echo "lab initramfs: cannot mount /dev/vda: a shell on the console"
    exec sh
fi
mount --move /dev /root/dev
umount /proc /sys
exec switch_root /root /sbin/init
"""


def _chroot(tree, *argv):
    return subprocess.run(["chroot", str(tree), *argv], check=True, capture_output=True, text=True,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}).stdout


def module_paths(tree, version):
    """The .ko files to insmod, dependencies first (modprobe --show-depends in the image)."""
    out = "".join(_chroot(tree, "modprobe", "-S", version, "--show-depends", m) for m in MODULES)
    paths = []
    for line in out.splitlines():
        m = re.match(r"insmod (\S+)", line)
        if m and m.group(1) not in paths:
            paths.append(m.group(1))
    if not any(p.endswith("/virtio_blk.ko") for p in paths):
        raise SystemExit(f"lab-build: no virtio_blk module in the image: {out}")
    return paths


def shared_libraries(tree, binary):
    """The paths (in the image) of what `binary` loads, the dynamic loader included."""
    out = _chroot(tree, "ldd", binary)
    if "not a dynamic executable" in out:
        return []
    return re.findall(r"(?:=>\s*)?(/\S+)\s+\(0x", out)


def in_tree(tree, path):
    """The host path of the image's `path`, its symbolic links followed inside the image."""
    return tree / _chroot(tree, "readlink", "-f", path).strip().lstrip("/")


def build(tree: Path, version: str) -> bytes:
    """The gzipped initramfs for dom0's kernel `version` from the image's tree."""
    sys.path.insert(0, str(ROOT))
    from tests.kvm.cpio import Archive
    archive = Archive()
    for d in ("/bin", "/dev", "/proc", "/sys", "/root", "/lib", "/lib64", "/lib/modules"):
        archive.directory(d)
    archive.char_device("/dev/console", 5, 1)
    archive.file("/bin/busybox", in_tree(tree, "/bin/busybox").read_bytes(), mode=0o755)
    for applet in APPLETS:
        archive.symlink(f"/bin/{applet}", "busybox")
    made = set()
    for lib in shared_libraries(tree, "/bin/busybox"):
        parent = str(Path(lib).parent)
        if parent not in made and parent not in ("/lib", "/lib64"):
            archive.directory(parent)
            made.add(parent)
        archive.file(lib, in_tree(tree, lib).read_bytes(), mode=0o755)
    order = []
    for path in module_paths(tree, version):
        name = f"/lib/modules/{Path(path).name}"
        archive.file(name, in_tree(tree, path).read_bytes())
        order.append(name)
    archive.file("/modules.order", ("\n".join(order) + "\n").encode())
    archive.file("/init", INIT.encode(), mode=0o755)
    return archive.gzipped()
