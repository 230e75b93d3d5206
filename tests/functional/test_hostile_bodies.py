"""1,000 malformed or hostile request bodies against the agent process.

A seeded generator (set HOSTAGENT_HOSTILE_SEED to replay another run) builds
XML-RPC bodies for /, /RPC2, /xmlrpc and /json and JSON-RPC bodies for
/jsonrpc: bad XML (truncated, unbalanced, garbage, invalid UTF-8, bad scalar
texts), DOCTYPEs, entity bombs and external entities, 10,000-level nesting,
wrong JSON shapes, wrong types in every parameter position of a few methods,
wrong parameter counts, unknown methods, valid calls with random refs, huge
but legal strings (one legal 250 KiB name_label that is set and set back) and
bodies over the 300 KiB limit. They are sent over keep-alive connections with
a 10 s socket timeout. Every case states what it must get:
- HTTP 500 (a body that is not a call), with no traceback in it;
- HTTP 200 with a well-formed XenAPI envelope (XML-RPC Status/Value or
  Status/ErrorDescription; JSON-RPC 1.0/2.0 by the request's version, with the
  request's id), a Failure naming an error code from the error table, and for
  most cases exactly which one(s);
- HTTP 413 or a connection closed by the server, for bodies over the limit.
Afterwards the agent is alive, a normal client works, the store holds exactly
what it held before (every class with get_all), and the log has no error.
"""

import http.client
import json
import os
import random
import socket
import time
import xmlrpc.client
from typing import Any, List, Tuple

import XenAPI

from hostagent.datamodel.error_table import ERRORS

from .hostile_cases import Generator, short
from .hostile_wire import Case, World


SEED = int(os.environ.get("HOSTAGENT_HOSTILE_SEED", "715517"))
N_CASES = 1000
TIMEOUT = 10.0
TIME_BUDGET = 60.0


# ---------------------------------------------------------------------------- transport

class Client:
    """One keep-alive HTTP connection, reopened only when the server closes it."""

    def __init__(self, port):
        self.port = port
        self.conn = None
        self.opened = 0

    def _open(self):
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        self.conn.connect()
        self.opened += 1

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def post(self, path, body, content_type, chunked=False):
        """(status, headers, body, will_close); raises OSError/HTTPException if the peer closed."""
        if self.conn is None:
            self._open()
        headers = {"Content-Type": content_type}
        if chunked:
            pieces = [body[i:i + 16384] for i in range(0, len(body), 16384)]
            self.conn.request("POST", path, body=iter(pieces), headers=headers, encode_chunked=True)
        else:
            self.conn.request("POST", path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.will_close:
            self.close()
        return r.status, r, data, r.will_close


class JsonRpc:
    """A minimal JSON-RPC 1.0 client for the checks around the fuzzing."""

    def __init__(self, port):
        self.client = Client(port)
        self.n = 0

    def call(self, method, *params):
        self.n += 1
        body = json.dumps({"method": method, "params": list(params), "id": self.n}).encode()
        status, _, data, _ = self.client.post("/jsonrpc", body, "application/json")
        assert status == 200, (method, status, data[:300])
        reply = json.loads(data)
        assert reply["id"] == self.n
        return reply

    def ok(self, method, *params):
        reply = self.call(method, *params)
        assert reply["error"] is None, (method, reply["error"])
        return reply["result"]


def snapshot(rpc: JsonRpc, session: str) -> dict:
    """get_all_records of every class that has get_all (checked against get_all)."""
    methods = rpc.ok("system.listMethods")
    classes = sorted(m[:-len(".get_all")] for m in methods if m.endswith(".get_all"))
    assert "VM" in classes and "network" in classes and "session" not in classes
    out = {}
    for cls in classes:
        refs = rpc.ok(f"{cls}.get_all", session)
        records = rpc.ok(f"{cls}.get_all_records", session)
        assert sorted(refs) == sorted(records), cls
        out[cls] = records
    return out


def describe_changes(before: dict, after: dict) -> List[str]:
    out = []
    for cls in sorted(before):
        old, new = before[cls], after[cls]
        out += [f"{cls} {ref} appeared: {short(new[ref], 200)}" for ref in sorted(set(new) - set(old))]
        out += [f"{cls} {ref} vanished" for ref in sorted(set(old) - set(new))]
        for ref in sorted(set(old) & set(new)):
            out += [f"{cls} {ref} {name}: {short(old[ref].get(name))} -> {short(new[ref].get(name))}"
                    for name in sorted(set(old[ref]) | set(new[ref])) if old[ref].get(name) != new[ref].get(name)]
    return out


# ------------------------------------------------------------------------------ checks

class Mismatch(AssertionError):
    pass


def decode_reply(case: Case, status, resp, data) -> Tuple[bool, Any]:
    """(ok, value-or-ErrorDescription) of a 200 reply; Mismatch if it is no XenAPI envelope."""
    if case.path == "/jsonrpc":
        if not resp.getheader("Content-Type", "").startswith("application/json"):
            raise Mismatch(f"JSON-RPC reply with Content-Type {resp.getheader('Content-Type')!r}")
        reply = json.loads(data)
        if case.json_v2:
            if reply.get("jsonrpc") != "2.0" or reply.get("id") != case.json_id:
                raise Mismatch(f"bad JSON-RPC 2.0 envelope {short(reply, 200)}")
            if set(reply) == {"jsonrpc", "result", "id"}:
                return True, reply["result"]
            if set(reply) != {"jsonrpc", "error", "id"}:
                raise Mismatch(f"bad JSON-RPC 2.0 envelope {short(reply, 200)}")
            err = reply["error"]
            if not (isinstance(err, dict) and err.get("code") == 1 and isinstance(err.get("message"), str)
                    and isinstance(err.get("data"), list)):
                raise Mismatch(f"bad JSON-RPC 2.0 error {short(err, 200)}")
            return False, [err["message"]] + err["data"]
        if set(reply) != {"result", "error", "id"} or reply["id"] != case.json_id:
            raise Mismatch(f"bad JSON-RPC 1.0 envelope {short(reply, 200)}")
        if reply["error"] is None:
            return True, reply["result"]
        if reply["result"] is not None or not isinstance(reply["error"], list):
            raise Mismatch(f"bad JSON-RPC 1.0 failure {short(reply, 200)}")
        return False, reply["error"]
    if not resp.getheader("Content-Type", "").startswith("text/xml"):
        raise Mismatch(f"XML-RPC reply with Content-Type {resp.getheader('Content-Type')!r}")
    try:
        (value,), method = xmlrpc.client.loads(data.decode("utf-8"))
    except Exception as e:  # noqa: BLE001
        raise Mismatch(f"reply is not a well-formed methodResponse: {e}: {short(data, 200)}") from None
    if method is not None:
        raise Mismatch("reply is a methodCall")
    if b"system.listMethods" in case.body[:200] and isinstance(value, list):
        return True, value  # the one bare reply
    if not isinstance(value, dict):
        raise Mismatch(f"reply is not a Status struct: {short(value)}")
    if value.get("Status") == "Success" and set(value) == {"Status", "Value"}:
        return True, value["Value"]
    if value.get("Status") == "Failure" and set(value) == {"Status", "ErrorDescription"}:
        return False, value["ErrorDescription"]
    raise Mismatch(f"not a XenAPI envelope: {short(value, 200)}")


def check(case: Case, outcome) -> None:
    """Raise Mismatch unless `outcome` is what `case` must get."""
    if isinstance(outcome, Exception):  # the server closed the connection
        if case.expect == "413" and isinstance(outcome, (ConnectionError, http.client.HTTPException)):
            return
        raise Mismatch(f"request failed: {outcome!r}")
    status, resp, data, will_close = outcome
    if b"Traceback" in data or b"File \"/" in data:
        raise Mismatch(f"traceback in the body: {short(data, 300)}")
    if case.expect == "413":
        if status != 413:
            raise Mismatch(f"status {status}, wanted 413: {short(data, 200)}")
        return
    if status == 500 and case.expect == "500":
        if will_close:
            raise Mismatch("the connection was closed after a 500")
        return
    if status != 200 or case.expect == "500":
        raise Mismatch(f"status {status}, wanted {case.expect}: {short(data, 300)}")
    if will_close:
        raise Mismatch("the connection was closed after a 200")
    ok, value = decode_reply(case, status, resp, data)
    if not ok:
        if not (isinstance(value, list) and value and all(isinstance(x, str) for x in value)):
            raise Mismatch(f"ErrorDescription is not a list of strings: {short(value)}")
        if value[0] not in ERRORS:
            raise Mismatch(f"unknown error code {value[0]!r}")
        if value[0] == "INTERNAL_ERROR":
            raise Mismatch(f"internal error: {short(value, 300)}")
    if case.expect == "ok" and not ok:
        raise Mismatch(f"wanted success, got {short(value, 300)}")
    if case.expect == "fail" and ok:
        raise Mismatch(f"wanted a failure, got success {short(value, 200)}")
    if not ok and case.codes and value[0] not in case.codes:
        raise Mismatch(f"error {short(value, 300)}, wanted one of {sorted(case.codes)}")
    if not ok and case.exact is not None and value != case.exact:
        raise Mismatch(f"error {short(value, 300)}, wanted exactly {short(case.exact, 300)}")
    if ok and case.check_value and value != case.value:
        raise Mismatch(f"result {short(value)}, wanted {short(case.value)}")


def send(client: Client, case: Case):
    ctype = "application/json" if case.path == "/jsonrpc" else "text/xml"
    try:
        return client.post(case.path, case.body, ctype, chunked=case.chunked)
    except socket.timeout as e:
        client.close()
        return Mismatch(f"no reply within {TIMEOUT} s: {e!r}")
    except (ConnectionError, http.client.HTTPException) as e:
        client.close()
        return e


# ------------------------------------------------------------------------------- test

def test_thousand_hostile_bodies(agent):
    started = time.monotonic()
    rpc = JsonRpc(agent.port)
    session = rpc.ok("session.login_with_password", "root", agent.password, "1.0", "hostile-bodies")
    pool = rpc.ok("pool.get_all", session)[0]
    host = rpc.ok("pool.get_master", session, pool)
    dom0 = rpc.ok("host.get_control_domain", session, host)
    world = World(session, dom0, pool, host, rpc.ok("VM.get_name_label", session, dom0),
                  rpc.ok("pool.get_name_description", session, pool))
    methods = set(rpc.ok("system.listMethods"))
    missing = [m for m, _ in Generator.SPECS if m not in methods]
    assert not missing, f"the fuzzed methods must exist: {missing}"

    before = snapshot(rpc, session)
    cases = Generator(random.Random(SEED), world).build(N_CASES)

    client = Client(agent.port)
    failures = []
    counts = {}
    for i, case in enumerate(cases):
        outcome = send(client, case)
        try:
            check(case, outcome)
        except Mismatch as e:
            failures.append(f"case {i} {case.desc} -> {e}\n    body: {short(case.body, 160)}")
        kind = case.expect
        counts[kind] = counts.get(kind, 0) + 1
        assert agent.alive(), f"seed={SEED}: the agent died at case {i} ({case.desc})\n" + agent.log_text()[-3000:]
        assert time.monotonic() - started < TIME_BUDGET, f"seed={SEED}: over {TIME_BUDGET} s at case {i}"
    client.close()
    assert not failures, f"seed={SEED}: {len(failures)} of {N_CASES} cases failed:\n" + "\n".join(failures[:40])
    # most requests shared a connection: only the oversized ones (and the first) needed a new one
    assert client.opened <= 1 + counts["413"], (SEED, client.opened, counts)

    # the agent still serves a normal client, and nothing changed
    assert agent.alive()
    s = XenAPI.Session(agent.url)
    s.xenapi.login_with_password("root", agent.password, "1.0", "after-hostile")
    try:
        records = s.xenapi.VM.get_all_records()
        assert dom0 in records and records[dom0]["name_label"] == world.dom0_name
    finally:
        s.xenapi.session.logout()
    after = snapshot(JsonRpc(agent.port), session)
    assert sorted(after) == sorted(before)
    changes = describe_changes(before, after)
    assert not changes, f"seed={SEED}: the store changed:\n" + "\n".join(changes[:30])

    log = agent.log_text()
    bad_lines = [line for line in log.splitlines()
                 if " ERROR " in line or " CRITICAL " in line or "internal error" in line.lower()
                 or "Traceback" in line or "Unhandled" in line]
    assert not bad_lines, f"seed={SEED}: the log has errors:\n" + "\n".join(bad_lines[:30])
    assert "malformed request from" in log  # the 500s were logged, at INFO
