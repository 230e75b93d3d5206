"""The master's side of a join: credentials, one transaction, a stale record replaced."""

import asyncio

import pytest

from hostagent.actions.pool import serve_hello, serve_join
from hostagent.datamodel.api import build_api
from hostagent.datamodel.errors import ApiError
from hostagent.pool.identity import ensure_identity
from hostagent.pool.records import export_host
from hostagent.rpc.dispatch import Origin
from hostagent.rpc.sessions import SessionManager

from ..rpc.runtime import make_runtime
from .test_records import lone_host


class Membership:
    """A stand-in for pool.membership.Membership: what serve_join reads and writes of it
    (its role, secret, heartbeat times and members' links)."""

    is_slave = False
    secret = "the-pool-secret"

    def __init__(self, identity):
        self.identity = identity
        self.beats = {}
        self.links_of = {}  # whether the joining host's agent manages links, as its join says


@pytest.fixture
def master(tmp_path):
    api = build_api()
    store, host, _ = lone_host(api, "m")
    rt = make_runtime(store, SessionManager(store, lambda: 1000.0, lambda: host), host, lambda: 1000.0)
    rt.pool = Membership(ensure_identity(str(tmp_path), store.get("host", host)["uuid"] or "m", []))
    return api, rt, tmp_path


def call(rt, fn, payload):
    return asyncio.run(fn(rt.context(None, None, Origin("tcp", "127.0.0.2:5"), None), payload))


def join_payload(api, tmp_path, password="secret"):
    store, host, _ = lone_host(api, "j")
    (tmp_path / "j").mkdir()
    cert = ensure_identity(str(tmp_path / "j"), "j", ["127.0.0.2"])
    return {"username": "root", "password": password, "host": export_host(store, host),
            "certificate": cert.cert_pem, "endpoint": "127.0.0.2:4443"}, host


def test_wrong_credentials_change_nothing(master):
    api, rt, tmp_path = master
    payload, host = join_payload(api, tmp_path, password="wrong")
    before = {c: dict(t) for c, t in rt.store.tables.items()}
    with pytest.raises(ApiError) as e:
        call(rt, serve_join, payload)
    assert e.value.code == "SESSION_AUTHENTICATION_FAILED"
    assert {c: dict(t) for c, t in rt.store.tables.items()} == before
    with pytest.raises(ApiError):
        call(rt, serve_hello, {"username": "root", "password": "wrong"})


def test_a_join_records_the_host_and_answers_the_secret(master):
    api, rt, tmp_path = master
    payload, host = join_payload(api, tmp_path)
    payload["links"] = "ns-of-the-joiner"  # its agent manages that namespace's links
    answer = call(rt, serve_join, payload)
    assert answer == {"secret": "the-pool-secret", "master_host": rt.host}
    assert rt.pool.links_of == {rt.store.get("host", host)["uuid"]: "ns-of-the-joiner"}
    assert rt.store.private_of("host", host) == {"pool_endpoint": "127.0.0.2:4443",
                                                 "pool_cert": payload["certificate"]}
    assert len(rt.store.all("host")) == 2
    # the same host again (its answer was lost): its records are replaced, not doubled
    call(rt, serve_join, payload)
    assert len(rt.store.all("host")) == 2 and len(rt.store.find("host_cpu", host=host)) == 1


def test_a_join_naming_the_master_itself_is_refused(master):
    api, rt, tmp_path = master
    payload, _ = join_payload(api, tmp_path)
    payload["host"] = export_host(rt.store, rt.host)
    with pytest.raises(ApiError) as e:
        call(rt, serve_join, payload)
    assert e.value.description == ["OPERATION_NOT_ALLOWED", "Host cannot become slave of itself"]
