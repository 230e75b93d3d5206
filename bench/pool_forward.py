"""A host-bound call forwarded by the pool master to a member, beside the same call done by
the master on itself, in one run, on loopback.

Two agents on libvirt's test driver (127.0.0.1 the master, 127.0.0.2 a member, as in
tests/functional/pool_support.py) form a pool; one VM without disks runs on each. A
XenAPI.py client of the master alternates VM.pause and VM.unpause on both VMs,
interleaved so that both see the same machine load: on the master's VM the call is the
master's own hypervisor call; on the member's VM the master forwards it (POST
/pool/v1/port over pinned TLS, the member runs it on its hypervisor, the records are
written on the master). Prints p50 and p99 of each and the difference of the p50s
(target: forwarded at most 3 ms more than local; xapi pays 17-21 ms per forwarded call),
and the machine's load average.

Usage: python bench/pool_forward.py [--calls 300]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tests.functional.pool_support import Host, live, wait_for


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def new_vm(x, name):
    [t] = [r for r, rec in x.VM.get_all_records().items()
           if rec["is_a_template"] and rec["name_label"] == "Debian Etch 4.0"]
    vm = x.VM.clone(t, name)
    x.VM.set_is_a_template(vm, False)
    return vm


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300, help="calls of each kind (half pause, half unpause)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pool-forward-") as base:
        hosts = [Host(str(Path(base) / n), addr) for n, addr in (("a", "127.0.0.1"), ("b", "127.0.0.2"))]
        try:
            for h in hosts:
                h.start()
            a, b = hosts
            b.session().xenapi.pool.join(a.tls, "root", a.agent.password)
            x = a.session().xenapi
            refs = {x.host.get_address(h): h for h in x.host.get_all()}
            wait_for(lambda: all(live(x, r) for r in refs.values()), 10, "two live hosts")
            vms = {}
            for label, h in (("local", a), ("forwarded", b)):
                vm = vms[label] = new_vm(x, label)
                x.VM.start_on(vm, refs[h.address], False, False)
                assert x.VM.get_resident_on(vm) == refs[h.address]
            times = {label: [] for label in vms}
            for _ in range(10):  # warm up both paths (connections, caches)
                for vm in vms.values():
                    x.VM.pause(vm)
                    x.VM.unpause(vm)
            load = os.getloadavg()
            for i in range(args.calls):
                call = x.VM.pause if i % 2 == 0 else x.VM.unpause
                for label, vm in vms.items():
                    started = time.perf_counter()
                    try:
                        call(vm)
                    except Exception:
                        print(f"call {i} on the {label} VM failed", file=sys.stderr)
                        raise
                    times[label].append((time.perf_counter() - started) * 1000)
            load_after = os.getloadavg()
        finally:
            for h in hosts:
                h.agent.cleanup()
    print(f"VM.pause/unpause through the master, {args.calls} calls each, interleaved (ms per call)")
    for label, t in times.items():
        print(f"  {label:10s} p50 {statistics.median(t):6.2f}  p99 {percentile(t, 99):6.2f}  "
              f"mean {statistics.mean(t):6.2f}")
    diff = statistics.median(times["forwarded"]) - statistics.median(times["local"])
    print(f"  forwarded - local: p50 {diff:+.2f} ms  p99 "
          f"{percentile(times['forwarded'], 99) - percentile(times['local'], 99):+.2f} ms  (target p50 <= +3 ms)")
    print(f"  load average before {load[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
