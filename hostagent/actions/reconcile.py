"""Backend facts into the store: one mechanism for every adapter.

Adapters (libvirt's lifecycle callbacks, periodic hypervisor samples, later
udev, storage scans and pool members) report what they saw as `(kind,
value)`. The server hands each report to `Reconcilers.apply` on the reactor,
in the order reported; the handler registered for that kind turns it into
ordinary transactions, so clients see the usual events. Start-up
reconciliation is the same idea run once: `start()` runs the registered
start-up passes in order before any client can connect.
"""

import inspect
import logging
from typing import Callable, Dict, List, Tuple

log = logging.getLogger("hostagent.reconcile")


class Reconcilers:
    def __init__(self, runtime):
        self.runtime = runtime
        self.handlers: Dict[str, Callable] = {}
        self.passes: List[Tuple[str, Callable]] = []

    def on(self, kind: str, handler: Callable) -> None:
        """`handler(ctx, value)` (plain or async) applies one report of `kind`."""
        if kind in self.handlers:
            raise LookupError(f"two reconcilers for {kind!r}")
        self.handlers[kind] = handler

    def at_start(self, name: str, step: Callable) -> None:
        """`step(ctx)` (plain or async) runs once at start-up, after those before it."""
        self.passes.append((name, step))

    async def start(self) -> None:
        for name, step in self.passes:
            log.debug("start-up: %s", name)
            out = step(self.runtime.internal())
            if inspect.isawaitable(out):
                await out

    async def apply(self, kind: str, value) -> None:
        handler = self.handlers.get(kind)
        if handler is None:
            log.debug("no reconciler for %s reports", kind)
            return
        out = handler(self.runtime.internal(), value)
        if inspect.isawaitable(out):
            await out
