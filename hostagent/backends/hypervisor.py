"""The hypervisor port's libvirt adapter: one object owns the connection.

The only module that imports `libvirt`. It opens the connection lazily,
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
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import libvirt

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


class HypervisorError(Exception):
    """A libvirt failure: `code` is libvirt's error number (0 when unknown)."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.code = code


class HypervisorUnavailable(HypervisorError):
    """The connection cannot be opened now (the daemon is down, the URI is wrong)."""


@dataclass(frozen=True)
class NodeFacts:
    """What the hypervisor says of the machine: the host's, not dom0's."""

    driver: str  # libvirt's type: "Xen", "QEMU", "TEST"
    hypervisor_version: str  # "4.17.3", "8.2.0", ...
    libvirt_version: str
    hostname: str
    cpus: int
    mhz: int
    sockets: int
    memory_total: int  # bytes
    memory_free: int  # bytes
    capabilities: List[str] = field(default_factory=list)  # xapi's "xen-3.0-x86_64" style


@dataclass(frozen=True)
class Sample:
    """Periodic figures: free memory and each CPU's busy time so far (nanoseconds)."""

    memory_total: int
    memory_free: int
    cpu_busy: Dict[int, Tuple[int, int]]  # cpu number -> (busy ns, total ns)


def _version(n: int) -> str:
    return f"{n // 1000000}.{n // 1000 % 1000}.{n % 1000}"


def guest_capabilities(caps_xml: str) -> List[str]:
    """xapi's capability strings from libvirt's capabilities document."""
    out = []
    root = ET.fromstring(caps_xml)
    for guest in root.findall("guest"):
        os_type = (guest.findtext("os_type") or "").strip()
        kind = {"xen": "xen", "hvm": "hvm", "xenpvh": "pvh"}.get(os_type)
        if kind is None:
            continue
        feats = guest.find("features")
        pae = feats is not None and feats.find("pae") is not None
        nonpae = feats is None or feats.find("nonpae") is not None or not pae
        for arch in guest.findall("arch"):
            name = arch.get("name", "")
            if name == "x86_64":
                names = ["x86_64"]
            elif name in ("i686", "i386"):
                names = ([] if kind == "xen" or not nonpae else ["x86_32"]) + (["x86_32p"] if pae else [])
            else:
                names = [name]
            out += [f"{kind}-3.0-{n}" for n in names]
    return sorted(set(out))


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
        conn = self.connection()
        try:
            model, mem_mib, cpus, mhz, nodes, sockets, _cores, _threads = conn.getInfo()
            return NodeFacts(
                driver=conn.getType(), hypervisor_version=_version(conn.getVersion()),
                libvirt_version=_version(conn.getLibVersion()), hostname=conn.getHostname(),
                cpus=cpus, mhz=mhz, sockets=max(1, nodes * sockets), memory_total=mem_mib << 20,
                memory_free=conn.getFreeMemory(), capabilities=guest_capabilities(conn.getCapabilities()))
        except libvirt.libvirtError as e:
            raise _translate(e) from None

    def sample(self) -> Sample:
        conn = self.connection()
        try:
            total = conn.getInfo()[1] << 20
            free = conn.getFreeMemory()
            busy = {}
            for cpu in range(conn.getInfo()[2]):
                try:
                    st = conn.getCPUStats(cpu)
                except libvirt.libvirtError:
                    break  # the driver keeps no per-CPU figures
                used = st.get("kernel", 0) + st.get("user", 0)
                busy[cpu] = (used, used + st.get("idle", 0) + st.get("iowait", 0))
            return Sample(total, free, busy)
        except libvirt.libvirtError as e:
            raise _translate(e) from None


def _translate(e: "libvirt.libvirtError") -> HypervisorError:
    code = e.get_error_code() or 0
    if code in (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN):
        return HypervisorUnavailable(e.get_error_message(), code)
    return HypervisorError(e.get_error_message() or str(e), code)
