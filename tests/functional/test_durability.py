"""Persistence and restart (DESIGN.md): acknowledged changes survive SIGKILL, restarts keep
sessions and the host's own objects, the first start bootstraps once, passwords change live.

The SIGKILL test runs a real XenAPI client in a thread making up to 200 mutations
(VM.create with a full record, network.create, set_name_label, add_to_other_config,
remove_from_other_config, add_tags, destroy) and recording each one whose reply arrived.
The main thread kills the agent after a seeded number of acknowledged mutations (20..179)
plus a short random delay, restarts it on the same state dir, and checks that every
acknowledged change is there, destroyed objects stay destroyed, and the one call in flight
is either wholly there or wholly absent. Seeds: HOSTAGENT_DURABILITY_SEEDS="1,2,3" replays others.
"""

import copy
import http.client
import json
import os
import random
import stat
import subprocess
import sys
import threading
import time
import xmlrpc.client

import pytest
import XenAPI

from hostagent.datamodel.api import build_api

SEEDS = [int(s) for s in os.environ.get("HOSTAGENT_DURABILITY_SEEDS", "4242,90210,31337").split(",")]
N_MUTATIONS = 200
KILL_WINDOW = (20, 180)
TIMEOUT = 10.0
VM_FIELDS = frozenset(f.name for f in build_api().public_fields("VM"))
NETWORK_FIELDS = frozenset(f.name for f in build_api().public_fields("network"))


def vm_record(name: str, rng: random.Random, i: int) -> dict:
    """A full VM.create record: every mandatory member of §3.0, ints as decimal strings."""
    mib = 2 ** 20
    mem = str(rng.choice((256, 512, 1024, 4096)) * mib)
    vcpus = str(rng.randint(1, 4))
    return {
        "name_label": name, "name_description": f"durability VM {i}", "user_version": str(rng.randint(1, 9)),
        "is_a_template": rng.random() < 0.2, "affinity": "OpaqueRef:NULL",
        "memory_static_max": mem, "memory_dynamic_max": mem, "memory_dynamic_min": mem, "memory_static_min": mem,
        "VCPUs_params": {"weight": str(rng.randint(1, 512))}, "VCPUs_max": vcpus, "VCPUs_at_startup": vcpus,
        "actions_after_shutdown": "destroy", "actions_after_reboot": rng.choice(("restart", "destroy")),
        "actions_after_crash": rng.choice(("restart", "destroy", "preserve")),
        "PV_bootloader": rng.choice(("", "pygrub")), "PV_kernel": "", "PV_ramdisk": "",
        "PV_args": f"console=hvc0 i={i}", "PV_bootloader_args": "", "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": rng.choice(("cd", "dc", "n"))},
        "platform": {"acpi": "1", "apic": "true", "nx": rng.choice(("true", "false"))}, "PCI_bus": "",
        "other_config": {"created-by": "durability", "i": str(i)}, "recommendations": "",
        "tags": [f"t{i}"],
    }


def network_record(name: str, rng: random.Random, i: int) -> dict:
    return {"name_label": name, "name_description": f"durability network {i}",
            "MTU": str(rng.choice((1500, 9000))), "other_config": {"i": str(i)}, "tags": []}


# ---------------------------------------------------------------------- the expected state

class Expected:
    """What the client knows the agent acknowledged, per object."""

    def __init__(self):
        self.objects = {}  # (cls, ref) -> {"sent": create record, "name_label", "other_config", "tags", "touched"}
        self.destroyed = {}  # (cls, ref) -> the object's expected state when destroyed
        self.names_sent = {"VM": set(), "network": set()}

    @staticmethod
    def created(record: dict) -> dict:
        return {"sent": copy.deepcopy(record), "name_label": record["name_label"],
                "other_config": dict(record["other_config"]), "tags": list(record.get("tags", [])),
                "touched": set(record["other_config"])}

    def apply(self, op, result) -> None:
        """Record an acknowledged mutation."""
        kind, cls, ref, args = op
        if kind == "create":
            self.objects[(cls, result)] = self.created(args)
            return
        if kind == "destroy":
            self.destroyed[(cls, ref)] = self.objects.pop((cls, ref))
            return
        self.objects[(cls, ref)] = applied(self.objects[(cls, ref)], op)


def applied(state: dict, op) -> dict:
    """`state` after the (non-create, non-destroy) mutation `op`."""
    kind, _, _, args = op
    new = copy.deepcopy(state)
    if kind == "set_name_label":
        new["name_label"] = args
    elif kind == "add_to_other_config":
        key, value = args
        new["other_config"][key] = value
        new["touched"].add(key)
    elif kind == "remove_from_other_config":
        new["other_config"].pop(args, None)
        new["touched"].add(args)
    elif kind == "add_tags":
        if args not in new["tags"]:
            new["tags"].append(args)
    else:
        raise AssertionError(kind)
    return new


def mismatches(cls: str, expected: dict, actual: dict) -> list:
    """How `actual` (a fetched record) differs from an object's expected state."""
    out = []
    for name, value in expected["sent"].items():
        if name in ("name_label", "other_config", "tags"):
            continue
        got = actual.get(name)
        if isinstance(got, int) and not isinstance(got, bool):
            got = str(got)  # JSON-RPC ints are numbers; the client sent decimal strings
        if got != value:
            out.append(f"{name}: {got!r} != sent {value!r}")
    if actual.get("name_label") != expected["name_label"]:
        out.append(f"name_label: {actual.get('name_label')!r} != {expected['name_label']!r}")
    for key in sorted(expected["touched"]):
        if actual.get("other_config", {}).get(key) != expected["other_config"].get(key):
            out.append(f"other_config[{key!r}]: {actual.get('other_config', {}).get(key)!r} != "
                       f"{expected['other_config'].get(key)!r}")
    if sorted(actual.get("tags", [])) != sorted(expected["tags"]):
        out.append(f"tags: {actual.get('tags')!r} != {expected['tags']!r}")
    return out


# ------------------------------------------------------------------------------ the client

class Mutator(threading.Thread):
    """Makes up to N_MUTATIONS seeded mutations; stops at the first error."""

    def __init__(self, url, password, seed):
        super().__init__(daemon=True)
        self.url, self.password = url, password
        self.rng = random.Random(seed)
        self.expected = Expected()
        self.cond = threading.Condition()
        self.acked = 0
        self.pending = None  # the mutation whose reply has not arrived
        self.error = None
        self.done = False
        self.logged_in = threading.Event()

    def next_op(self, i):
        rng, objects = self.rng, self.expected.objects
        mine = sorted(objects)
        choices = ["create_vm"] * 3 + ["create_network"] * 2
        if mine:
            choices += ["set_name_label"] * 3 + ["add_to_other_config"] * 3 + \
                       ["remove_from_other_config"] * 2 + ["add_tags"] * 2 + ["destroy"]
        what = rng.choice(choices)
        if what == "create_vm":
            name = f"vm-{i}-{rng.getrandbits(24):06x}"
            self.expected.names_sent["VM"].add(name)
            return ("create", "VM", None, vm_record(name, rng, i))
        if what == "create_network":
            name = f"net-{i}-{rng.getrandbits(24):06x}"
            self.expected.names_sent["network"].add(name)
            return ("create", "network", None, network_record(name, rng, i))
        cls, ref = rng.choice(mine)
        state = objects[(cls, ref)]
        if what == "set_name_label":
            name = f"{cls.lower()}-renamed-{i}-{rng.getrandbits(24):06x}"
            self.expected.names_sent[cls].add(name)
            return ("set_name_label", cls, ref, name)
        if what == "add_to_other_config":
            return ("add_to_other_config", cls, ref, (f"k{i}", f"v{i}-{rng.getrandbits(16)}"))
        if what == "remove_from_other_config":
            keys = sorted(state["other_config"])
            key = rng.choice(keys) if keys and rng.random() < 0.85 else f"absent{i}"
            return ("remove_from_other_config", cls, ref, key)
        if what == "add_tags":
            tags = state["tags"]
            tag = rng.choice(tags) if tags and rng.random() < 0.2 else f"tag{i}"
            return ("add_tags", cls, ref, tag)
        return ("destroy", cls, ref, None)

    def call(self, api, op):
        kind, cls, ref, args = op
        c = getattr(api, cls)
        if kind == "create":
            return c.create(args)
        if kind == "destroy":
            return c.destroy(ref)
        if kind == "add_to_other_config":
            return c.add_to_other_config(ref, *args)
        return getattr(c, kind)(ref, args)

    def run(self):
        try:
            session = XenAPI.Session(self.url)
            session.xenapi.login_with_password("root", self.password, "1.0", "durability")
        except Exception as e:  # noqa: BLE001
            self.error = e
            self.logged_in.set()
            return
        self.logged_in.set()
        try:
            for i in range(N_MUTATIONS):
                op = self.next_op(i)
                with self.cond:
                    self.pending = op
                try:
                    result = self.call(session.xenapi, op)
                except Exception as e:  # noqa: BLE001 - the agent was killed (or a real failure)
                    self.error = e
                    return
                with self.cond:
                    self.expected.apply(op, result)
                    self.pending = None
                    self.acked += 1
                    self.cond.notify_all()
        finally:
            with self.cond:
                self.done = True
                self.cond.notify_all()


# ------------------------------------------------------------------------------- helpers

class JsonRpc:
    """Raw JSON-RPC 1.0 calls: no client-side re-login that could hide SESSION_INVALID."""

    def __init__(self, port):
        self.port = port
        self.n = 0

    def call(self, method, *params):
        self.n += 1
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            conn.request("POST", "/jsonrpc", body=json.dumps({"method": method, "params": list(params),
                                                              "id": self.n}),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        assert r.status == 200, (method, r.status, data[:300])
        reply = json.loads(data)
        assert reply["id"] == self.n
        return reply

    def ok(self, method, *params):
        reply = self.call(method, *params)
        assert reply["error"] is None, (method, reply["error"])
        return reply["result"]


def login(agent, password=None):
    rpc = JsonRpc(agent.port)
    return rpc, rpc.ok("session.login_with_password", "root", password or agent.password, "1.0", "durability")


def all_records(rpc, session) -> dict:
    """get_all_records of every class that has get_all."""
    methods = rpc.ok("system.listMethods")
    classes = sorted(m[:-len(".get_all")] for m in methods if m.endswith(".get_all"))
    assert "VM" in classes and "session" not in classes
    out = {}
    for cls in classes:
        records = rpc.ok(f"{cls}.get_all_records", session)
        assert sorted(rpc.ok(f"{cls}.get_all", session)) == sorted(records), cls
        out[cls] = records
    return out


def host_objects(rpc, session) -> dict:
    """Refs and uuids of the objects a host has from its first start."""
    pool = rpc.ok("pool.get_all", session)
    assert len(pool) == 1
    host = rpc.ok("pool.get_master", session, pool[0])
    host_rec = rpc.ok("host.get_record", session, host)
    dom0 = host_rec["control_domain"]
    return {
        "pool": (pool[0], rpc.ok("pool.get_uuid", session, pool[0])),
        "host": (host, host_rec["uuid"]),
        "dom0": (dom0, rpc.ok("VM.get_uuid", session, dom0)),
        "host_metrics": (host_rec["metrics"], rpc.ok("host_metrics.get_uuid", session, host_rec["metrics"])),
        "host_cpus": sorted((c, rpc.ok("host_cpu.get_uuid", session, c)) for c in host_rec["host_CPUs"]),
    }


def log_errors(agent) -> list:
    return [line for line in agent.log_text().splitlines()
            if " ERROR " in line or " CRITICAL " in line or "Traceback" in line or "Unhandled" in line]


# ---------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_mid_stream_loses_no_acknowledged_change(fresh_agent, seed):
    agent = fresh_agent.start()
    rng = random.Random(seed)
    kill_after = rng.randrange(*KILL_WINDOW)
    # right after an acknowledgement (the hardest moment for durability) or inside a later call
    delay = 0.0 if rng.random() < 0.5 else rng.uniform(0.0, 0.004)
    rpc, session = login(agent)
    baseline = {cls: set(rpc.ok(f"{cls}.get_all", session)) for cls in ("VM", "network")}
    dom0 = host_objects(rpc, session)["dom0"][0]

    client = Mutator(agent.url, agent.password, seed)
    client.start()
    with client.cond:
        reached = client.cond.wait_for(lambda: client.acked >= kill_after or client.done, timeout=120)
    assert reached, f"seed={seed}: only {client.acked} mutations acknowledged in 120 s"
    assert client.error is None, f"seed={seed}: mutation failed before the kill: {client.error!r}"
    time.sleep(delay)  # land somewhere inside a following call
    agent.kill()
    client.join(30)
    assert not client.is_alive(), f"seed={seed}: the client hung after the kill"
    assert client.acked >= kill_after
    assert client.acked < N_MUTATIONS, f"seed={seed}: the kill came after the last mutation"
    assert client.error is not None and not isinstance(client.error, XenAPI.Failure), \
        f"seed={seed}: the client stopped with {client.error!r}, not a lost connection"
    assert isinstance(client.error, (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError)), \
        f"seed={seed}: {client.error!r}"

    agent.start()  # same state dir
    rpc, session = login(agent)
    expected, pending = client.expected, client.pending
    assert pending is not None
    actual = {cls: rpc.ok(f"{cls}.get_all_records", session) for cls in ("VM", "network")}
    where = f"seed={seed} (killed after {client.acked} acknowledged mutations, in flight: " \
            f"{pending[0]} {pending[1]} {pending[2]})"
    problems = []

    # every acknowledged object is there with its acknowledged state
    for (cls, ref), state in sorted(expected.objects.items()):
        rec = actual[cls].get(ref)
        targeted = pending[0] not in ("create",) and pending[1:3] == (cls, ref)
        if rec is None:
            if not (targeted and pending[0] == "destroy"):
                problems.append(f"{cls} {ref} ({state['name_label']}) was acknowledged and is gone")
            continue
        diff = mismatches(cls, state, rec)
        if diff and targeted and pending[0] != "destroy":
            diff = mismatches(cls, applied(state, pending), rec) and diff
        if diff:
            problems.append(f"{cls} {ref}: " + "; ".join(diff))

    # destroyed objects stay destroyed
    for cls, ref in sorted(expected.destroyed):
        if ref in actual[cls]:
            problems.append(f"{cls} {ref} was destroyed (acknowledged) and is back")

    # anything else is the in-flight create, whole, or nothing
    for cls in ("VM", "network"):
        known = baseline[cls] | {ref for (c, ref) in expected.objects if c == cls} \
            | {ref for (c, ref) in expected.destroyed if c == cls}
        extra = sorted(set(actual[cls]) - known)
        if not extra:
            continue
        if pending[0] != "create" or pending[1] != cls or len(extra) > 1:
            problems.append(f"unexpected {cls} objects {extra}")
            continue
        diff = mismatches(cls, Expected.created(pending[3]), actual[cls][extra[0]])
        if diff:
            problems.append(f"half-written {cls} {extra[0]}: " + "; ".join(diff))
    for ref in sorted(baseline["VM"] | baseline["network"]):
        if ref not in actual["VM"] and ref not in actual["network"]:
            problems.append(f"pre-existing object {ref} is gone")

    # no half-written object: every record is whole and named by the client
    for ref, rec in actual["VM"].items():
        if set(rec) != VM_FIELDS:
            problems.append(f"VM {ref} record has fields {sorted(set(rec) ^ VM_FIELDS)} wrong")
        if ref not in baseline["VM"] and rec["name_label"] not in expected.names_sent["VM"]:
            problems.append(f"VM {ref} has a name the client never sent: {rec['name_label']!r}")
    for ref, rec in actual["network"].items():
        if set(rec) != NETWORK_FIELDS:
            problems.append(f"network {ref} record has fields {sorted(set(rec) ^ NETWORK_FIELDS)} wrong")
        if ref not in baseline["network"] and rec["name_label"] not in expected.names_sent["network"]:
            problems.append(f"network {ref} has a name the client never sent: {rec['name_label']!r}")
    assert dom0 in actual["VM"]
    assert not problems, where + ":\n" + "\n".join(problems[:40])
    # the acknowledged world is not trivially small
    assert len(expected.objects) + len(expected.destroyed) >= 5, where
    assert not log_errors(agent), log_errors(agent)


def test_restart_after_sigterm_keeps_sessions_objects_and_host_identity(fresh_agent):
    agent = fresh_agent.start()
    rpc, session = login(agent)
    before_ids = host_objects(rpc, session)
    rng = random.Random(5)
    vm = rpc.ok("VM.create", session, vm_record("survivor", rng, 1))
    net = rpc.ok("network.create", session, network_record("survivor-net", rng, 1))
    rpc.ok("VM.add_to_other_config", session, vm, "restart", "yes")
    rpc.ok("VM.add_tags", session, vm, "kept")
    before = all_records(rpc, session)

    assert agent.stop() == 0, agent.log_text()[-3000:]
    assert not agent.alive()
    agent.start()
    rpc = JsonRpc(agent.port)

    # the session from before the restart still works (raw calls: no silent re-login)
    reply = rpc.call("VM.get_all", session)
    assert reply["error"] is None, reply
    assert vm in reply["result"]
    assert rpc.ok("session.get_this_host", session, session) == before_ids["host"][0]
    assert rpc.ok("session.get_is_local_superuser", session, session) is True

    after = all_records(rpc, session)
    assert host_objects(rpc, session) == before_ids  # same refs and uuids, nothing recreated
    for cls in ("VM", "network", "pool", "console", "VM_metrics", "host_cpu"):
        assert sorted(after[cls]) == sorted(before[cls]), cls
    assert after["VM"][vm] == before["VM"][vm]
    assert after["network"][net] == before["network"][net]
    assert after["VM"][vm]["other_config"]["restart"] == "yes" and "kept" in after["VM"][vm]["tags"]
    assert after["pool"] == before["pool"]
    for cls in before:  # no class gained or lost objects
        assert sorted(after[cls]) == sorted(before[cls]), cls
    assert not log_errors(agent), log_errors(agent)


def test_first_start_bootstraps_once(fresh_agent):
    assert not os.path.exists(fresh_agent.state_dir)
    agent = fresh_agent.start()
    rpc, session = login(agent)
    first = all_records(rpc, session)
    ids = host_objects(rpc, session)

    assert len(first["pool"]) == 1
    assert len(first["host"]) == 1
    host_ref, host = next(iter(first["host"].items()))
    pool = next(iter(first["pool"].values()))
    assert pool["master"] == host_ref
    control = [r for r, rec in first["VM"].items() if rec["is_control_domain"]]
    assert control == [host["control_domain"]]
    dom0 = first["VM"][control[0]]
    assert dom0["resident_on"] == host_ref and dom0["power_state"] == "Running"
    assert list(first["host_metrics"]) == [host["metrics"]]
    assert len(host["host_CPUs"]) >= 1
    assert sorted(first["host_cpu"]) == sorted(host["host_CPUs"])
    assert all(rec["host"] == host_ref for rec in first["host_cpu"].values())
    numbers = [int(rec["number"]) for rec in first["host_cpu"].values()]
    assert len(set(numbers)) == len(numbers)  # one object per CPU

    assert agent.stop() == 0
    agent.start()
    rpc, session = login(agent)
    second = all_records(rpc, session)
    assert host_objects(rpc, session) == ids
    for cls in first:
        assert sorted(second[cls]) == sorted(first[cls]), f"the second start changed the {cls} objects"
        uuids = lambda recs: sorted(r.get("uuid", "") for r in recs.values())  # noqa: E731
        assert uuids(second[cls]) == uuids(first[cls]), cls


def test_passwd_changes_the_root_password_of_a_running_agent(fresh_agent):
    agent = fresh_agent.start()
    path = os.path.join(agent.state_dir, "root-password")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600, oct(mode)
    old = agent.password
    assert old
    s = XenAPI.Session(agent.url)
    s.xenapi.login_with_password("root", old, "1.0", "passwd-test")
    s.xenapi.session.logout()

    new = "n3w-" + old[::-1] + "-\u00e9t\u00e9"
    proc = subprocess.run([sys.executable, "-m", "hostagent", "passwd", "root", "--state-dir", agent.state_dir],
                          input=new + "\n", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert agent.alive()

    s = XenAPI.Session(agent.url)
    s.xenapi.login_with_password("root", new, "1.0", "passwd-test")
    try:
        assert len(s.xenapi.pool.get_all()) == 1
    finally:
        s.xenapi.session.logout()
    with pytest.raises(XenAPI.Failure) as failed:
        XenAPI.Session(agent.url).xenapi.login_with_password("root", old, "1.0", "passwd-test")
    assert failed.value.details[0] == "SESSION_AUTHENTICATION_FAILED"
    users = os.path.join(agent.state_dir, "users.json")
    assert stat.S_IMODE(os.stat(users).st_mode) == 0o600
