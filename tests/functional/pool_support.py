"""Three agents on 127.0.0.1-3 for the pool tests (test_pool_membership, test_pool_forwarding).

Each agent has its own state dir, libvirt test driver, Unix socket and TLS listener on its
own loopback address (so certificates name distinct addresses), with quick heartbeats.
"""

import concurrent.futures
import contextlib
import os
import socket
import time

import pytest
import XenAPI

from .agent import AgentProcess
from .events_support import TimeoutTransport

HEARTBEAT, TIMEOUT = 0.5, 3.0
ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


def free_port(address):
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


class Host:
    """One agent of the pool, on its own address and fixed TLS port (kept across restarts)."""

    def __init__(self, state_dir, address):
        self.address = address
        self.tls = f"{address}:{free_port(address)}"
        self.agent = AgentProcess(state_dir, extra_args=[
            "--tls-listen", self.tls, "--address", address, "--pool-heartbeat", str(HEARTBEAT),
            "--pool-host-timeout", str(TIMEOUT)])

    def start(self):
        self.agent.start()
        return self

    def session(self, password=None):
        s = XenAPI.Session(self.agent.url, transport=TimeoutTransport(30))
        s.xenapi.login_with_password("root", password or self.agent.password, "2.21", "pool-test")
        return s

    def unix_session(self):
        s = XenAPI.Session("http://" + self.agent.socket.replace("/", "_"), transport=XenAPI.UDSTransport())
        s.xenapi.login_with_password("root", "", "2.21", "pool-test")
        return s

    def file(self, name):
        return os.path.join(self.agent.state_dir, name)

    def read(self, name):
        with open(self.file(name)) as f:
            return f.read().strip()


@contextlib.contextmanager
def three_hosts(base):
    """Three agents started (their starts overlap), cleaned up at the end."""
    made = [Host(str(base / name), addr) for name, addr in zip("abc", ADDRESSES)]
    try:
        with concurrent.futures.ThreadPoolExecutor(3) as starting:
            list(starting.map(Host.start, made))
        yield made
    finally:
        for h in made:
            h.agent.cleanup()


@contextlib.contextmanager
def two_host_pool(base, extra_args=((), ())):
    """Hosts a (master) and b on 127.0.0.1-2, b joined, both live; each Host gets its `ref`.
    `extra_args`: more arguments for each agent. Yields (a, b, the master's xenapi proxy)."""
    hosts = [Host(str(base / n), addr) for n, addr in (("a", ADDRESSES[0]), ("b", ADDRESSES[1]))]
    for h, extra in zip(hosts, extra_args):
        h.agent.extra_args += list(extra)
    a, b = hosts
    try:
        a.start()
        b.start()
        b.session().xenapi.pool.join(a.tls, "root", a.agent.password)
        x = a.session().xenapi
        for h in hosts:
            [h.ref] = [r for r in x.host.get_all() if x.host.get_address(r) == h.address]
        wait_for(lambda: live(x, a.ref) and live(x, b.ref), 10, "two live hosts")
        yield a, b, x
    finally:
        for h in hosts:
            h.agent.cleanup()


def failure(fn, *args):
    with pytest.raises(XenAPI.Failure) as e:
        fn(*args)
    return e.value.details


def host_count(h):
    return len(h.session().xenapi.host.get_all())


def live(x, host):
    return x.host_metrics.get_live(x.host.get_metrics(host))


def wait_for(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what}")


def form_pool(hosts, seconds=5):
    """The second and third hosts join the first; each Host gets its `ref` on the master, and
    the three are live there (within `seconds`). Returns the master's xenapi proxy."""
    a = hosts[0]
    for h in hosts[1:]:
        h.session().xenapi.pool.join(a.tls, "root", a.agent.password)
    x = a.session().xenapi
    refs = {x.host.get_address(h): h for h in x.host.get_all()}
    for h in hosts:
        h.ref = refs[h.address]
    wait_for(lambda: all(live(x, h.ref) for h in hosts), seconds, "three live hosts")
    return x


def template(x, name="Debian Etch 4.0"):
    """The ref of the built-in template called `name`."""
    [t] = [ref for ref, rec in x.VM.get_all_records().items()
           if rec["is_a_template"] and rec["name_label"] == name]
    return t
