"""Xen Orchestra's client library (npm `xen-api`) against the agent process.

The test setup installs a pinned `xen-api` into build/npm/ (git-ignored) with
the machine's npm, and drives it through tests/functional/xo_client.mjs, over
JSON-RPC and over XML-RPC: login, the full object fetch (system.listMethods,
every get_all_records, event.inject), the event.from loop that keeps its
cache, `callAsync` (Async.* plus task watching through events), `barrier()`
(pool.add_to_other_config seen back through event.from) and `disconnect()`
(session.logout).

Skips, never fails, when node or npm is missing, Node.js is too old for the
pinned version, or npm cannot fetch the package.
"""

import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
import xmlrpc.client

import pytest
import XenAPI
from tests.support import wait_for

# 4.7.6 is the newest xen-api on the registry. It declares node >= 18, and its HTTP client
# (undici 6) needs 18.17: Debian 12's nodejs (18.19) and this machine's 20 both qualify.
XEN_API_VERSION = "4.7.6"
NODE_MIN = (18, 17)
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = os.path.join(REPO, "build", "npm", f"xen-api-{XEN_API_VERSION}")
SCRIPT = os.path.join(HERE, "xo_client.mjs")
NULL = "OpaqueRef:NULL"
GiB = 1 << 30


# --------------------------------------------------------------------------- setup

def _node_version(node):
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    m = re.match(r"v(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None, out


@pytest.fixture(scope="module")
def xen_api_modules():
    """node_modules holding xen-api@XEN_API_VERSION (installed once into build/npm/)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("Xen Orchestra's xen-api needs node and npm, and this machine lacks "
                    + " and ".join(n for n, p in (("node", node), ("npm", npm)) if not p))
    version, text = _node_version(node)
    if version is None or version < NODE_MIN:
        pytest.skip(f"xen-api {XEN_API_VERSION} needs Node.js >= {NODE_MIN[0]}.{NODE_MIN[1]}; "
                    f"this machine has {text or 'an unknown version'}")
    modules = os.path.join(CACHE, "node_modules")
    stamp = os.path.join(CACHE, ".installed")
    if os.path.exists(stamp):
        with open(stamp) as f:
            if f.read().strip() == XEN_API_VERSION:
                return modules
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, "package.json"), "w") as f:
        f.write('{"name": "hostagent-xo-test", "private": true}\n')
    env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false",
               npm_config_audit="false")
    try:
        r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                            f"xen-api@{XEN_API_VERSION}"], cwd=CACHE, env=env,
                           capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm install xen-api@{XEN_API_VERSION} did not finish in 300 s (registry unreachable?)")
    if r.returncode != 0 or not os.path.exists(os.path.join(modules, "xen-api", "index.mjs")):
        pytest.skip(f"npm could not install xen-api@{XEN_API_VERSION} (exit {r.returncode}): "
                    + (r.stderr or r.stdout).strip()[-800:])
    with open(stamp, "w") as f:
        f.write(XEN_API_VERSION + "\n")
    return modules


# --------------------------------------------------------------------------- the Node.js side

class XoClient:
    """xo_client.mjs as a child process: JSON lines out (read by a thread), commands in."""

    def __init__(self, modules, agent, transport):
        self.proc = subprocess.Popen(
            ["node", SCRIPT, modules, agent.url.rstrip("/"), "root", agent.password, transport],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, NODE_ENV="production"))
        self.lines = queue.Queue()
        self.seen = []
        self.stderr = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line))
        self.lines.put((time.monotonic(), None))

    def _drain(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def send(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def mark(self) -> int:
        return len(self.seen)

    def expect(self, predicate, timeout, what, since=None):
        """The first message (arrival time, object) matching predicate, looking first at those
        already read from position `since` on; a fatal message fails at once."""
        if since is not None:
            for at, msg in self.seen[since:]:
                if predicate(msg):
                    return at, msg
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"xo_client: no {what} within {timeout} s; saw {self.seen[-10:]}; "
                                     f"stderr {''.join(self.stderr)[-2000:]}")
            try:
                at, line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"xo_client exited ({self.proc.wait(10)}) before {what}; "
                                     f"saw {self.seen[-10:]}; stderr {''.join(self.stderr)[-2000:]}")
            msg = json.loads(line)
            self.seen.append((at, msg))
            if msg.get("event") == "fatal":
                raise AssertionError("xo_client failed: " + msg["error"])
            if predicate(msg):
                return at, msg

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


# --------------------------------------------------------------------------- helpers

def login(agent, originator="xo-test"):
    s = XenAPI.Session(agent.url)
    s.xenapi.login_with_password("root", agent.password, "2.21", originator)
    return s


def vm_record(name):
    return {
        "name_label": name, "name_description": "made by test_xen_orchestra", "user_version": "1",
        "is_a_template": False, "affinity": NULL, "memory_static_max": str(GiB),
        "memory_dynamic_max": str(GiB), "memory_dynamic_min": str(GiB), "memory_static_min": str(GiB),
        "VCPUs_params": {}, "VCPUs_max": "1", "VCPUs_at_startup": "1", "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart", "actions_after_crash": "restart", "PV_bootloader": "",
        "PV_kernel": "", "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "cd"}, "platform": {}, "PCI_bus": "",
        "other_config": {}, "recommendations": "",
    }


def object_counts(agent, x):
    """What xen-api's full fetch should hold: every class with get_all_records, empty ones left out.

    Sessions are left out: xen-api's own login adds one after this count is taken."""
    methods = xmlrpc.client.ServerProxy(agent.url).system.listMethods()  # bare, as xen-api reads it
    classes = [m[:-len(".get_all_records")] for m in methods if m.endswith(".get_all_records")]
    counts = {}
    for cls in classes:
        n = len(getattr(x, cls).get_all_records())
        if n and cls != "session":
            counts[cls] = n
    return counts


# --------------------------------------------------------------------------- the test

@pytest.mark.parametrize("transport", ["json-rpc", "xml-rpc"])
def test_xen_orchestra_client_session(agent, xen_api_modules, transport):
    s = login(agent)
    x = s.xenapi
    vm = x.VM.create(vm_record(f"xo-vm-{transport}"))
    net = x.network.create({"name_label": f"xo-net-{transport}", "name_description": "", "other_config": {}})
    dom0 = [r for r, v in x.VM.get_all_records().items() if v["is_control_domain"]][0]
    pool = x.pool.get_all()[0]
    expected = object_counts(agent, x)
    log_mark = len(agent.log_lines)
    client = XoClient(xen_api_modules, agent, transport)
    made = []
    try:
        # login and the full fetch
        _, fetched = client.expect(lambda m: m["event"] == "fetched", 60, "fetched")
        counts = {k: v for k, v in fetched["counts"].items() if k != "session"}
        assert counts == expected
        assert fetched["pool"] == pool
        session = fetched["sessionId"]
        assert re.fullmatch(r"OpaqueRef:[0-9a-f-]{36}", session)
        client.expect(lambda m: m["event"] == "ready", 10, "ready")
        assert f"session {session.split(':', 1)[1][:8]} opened for root" in agent.log_text()

        # a change made by another client reaches the library's cache within a second
        started = time.monotonic()
        x.network.set_name_label(net, f"xo-renamed-{transport}")
        at, _ = client.expect(lambda m: m["event"] == "update" and m["ref"] == net
                              and m["name_label"] == f"xo-renamed-{transport}", 5, "the rename")
        rename_latency = at - started
        assert rename_latency < 1.0, f"the rename reached xen-api after {rename_latency:.3f} s"
        started = time.monotonic()
        new_net = x.network.create({"name_label": f"xo-new-{transport}", "other_config": {}})
        made.append(new_net)
        at, msg = client.expect(lambda m: m["event"] == "add" and m["ref"] == new_net, 5, "the new network")
        assert (msg["type"], msg["name_label"]) == ("network", f"xo-new-{transport}")
        assert at - started < 1.0, f"the new network reached xen-api after {at - started:.3f} s"
        print(f"\n{transport}: a rename reached xen-api's cache in {rename_latency:.3f} s, "
              f"a new network in {at - started:.3f} s")

        # callAsync: Async.VM.destroy, the task watched through events, its void result
        mark = client.mark()
        client.send(cmd="callAsync", method="VM.destroy", args=[vm])
        _, msg = client.expect(lambda m: m["event"] == "callAsync", 20, "callAsync VM.destroy")
        assert msg == {"event": "callAsync", "result": ""}
        with pytest.raises(XenAPI.Failure) as ei:
            x.VM.get_record(vm)
        assert ei.value.details == ["HANDLE_INVALID", "VM", vm]
        client.expect(lambda m: m["event"] == "remove" and m["ref"] == vm, 5, "the VM's removal", since=mark)
        # xen-api destroys its task once settled
        wait_for(lambda: not [t for t in x.task.get_all_records().values()
                              if t["name_label"] == "Async.VM.destroy"], 5, "xen-api to destroy its task")

        # callAsync with a ref result (the task's <value>OpaqueRef:…</value> parsed by xen-api)
        client.send(cmd="callAsync", method="network.create",
                    args=[{"name_label": f"xo-async-{transport}", "other_config": {"by": "xo"}}])
        _, msg = client.expect(lambda m: m["event"] == "callAsync", 20, "callAsync network.create")
        ref = msg.get("result")
        assert isinstance(ref, str) and ref.startswith("OpaqueRef:"), msg
        made.append(ref)
        assert x.network.get_name_label(ref) == f"xo-async-{transport}"
        assert x.network.get_other_config(ref) == {"by": "xo"}

        # a failing callAsync: the task's error_info becomes the library's error
        sync_error = None
        try:
            x.VM.destroy(dom0)
        except XenAPI.Failure as e:
            sync_error = e.details
        assert sync_error and sync_error[0] == "OPERATION_NOT_ALLOWED"
        client.send(cmd="callAsync", method="VM.destroy", args=[dom0])
        _, msg = client.expect(lambda m: m["event"] == "callAsync", 20, "callAsync VM.destroy(dom0)")
        assert msg["error"] == {"code": sync_error[0], "params": sync_error[1:]}

        # barrier(): pool.add_to_other_config seen back through event.from, entry removed afterwards
        client.send(cmd="barrier", ref=net)
        _, msg = client.expect(lambda m: m["event"] == "barrier", 10, "barrier")
        assert msg["name_label"] == f"xo-renamed-{transport}"
        wait_for(lambda: not [k for k in x.pool.get_other_config(pool) if k.startswith("xo:barrier:")],
                 5, "xen-api to remove its barrier key")

        # disconnect(): session.logout, which the agent logs
        client.send(cmd="disconnect")
        _, msg = client.expect(lambda m: m["event"] == "disconnected", 10, "disconnected")
        assert msg["sessionId"] == session
        wait_for(lambda: f"session {session.split(':', 1)[1][:8]} ended (logout)" in agent.log_text(),
                 10, "the agent to log the logout")
        with pytest.raises(XenAPI.Failure) as ei:
            x.session.get_record(session)
        assert ei.value.details == ["HANDLE_INVALID", "session", session]
        client.send(cmd="exit")
        assert client.proc.wait(15) == 0

        # the library warned about nothing (its console.warn marks calls it could not make);
        # Node.js's own deprecation notices about the library's dependencies are not ours
        warnings = [line for line in client.stderr if line.strip()
                    and not re.match(r"\(node:\d+\) \[?\w*\]? ?\w*Warning|\(Use `node --trace", line)]
        assert warnings == []
        errors = [line for line in agent.log_lines[log_mark:] if re.search(r" (ERROR|CRITICAL) |Traceback", line)]
        assert errors == []
    finally:
        client.close()
        for ref in made:
            try:
                x.network.destroy(ref)
            except XenAPI.Failure:
                pass
        x.network.destroy(net)
        s.xenapi.session.logout()
