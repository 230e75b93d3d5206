"""What the hypervisor says of the machine (the host's CPUs, memory, guest types,
versions) and its periodic figures, read from an open libvirt connection."""

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import libvirt

from .errors import translate


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
    # The control domain as the hypervisor allocates it (Xen's domain 0); 0 where the driver
    # lists no such domain (KVM, test): /proc's figures describe it there.
    dom0_memory: int = 0  # bytes
    dom0_vcpus: int = 0


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


def control_domain(conn, driver: str) -> Tuple[int, int]:
    """Xen's allocation for domain 0 (bytes) and its vCPUs, from libvirt's info of domid 0;
    (0, 0) on other drivers or when libvirt does not list it."""
    if driver != "Xen":
        return 0, 0
    try:
        _state, _max_kib, memory_kib, vcpus, _cpu_time = conn.lookupByID(0).info()
    except libvirt.libvirtError:
        return 0, 0
    return memory_kib << 10, vcpus


def node_facts(conn) -> NodeFacts:
    try:
        model, mem_mib, cpus, mhz, nodes, sockets, _cores, _threads = conn.getInfo()
        driver = conn.getType()
        dom0_memory, dom0_vcpus = control_domain(conn, driver)
        return NodeFacts(
            driver=driver, hypervisor_version=_version(conn.getVersion()),
            libvirt_version=_version(conn.getLibVersion()), hostname=conn.getHostname(),
            cpus=cpus, mhz=mhz, sockets=max(1, nodes * sockets), memory_total=mem_mib << 20,
            memory_free=conn.getFreeMemory(), capabilities=guest_capabilities(conn.getCapabilities()),
            dom0_memory=dom0_memory, dom0_vcpus=dom0_vcpus)
    except libvirt.libvirtError as e:
        raise translate(e) from None


def sample(conn) -> Sample:
    try:
        info = conn.getInfo()
        busy = {}
        for cpu in range(info[2]):
            try:
                st = conn.getCPUStats(cpu)
            except libvirt.libvirtError:
                break  # the driver keeps no per-CPU figures
            used = st.get("kernel", 0) + st.get("user", 0)
            busy[cpu] = (used, used + st.get("idle", 0) + st.get("iowait", 0))
        return Sample(info[1] << 20, conn.getFreeMemory(), busy)
    except libvirt.libvirtError as e:
        raise translate(e) from None
