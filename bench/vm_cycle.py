"""VM start plus clean_shutdown cycles per second: through the API, and the same libvirt
calls made directly, in one run, on libvirt's test driver.

The agent runs as a process on the embedded default; VMs without disks (so the
figure is the lifecycle's own, not storage's) are cycled by `--clients` keep-alive
XML-RPC clients in parallel. The baseline makes the same hypervisor calls the
agent makes per cycle (create a transient domain from the agent's own XML, then
shut it down) through libvirt-python in this process, with as many threads.
Prints cycles/s for both and the ratio (target: at least 0.5).

It also prints the API's ceiling for this workload: the same clients making two
trivial calls per cycle (`VM.get_power_state`, which does no work and writes
nothing), i.e. what the HTTP and XML-RPC round trips alone allow. A ratio can
not exceed ceiling/direct whatever a start and a shutdown cost.
Usage: python bench/vm_cycle.py [--seconds 10] [--clients 4]
"""

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid as uuidlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from bench.event_storm import connect, login, rpc  # noqa: E402
from tests.functional.agent import AgentProcess  # noqa: E402

MiB = 1 << 20


def vm_record(name):
    return {
        "name_label": name, "name_description": "", "user_version": "1", "is_a_template": False,
        "affinity": "OpaqueRef:NULL", "memory_static_max": str(64 * MiB), "memory_dynamic_max": str(64 * MiB),
        "memory_dynamic_min": str(64 * MiB), "memory_static_min": str(64 * MiB), "VCPUs_params": {},
        "VCPUs_max": "1", "VCPUs_at_startup": "1", "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart", "actions_after_crash": "restart", "PV_bootloader": "",
        "PV_kernel": "", "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "c"}, "platform": {}, "PCI_bus": "",
        "other_config": {}, "recommendations": ""}


def run_threads(n, work, seconds):
    counts = [0] * n
    stop = time.monotonic() + seconds

    def loop(i):
        while time.monotonic() < stop:
            work(i)
            counts[i] += 1
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(n)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - start)


def through_api(agent, clients, seconds):
    conns = [connect(agent.port) for _ in range(clients)]
    sessions = [login(c, agent.password) for c in conns]
    vms = [rpc(c, "VM.create", s, vm_record(f"cycle {i}")) for i, (c, s) in enumerate(zip(conns, sessions))]

    def cycle(i):
        rpc(conns[i], "VM.start", sessions[i], vms[i], False, False)
        rpc(conns[i], "VM.clean_shutdown", sessions[i], vms[i])
    def trivial(i):
        rpc(conns[i], "VM.get_power_state", sessions[i], vms[i])
        rpc(conns[i], "VM.get_power_state", sessions[i], vms[i])
    return run_threads(clients, cycle, seconds), run_threads(clients, trivial, seconds / 2)


def direct(clients, seconds):
    import libvirt

    from hostagent.actions import domain_policy
    from hostagent.backends import domxml
    conn = libvirt.open("test:///default")
    lock = threading.Lock()  # the agent serialises its libvirt calls in one thread too
    xml = []
    for i in range(clients):
        u = str(uuidlib.uuid4())
        rec = {**vm_record(f"direct {i}"), "uuid": u, "domain_type": "unspecified", "VCPUs_max": 1,
               "VCPUs_at_startup": 1, "memory_static_max": 64 * MiB, "memory_dynamic_max": 64 * MiB}
        xml.append((u, domxml.render("TEST", domain_policy.describe(rec, [], []))))

    def cycle(i):
        u, x = xml[i]
        with lock:
            conn.createXML(x, 0)
        with lock:
            conn.lookupByUUIDString(u).shutdownFlags(0)
    return run_threads(clients, cycle, seconds)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--clients", type=int, default=4)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        agent = AgentProcess(os.path.join(tmp, "state"), extra_args=("--log-level", "WARNING"))
        agent.start()
        try:
            api, ceiling = through_api(agent, args.clients, args.seconds)
        finally:
            agent.cleanup()
    base = direct(args.clients, args.seconds)
    print(f"vm_cycle: {args.clients} clients, {args.seconds:g} s each")
    print(f"  through the API   {api:10.1f} start+clean_shutdown cycles/s")
    print(f"  libvirt directly  {base:10.1f} cycles/s (the same calls, test driver, in process)")
    print(f"  API ceiling       {ceiling:10.1f} cycles/s of two trivial calls (VM.get_power_state)")
    print(f"  ratio {api / base:.3f} (target >= 0.5); the round trips alone allow at most "
          f"{ceiling / base:.3f}; a cycle costs {api and 1000 / api:.2f} ms through the API")


if __name__ == "__main__":
    main()
