"""VHD chains for Xen as dom0 block devices: `nbd-client -unix` on the datapath's socket.

libxl takes no NBD disk, so on Xen the storage port turns each NBD attachment (the Unix socket
of the nbdkit serving a VHD chain) into /dev/nbdN with nbd-client, which blkback serves as a
`phy` disk; detach disconnects it first. Which device serves which attachment owner is kept in
`<state-dir>/nbd/<owner>`, so a restarted agent still finds it. The only user of nbd-client.
"""

import os
import subprocess
import threading
from typing import Optional


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
                    self._run("nbd-client", "-unix", socket, device)
                except NbdBlockError:
                    continue  # taken between the look and the connect: the next one
                tmp = self._record(owner) + ".tmp"
                with open(tmp, "w") as f:
                    f.write(device + "\n")
                os.replace(tmp, self._record(owner))
                return device
            raise NbdBlockError(f"no free /dev/nbdN for {socket} ({len(names)} devices, all connected)")

    def disconnect(self, owner: str) -> None:
        """Undo connect; nothing to do when `owner` has no device."""
        with self._lock:
            device = self.device_of(owner)
            if device is None:
                return
            if os.path.exists(f"/sys/block/{os.path.basename(device)}/pid"):
                self._run("nbd-client", "-d", device)
            os.unlink(self._record(owner))
