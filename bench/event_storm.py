"""VM.get_record latency while 50 event.from pollers wait and 1,000 changes land.

Starts the agent as a process, measures p50/p99 of VM.get_record from one
keep-alive client calling at a fixed rate with nothing else going on (idle),
then again while one process holds 50 event.from long polls and another makes
1,000 changes at a fixed rate (storm). Prints both and the ratio of the p99s (target: storm p99 at most 3x
idle p99). Usage: python bench/event_storm.py [--pollers 50] [--changes 1000] [--rate 100]
"""

import argparse
import http.client
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import re
import xmlrpc.client

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tests.functional.agent import AgentProcess  # noqa: E402


TOKEN = re.compile(rb"<name>token</name><value>([^<]*)</value>")


def rpc(conn, method, *params):
    body = xmlrpc.client.dumps(params, method, allow_none=True).encode()
    conn.request("POST", "/", body, {"Content-Type": "text/xml"})
    reply = xmlrpc.client.loads(conn.getresponse().read())[0][0]
    if reply["Status"] != "Success":
        raise RuntimeError(reply["ErrorDescription"])
    return reply["Value"]


def connect(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=120)


def login(conn, password):
    return rpc(conn, "session.login_with_password", "root", password, "1.0", "event-storm")


def latencies(port, password, vm, seconds, rate, stop=None):
    """VM.get_record latencies from one keep-alive client sending at a fixed rate.

    Open loop: a probe that sends as fast as it is answered would itself keep the agent
    busy, and measure queueing behind its own calls."""
    conn = connect(port)
    s = login(conn, password)
    body = xmlrpc.client.dumps((s, vm), "VM.get_record").encode()
    out = []
    start = time.monotonic()
    end = start + seconds
    i = 0
    while time.monotonic() < end and not (stop and stop.is_set()):
        delay = start + i / rate - time.monotonic()
        i += 1
        if delay > 0:
            time.sleep(delay)
        t0 = time.perf_counter()
        conn.request("POST", "/", body, {"Content-Type": "text/xml"})
        data = conn.getresponse().read()
        out.append(time.perf_counter() - t0)
        if b"Success" not in data[:300]:
            raise RuntimeError(data[:300])
    return out


def pollers_proc(port, password, pollers, ready, stop):
    """Child process: `pollers` threads each hold an event.from long poll in a loop."""
    started = threading.Barrier(pollers + 1)

    def poll():
        conn = connect(port)
        s = login(conn, password)
        token = rpc(conn, "event.from", s, ["*"], "", 0.0)["token"]
        started.wait()
        while not stop.is_set():
            # a cheap client: read only the token, so that the pollers' own CPU (on the same
            # two cores as the agent) disturbs the measurement as little as possible
            body = xmlrpc.client.dumps((s, ["vm", "network"], token, 5.0), "event.from").encode()
            conn.request("POST", "/", body, {"Content-Type": "text/xml"})
            data = conn.getresponse().read()
            m = TOKEN.search(data)
            if m is None:
                raise RuntimeError(data[:300])
            token = m.group(1).decode()

    for _ in range(pollers):
        threading.Thread(target=poll, daemon=True).start()
    started.wait()
    ready.set()
    stop.wait()


def changer_proc(port, password, changes, rate, done):
    """Child process of its own, so the pollers' threads cannot slow the changes down.

    Changes go out at a fixed rate (open loop): a changer that sends as fast as the agent
    answers would saturate any server by construction and measure only overload."""
    conn = connect(port)
    s = login(conn, password)
    nets = [rpc(conn, "network.create", s, {"name_label": f"storm{i}", "other_config": {}}) for i in range(10)]
    t0 = time.monotonic()
    for i in range(changes):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        rpc(conn, "network.set_name_label", s, nets[i % len(nets)], f"storm-{i}")
    done.set()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pollers", type=int, default=50)
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=100.0, help="changes per second (default 100)")
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--probe-rate", type=float, default=200.0, help="VM.get_record calls per second")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as state:
        agent = AgentProcess(os.path.join(state, "s"), extra_args=["--log-level", "WARNING"]).start()
        try:
            conn = connect(agent.port)
            s = login(conn, agent.password)
            vm = rpc(conn, "VM.get_all", s)[0]
            idle = latencies(agent.port, agent.password, vm, args.idle_seconds, args.probe_rate)
            ready, done, stop = multiprocessing.Event(), multiprocessing.Event(), multiprocessing.Event()
            polling = multiprocessing.Process(target=pollers_proc,
                                              args=(agent.port, agent.password, args.pollers, ready, stop))
            polling.start()
            ready.wait(120)
            changing = multiprocessing.Process(target=changer_proc,
                                               args=(agent.port, agent.password, args.changes, args.rate, done))
            t0 = time.monotonic()
            changing.start()
            busy = latencies(agent.port, agent.password, vm, 600, args.probe_rate, stop=done)
            storm_seconds = time.monotonic() - t0
            changing.join(60)
            stop.set()
            polling.join(30)
        finally:
            agent.cleanup()
    print(f"pollers {args.pollers}, changes {args.changes} at {args.rate:g}/s "
          f"(landed in {storm_seconds:.1f} s); probe {args.probe_rate:g} VM.get_record/s")
    print(f"idle : {len(idle):6d} calls  p50 {pct(idle, .5):7.2f} ms  p99 {pct(idle, .99):7.2f} ms  "
          f"mean {statistics.mean(idle) * 1000:.2f} ms")
    print(f"storm: {len(busy):6d} calls  p50 {pct(busy, .5):7.2f} ms  p99 {pct(busy, .99):7.2f} ms  "
          f"mean {statistics.mean(busy) * 1000:.2f} ms")
    print(f"p99 storm / p99 idle: {pct(busy, .99) / pct(idle, .99):.2f} (target <= 3.0)")


if __name__ == "__main__":
    main()
