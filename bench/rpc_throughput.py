"""VM.get_record calls per second: hostagent as a process vs a bare Twisted XML-RPC server.

    python bench/rpc_throughput.py [--seconds N] [--threads T]

Both servers run as their own processes; the load comes from this one: T threads
(default 4), each with its own keep-alive http.client connection, posting the same
pre-encoded methodCall (a real session and dom0's ref; the baseline ignores the
session) for N seconds per server. The baseline (bench/_baseline_xmlrpc_server.py)
serves the record our agent returned for dom0, ints as strings. Every reply must be
HTTP 200 (and, from ours, Status Success). Prints calls/s, p50/p99 latency and the
ratio ours/baseline; no assertions on speed. Exits 1 if any call failed.

Each server's CPU time per call (from /proc) is printed too: on a machine shared with
other work, calls/s moves with the neighbours' load while CPU per call barely does.
"""

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from tests.functional.agent import AgentProcess  # noqa: E402

BASELINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_baseline_xmlrpc_server.py")
SUCCESS = b"<name>Status</name><value>Success</value>"
TARGET_RATIO, TARGET_RATE = 0.6, 1500.0


def xapi(proxy, method, *args):
    """Call through xmlrpc.client and unwrap the XenAPI envelope."""
    out = getattr(proxy, method)(*args)
    if out.get("Status") != "Success":
        raise RuntimeError(f"{method} failed: {out.get('ErrorDescription')}")
    return out["Value"]


def dom0(url, password):
    """(session, dom0 ref, dom0 record) from our agent, logged in as root."""
    proxy = xmlrpc.client.ServerProxy(url)
    session = xapi(proxy, "session.login_with_password", "root", password, "1.0", "rpc-bench")
    for vm in xapi(proxy, "VM.get_all", session):
        if xapi(proxy, "VM.get_is_control_domain", session, vm):
            return session, vm, xapi(proxy, "VM.get_record", session, vm)
    raise RuntimeError("the agent has no control domain")


def ints_as_strings(v):
    """What xapi's wire carries for ints (xmlrpc.client refuses ints >= 2^31 as <int>)."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, dict):
        return {k: ints_as_strings(x) for k, x in v.items()}
    if isinstance(v, list):
        return [ints_as_strings(x) for x in v]
    return v


def start_baseline(record_path):
    proc = subprocess.Popen([sys.executable, BASELINE, record_path], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("baseline listening on "):
        proc.kill()
        raise RuntimeError(f"baseline did not start: {line!r}")
    return proc, int(line.split()[-1])


class Load:
    """T client threads posting one body as fast as replies come back."""

    def __init__(self, port, body, check_success, threads):
        self.port, self.body, self.check_success, self.threads = port, body, check_success, threads
        self.latencies = [[] for _ in range(threads)]
        self.failures = [0] * threads
        self.first_failure = None

    def run(self, seconds, server_pid):
        cpu0, own0 = _cpu_seconds(server_pid), time.process_time()
        deadline = time.perf_counter() + seconds
        workers = [threading.Thread(target=self._client, args=(i, deadline)) for i in range(self.threads)]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - t0
        server_cpu, client_cpu = _cpu_seconds(server_pid) - cpu0, time.process_time() - own0
        lat = sorted(x for per in self.latencies for x in per)
        return {"calls": len(lat), "elapsed": elapsed, "rate": len(lat) / elapsed,
                "server_cpu": server_cpu / elapsed, "client_cpu": client_cpu / elapsed,
                "server_us": server_cpu / max(1, len(lat)) * 1e6,
                "p50": _pct(lat, 0.50), "p99": _pct(lat, 0.99), "failures": sum(self.failures)}

    def _client(self, i, deadline):
        headers = {"Content-Type": "text/xml", "Content-Length": str(len(self.body))}
        body, out, clock = self.body, self.latencies[i], time.perf_counter
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while True:
            t0 = clock()
            if t0 >= deadline:
                break
            try:
                conn.request("POST", "/", body, headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as e:
                self._fail(i, f"{type(e).__name__}: {e}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                continue
            if resp.status != 200 or (self.check_success and SUCCESS not in data):
                self._fail(i, f"HTTP {resp.status}: {data[:200]!r}")
                continue
            out.append(clock() - t0)
        conn.close()

    def _fail(self, i, what):
        self.failures[i] += 1
        if self.first_failure is None:
            self.first_failure = what


def reply_size(port, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/", body, {"Content-Type": "text/xml"})
        return len(conn.getresponse().read())
    finally:
        conn.close()


def _cpu_seconds(pid):
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(sorted_values, q):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def report(name, r):
    print(f"  {name:<9} {r['rate']:9.0f} calls/s  p50 {r['p50'] * 1e3:6.2f} ms  p99 {r['p99'] * 1e3:6.2f} ms"
          f"  server CPU {r['server_us']:4.0f} us/call\n"
          f"            ({r['calls']} calls in {r['elapsed']:.1f} s, {r['failures']} failed; CPU busy: server"
          f" {r['server_cpu']:.0%}, clients {r['client_cpu']:.0%})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="load per server (default 10)")
    ap.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured load first (default 1 s)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="rpc-bench-") as tmp:
        agent = AgentProcess(os.path.join(tmp, "state")).start()
        baseline = None
        try:
            session, vm, record = dom0(agent.url, agent.password)
            record_path = os.path.join(tmp, "record.xml")
            with open(record_path, "w") as f:
                f.write(xmlrpc.client.dumps((ints_as_strings(record),)))
            baseline, port = start_baseline(record_path)
            body = xmlrpc.client.dumps((session, vm), "VM.get_record").encode("utf-8")
            print(f"VM.get_record of dom0 ({len(record)} fields), {args.threads} client threads, "
                  f"{args.seconds:g} s each, {os.cpu_count()} CPUs; request {len(body)} bytes, replies: "
                  f"ours {reply_size(agent.port, body)} bytes, baseline {reply_size(port, body)} bytes")
            results, failed = {}, []
            for name, p, pid, check in (("ours", agent.port, agent.proc.pid, True),
                                        ("baseline", port, baseline.pid, False)):
                if args.warmup > 0:
                    Load(p, body, check, args.threads).run(args.warmup, pid)
                load = Load(p, body, check, args.threads)
                results[name] = r = load.run(args.seconds, pid)
                report(name, r)
                if r["failures"]:
                    failed.append(f"{name}: {r['failures']} failed, first: {load.first_failure}")
        finally:
            if baseline is not None:
                baseline.terminate()
                baseline.wait(10)
            agent.cleanup()
    ratio = results["ours"]["rate"] / results["baseline"]["rate"]
    print(f"  ratio ours/baseline {ratio:.2f} (target >= {TARGET_RATIO}); "
          f"ours {results['ours']['rate']:.0f} calls/s (target >= {TARGET_RATE:.0f})")
    for line in failed:
        print("FAILED " + line, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
