"""The domains port as actions use it: each call runs in the hypervisor's own worker
thread (`run_blocking`, owned by the server) and is awaited on the reactor."""

from typing import Callable, Optional

from .domains import CAPABILITIES, Capabilities, Domains


class DomainPort:
    def __init__(self, domains: Domains, run_blocking: Callable, driver: Optional[str] = None):
        """`driver` is libvirt's type name when known at start ("Xen", "QEMU", "TEST")."""
        self.domains = domains
        self.run_blocking = run_blocking
        self._caps = CAPABILITIES.get(driver) if driver else None

    async def call(self, op: str, *args):
        return await self.run_blocking(getattr(self.domains, op), *args)

    async def run(self, fn: Callable, *args):
        """Another blocking call that belongs with the domains (xenstore, a guest agent)."""
        return await self.run_blocking(fn, *args)

    async def capabilities(self) -> Capabilities:
        if self._caps is None:
            self._caps = await self.call("capabilities")
        return self._caps
