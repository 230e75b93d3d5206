"""The libvirt adapter's migration against libvirt's test driver, which cannot migrate: every
failure is the port's own MigrationFailed (or NoSuchDomain), and the domain runs on."""

import uuid

import libvirt
import pytest

from hostagent.backends.hypervisor import (
    CAPABILITIES,
    Domains,
    Hypervisor,
    MigrationFailed,
    NoSuchDomain,
)

DOMAIN = """<domain type='test'><name>{name}</name><uuid>{uuid}</uuid><memory>65536</memory>
<vcpu>1</vcpu><os><type arch='i686'>hvm</type></os></domain>"""


@pytest.fixture
def running():
    hv = Hypervisor("test:///default")
    name, ident = f"mig-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    hv.connection().createXML(DOMAIN.format(name=name, uuid=ident), 0)
    yield Domains(hv, migrate_uri="test:///default"), ident
    dom = hv.connection().lookupByUUIDString(ident)
    if dom.isActive():
        dom.destroy()
    hv.close()


def test_the_test_driver_declares_and_refuses_migration(running):
    domains, ident = running
    assert domains.capabilities().migrate is False
    assert CAPABILITIES["QEMU"].migrate and CAPABILITIES["Xen"].migrate
    with pytest.raises(MigrationFailed) as e:
        domains.migrate(ident, "test:///default")
    assert e.value.code in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED)
    assert domains.state(ident).state == "running"  # it runs on where it was


def test_without_a_destination_uri_nothing_is_tried(running):
    domains, ident = running
    with pytest.raises(MigrationFailed, match="takes no migrations"):
        domains.migrate(ident, "")
    assert domains.migration_uri() == "test:///default"
    assert domains.state(ident).state == "running"


def test_a_domain_that_is_gone(running):
    domains, _ = running
    with pytest.raises(NoSuchDomain):
        domains.migrate(str(uuid.uuid4()), "test:///default")
