"""Facts about the machine the agent runs on, as this kernel sees them: CPU
descriptions, memory, the host name.

Reads /proc; used at start-up. On a Xen dom0 these are dom0's (its vCPUs, its
memory): the host's own figures come from the hypervisor port, and
`actions/bootstrap.py` lays them over these.
"""

import os
import socket
from dataclasses import dataclass, field
from typing import Dict, List


@dataclass(frozen=True)
class Cpu:
    number: int
    vendor: str = ""
    speed_mhz: int = 0
    modelname: str = ""
    family: int = 0
    model: int = 0
    stepping: str = ""
    flags: str = ""


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    address: str
    cpus: List[Cpu]
    memory_total: int  # bytes
    memory_free: int  # bytes
    sockets: int = 1
    capabilities: List[str] = field(default_factory=list)  # xapi's "hvm-3.0-x86_64" style
    versions: Dict[str, str] = field(default_factory=dict)  # software_version entries
    dom0_memory: int = 0  # when the figures above are the hypervisor's: dom0's own (/proc)
    dom0_vcpus: int = 0


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return default


def parse_cpuinfo(text: str) -> List[Cpu]:
    cpus, cur = [], {}
    for line in text.splitlines() + [""]:
        if not line.strip():
            if "processor" in cur:
                try:
                    speed = int(float(cur.get("cpu MHz", "0")))
                except ValueError:
                    speed = 0
                cpus.append(Cpu(
                    number=_int(cur["processor"]), vendor=cur.get("vendor_id", ""),
                    speed_mhz=speed, modelname=cur.get("model name", ""),
                    family=_int(cur.get("cpu family", "0")), model=_int(cur.get("model", "0")),
                    stepping=cur.get("stepping", ""), flags=cur.get("flags", "")))
            cur = {}
            continue
        key, _, value = line.partition(":")
        cur[key.strip()] = value.strip()
    return cpus


def parse_meminfo(text: str) -> Dict[str, int]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if parts:
            n = _int(parts[0])
            out[key.strip()] = n * 1024 if len(parts) > 1 and parts[1] == "kB" else n
    return out


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def probe(address: str) -> HostFacts:
    """Read this machine's facts; `address` is the management address to publish."""
    hostname = socket.gethostname()
    cpuinfo = _read("/proc/cpuinfo")
    cpus = parse_cpuinfo(cpuinfo) or [Cpu(number=i) for i in range(os.cpu_count() or 1)]
    sockets = len({line for line in cpuinfo.splitlines() if line.startswith("physical id")}) or 1
    mem = parse_meminfo(_read("/proc/meminfo"))
    return HostFacts(hostname=hostname, address=address, cpus=cpus,
                     memory_total=mem.get("MemTotal", 0), memory_free=mem.get("MemAvailable", 0),
                     sockets=sockets)
