"""Encoding cost of VM.get_all_records at scale: our XML-RPC and JSON-RPC vs xmlrpc.client.

    python bench/records_scale.py [--records N] [--repeat R]

Prints seconds (best of R runs) and the ratio xmlrpc.client.dumps / ours. No assertions.
"""

import argparse
import os
import random
import sys
import time
import uuid
import xmlrpc.client

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hostagent.datamodel import types as T  # noqa: E402
from hostagent.datamodel.api import Api, build_api  # noqa: E402
from hostagent.datamodel.decl import cls, field  # noqa: E402
from hostagent.rpc import jsonrpc  # noqa: E402
from hostagent.rpc.xmlrpc import XmlEncoder  # noqa: E402

SMAP = T.MapOf(T.STRING, T.STRING)
OPS = T.Enum("vm_operations", ("start", "clean_shutdown", "clean_reboot", "suspend", "pool_migrate"))


def synthetic_vm():
    """A 90-field stand-in with VM's mix of types, for when the real VM class is not declared."""
    kinds = ([T.STRING] * 19 + [T.SetOf(T.Ref("VBD"))] * 12 + [T.SetOf(OPS)] * 3 + [T.INT] * 15
             + [SMAP] * 12 + [T.Ref("host")] * 12 + [T.BOOL] * 9
             + [T.Enum("vm_power_state", ("Halted", "Running", "Paused", "Suspended"))] * 6
             + [T.FLOAT, T.DATETIME])
    names = [f"field_{i}" for i in range(len(kinds))]
    names[0], names[1], names[kinds.index(T.INT)] = "uuid", "name_label", "memory_static_max"
    return Api((cls("VM", "synthetic", [field(n, t) for n, t in zip(names, kinds)]),), ())


def load_api():
    try:
        api = build_api()
        if "VM" in api.classes:
            return api, "VM class from hostagent.datamodel (build_api)"
        why = "build_api() has no VM class"
    except Exception as e:  # the model may be mid-edit
        why = f"build_api() failed: {e!r}"[:200]
    return synthetic_vm(), f"SYNTHETIC 90-field VM class ({why})"


def ref():
    return "OpaqueRef:" + str(uuid.UUID(int=random.getrandbits(128), version=4))


def value_for(f, i, rnd):
    t, name, k = f.type, f.name, f.type.kind
    if k == "string":
        if name == "uuid":
            return str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        if name == "name_label":
            return f"vm-{i:05d} (Debian 12 web tier)"
        if name == "name_description":
            return "Installed via xe CLI & tuned <by ops>" if i % 50 == 0 else "web server"
        return rnd.choice(["", "", "BIOS order", "pygrub", "console=hvc0 root=/dev/xvda1", "0:0"])
    if k == "ref":
        return NULL if rnd.random() < 0.5 else ref()
    if k == "enum":
        return rnd.choice(t.values)
    if k == "int":
        if name.startswith("memory"):
            return rnd.choice([4, 8, 16, 32]) << 30  # > 2^32
        return rnd.randrange(0, 64)
    if k == "float":
        return 1.0 if rnd.random() < 0.9 else 0.1 * rnd.randrange(1, 40)
    if k == "bool":
        return rnd.random() < 0.3
    if k == "datetime":
        return "20240131T13:05:09Z"
    if k == "set":
        if t.elem.kind == "ref":
            return [ref() for _ in range(rnd.randrange(0, 4))]
        if t.elem.kind == "enum":
            return list(t.elem.values[:rnd.randrange(0, len(t.elem.values) + 1)])
        return [f"tag{j}" for j in range(rnd.randrange(0, 3))]
    if k == "map":
        n = rnd.choice([0, 0, 2, 5])
        if t.value.kind == "ref":
            return {f"blob{j}": ref() for j in range(n)}
        if t.value.kind == "enum":
            return {ref(): t.value.values[0] for _ in range(min(n, 1))}
        return {f"key-{j}": f"value {j} of {name}" for j in range(n)}
    return f.initial


NULL = T.NULL_REF


def build_records(api, n):
    rnd = random.Random(42)
    random.seed(42)
    fields = api.public_fields("VM")
    return {ref(): {f.name: value_for(f, i, rnd) for f in fields} for i in range(n)}


def ints_as_strings(v):
    """What the wire carries for ints; xmlrpc.client cannot send ints >= 2^31 as <int>."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, dict):
        return {k: ints_as_strings(x) for k, x in v.items()}
    if isinstance(v, list):
        return [ints_as_strings(x) for x in v]
    return v


def best(fns, repeat):
    """Best CPU and wall seconds of each function over `repeat` rounds.

    Rounds interleave the functions, so a neighbour's load on a shared machine
    falls on all of them alike; CPU time is steadier than wall time there.
    """
    cpu = [[] for _ in fns]
    wall = [[] for _ in fns]
    outs = [None] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            w0, c0 = time.perf_counter(), time.process_time()
            outs[i] = fn()
            cpu[i].append(time.process_time() - c0)
            wall[i].append(time.perf_counter() - w0)
    return [(min(c), min(w), out) for c, w, out in zip(cpu, wall, outs)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    api, source = load_api()
    print(f"model: {source}; {len(api.public_fields('VM'))} public fields")
    records = build_records(api, args.records)
    t = T.MapOf(T.Ref("VM"), T.RecordOf("VM"))
    enc = XmlEncoder(api)
    enc.success({}, t)  # compile the encoders outside the timing
    call = jsonrpc.Call("VM.get_all_records", [], 1, 2)
    stringly = ints_as_strings(records)

    one = next(iter(records.values()))
    (ours, ours_w, xml_out), (js, js_w, json_out), (ref_t, ref_w, ref_out), (rec_t, _, _) = best([
        lambda: enc.success(records, t),
        lambda: jsonrpc.success(records, t, call),
        lambda: xmlrpc.client.dumps(({"Status": "Success", "Value": stringly},),
                                    methodresponse=True).encode("utf-8"),
        lambda: [enc.success(one, T.RecordOf("VM")) for _ in range(1000)],
    ], args.repeat)

    print(f"{args.records} VM records, best of {args.repeat} interleaved rounds (CPU s / wall s / reply size):")
    rows = [("ours XmlEncoder.success (VM ref -> VM record) map", ours, ours_w, xml_out),
            ("ours jsonrpc.success", js, js_w, json_out),
            ("xmlrpc.client.dumps, ints as decimal strings", ref_t, ref_w, ref_out)]
    for label, c, w, out in rows:
        print(f"  {label:50s} {c:7.3f} {w:7.3f} {len(out) / 1e6:7.1f} MB")
    print(f"  {'ratio dumps / ours (XML-RPC)':50s} {ref_t / ours:7.2f} {ref_w / ours_w:7.2f}")
    print(f"  {'ratio dumps / ours (JSON-RPC)':50s} {ref_t / js:7.2f} {ref_w / js_w:7.2f}")
    print(f"  {'VM.get_record reply, one record (us)':50s} {rec_t / 1000 * 1e6:7.1f}")
    print("note: xmlrpc.client is given ints as decimal strings (it refuses ints >= 2^31, and the wire"
          " carries decimal text anyway) and tags every string <string>, so its reply is larger.")


if __name__ == "__main__":
    main()
