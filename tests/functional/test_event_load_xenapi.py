"""event.from under load through the real `XenAPI` package: 50 concurrent mirrors kept in
step with 1,000 changes, and clients that hang up in the middle of a long poll."""

import collections
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
import xmlrpc.client

import pytest
import XenAPI

from tests.support import wait_for

from .events_support import TimeoutTransport, error_lines, event_from, login, logout, net_record, vm_record



# --------------------------------------------------------------------------- 50 mirrors

POLLERS = 50
CHANGES = 1000
HOLD_S = 30.0  # how long the pollers are held in their loops
SPREAD_S = 24.0  # the writer spreads its changes over at least this long
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Mirror(threading.Thread):
    """One event.from client keeping {(class, ref): (name_label, other_config)} in step."""

    def __init__(self, agent, index, sentinel, abort):
        super().__init__(name=f"poller-{index}", daemon=True)
        self.agent, self.index, self.sentinel, self.abort = agent, index, sentinel, abort
        self.mirror = {}
        self.anomalies = []
        self.error = None
        self.polls = 0
        self.ready = threading.Event()

    def apply(self, events):
        for e in events:
            key = (e["class"], e["ref"])
            op = e["operation"]
            if e["class"] not in ("vm", "network"):
                self.anomalies.append(("unsubscribed class", op, key))
            if op == "del":
                if "snapshot" in e:
                    self.anomalies.append(("event.from del with a snapshot", key))
                if self.mirror.pop(key, None) is None:
                    self.anomalies.append(("del of an object never seen", key))
                continue
            snap = e["snapshot"]
            if op == "add" and key in self.mirror:
                self.anomalies.append(("add of a known object", key))
            if op == "mod" and key not in self.mirror:
                self.anomalies.append(("mod of an unknown object", key))
            self.mirror[key] = (snap["name_label"], snap["other_config"])

    def run(self):
        s = None
        try:
            s = login(self.agent, f"mirror-{self.index}")
            x = s.xenapi
            batch = event_from(x, ["vm", "network"], "", 5.0)
            self.apply(batch["events"])
            token = batch["token"]
            self.ready.set()
            while True:
                batch = event_from(x, ["vm", "network"], token, 5.0)
                self.polls += 1
                self.apply(batch["events"])
                token = batch["token"]
                if self.sentinel and ("network", self.sentinel[0]) in self.mirror:
                    break
                if self.abort.is_set():
                    raise AssertionError("stopped before it saw the sentinel")
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.ready.set()
            if s is not None:
                logout(s)


def state_of(x):
    out = {}
    for cls, api in (("vm", x.VM), ("network", x.network)):
        for ref, rec in api.get_all_records().items():
            out[(cls, ref)] = (rec["name_label"], rec["other_config"])
    return out


def writer_main(argv):
    """The other client of the 50-mirror test, run as its own process (a writer thread in the
    test process would queue for the GIL behind 50 XML-parsing pollers and crawl).

    argv: url password seed changes spread_seconds; prints a JSON summary on stdout."""
    url, password, seed, changes, spread = argv[0], argv[1], int(argv[2]), int(argv[3]), float(argv[4])
    s = XenAPI.Session(url, transport=TimeoutTransport())
    s.xenapi.login_with_password("root", password, "2.21", "thousand-changes")
    w = s.xenapi
    rng = random.Random(seed)
    live = {"vm": [], "network": []}
    counts = collections.Counter()
    began = time.monotonic()
    for i in range(changes):
        ahead = began + spread * i / changes - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        cls = rng.choice(("vm", "network"))
        api = w.VM if cls == "vm" else w.network
        objs = live[cls]
        op = "create" if len(objs) < 3 else rng.choices(
            ("create", "set_name_label", "add_to_other_config", "destroy"), (2, 3, 3, 2))[0]
        if op == "create":
            objs.append(api.create(vm_record(f"m-vm-{i}") if cls == "vm" else net_record(f"m-net-{i}")))
        elif op == "set_name_label":
            api.set_name_label(rng.choice(objs), f"{cls}-name-{i}")
        elif op == "add_to_other_config":
            api.add_to_other_config(rng.choice(objs), f"k{i}", f"v{i}")
        else:
            api.destroy(objs.pop(rng.randrange(len(objs))))
        counts[op] += 1
    elapsed = time.monotonic() - began
    s.xenapi.session.logout()
    print(json.dumps({"counts": counts, "live": live, "elapsed": elapsed}))


@pytest.mark.slow
def test_fifty_event_from_mirrors_follow_a_thousand_changes(agent, x):
    start = time.monotonic()
    sentinel, abort = [], threading.Event()
    pollers = [Mirror(agent, i, sentinel, abort) for i in range(POLLERS)]
    for p in pollers:
        p.start()
    summary = {"live": {}}
    try:
        for p in pollers:
            assert p.ready.wait(30), f"{p.name} did not get its first batch"
        assert [(p.name, repr(p.error)) for p in pollers if p.error] == []
        assert all(p.mirror == pollers[0].mirror for p in pollers)
        assert p.mirror == state_of(x)
        held_from = time.monotonic()

        code = ("import sys; from tests.functional.test_event_load_xenapi import writer_main; "
                "writer_main(sys.argv[1:])")
        done = subprocess.run([sys.executable, "-c", code, agent.url, agent.password, "20261127", str(CHANGES),
                               str(SPREAD_S)], cwd=REPO, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        counts = summary["counts"]
        assert sum(counts.values()) == CHANGES and min(counts.values()) > 100, counts
        if time.monotonic() < held_from + HOLD_S:  # hold the pollers for the full 30 s
            time.sleep(held_from + HOLD_S - time.monotonic())
        assert all(p.is_alive() for p in pollers), [(p.name, repr(p.error)) for p in pollers if not p.is_alive()]
        expected = state_of(x)
        sentinel.append(x.network.create(net_record("sentinel")))  # the last change: pollers stop on it
        expected[("network", sentinel[0])] = ("sentinel", {})
        stop_by = time.monotonic() + 30.0
        for p in pollers:
            p.join(max(0.0, stop_by - time.monotonic()))
        alive = [p.name for p in pollers if p.is_alive()]
        assert alive == [], f"pollers still running: {alive}"
        assert [(p.name, repr(p.error)) for p in pollers if p.error] == []
        for p in pollers:
            assert p.anomalies == [], (p.name, p.anomalies[:5])
            assert p.mirror == expected, (p.name, len(p.mirror), len(expected))
        polls = sum(p.polls for p in pollers)
        print(f"\n50 mirrors: {counts} in {summary['elapsed']:.1f} s, {polls} polls "
              f"({polls / POLLERS:.0f} each), test {time.monotonic() - start:.1f} s")
        assert polls / POLLERS > 20  # they long-polled throughout, not in one final catch-up
    finally:
        abort.set()
        for p in pollers:
            p.join(10)  # a poller blocked in event.from sees abort within its 5 s timeout
        for cls, refs in summary["live"].items():
            api = x.VM if cls == "vm" else x.network
            for ref in refs:
                api.destroy(ref)
        for ref in sentinel:
            x.network.destroy(ref)


# --------------------------------------------------------------------------- hang-ups

def agent_fds(agent):
    return len(os.listdir(f"/proc/{agent.proc.pid}/fd"))


def raw_long_poll_then_hang_up(agent, session, method, params, wait=0.3):
    body = xmlrpc.client.dumps((session, *params), method, allow_none=True).encode()
    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=wait)
    conn.request("POST", "/", body, {"Content-Type": "text/xml"})
    with pytest.raises(TimeoutError):  # still polling: no reply yet
        conn.getresponse()
    conn.close()


def test_client_hanging_up_mid_poll_leaves_nothing_behind(agent, x, s):
    log_mark = len(agent.log_lines)
    token = event_from(x, ["*"], "", 0.0)["token"]
    baseline = agent_fds(agent)
    hanger = login(agent, "hang-up")
    try:
        hanger.xenapi.event.register(["network"])
        for i in range(10):
            raw_long_poll_then_hang_up(agent, hanger._session, "event.from", (["network"], token, 1.0))
        for i in range(3):
            raw_long_poll_then_hang_up(agent, hanger._session, "event.from", (["*"], token, 60.0))
            raw_long_poll_then_hang_up(agent, hanger._session, "event.next", ())
        # the hung-up connections are closed on the agent's side too (login added one: ≤ baseline + 1)
        wait_for(lambda: agent_fds(agent) <= baseline + 1, 10, "the agent to close the hung-up sockets")
        time.sleep(1.2)  # past the 1 s polls' timeouts: their timers must be gone, not fire into dead requests
        net = x.network.create(net_record("after-hang-ups"))  # wakes any waiter left registered
        # the agent still serves long polls and the register/next queue of the session that hung up
        batch = event_from(x, ["network"], token, 5.0)
        assert [e["ref"] for e in batch["events"]] == [net]
        assert [(e["operation"], e["ref"]) for e in hanger.xenapi.event.next()] == [("add", net)]
        x.network.destroy(net)
        assert x.pool.get_all() and agent.alive()
        assert error_lines(agent, log_mark) == [], "".join(agent.log_lines[log_mark:])[-6000:]
    finally:
        logout(hanger)
        hanger.transport.close()
    wait_for(lambda: agent_fds(agent) <= baseline, 10, "the agent's descriptors back at their baseline")
