"""The hypervisor port's libvirt adapter (the only package that imports libvirt)."""

from .connection import LIFECYCLE, Hypervisor
from .domains import CAPABILITIES, Capabilities, Domains, DomainState
from .errors import HypervisorError, HypervisorUnavailable, MigrationFailed, NeedsHVM, NoSuchDomain, Unsupported
from .facts import NodeFacts, Sample, guest_capabilities

__all__ = ["CAPABILITIES", "Capabilities", "Domains", "DomainState", "Hypervisor", "HypervisorError", "HypervisorUnavailable", "LIFECYCLE", "MigrationFailed", "NeedsHVM", "NoSuchDomain",
           "NodeFacts", "Sample", "Unsupported", "guest_capabilities"]
