"""The links port actions use: the adapter's functions bound to one namespace, run off the reactor.

Test hook: HOSTAGENT_FAULT_DELAY_LINK_<OP>=<seconds> (e.g. ..._LINK_ENSURE_VLAN=60)
holds the worker thread that long after operation <op> has changed the
kernel and before the call returns, a window for tests that kill the agent.
"""

import concurrent.futures
import logging
import os
import time
from collections.abc import Callable, Mapping

from . import change, ethtool, read
from .errors import LinkError, keep_socket, setns

# the operations actions may call, by name
OPERATIONS = {fn.__name__: fn for fn in (
    read.links, read.link, read.ports, read.default_route_link, read.address_answers,
    change.ensure_bridge, change.ensure_vlan, change.ensure_bond, change.enslave, change.release,
    change.set_up, change.set_mtu, change.set_promiscuous, change.remove, change.addresses,
    change.set_addresses,
    ethtool.ethtool_state, ethtool.apply_ethtool,
)}
FAULT_DELAY_PREFIX = "HOSTAGENT_FAULT_DELAY_LINK_"
log = logging.getLogger("hostagent.netlink")


class NamespaceThread:
    """One thread that entered the namespace once and keeps one netlink socket there: every
    operation of a port on a namespace runs on it, with no namespace argument. Opening a
    socket in another namespace costs pyroute2 a child process (about 10 ms); this costs
    nothing per call, and serializes the port's work on the namespace's links."""

    def __init__(self, netns: str):
        def enter():
            setns(netns, flags=0)
            keep_socket()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, f"links-{netns}", initializer=enter)

    def call(self, fn, *args):
        try:
            return self._pool.submit(fn, *args).result()
        except concurrent.futures.BrokenExecutor as e:  # the namespace could not be entered
            raise LinkError(f"cannot enter the network namespace: {e}") from None


class NetworkPort:
    """The adapter's functions bound to one namespace, each run by `run(fn, *args)` (a worker
    thread in the agent) and awaited: `await port.ensure_bridge("xenbr0")`. `discover(name)`
    adds what udev knows of a NIC (vendor, speed, ...) outside a namespace."""

    def __init__(self, netns: str | None = None, run: Callable | None = None,
                 discover: Callable[[str], dict] | None = None, environ: Mapping | None = None):
        self.netns = netns
        self._run = run
        self._discover = discover
        self._inside = NamespaceThread(netns) if netns else None
        environ = os.environ if environ is None else environ
        self.fault_delay = {k[len(FAULT_DELAY_PREFIX):].lower(): float(v) for k, v in environ.items()
                            if k.startswith(FAULT_DELAY_PREFIX) and v}

    def _call(self, fn, *args):
        if self._inside is not None:
            fn, args = self._inside.call, (fn, *args)
        if self._run is None:
            async def now():
                return fn(*args)
            return now()
        return self._run(fn, *args)

    def __getattr__(self, name):
        fn = OPERATIONS.get(name)
        if fn is None:
            raise AttributeError(name)
        delay = self.fault_delay.get(name)

        def work(*args):
            out = fn(*args, netns=None if self._inside else self.netns)
            if delay:
                log.warning("test hook: holding %s for %ss", name, delay)
                time.sleep(delay)
            return out
        return lambda *args: self._call(work, *args)

    def scan(self):
        """The NICs, each marked `physical`, with their udev facts in the host's namespace
        (where udev decides what is physical); inside another namespace sysfs and udev
        describe the host's links, not the namespace's, so its NICs are taken as they are."""
        def work():
            found = read.nics(None, veths=True) if self._inside else read.nics(self.netns)
            if self.netns or self._discover is None:
                return [dict(nic, physical=True) for nic in found]
            for nic in found:
                nic.update(self._discover(nic["name"]))
            return [nic for nic in found if nic["physical"]]
        return self._call(work)

    def nic(self, name: str):
        """One link as `scan` reports a NIC (`physical` as scan decides), with its carrier,
        and speed (Mb/s, 0 unknown) and duplex (True: full) as ethtool reads them; None when
        there is no such link. Outside a namespace udev's facts (vendor, ...) are added."""
        def work():
            netns = None if self._inside else self.netns
            li = read.link(name, netns)
            if li is None:
                return None
            inside = bool(self.netns)
            out = dict(li, physical=li["ether"] and li["kind"] in ((None, "veth") if inside else (None,)))
            try:
                mode = ethtool.ethtool_state(name, netns)
            except LinkError as e:
                log.debug("no link settings for %s: %s", name, e)
                mode = {}
            out.update(speed=mode.get("speed") or 0, duplex=mode.get("duplex") == "full")
            if not inside and self._discover is not None:
                facts = self._discover(name)
                out.update({k: v for k, v in facts.items() if k not in ("speed", "duplex")},
                           physical=out["physical"] and facts["physical"])
            return out
        return self._call(work)
