"""1,000 VMs cloned from a template and started through Async tasks, then one
VM.get_all_records and one event.from full fetch; beside the same libvirt work done
directly (1,000 transient domains created, then listed), in one run, on libvirt's
test driver (a test node with room for them all).

Prints the time of each phase and the ratios. Usage: python bench/vm_scale.py [--vms 1000]
"""

import argparse
import os
import sys
import tempfile
import time
import uuid as uuidlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from bench.event_storm import connect, login, rpc  # noqa: E402
from bench.vm_cycle import MiB, vm_record  # noqa: E402
from tests.functional.agent import AgentProcess  # noqa: E402

NODE = """<node><cpu><mhz>2600</mhz><model>i686</model><active>64</active><nodes>1</nodes><sockets>1</sockets>
<cores>64</cores><threads>1</threads></cpu><memory>{kib}</memory></node>"""
WINDOW = 32  # Async tasks in flight at once, as a management client would keep


def in_windows(conn, s, method, args_list):
    """Run `method` for each args as Async tasks, WINDOW at a time; their results in order."""
    out = []
    for i in range(0, len(args_list), WINDOW):
        tasks = [rpc(conn, f"Async.{method}", s, *a) for a in args_list[i:i + WINDOW]]
        for t in tasks:
            while (status := rpc(conn, "task.get_status", s, t)) == "pending":
                time.sleep(0.005)
            if status != "success":
                raise RuntimeError(rpc(conn, "task.get_error_info", s, t))
            out.append(rpc(conn, "task.get_result", s, t))
            rpc(conn, "task.destroy", s, t)
    return out


def through_api(node, n):
    with tempfile.TemporaryDirectory() as tmp:
        agent = AgentProcess(os.path.join(tmp, "state"),
                             extra_args=("--libvirt-uri", f"test://{node}", "--log-level", "WARNING"))
        agent.start()
        try:
            conn = connect(agent.port)
            s = login(conn, agent.password)
            template = rpc(conn, "VM.create", s, {**vm_record("scale template"), "is_a_template": True})
            t0 = time.monotonic()
            results = in_windows(conn, s, "VM.clone", [(template, f"scale {i}") for i in range(n)])
            vms = [r.split("<value>")[-1].split("</value>")[0] for r in results]  # the task results
            for vm in vms:
                rpc(conn, "VM.set_is_a_template", s, vm, False)
            t1 = time.monotonic()
            in_windows(conn, s, "VM.start", [(vm, False, False) for vm in vms])
            t2 = time.monotonic()
            records = rpc(conn, "VM.get_all_records", s)
            t3 = time.monotonic()
            fetch = rpc(conn, "event.from", s, ["*"], "", 1.0)
            t4 = time.monotonic()
            running = sum(1 for r in records.values() if r["power_state"] == "Running" and not r["is_control_domain"])
            assert running == n, f"{running} of {n} running"
            return {"clone": t1 - t0, "start": t2 - t1, "get_all_records": t3 - t2, "event.from": t4 - t3,
                    "events": len(fetch["events"])}
        finally:
            agent.cleanup()


def direct(node, n):
    import libvirt

    from hostagent.actions import domain_policy
    from hostagent.backends import domxml
    conn = libvirt.open(f"test://{node}")
    t0 = time.monotonic()
    for i in range(n):
        u = str(uuidlib.uuid4())
        rec = {**vm_record(f"direct {i}"), "uuid": u, "domain_type": "unspecified", "VCPUs_max": 1,
               "VCPUs_at_startup": 1, "memory_static_max": 64 * MiB, "memory_dynamic_max": 64 * MiB}
        conn.createXML(domxml.render("TEST", domain_policy.describe(rec, [], [])), 0)
    t1 = time.monotonic()
    doms = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
    infos = [(d.UUIDString(), d.info()) for d in doms]
    t2 = time.monotonic()
    assert len(infos) >= n
    return {"start": t1 - t0, "list": t2 - t1}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vms", type=int, default=1000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        node = os.path.join(tmp, "node.xml")
        with open(node, "w") as f:
            f.write(NODE.format(kib=(args.vms + 16) * 64 * 1024 * 4))
        api = through_api(node, args.vms)
        base = direct(node, args.vms)
    print(f"vm_scale: {args.vms} VMs, test driver, {WINDOW} Async tasks in flight")
    print(f"  clone through the API          {api['clone']:8.2f} s")
    print(f"  start through the API          {api['start']:8.2f} s   libvirt directly {base['start']:8.3f} s"
          f"   ratio {base['start'] / api['start']:.3f}")
    print(f"  VM.get_all_records             {api['get_all_records']:8.3f} s   listAllDomains+info "
          f"{base['list']:8.3f} s   ratio {base['list'] / api['get_all_records']:.3f}")
    print(f"  event.from full fetch          {api['event.from']:8.3f} s   ({api['events']} objects)")


if __name__ == "__main__":
    main()
