"""VHDs for Xen as dom0 block devices (/dev/nbdN), which blkback serves as `phy` disks.

libxl takes no NBD disk, so on Xen the storage port turns each NBD attachment (the Unix socket
of the nbdkit serving a VHD chain) into /dev/nbdN with `nbd-client -unix`. A VHD without a
parent (an image file QEMU's vpc driver reads) goes the same way through `qemu-nbd --connect`
instead of to the domain's own QEMU (qdisk): that QEMU runs deprivileged (as
xen-qemuuser-range-base + domid, Xen's qemu-deprivilege) and cannot open the state dir's
root-owned files, so on Xen no guest disk is left to a device model. Detach disconnects the
device first. Which device serves which attachment owner is kept in `<state-dir>/nbd/<owner>`,
so a restarted agent still finds it; the qemu-nbd and nbd-client processes outlive it. The only
user of nbd-client and qemu-nbd.
"""

import os
import subprocess
import threading
from typing import Optional

# What qemu-nbd --connect serves, by the storage port's format name (qemu's).
IMAGE_FORMATS = ("vpc",)


class NbdBlockError(Exception):
    """nbd-client could not connect or disconnect a device; the message says which and why."""


class NbdBlockDevices:
    def __init__(self, state_dir: str, timeout: float = 60.0):
        self.dir = os.path.join(state_dir, "nbd")
        self.timeout = timeout
        self._lock = threading.Lock()  # one free-device search and connect at a time

    def _run(self, *argv) -> None:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise NbdBlockError(f"{argv[0]}: {e}") from None
        if done.returncode != 0:
            raise NbdBlockError(f"{' '.join(argv)}: {(done.stderr or done.stdout).strip() or done.returncode}")

    def _record(self, owner: str) -> str:
        if not owner or "/" in owner or owner.startswith("."):
            raise NbdBlockError(f"bad attachment owner {owner!r}")
        return os.path.join(self.dir, owner)

    def device_of(self, owner: str) -> Optional[str]:
        try:
            with open(self._record(owner)) as f:
                return f.read().strip() or None
        except FileNotFoundError:
            return None

    def connect(self, socket: str, owner: str) -> str:
        """/dev/nbdN serving `socket` for `owner` (the same device again for the same owner)."""
        return self._connect(owner, lambda device: ["nbd-client", "-unix", socket, device])

    def connect_image(self, path: str, fmt: str, writable: bool, owner: str) -> str:
        """/dev/nbdN serving the image file `path` (qemu's format name `fmt`) for `owner`,
        read-only unless `writable`; the same device again for the same owner."""
        if fmt not in IMAGE_FORMATS:
            raise NbdBlockError(f"{path}: format {fmt!r} is not one qemu-nbd is used for here")
        return self._connect(owner, lambda device: qemu_nbd_argv(path, fmt, writable, device))

    def _connect(self, owner: str, argv_for) -> str:
        with self._lock:
            known = self.device_of(owner)
            if known and os.path.exists(f"/sys/block/{os.path.basename(known)}/pid"):
                return known
            if not os.path.isdir("/sys/module/nbd"):
                self._run("modprobe", "nbd")
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            names = sorted((n for n in os.listdir("/sys/block") if n.startswith("nbd")),
                           key=lambda n: int(n[3:]))
            for name in names:
                if os.path.exists(f"/sys/block/{name}/pid"):
                    continue  # connected already
                device = f"/dev/{name}"
                try:
                    self._run(*argv_for(device))
                except NbdBlockError:
                    continue  # taken between the look and the connect: the next one
                tmp = self._record(owner) + ".tmp"
                with open(tmp, "w") as f:
                    f.write(device + "\n")
                os.replace(tmp, self._record(owner))
                return device
            raise NbdBlockError(f"no free /dev/nbdN for {owner} ({len(names)} devices, all connected)")

    def disconnect(self, owner: str) -> None:
        """Undo connect; nothing to do when `owner` has no device."""
        with self._lock:
            device = self.device_of(owner)
            if device is None:
                return
            if os.path.exists(f"/sys/block/{os.path.basename(device)}/pid"):
                self._run("nbd-client", "-d", device)
            os.unlink(self._record(owner))


def qemu_nbd_argv(path: str, fmt: str, writable: bool, device: str) -> list[str]:
    """qemu-nbd attaching `path` to `device` and forking into the background once connected.
    Guest flushes reach the file (cache=writeback flushes on the guest's request)."""
    return ["qemu-nbd", f"--connect={device}", f"--format={fmt}", "--cache=writeback",
            "--fork", *([] if writable else ["--read-only"]), path]
