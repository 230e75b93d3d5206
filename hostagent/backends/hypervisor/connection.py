"""The hypervisor port's libvirt adapter: one object owns the connection.

This package is the only one that imports `libvirt`. It opens the connection lazily,
probes it before use, reopens it after a failure (with a growing pause
between attempts), and translates every libvirt error into `HypervisorError`.
Its methods block: the server runs them in a serialised worker pool. Events
come from libvirt's own event loop, run in a thread of its own
(`start_events`); the callbacks only hand small values to `on_event`, which
the server turns into work on the reactor.
"""

import logging
import threading
import time
from typing import Callable, List, Optional, Tuple

import libvirt

from . import facts
from .errors import HypervisorUnavailable
from .facts import NodeFacts, Sample

log = logging.getLogger("hostagent.hypervisor")

# libvirt's lifecycle event numbers, as names the reconcilers understand
LIFECYCLE = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "pmsuspended",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}


class Hypervisor:
    def __init__(self, uri: str, on_event: Optional[Callable[[str, tuple], None]] = None,
                 retry: Tuple[float, float] = (1.0, 30.0), clock: Callable[[], float] = time.monotonic):
        """`on_event(kind, value)` is called from libvirt's event thread; it must only hand
        the value on. `retry` is the first and the longest pause between reconnections."""
        self.uri = uri
        self.on_event = on_event
        self.retry = retry
        self.clock = clock
        self._conn = None
        self._lock = threading.Lock()
        self._next_try = 0.0
        self._pause = retry[0]
        self._events = None  # the event loop thread
        self._callbacks: List[int] = []

    # ------------------------------------------------------------ connection
    def connection(self):
        """The open connection, opened or reopened as needed; HypervisorUnavailable while
        the last failure's pause has not passed or the open fails again."""
        with self._lock:
            conn = self._conn
            if conn is not None:
                try:
                    if conn.isAlive():
                        return conn
                except libvirt.libvirtError:
                    pass
                log.warning("libvirt connection to %s lost; reconnecting", self.uri)
                self._drop()
            now = self.clock()
            if now < self._next_try:
                raise HypervisorUnavailable(f"libvirt {self.uri} is unavailable; retrying in "
                                            f"{self._next_try - now:.0f}s")
            try:
                conn = libvirt.open(self.uri)
            except libvirt.libvirtError as e:
                self._next_try = now + self._pause
                self._pause = min(self.retry[1], self._pause * 2)
                raise HypervisorUnavailable(f"cannot open libvirt {self.uri}: {e.get_error_message()}",
                                            e.get_error_code()) from None
            self._pause = self.retry[0]
            self._next_try = 0.0
            self._conn = conn
            self._watch(conn)
            log.info("connected to libvirt %s (%s)", self.uri, conn.getType())
            return conn

    def _drop(self):
        conn, self._conn = self._conn, None
        if conn is None:
            return
        for cb in self._callbacks:
            try:
                conn.domainEventDeregisterAny(cb)
            except libvirt.libvirtError:
                pass
        self._callbacks = []
        try:
            conn.close()
        except libvirt.libvirtError:
            pass

    def _watch(self, conn) -> None:
        """Lifecycle callbacks on a new connection, when the event loop runs."""
        if self._events is None or self.on_event is None:
            return
        try:
            self._callbacks.append(conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None))
            conn.registerCloseCallback(self._closed, None)
        except libvirt.libvirtError as e:
            log.warning("libvirt %s gives no domain events: %s", self.uri, e.get_error_message())

    def _lifecycle(self, conn, dom, event, detail, opaque):
        try:
            uuid, name = dom.UUIDString(), dom.name()
        except libvirt.libvirtError:
            return
        self.on_event("domain", (uuid, name, LIFECYCLE.get(event, str(event)), detail))

    def _closed(self, conn, reason, opaque):
        self.on_event("connection", ("closed", reason))

    def start_events(self) -> None:
        """Run libvirt's default event loop in a daemon thread (once per process)."""
        if self._events is not None:
            return
        libvirt.virEventRegisterDefaultImpl()

        def loop():
            while True:
                if libvirt.virEventRunDefaultImpl() < 0:
                    log.error("libvirt event loop failed")
                    time.sleep(1.0)
        self._events = threading.Thread(target=loop, name="libvirt-events", daemon=True)
        self._events.start()

    def close(self) -> None:
        with self._lock:
            self._drop()

    # ----------------------------------------------------------------- facts
    def node_facts(self) -> NodeFacts:
        return facts.node_facts(self.connection())

    def sample(self) -> Sample:
        return facts.sample(self.connection())
