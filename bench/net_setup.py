"""Network setup and teardown at scale (root): through the API, and the same pyroute2 calls made
directly, in one run, each in a throwaway network namespace.

VLAN mode (the default when the kernel has 802.1Q): N VLANs with their bridges.
API: network.create + VLAN.create(eth0, tag, network) for each tag, then
VLAN.destroy + network.destroy; the agent runs with `--manage-network --netns`.
Direct: per tag, a bridge made and brought up, the 802.1Q link made on eth0,
enslaved and brought up; then the VLAN link and the bridge deleted: one
pyroute2 NetNS socket for the whole run.

Bridge mode (`--mode bridges`, and the fallback, said loudly, on a kernel
without 802.1Q): N veth "NICs", each a PIF on its own network; API: PIF.plug
(its bridge made, the NIC enslaved) and PIF.unplug (released, bridge
removed); direct: the same bridge add/up, set master, up; nomaster, bridge
delete.

Prints seconds and operations/s for both and the ratio direct/API time
(target: at least 0.5).
Usage: python bench/net_setup.py [--count 200] [--mode auto|vlans|bridges]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from bench.event_storm import connect, login, rpc  # noqa: E402
from tests.functional.agent import AgentProcess  # noqa: E402


def ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def namespace(nics):
    """A fresh namespace with veth `nics` whose peers are in a second one (the wire)."""
    name, wire = "nb-" + uuid.uuid4().hex[:8], "nw-" + uuid.uuid4().hex[:8]
    ip("netns", "add", name)
    ip("netns", "add", wire)
    batch = "".join(f"link add {n} type veth peer name w{i} netns {wire}\n" for i, n in enumerate(nics))
    subprocess.run(["ip", "-n", name, "-batch", "-"], input=batch, text=True, check=True, capture_output=True)
    return name, wire


def drop(*names):
    for n in names:
        ip("netns", "del", n, check=False)


def has_8021q() -> bool:
    name, wire = namespace(["eth0"])
    try:
        return ip("-n", name, "link", "add", "link", "eth0", "name", "p.9", "type", "vlan", "id", "9",
                  check=False).returncode == 0
    finally:
        drop(name, wire)


def api_run(mode, count):
    nics = ["eth0"] if mode == "vlans" else [f"nic{i}" for i in range(count)]
    name, wire = namespace(nics)
    agent = AgentProcess(tempfile.mkdtemp(prefix="net-bench-"), extra_args=("--manage-network", "--netns", name))
    try:
        agent.start()
        c = connect(agent.port)
        s = login(c, agent.password)
        pifs = {rpc(c, "PIF.get_device", s, p): p for p in rpc(c, "PIF.get_all", s)}
        t0 = time.monotonic()
        made = []
        if mode == "vlans":
            for tag in range(1, count + 1):
                net = rpc(c, "network.create", s, {"name_label": f"vlan {tag}", "name_description": "",
                                                   "MTU": "1500", "other_config": {}, "tags": []})
                made.append((rpc(c, "VLAN.create", s, pifs["eth0"], str(tag), net), net))
        else:
            for nic in nics:
                rpc(c, "PIF.plug", s, pifs[nic])
        t1 = time.monotonic()
        links = ip("-n", name, "-o", "link").stdout.count("\n")
        if mode == "vlans":
            for vlan, net in made:
                rpc(c, "VLAN.destroy", s, vlan)
                rpc(c, "network.destroy", s, net)
        else:
            for nic in nics:
                rpc(c, "PIF.unplug", s, pifs[nic])
        t2 = time.monotonic()
        left = ip("-n", name, "-o", "link").stdout.count("\n")
        return t1 - t0, t2 - t1, links, left
    finally:
        agent.cleanup()
        drop(name, wire)


def direct_run(mode, count):
    from pyroute2 import NetNS
    nics = ["eth0"] if mode == "vlans" else [f"nic{i}" for i in range(count)]
    name, wire = namespace(nics)
    try:
        with NetNS(name) as ipr:
            eth0 = ipr.link_lookup(ifname="eth0")[0] if mode == "vlans" else None
            t0 = time.monotonic()
            for i in range(count):
                bridge = f"xapi{i}" if mode == "vlans" else f"xenbr{i}"
                ipr.link("add", ifname=bridge, kind="bridge")
                br = ipr.link_lookup(ifname=bridge)[0]
                ipr.link("set", index=br, state="up")
                if mode == "vlans":
                    ipr.link("add", ifname=f"eth0.{i + 1}", kind="vlan", link=eth0, vlan_id=i + 1)
                    port = ipr.link_lookup(ifname=f"eth0.{i + 1}")[0]
                else:
                    port = ipr.link_lookup(ifname=nics[i])[0]
                ipr.link("set", index=port, master=br)
                ipr.link("set", index=port, state="up")
            t1 = time.monotonic()
            for i in range(count):
                bridge = f"xapi{i}" if mode == "vlans" else f"xenbr{i}"
                if mode == "vlans":
                    ipr.link("del", index=ipr.link_lookup(ifname=f"eth0.{i + 1}")[0])
                else:
                    ipr.link("set", index=ipr.link_lookup(ifname=nics[i])[0], master=0)
                ipr.link("del", index=ipr.link_lookup(ifname=bridge)[0])
            t2 = time.monotonic()
        return t1 - t0, t2 - t1
    finally:
        drop(name, wire)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--mode", choices=("auto", "vlans", "bridges"), default="auto")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("net_setup needs root (network namespaces)")
    mode = args.mode
    if mode in ("auto", "vlans") and not has_8021q():
        if mode == "vlans":
            sys.exit("this kernel has no 802.1Q support (CONFIG_VLAN_8021Q): no VLAN figure here")
        print("#" * 78)
        print("# NOTE: this kernel has no 802.1Q support (CONFIG_VLAN_8021Q): measuring")
        print(f"# {args.count} BRIDGES with a veth port each (PIF.plug/unplug) INSTEAD OF VLANs.")
        print("# Run it on a kernel with 8021q (the Xen lab's dom0) for the VLAN figure.")
        print("#" * 78)
        mode = "bridges"
    elif mode == "auto":
        mode = "vlans"
    d_make, d_drop = direct_run(mode, args.count)
    a_make, a_drop, links, left = api_run(mode, args.count)
    what = "VLANs with their bridges" if mode == "vlans" else "bridges with a veth port each"
    print(f"{args.count} {what}; the agent's namespace had {links} links at the peak, {left} after")
    for label, d, a in (("create", d_make, a_make), ("destroy", d_drop, a_drop),
                        ("total", d_make + d_drop, a_make + a_drop)):
        print(f"{label:8} direct {d:7.2f}s ({args.count / d:7.1f}/s)   API {a:7.2f}s ({args.count / a:7.1f}/s)"
              f"   ratio {d / a:.2f}")
    print(f"ratio (direct time / API time, target >= 0.5): {(d_make + d_drop) / (a_make + a_drop):.2f}")


if __name__ == "__main__":
    main()
