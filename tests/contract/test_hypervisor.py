"""The libvirt adapter against libvirt's test driver: facts, reconnection, events, errors."""

import threading

import libvirt
import pytest

from hostagent.backends.hypervisor import (Hypervisor, HypervisorError, HypervisorUnavailable,
                                           guest_capabilities)
from tests.support import wait_for

DOMAIN = """<domain type='test'><name>{name}</name><uuid>{uuid}</uuid><memory>65536</memory>
<vcpu>1</vcpu><os><type arch='i686'>hvm</type></os></domain>"""


def test_node_facts_are_the_drivers():
    hv = Hypervisor("test:///default")
    facts = hv.node_facts()
    conn = libvirt.open("test:///default")
    _, mem_mib, cpus, mhz, nodes, sockets, *_ = conn.getInfo()
    assert (facts.driver, facts.cpus, facts.mhz) == ("TEST", cpus, mhz)
    assert facts.memory_total == mem_mib << 20 and facts.memory_free == conn.getFreeMemory()
    assert facts.sockets == nodes * sockets
    assert facts.capabilities == ["hvm-3.0-x86_32", "hvm-3.0-x86_32p", "xen-3.0-x86_32p"]
    assert facts.hypervisor_version.count(".") == 2
    hv.close()


def test_capabilities_of_a_xen_host():
    caps = """<capabilities><host/>
      <guest><os_type>xen</os_type><arch name='x86_64'/><features><pae/></features></guest>
      <guest><os_type>xen</os_type><arch name='i686'/><features><pae/></features></guest>
      <guest><os_type>hvm</os_type><arch name='i686'/><features><pae/><nonpae/></features></guest>
      <guest><os_type>hvm</os_type><arch name='x86_64'/></guest>
      <guest><os_type>xenpvh</os_type><arch name='x86_64'/></guest>
    </capabilities>"""
    assert guest_capabilities(caps) == ["hvm-3.0-x86_32", "hvm-3.0-x86_32p", "hvm-3.0-x86_64",
                                        "pvh-3.0-x86_64", "xen-3.0-x86_32p", "xen-3.0-x86_64"]


def test_a_closed_connection_is_reopened():
    hv = Hypervisor("test:///default")
    first = hv.connection()
    first.close()  # as if libvirtd went away
    second = hv.connection()
    assert second is not first and second.isAlive()
    assert hv.sample().memory_total > 0
    hv.close()


def test_an_unreachable_daemon_waits_before_trying_again():
    now = [100.0]
    hv = Hypervisor("qemu+unix:///system?socket=/nonexistent/sock", retry=(5.0, 20.0), clock=lambda: now[0])
    with pytest.raises(HypervisorUnavailable, match="cannot open libvirt"):
        hv.node_facts()
    with pytest.raises(HypervisorUnavailable, match="retrying in 5s"):
        hv.node_facts()  # within the pause: no new attempt
    now[0] += 5.0
    with pytest.raises(HypervisorUnavailable, match="cannot open libvirt"):
        hv.node_facts()
    now[0] += 5.0  # the pause doubled to 10 s
    with pytest.raises(HypervisorUnavailable, match="retrying in 5s"):
        hv.node_facts()
    assert issubclass(HypervisorUnavailable, HypervisorError)


def test_lifecycle_events_reach_the_handler_from_the_event_thread():
    seen, arrived = [], threading.Event()

    def on_event(kind, value):
        seen.append((kind, value, threading.current_thread().name))
        if kind == "domain" and value[2] == "stopped":
            arrived.set()
    hv = Hypervisor("test:///default", on_event=on_event)
    hv.start_events()
    conn = hv.connection()
    import uuid
    u = str(uuid.uuid4())
    dom = conn.createXML(DOMAIN.format(name="ev-" + u[:8], uuid=u))
    dom.destroy()
    assert arrived.wait(10.0), seen
    mine = [(v[2], t) for k, v, t in seen if k == "domain" and v[0] == u]
    assert [what for what, _ in mine] == ["started", "stopped"]
    assert {t for _, t in mine} == {"libvirt-events"}
    hv.close()
