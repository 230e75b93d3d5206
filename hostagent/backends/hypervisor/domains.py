"""Domains through libvirt: start, stop, pause, save and restore, hot-plug, live changes.

Domains are transient, as Xen's are under xapi: the VM record is the lasting
configuration, a domain exists only while the VM runs (or is paused), and a
suspended VM is a saved image, not a defined domain. Every call blocks and
runs in the hypervisor's worker thread; failures become HypervisorError.
What a driver cannot do is a declared capability (`capabilities()`), which
the actions consult before they try.
"""

import contextlib
import dataclasses
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import List, Optional

import libvirt

from .. import domxml
from ..domain import Disk, Domain, Nic
from .console_targets import DomainConsoles
from .console_targets import from_xml as consoles_from_xml
from .errors import NeedsHVM, NoSuchDomain, translate
from .migration import migrate

STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "running", libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "running", libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "running", libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed", libvirt.VIR_DOMAIN_PMSUSPENDED: "paused",
}
LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE


@dataclass(frozen=True)
class Capabilities:
    """What a driver can do to a running domain."""

    driver: str
    hotplug_disk: bool
    hotplug_nic: bool
    save_restore: bool
    acpi_shutdown: bool  # clean shutdown by the ACPI power button (HVM without PV drivers)
    consoles: bool  # graphical and text consoles whose bytes can be reached
    live_memory: bool
    live_vcpus: bool
    live_media: bool = False  # a running domain's CD drive takes or gives up media
    migrate: bool = False  # live migration to another host's libvirtd of the same driver


CAPABILITIES = {
    "Xen": Capabilities("Xen", True, True, True, False, True, True, True, True, True),
    "QEMU": Capabilities("QEMU", True, True, True, True, True, True, True, True, True),
    # libvirt's test driver keeps domains in memory: nothing to attach, nothing to show
    "TEST": Capabilities("TEST", False, False, True, False, False, True, True),
}


@dataclass(frozen=True)
class DomainState:
    uuid: str
    name: str
    state: str  # running | paused | shutoff | crashed
    domid: int  # -1 when not running
    memory: int  # bytes
    vcpus: int
    cpu_time: int  # nanoseconds


class Domains:
    def __init__(self, hypervisor, migrate_uri: str = ""):
        """`migrate_uri`: the libvirt URI at which other hosts' libvirtds reach this one's, as
        migration destination ("" when it takes no migrations)."""
        self.hv = hypervisor
        self.migrate_uri = migrate_uri
        self._accel = None

    def _conn(self):
        return self.hv.connection()

    def _dom(self, uuid: str):
        try:
            return self._conn().lookupByUUIDString(uuid)
        except libvirt.libvirtError as e:
            raise translate(e) from None

    # ------------------------------------------------------------------ facts
    def capabilities(self) -> Capabilities:
        driver = self._conn().getType()
        return CAPABILITIES.get(driver, Capabilities(driver, False, False, False, False, False, False, False))

    def driver(self) -> str:
        return self._conn().getType()

    def accel(self) -> str:
        """How the qemu driver runs guests here: `kvm` where libvirt offers it and the CPU has
        hardware virtualisation (VMX or SVM), else `qemu` (TCG). Some machines have a /dev/kvm
        without VMX/SVM (a paravirtual KVM) on which KVM guests fault at once."""
        if self._accel is None:
            caps = ET.fromstring(self._conn().getCapabilities())
            kvm = any(d.get("type") == "kvm" for d in caps.iter("domain"))
            self._accel = "kvm" if kvm and _cpu_has_virtualisation() else "qemu"
        return self._accel

    def state(self, uuid: str) -> Optional[DomainState]:
        try:
            return _state(self._dom(uuid))
        except NoSuchDomain:
            return None

    def list(self) -> List[DomainState]:
        try:
            doms = self._conn().listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        except libvirt.libvirtError as e:
            raise translate(e) from None
        out = []
        for d in doms:
            try:
                out.append(_state(d))
            except NoSuchDomain:
                continue  # gone while we looked
        return out

    def xml(self, uuid: str) -> str:
        return self._call(uuid, lambda d: d.XMLDesc(0))

    def consoles(self, uuid: str) -> DomainConsoles:
        """The running domain's text console pty and VNC port (none on drivers without
        `capabilities().consoles`)."""
        return consoles_from_xml(self.xml(uuid))

    # -------------------------------------------------------------- lifecycle
    def render(self, domain: Domain) -> str:
        driver = self.driver()
        if driver == "QEMU":
            domain = dataclasses.replace(domain, accel=self.accel())
        try:
            return domxml.render(driver, domain)
        except domxml.UnsupportedDomain as e:
            raise NeedsHVM(str(e)) from None

    def start(self, domain: Domain, paused: bool = False) -> DomainState:
        """Render the description for this driver and start it."""
        return self.create(self.render(domain), paused)

    def create(self, xml: str, paused: bool = False) -> DomainState:
        """Start a transient domain from its XML."""
        flags = libvirt.VIR_DOMAIN_START_PAUSED if paused else 0
        try:
            return _state(self._conn().createXML(xml, flags))
        except libvirt.libvirtError as e:
            raise translate(e) from None

    def shutdown(self, uuid: str, acpi: bool = False) -> None:
        """Ask the guest to shut down (the PV protocol, or the ACPI power button)."""
        flags = libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN if acpi else 0
        self._call(uuid, lambda d: d.shutdownFlags(flags))

    def reboot(self, uuid: str, acpi: bool = False) -> None:
        flags = libvirt.VIR_DOMAIN_REBOOT_ACPI_POWER_BTN if acpi else 0
        self._call(uuid, lambda d: d.reboot(flags))

    def destroy(self, uuid: str) -> None:
        """Stop the domain at once; a domain already gone is fine."""
        with contextlib.suppress(NoSuchDomain):
            self._call(uuid, lambda d: d.destroy())

    def pause(self, uuid: str) -> None:
        self._call(uuid, lambda d: d.suspend())

    def unpause(self, uuid: str) -> None:
        self._call(uuid, lambda d: d.resume())

    def save(self, uuid: str, path: str) -> None:
        """Write the domain's memory to `path` and stop it."""
        self._call(uuid, lambda d: d.save(path))

    def restore(self, uuid: str, path: str, domain: Optional[Domain] = None) -> DomainState:
        """Start domain `uuid` again from the image in `path` (with `domain`'s devices)."""
        xml = self.render(domain) if domain is not None else None
        try:
            try:
                self._conn().restoreFlags(path, xml, 0)
            except libvirt.libvirtError as e:
                if xml is None or e.get_error_code() not in (libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED,
                                                            libvirt.VIR_ERR_NO_SUPPORT):
                    raise
                self._conn().restore(path)  # a driver that takes the saved devices only (test)
        except libvirt.libvirtError as e:
            raise translate(e) from None
        state = self.state(uuid)
        if state is None:
            raise NoSuchDomain(f"domain {uuid} did not come back from {path}")
        return state

    # -------------------------------------------------------------- migration
    def migration_uri(self) -> str:
        """Where another host's libvirtd sends a domain migrating here ("" when nowhere)."""
        return self.migrate_uri

    def migrate(self, uuid: str, destination_uri: str, disks=()) -> None:
        """Live-migrate the running domain to the libvirtd at `destination_uri`, its disks
        there as `disks` describe them (MigrationFailed, or NoSuchDomain)."""
        migrate(self._conn(), self.driver(), uuid, destination_uri, list(disks))

    # ---------------------------------------------------------------- devices
    def attach_disk(self, uuid: str, disk: Disk) -> None:
        xml = domxml.disk_xml(self.driver(), disk)
        self._call(uuid, lambda d: d.attachDeviceFlags(xml, LIVE))

    def detach_disk(self, uuid: str, disk: Disk) -> None:
        xml = domxml.disk_xml(self.driver(), disk)
        self._call(uuid, lambda d: d.detachDeviceFlags(xml, LIVE))

    def change_media(self, uuid: str, disk: Disk) -> None:
        """The running domain's CD drive (`disk.target`) gets `disk`'s source, or none."""
        xml = domxml.disk_xml(self.driver(), disk)
        self._call(uuid, lambda d: d.updateDeviceFlags(xml, LIVE))

    def attach_nic(self, uuid: str, nic: Nic) -> None:
        xml = domxml.nic_xml(self.driver(), nic)
        self._call(uuid, lambda d: d.attachDeviceFlags(xml, LIVE))

    def detach_nic(self, uuid: str, nic: Nic) -> None:
        xml = domxml.nic_xml(self.driver(), nic)
        self._call(uuid, lambda d: d.detachDeviceFlags(xml, LIVE))

    def set_memory(self, uuid: str, size: int) -> None:
        self._call(uuid, lambda d: d.setMemoryFlags(size >> 10, LIVE))

    def set_vcpus(self, uuid: str, count: int) -> None:
        self._call(uuid, lambda d: d.setVcpusFlags(count, LIVE))

    def _call(self, uuid: str, fn):
        dom = self._dom(uuid)
        try:
            return fn(dom)
        except libvirt.libvirtError as e:
            raise translate(e) from None


def _cpu_has_virtualisation(path: str = "/proc/cpuinfo") -> bool:
    try:
        with open(path) as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"vmx", "svm"} & set(flags.split()))


def _state(dom) -> DomainState:
    try:
        state, _max_kib, mem_kib, vcpus, cpu_time = dom.info()
        return DomainState(dom.UUIDString(), dom.name(), STATES.get(state, "running"),
                           dom.ID() if dom.isActive() else -1, mem_kib << 10, vcpus, cpu_time)
    except libvirt.libvirtError as e:
        raise translate(e) from None
