"""The lab's PV test guest: dom0's own kernel and a busybox initramfs that talks through xenstore.

The initramfs is tests/kvm's guest kit (busybox, made for KVM guests) with a second cpio archive
appended (both in one gzip stream), which the kernel unpacks over the first: lab/guest_init.sh
as /init, /sbin/poweroff (the kernel runs it on Xen's shutdown request) and xen-blkfront.ko, the
PV disk driver, taken from the dom0 image with debugfs (no mount) so that it matches dom0's
kernel, which the guest boots from dom0's /boot.
"""

import gzip
import json
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
POWEROFF = b"#!/bin/sh\necho POWEROFF >/dev/hvc0\nsync\nexec /bin/busybox poweroff -f\n"


def build(image_dir: Path, kit_initrd: Path, out: Path):
    """Writes `out` (the initramfs); returns dom0's path of the kernel to boot it with."""
    import sys
    sys.path.insert(0, str(ROOT))
    from tests.kvm.cpio import Archive
    facts = json.loads((image_dir / "image.json").read_text())
    version = facts["kernel"][len("vmlinuz-"):]
    module = f"/lib/modules/{version}/kernel/drivers/block/xen-blkfront.ko"
    with tempfile.TemporaryDirectory() as tmp:
        dumped = Path(tmp) / "xen-blkfront.ko"
        subprocess.run(["debugfs", "-R", f"dump {module} {dumped}", str(image_dir / "dom0.img")],
                       check=True, capture_output=True)
        if not dumped.exists() or dumped.stat().st_size == 0:
            raise SystemExit(f"lab-guest: {module} is not in {image_dir / 'dom0.img'}")
        extra = Archive()
        for d in ("/sbin", "/lib", "/lib/modules"):
            extra.directory(d)
        extra.file("/init", (HERE / "guest_init.sh").read_bytes(), mode=0o755)
        extra.file("/sbin/poweroff", POWEROFF, mode=0o755)
        extra.file("/lib/modules/xen-blkfront.ko", dumped.read_bytes())
        # One gzip member of both archives: libxc gunzips a PV guest's ramdisk itself, sized by
        # the last member's length field, and fails on concatenated members ("inflate failed").
        out.write_bytes(gzip.compress(gzip.decompress(kit_initrd.read_bytes())
                                      + gzip.decompress(extra.gzipped()), compresslevel=6, mtime=0))
    return f"/boot/{facts['kernel']}"
