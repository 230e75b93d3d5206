"""libvirt domain XML from the neutral description (backends/domain.py).

One renderer module per libvirt driver, chosen by the driver's type name as
`virConnect.getType()` reports it; each builds its XML with ElementTree and
no policy: what a driver cannot run is an `UnsupportedDomain`, never a quiet
omission.
"""

from typing import Dict


class UnsupportedDomain(Exception):
    """The description asks for what this driver cannot run; `reason` says what."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# Imported after UnsupportedDomain, which the renderers raise.
from . import qemu, test, xen  # noqa: E402

RENDERERS: Dict[str, object] = {"Xen": xen, "QEMU": qemu, "TEST": test}


def render(driver: str, domain) -> str:
    """The whole `<domain>` for defineXML or createXML."""
    return _renderer(driver).render(domain)


def disk_xml(driver: str, disk) -> str:
    """One `<disk>`, the same as in the whole domain, for attachDeviceFlags/detachDeviceFlags."""
    return _renderer(driver).disk_xml(disk)


def nic_xml(driver: str, nic) -> str:
    """One `<interface>`, the same as in the whole domain."""
    return _renderer(driver).nic_xml(nic)


def _renderer(driver: str):
    try:
        return RENDERERS[driver]
    except KeyError:
        raise UnsupportedDomain(f"no domain XML for libvirt driver {driver!r}; "
                                f"known: {', '.join(sorted(RENDERERS))}") from None
