"""The xenstore port: a domain's keys in dom0's xenstore (Xen only).

`Xenstore` runs the xenstore command-line tools (Debian's xen-utils), the
only module that does. `FakeXenstore` stands in where no xenstore exists
(KVM, libvirt's test driver): it keeps what was written in memory, so tests
and the embedded default see the same calls; it is a fake, and says so.
"""

import subprocess
from typing import Dict, Optional


class XenstoreError(Exception):
    pass


class Xenstore:
    """Real xenstore through xenstore-write / xenstore-read / xenstore-ls."""

    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout

    def _run(self, *argv) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise XenstoreError(f"{argv[0]}: {e}") from None
        if done.returncode != 0:
            raise XenstoreError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
        return done.stdout

    def write(self, domid: int, values: Dict[str, str]) -> None:
        """Write keys relative to the domain's home (/local/domain/<domid>/)."""
        if not values:
            return
        argv = ["xenstore-write"]
        for key, value in values.items():
            argv += [f"/local/domain/{domid}/{key}", value]
        self._run(*argv)

    def read_tree(self, domid: int, path: str) -> Dict[str, str]:
        """Every key under the domain's `path` ("data", "attr") as relative names."""
        try:
            out = self._run("xenstore-ls", "-f", f"/local/domain/{domid}/{path}")
        except XenstoreError:
            return {}
        prefix = f"/local/domain/{domid}/{path}/"
        tree = {}
        for line in out.splitlines():
            key, _, value = line.partition(" = ")
            if key.startswith(prefix):
                tree[key[len(prefix):]] = value.strip().strip('"')
        return tree


class FakeXenstore:
    """A fake xenstore for drivers without one: writes are recorded per domid."""

    fake = True

    def __init__(self):
        self.domains: Dict[int, Dict[str, str]] = {}

    def write(self, domid: int, values: Dict[str, str]) -> None:
        self.domains.setdefault(domid, {}).update(values)

    def read_tree(self, domid: int, path: str) -> Dict[str, str]:
        prefix = path.rstrip("/") + "/"
        return {k[len(prefix):]: v for k, v in self.domains.get(domid, {}).items() if k.startswith(prefix)}

    def forget(self, domid: Optional[int]) -> None:
        self.domains.pop(domid, None)
