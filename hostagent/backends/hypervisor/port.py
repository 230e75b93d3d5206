"""The domains port as actions use it: each call runs in the hypervisor's own worker
thread (`run_blocking`, owned by the server) and is awaited on the reactor.

Test hook: HOSTAGENT_FAULT_DELAY_DOMAIN_<OP>=<seconds> (e.g. ..._DOMAIN_SAVE=5) holds
every call of <op> that long after the hypervisor did it, so a test can kill the
agent between a domain's change and its records.
"""

import logging
import os
import time
from typing import Callable, Mapping, Optional

from .domains import CAPABILITIES, Capabilities, Domains


FAULT_DELAY_PREFIX = "HOSTAGENT_FAULT_DELAY_DOMAIN_"
log = logging.getLogger("hostagent.hypervisor")


class DomainPort:
    def __init__(self, domains: Domains, run_blocking: Callable, driver: Optional[str] = None,
                 environ: Mapping[str, str] = os.environ):
        """`driver` is libvirt's type name when known at start ("Xen", "QEMU", "TEST")."""
        self.domains = domains
        self.run_blocking = run_blocking
        self._caps = CAPABILITIES.get(driver) if driver else None
        self.fault_delay = {k[len(FAULT_DELAY_PREFIX):].lower(): float(v) for k, v in environ.items()
                            if k.startswith(FAULT_DELAY_PREFIX) and v}
        if self.fault_delay:
            log.warning("domain fault delays set (a test hook): %s", self.fault_delay)

    async def call(self, op: str, *args):
        return await self.run_blocking(self._work, op, args)

    def _work(self, op: str, args):
        """In the hypervisor's worker thread."""
        result = getattr(self.domains, op)(*args)
        delay = self.fault_delay.get(op)
        if delay:
            log.warning("holding domain %s for %gs after it was done (a test hook)", op, delay)
            time.sleep(delay)
        return result

    async def run(self, fn: Callable, *args):
        """Another blocking call that belongs with the domains (xenstore, a guest agent)."""
        return await self.run_blocking(fn, *args)

    async def capabilities(self) -> Capabilities:
        if self._caps is None:
            self._caps = await self.call("capabilities")
        return self._caps
