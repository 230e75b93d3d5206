"""Three agents form a pool through pool.join, with the real XenAPI package (docs/pools.md).

The agents are pool_support's (one loopback address, state dir, libvirt test driver and TLS
listener each, quick heartbeats). The tests run in order and share the pool they build.
"""

import concurrent.futures
import http.client
import json
import os
import shutil
import ssl
import time
import xmlrpc.client

import pytest
import XenAPI

from hostagent.pool.identity import CERT_FILE, KEY_FILE, der, ensure_identity, names_peer

from .events_support import TimeoutTransport, event_from
from .pool_support import ADDRESSES, HEARTBEAT, TIMEOUT, failure, free_port, host_count, live, template, three_hosts, wait_for


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    with three_hosts(tmp_path_factory.mktemp("pool")) as made:
        yield made


def test_each_host_has_its_own_identity_secret_and_role(hosts):
    prints = set()
    for h in hosts:
        for name in (KEY_FILE, "pool-secret"):
            assert os.stat(h.file(name)).st_mode & 0o777 == 0o600
        with open(h.file(CERT_FILE)) as f:
            pem = f.read()
        uuid = h.session().xenapi.host.get_uuid(h.session().xenapi.host.get_all()[0])
        assert names_peer(der(pem), h.address) and names_peer(der(pem), uuid)
        prints.add(pem)
        assert not os.path.exists(h.file("pool-role.json"))  # a lone master until it joins
    assert len(prints) == 3


def test_bad_joins_leave_both_hosts_unchanged(hosts):
    a, b, c = hosts
    xb, xc = b.session().xenapi, c.session().xenapi
    assert failure(xb.pool.join, a.tls, "root", "wrong") == [
        "SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure"]
    assert failure(xb.pool.join, f"127.0.0.1:{free_port('127.0.0.1')}", "root", a.agent.password) == [
        "JOINING_HOST_CONNECTION_FAILED"]
    assert failure(xb.pool.join, b.tls, "root", b.agent.password) == [
        "OPERATION_NOT_ALLOWED", "Host cannot become slave of itself"]
    # a host running a VM may not join
    t = template(xc)
    vm = xc.VM.clone(t, "runs on c")
    xc.VM.provision(vm)
    xc.VM.start(vm, False, False)
    assert failure(xc.pool.join, a.tls, "root", a.agent.password) == ["JOINING_HOST_CANNOT_HAVE_RUNNING_VMS"]
    xc.VM.hard_shutdown(vm)
    xc.VM.destroy(vm)
    for h in hosts:
        assert host_count(h) == 1
        assert not os.path.exists(h.file("pool-role.json"))


def test_three_hosts_form_a_pool(hosts):
    a, b, c = hosts
    for h in (b, c):
        x = h.session().xenapi
        local_srs = {x.SR.get_uuid(s) for s in x.SR.get_all() if x.SR.get_type(s) == "file"}
        x.pool.join(a.tls, "root", a.agent.password)
        h.local_srs = local_srs
    xa = a.session().xenapi
    members = xa.host.get_all()
    assert sorted(xa.host.get_address(h) for h in members) == list(ADDRESSES)
    assert xa.pool.get_master(xa.pool.get_all()[0]) in members
    start = xa.host_metrics.get_last_updated(xa.host.get_metrics(members[1]))
    wait_for(lambda: all(live(xa, h) for h in members), 5, "three live hosts")
    by_address = {xa.host.get_address(h): h for h in members}
    for h in (b, c):
        ref = by_address[h.address]
        srs = {xa.SR.get_uuid(xa.PBD.get_SR(p)) for p in xa.host.get_PBDs(ref)}
        assert h.local_srs <= srs  # its local storage is in the pool's database
        assert xa.VM.get_is_control_domain(xa.host.get_control_domain(ref))
    # heartbeats keep last_updated moving
    wait_for(lambda: xa.host_metrics.get_last_updated(xa.host.get_metrics(members[1])) != start, 5,
             "a newer heartbeat")


def test_a_slave_sends_tcp_clients_to_its_master(hosts):
    a, b, _ = hosts
    s = XenAPI.Session(b.agent.url, transport=TimeoutTransport(30))
    details = failure(s.xenapi.login_with_password, "root", b.agent.password, "2.21", "pool-test")
    assert details == ["HOST_IS_SLAVE", a.tls]
    # what a XenAPI.py user does with it: log in at the address named
    master = XenAPI.Session("https://" + details[1], ignore_ssl=True)
    master.xenapi.login_with_password("root", a.agent.password, "2.21", "pool-test")
    assert len(master.xenapi.host.get_all()) == 3
    master.xenapi.session.logout()


def test_a_slaves_unix_socket_is_answered_by_the_master(hosts):
    a, _, c = hosts
    x = c.unix_session().xenapi
    assert len(x.host.get_all()) == 3
    master = x.pool.get_master(x.pool.get_all()[0])
    assert x.host.get_address(master) == a.address
    x.session.logout()


def test_slave_login_with_the_pool_secret_is_served_by_the_slave(hosts):
    _, b, _ = hosts
    with open(b.file("pool-secret")) as f:
        secret = f.read().strip()
    # XenAPI.py sends its own session first to every call but login*: plain XML-RPC here
    raw = xmlrpc.client.ServerProxy(b.agent.url)
    refused = raw.session.slave_login("OpaqueRef:NULL", "not the secret")
    assert refused["Status"] == "Failure" and refused["ErrorDescription"][0] == "SESSION_AUTHENTICATION_FAILED"
    answer = raw.session.slave_login("OpaqueRef:NULL", secret)
    assert answer["Status"] == "Success"
    s = XenAPI.Session(b.agent.url, transport=TimeoutTransport(30))
    s._session = answer["Value"]
    assert s.xenapi.session.get_pool(answer["Value"]) is True
    assert len(s.xenapi.host.get_all()) == 1  # this host's own view, not the master's


def post(address, path, headers=None, tls=True, body=b"{}", answer=False):
    host, port = address.rsplit(":", 1)
    if tls:
        conn = http.client.HTTPSConnection(host, int(port), context=ssl._create_unverified_context(), timeout=10)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return (resp.status, data) if answer else resp.status


def test_a_caller_without_the_secret_sends_no_large_body(hosts):
    """Refused on its headers: a large body is not taken in (413 at its announced length) where
    the route would take a whole pool database from a member with the secret."""
    a, b, _ = hosts
    big = b" " * (1 << 20)
    assert post(b.tls, "/pool/v1/take_over", body=big) == 413
    assert post(b.tls, "/pool/v1/db_copy", {"X-Hostagent-Pool-Secret": "guess"}, body=big) == 413
    assert post(a.tls, "/pool/v1/hello", body=big) == 413
    assert host_count(a) == 3


def test_json_nested_too_deep_is_an_answer_not_a_crash(hosts):
    a, _, _ = hosts
    with open(a.file("pool-secret")) as f:
        secret = f.read().strip()
    status, data = post(a.tls, "/pool/v1/heartbeat", {"X-Hostagent-Pool-Secret": secret},
                        body=b"[" * 100000 + b"]" * 100000, answer=True)
    # read as no payload: the malformed-call answer every internal op gives, not an HTTP 500
    assert status == 200 and json.loads(data)["error"] == ["INTERNAL_ERROR", "pool call without host"], data


def test_internal_calls_without_the_pool_secret_are_refused(hosts):
    a, b, _ = hosts
    with open(b.file("pool-secret")) as f:
        secret = f.read().strip()
    assert post(b.tls, "/pool/v1/eject") == 401
    assert post(b.tls, "/pool/v1/eject", {"X-Hostagent-Pool-Secret": "guess"}) == 401
    plain = b.agent.url[len("http://"):].strip("/")
    assert post(plain, "/pool/v1/eject", {"X-Hostagent-Pool-Secret": secret}, tls=False) == 401
    assert post(a.tls, "/pool/v1/rpc") == 401
    assert post(a.tls, "/pool/v1/heartbeat") == 401
    # nothing ran: b is still a member, a still has three
    assert failure(XenAPI.Session(b.agent.url).xenapi.login_with_password, "root", "x")[0] == "HOST_IS_SLAVE"
    assert host_count(a) == 3


def test_a_member_presenting_another_certificate_is_refused(hosts, tmp_path):
    a, _, c = hosts
    xa = a.session().xenapi
    [cref] = [h for h in xa.host.get_all() if xa.host.get_address(h) == c.address]
    uuid = xa.host.get_uuid(cref)
    # a long call proxied through c's socket does not hold c's stop
    xc = c.unix_session().xenapi
    token = event_from(xc, ["VM"], "", 0.1)["token"]
    waiting = concurrent.futures.ThreadPoolExecutor(1)
    long_call = waiting.submit(event_from, xc, ["VM"], token, 60.0)
    time.sleep(1)
    assert not long_call.done()
    stopping = time.monotonic()
    assert c.agent.stop() == 0 and time.monotonic() - stopping < 10
    with pytest.raises(Exception):  # noqa: B017 - the connection ends, however XenAPI.py words it
        long_call.result(10)
    waiting.shutdown()
    keep = tmp_path / "kept"
    keep.mkdir()
    for name in (CERT_FILE, KEY_FILE):
        shutil.move(c.file(name), keep / name)
    other = ensure_identity(str(tmp_path), uuid, [c.address])  # same names, another key
    for name in (CERT_FILE, KEY_FILE):
        shutil.copy(os.path.join(tmp_path, name), c.file(name))
    c.start()
    try:
        assert failure(xa.pool.eject, cref) == ["CANNOT_CONTACT_HOST", cref]
        wait_for(lambda: "presented a certificate other than the one recorded" in a.agent.log_text(), 5,
                 "the master's log says why")
        assert failure(XenAPI.Session(c.agent.url).xenapi.login_with_password, "root", "x")[0] == "HOST_IS_SLAVE"
        assert host_count(a) == 3
    finally:
        c.agent.stop()
        for name in (CERT_FILE, KEY_FILE):
            shutil.copy(keep / name, c.file(name))
        c.start()
    assert other.fingerprint not in open(c.file(CERT_FILE)).read()


def test_a_silent_member_turns_not_live_and_comes_back(hosts):
    a, _, c = hosts
    xa = a.session().xenapi
    [cref] = [h for h in xa.host.get_all() if xa.host.get_address(h) == c.address]
    wait_for(lambda: live(xa, cref), 5, "c live")
    killed = time.monotonic()
    c.agent.kill()
    gone = wait_for(lambda: not live(xa, cref), TIMEOUT + 4 * HEARTBEAT + 3, "c not live")
    assert gone - killed >= TIMEOUT - 2 * HEARTBEAT  # not before the documented time
    c.start()
    wait_for(lambda: live(xa, cref), 10, "c live again")


def test_eject_leaves_a_lone_host_and_it_can_join_again(hosts):
    a, b, _ = hosts
    xa = a.session().xenapi
    [bref] = [h for h in xa.host.get_all() if xa.host.get_address(h) == b.address]
    master = xa.pool.get_master(xa.pool.get_all()[0])
    assert failure(xa.pool.eject, master) == ["OPERATION_NOT_ALLOWED", "Cannot eject the pool master"]
    old_pool = b.unix_session().xenapi.pool.get_all_records()  # the master's, through the proxy
    xa.pool.eject(bref)
    assert host_count(a) == 2 and not xa.host.get_all_records().get(bref)
    xb = b.session().xenapi  # a lone master again: it takes logins
    [pool] = xb.pool.get_all()
    assert xb.pool.get_uuid(pool) not in {r["uuid"] for r in old_pool.values()}
    assert len(xb.host.get_all()) == 1 and xb.pool.get_master(pool) == xb.host.get_all()[0]
    xb.VM.get_all()  # it serves its own clients
    xb.pool.join(a.tls, "root", a.agent.password)
    assert host_count(a) == 3
    wait_for(lambda: live(xa, bref), 5, "b live again")


def test_a_dead_member_is_forgotten_with_host_destroy(hosts):
    a, b, c = hosts
    xa = a.session().xenapi
    refs = {xa.host.get_address(h): h for h in xa.host.get_all()}
    assert failure(xa.host.destroy, refs[a.address]) == ["HOST_CANNOT_DESTROY_SELF", refs[a.address]]
    assert failure(xa.host.destroy, refs[b.address]) == ["HOST_IS_LIVE", refs[b.address]]
    c.agent.kill()
    wait_for(lambda: not live(xa, refs[c.address]), TIMEOUT + 4 * HEARTBEAT + 3, "c not live")
    xa.host.destroy(refs[c.address])
    assert sorted(xa.host.get_address(h) for h in xa.host.get_all()) == [a.address, b.address]
    assert not any(xa.PBD.get_host(p) == refs[c.address] for p in xa.PBD.get_all())
