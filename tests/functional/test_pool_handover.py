"""pool.designate_new_master: a planned handover with writes running (docs/pools.md,
"Planned master handover").

Three agents (pool_support) form a pool on a; a writer thread keeps adding keys to a VM's
other_config through a client that follows HOST_IS_SLAVE, as a XenAPI.py user does, while
the pool is handed to b. Every write the writer saw acknowledged must be on b afterwards.
The tests run in order and share the pool.
"""

import threading
import time

import pytest
import XenAPI

from hostagent.pool import client
from hostagent.pool.identity import CERT_FILE

from .events_support import TimeoutTransport, event_from
from .pool_support import ADDRESSES, failure, form_pool, live, template, three_hosts, wait_for


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    with three_hosts(tmp_path_factory.mktemp("handover")) as hosts:
        a, b, c = hosts
        form_pool(hosts)
        yield hosts


class Writer(threading.Thread):
    """Adds w0, w1, ... to a VM's other_config, one call each, following HOST_IS_SLAVE."""

    def __init__(self, hosts, vm):
        super().__init__(daemon=True)
        self.passwords = {h.tls: h.agent.password for h in hosts}
        self.url, self.password = hosts[0].agent.url, hosts[0].agent.password
        self.vm = vm
        self.acked, self.redirects, self.errors = [], [], []
        self.stop = threading.Event()

    def login(self):
        if self.url.startswith("https"):
            s = XenAPI.Session(self.url, ignore_ssl=True)
        else:
            s = XenAPI.Session(self.url, transport=TimeoutTransport(30))
        s.xenapi.login_with_password("root", self.password, "2.21", "handover-writer")
        return s.xenapi

    def run(self):
        x, n = self.login(), 0
        while not self.stop.is_set() and n < 2000:
            try:
                x.VM.add_to_other_config(self.vm, f"w{n}", str(n))
            except XenAPI.Failure as e:
                if e.details[0] != "HOST_IS_SLAVE":
                    self.errors.append(e.details)
                    return
                self.redirects.append(e.details[1])  # not done there: again at the master named
                self.url, self.password = "https://" + e.details[1], self.passwords[e.details[1]]
                x = self.login()
                continue
            self.acked.append(n)
            n += 1


def test_designating_the_master_itself_changes_nothing(pool):
    a, _, _ = pool
    x = a.session().xenapi
    assert x.pool.designate_new_master(a.ref) == ""
    assert x.pool.get_master(x.pool.get_all()[0]) == a.ref


def test_handover_loses_no_acknowledged_write(pool):
    a, b, c = pool
    xa = a.session().xenapi
    t = template(xa)
    vm = xa.VM.clone(t, "written during the handover")
    token = event_from(xa, ["VM"], "", 0.0)["token"]
    writer = Writer(pool, vm)
    writer.start()
    wait_for(lambda: len(writer.acked) >= 20, 20, "writes before the handover")
    began = time.monotonic()
    xa.pool.designate_new_master(b.ref)
    took = time.monotonic() - began
    wait_for(lambda: writer.redirects or writer.errors, 20, "the writer sent to the new master")
    done = len(writer.acked)
    wait_for(lambda: len(writer.acked) >= done + 20 or writer.errors, 20, "writes after the handover")
    writer.stop.set()
    writer.join(30)
    assert not writer.errors
    assert writer.redirects == [b.tls]
    assert took < 20
    xb = b.session().xenapi
    other = xb.VM.get_other_config(vm)
    assert [n for n in writer.acked if other.get(f"w{n}") != str(n)] == []
    # an event.from token of the old master goes on at the new one: the VM's change is seen
    changed = event_from(xb, ["VM"], token, 5.0)
    assert any(e["ref"] == vm and e["snapshot"]["other_config"] == other for e in changed["events"])
    # the new master lists the pool's three hosts, itself as master
    pool_ref = xb.pool.get_all()[0]
    assert xb.pool.get_master(pool_ref) == b.ref
    assert sorted(xb.host.get_address(h) for h in xb.host.get_all()) == list(ADDRESSES)
    # the old master and the third host send their clients to b; their Unix sockets reach b
    for h in (a, c):
        details = failure(XenAPI.Session(h.agent.url, transport=TimeoutTransport(30)).xenapi.login_with_password,
                          "root", h.agent.password, "2.21", "pool-test")
        assert details == ["HOST_IS_SLAVE", b.tls]
    wait_for(lambda: _unix_master(c) == b.address, 10, "c's Unix socket answered by b")
    assert _unix_master(a) == b.address
    # both members heartbeat to b
    time.sleep(1.0)
    assert all(live(xb, h.ref) for h in pool)
    # a member the old master could not tell is refused there: its heartbeats fail
    with open(a.file(CERT_FILE)) as f:
        cert = f.read()
    with pytest.raises(client.Refused) as e:
        client.call(a.tls, "heartbeat", {"host": xb.host.get_uuid(c.ref)}, secret=a.read("pool-secret"),
                    pinned=cert)
    assert e.value.description == ["HOST_IS_SLAVE", b.tls]
    xb.VM.destroy(vm)


def _unix_master(h):
    x = h.unix_session().xenapi
    try:
        return x.host.get_address(x.pool.get_master(x.pool.get_all()[0]))
    finally:
        x.session.logout()


def test_the_new_master_forwards_to_the_old_one(pool):
    a, b, _ = pool
    xb = b.session().xenapi
    t = template(xb)
    vm = xb.VM.clone(t, "on the old master")
    xb.VM.set_is_a_template(vm, False)  # not provisioned: no disks on b's SR
    xb.VM.start_on(vm, a.ref, False, False)
    assert xb.VM.get_resident_on(vm) == a.ref and xb.VM.get_power_state(vm) == "Running"
    xb.VM.hard_shutdown(vm)
    assert xb.VM.get_power_state(vm) == "Halted"
    xb.VM.destroy(vm)


def test_a_failed_handover_leaves_the_master_in_place(pool):
    a, b, c = pool
    xb = b.session().xenapi
    c.agent.kill()  # still live in the records: the handover tries, and cannot reach it
    details = failure(xb.pool.designate_new_master, c.ref)
    assert details == ["CANNOT_CONTACT_HOST", c.ref]
    pool_ref = xb.pool.get_all()[0]
    assert xb.pool.get_master(pool_ref) == b.ref
    xb.pool.add_to_other_config(pool_ref, "after-failed-handover", "yes")  # writes are served again
    assert xb.pool.get_other_config(pool_ref)["after-failed-handover"] == "yes"
    details = failure(XenAPI.Session(a.agent.url, transport=TimeoutTransport(30)).xenapi.login_with_password,
                      "root", a.agent.password, "2.21", "pool-test")
    assert details == ["HOST_IS_SLAVE", b.tls]
    # a host that is not live is refused before anything is tried
    wait_for(lambda: not live(xb, c.ref), 10, "c not live")
    assert failure(xb.pool.designate_new_master, c.ref) == ["HOST_OFFLINE", c.ref]


def test_both_roles_survive_a_kill(pool):
    a, b, _ = pool
    for h in (a, b):
        h.agent.kill()  # SIGKILL: only what was durable comes back
    b.start()
    a.start()
    xb = b.session().xenapi
    pool_ref = xb.pool.get_all()[0]
    assert xb.pool.get_master(pool_ref) == b.ref
    assert xb.pool.get_other_config(pool_ref)["after-failed-handover"] == "yes"
    assert len(xb.host.get_all()) == 3
    wait_for(lambda: live(xb, a.ref), 10, "the old master heartbeating to the new one")
    details = failure(XenAPI.Session(a.agent.url, transport=TimeoutTransport(30)).xenapi.login_with_password,
                      "root", a.agent.password, "2.21", "pool-test")
    assert details == ["HOST_IS_SLAVE", b.tls]
