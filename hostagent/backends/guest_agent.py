"""What a guest's agent publishes: OS, addresses, PV driver versions.

On Xen the guest agent writes under its xenstore home (`data/`, `attr/`);
`XenstoreGuestAgent` reads those keys. libvirt's test driver runs no guest
at all: `TestGuestAgent` is a clearly named stand-in that reports the
template's OS and one documentation-range address per VIF, so clients that
wait for an address can finish. KVM guests here run no agent (None).
"""

import hashlib
from dataclasses import dataclass, field
from typing import Dict, Iterable, Optional


@dataclass(frozen=True)
class GuestFacts:
    os_version: Dict[str, str] = field(default_factory=dict)
    networks: Dict[str, str] = field(default_factory=dict)  # "0/ip", "0/ipv4/0", ...
    pv_drivers_version: Dict[str, str] = field(default_factory=dict)
    other: Dict[str, str] = field(default_factory=dict)


class XenstoreGuestAgent:
    periodic = True  # a real guest's keys change while it runs: read them again now and then

    def __init__(self, xenstore):
        self.xenstore = xenstore

    def facts(self, domid: int, vm: dict, vifs: Iterable[dict]) -> Optional[GuestFacts]:
        data = self.xenstore.read_tree(domid, "data")
        attr = self.xenstore.read_tree(domid, "attr")
        if not data and not attr:
            return None
        os_version = {k[len("os_"):]: v for k, v in data.items() if k.startswith("os_")}
        os_version.update({k.split("/", 1)[1]: v for k, v in data.items() if k.startswith("os/")})
        networks = {}
        for key, value in attr.items():  # attr/vif/0/ipv4/0 = 192.0.2.5
            parts = key.split("/")
            if len(parts) >= 4 and parts[0] == "vif":
                networks[f"{parts[1]}/{'/'.join(parts[2:])}"] = value
                if parts[2] == "ipv4" and f"{parts[1]}/ip" not in networks:
                    networks[f"{parts[1]}/ip"] = value
        versions = {k.split("/", 1)[1]: v for k, v in attr.items() if k.startswith("PVAddons/")}
        other = {k: v for k, v in data.items() if k.startswith("feature")}
        return GuestFacts(os_version, networks, versions, other)


class TestGuestAgent:
    """A stand-in guest agent for libvirt's test driver (no guest runs there)."""

    def facts(self, domid: int, vm: dict, vifs: Iterable[dict]) -> Optional[GuestFacts]:
        name = vm["other_config"].get("os-name") or vm["other_config"].get("template-name") or vm["name_label"]
        networks = {}
        for vif in vifs:
            host = 2 + int(hashlib.sha256(vif["MAC"].encode()).hexdigest(), 16) % 250
            address = f"192.0.2.{host}"  # TEST-NET-1: documentation only, never routed
            networks[f"{vif['device']}/ip"] = address
            networks[f"{vif['device']}/ipv4/0"] = address
        return GuestFacts(os_version={"name": name, "distro": "test", "uname": "test-driver"},
                          networks=networks, pv_drivers_version={"major": "9", "minor": "0", "micro": "0"},
                          other={"feature-shutdown": "1", "feature-suspend": "1"})
