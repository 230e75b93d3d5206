"""Wall time of `xe` commands beside the same calls from a bare Python process.

Starts an agent (embedded default) and times, over N runs each:
  - `xe vm-list --minimal` against a bare `python -c` that imports only xmlrpc.client
    and makes the same calls (login, VM.get_all_records_where, logout) and prints
    the uuids;
  - `xe vm-param-get uuid=... param-name=power-state` against the bare process doing
    login, VM.get_by_uuid, VM.get_record, logout.
Both go over the agent's Unix socket (xe's default) and over TCP (`-s -p --nossl`).
Both run with byte-code caching on (into a scratch PYTHONPYCACHEPREFIX, after one
untimed warm-up run), as an installed package is: this tree's environment may set
PYTHONDONTWRITEBYTECODE, which would make xe compile its modules on every run.
Prints the medians and the ratio xe / bare (target: at most 2).

    .venv/bin/python bench/xe_startup.py [--runs N]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tests.functional.agent import AgentProcess

BARE = r'''
import sys, xmlrpc.client
mode, where, password, what = sys.argv[1:5]
if mode == "unix":
    import http.client, socket
    class C(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(where)
    class T(xmlrpc.client.Transport):
        def make_connection(self, host):
            return C("localhost")
    proxy = xmlrpc.client.ServerProxy("http://localhost/", transport=T())
else:
    proxy = xmlrpc.client.ServerProxy(where)
s = proxy.session.login_with_password("root", password, "1.0", "bare")["Value"]
if what == "list":
    recs = proxy.VM.get_all_records_where(s, 'field "is_a_template" = "false"')["Value"]
    print(",".join(r["uuid"] for r in recs.values()))
else:
    ref = proxy.VM.get_by_uuid(s, what)["Value"]
    print(proxy.VM.get_record(s, ref)["Value"]["power_state"].lower())
proxy.session.logout(s)
'''


def run_once(argv, env):
    t0 = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{argv} failed: {out.stderr}")
    return elapsed, out.stdout.strip()


def paired(xe_argv, bare_argv, env, runs):
    """Medians of xe and of the bare client, run alternately so load hits both alike."""
    xs, bs = [], []
    for _ in range(runs):
        x, xout = run_once(xe_argv, env)
        b, bout = run_once(bare_argv, env)
        xs.append(x)
        bs.append(b)
    return statistics.median(xs), xout, statistics.median(bs), bout


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--no-bytecode-cache", action="store_true",
                   help="compile every module on every run (PYTHONDONTWRITEBYTECODE, as in a source tree)")
    args = p.parse_args()
    state = tempfile.mkdtemp(prefix="xe-bench-")
    agent = AgentProcess(os.path.join(state, "state")).start()
    try:
        xe = shutil.which("xe", path=os.path.dirname(sys.executable)) or "xe"
        conf = os.path.join(state, "hostagent.conf")
        with open(conf, "w") as f:
            f.write(f"[hostagent]\nunix-socket = {agent.socket}\n")
        env = {**os.environ, "HOSTAGENT_CONFIG": conf, "HOME": state,
               "PYTHONPYCACHEPREFIX": os.path.join(state, "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if args.no_bytecode_cache:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
            env.pop("PYTHONPYCACHEPREFIX")
        vm = subprocess.run([xe, "vm-list", "--minimal"], env=env, capture_output=True, text=True,
                            check=True).stdout.strip().split(",")[0]
        tcp = ["-s", "127.0.0.1", "-p", str(agent.port), "--nossl", "-pw", agent.password]
        bare = [sys.executable, "-c", BARE]
        cases = [
            ("vm-list --minimal (unix)", [xe, "vm-list", "--minimal"],
             bare + ["unix", agent.socket, "", "list"]),
            ("vm-param-get (unix)", [xe, "vm-param-get", f"uuid={vm}", "param-name=power-state"],
             bare + ["unix", agent.socket, "", vm]),
            ("vm-list --minimal (tcp)", [xe, *tcp, "vm-list", "--minimal"],
             bare + ["tcp", agent.url, agent.password, "list"]),
            ("vm-param-get (tcp)", [xe, *tcp, "vm-param-get", f"uuid={vm}", "param-name=power-state"],
             bare + ["tcp", agent.url, agent.password, vm]),
        ]
        print(f"{'command':28} {'xe ms':>8} {'bare ms':>8} {'ratio':>6}")
        worst = 0.0
        for label, xe_argv, bare_argv in cases:
            paired(xe_argv, bare_argv, env, 1)  # warm-up: byte-code written
            x, xout, b, bout = paired(xe_argv, bare_argv, env, args.runs)
            if xout != bout:
                raise SystemExit(f"{label}: xe printed {xout!r}, the bare client {bout!r}")
            worst = max(worst, x / b)
            print(f"{label:28} {x * 1000:8.1f} {b * 1000:8.1f} {x / b:6.2f}")
        print(f"worst ratio {worst:.2f} (target <= 2.0)")
    finally:
        agent.cleanup()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
