"""An unexpected exception in a handler becomes INTERNAL_ERROR.

As in xapi, the reply carries the exception's text ("ValueError: kaboom"),
never its traceback; the traceback goes to the log. A transaction the handler
had open is rolled back, and the dispatcher keeps serving.
"""

import asyncio
import inspect
import logging

import pytest

from hostagent.actions import all_handlers
from hostagent.actions.bootstrap import ensure_host
from hostagent.backends.hostinfo import Cpu, HostFacts
from hostagent.datamodel.api import build_api
from hostagent.datamodel.errors import ApiError
from hostagent.db.store import Store
from hostagent.rpc.dispatch import Dispatcher, Origin
from hostagent.rpc.sessions import SessionManager

from .runtime import make_runtime

FACTS = HostFacts("h1", "192.0.2.1", [Cpu(0, "GenuineIntel", 2000)], 8 << 30, 4 << 30)


class Clock:
    now = 1_000_000.0

    def __call__(self):
        return self.now


def exploding_get_all(ctx):
    raise ValueError("kaboom")


async def exploding_async_get_all(ctx):
    raise RuntimeError("async kaboom")


def half_write_then_explode(ctx, self, value):
    with ctx.store.transaction():
        ctx.store.set("VM", self, "name_label", value)
        raise KeyError("missing thing")


def refusing_get_all(ctx):
    raise ApiError("VM_BAD_POWER_STATE", "OpaqueRef:x", "halted", "running")


EXTRA = {
    "VM.get_all": exploding_get_all,
    "VM_metrics.get_all": exploding_async_get_all,
    "VM.set_name_label": half_write_then_explode,
    "host.get_all": refusing_get_all,
}


@pytest.fixture(scope="module")
def api():
    return build_api()


@pytest.fixture
def d(api):
    store = Store(api)
    clock = Clock()
    host = ensure_host(store, FACTS, "test", clock)
    sessions = SessionManager(store, clock, lambda: host)
    return Dispatcher(api, make_runtime(store, sessions, host, clock), {**all_handlers(), **EXTRA})


def call(d, method, *params):
    out = d.call(method, list(params), Origin())
    if inspect.isawaitable(out):
        async def drive():
            return await out
        out = asyncio.run(drive())
    return out


@pytest.fixture
def s(d):
    r = call(d, "session.login_with_password", "root", "secret")
    assert r.error is None, r.error
    return r.value


def dispatch_errors(caplog):
    return [r for r in caplog.records if r.name == "hostagent.dispatch" and r.levelno >= logging.ERROR]


def test_sync_handler_exception_is_internal_error_with_text_only(d, s, caplog):
    caplog.set_level(logging.INFO)
    r = call(d, "VM.get_all", s)
    assert r.value is None
    assert r.error == ["INTERNAL_ERROR", "ValueError: kaboom"]
    assert not any("Traceback" in str(x) or "\n" in str(x) for x in r.error)
    logged = dispatch_errors(caplog)
    assert len(logged) == 1
    text = logged[0].getMessage()
    assert "VM.get_all" in text
    assert "Traceback (most recent call last)" in text
    assert "exploding_get_all" in text  # the frame that raised
    assert "ValueError: kaboom" in text


def test_alias_reports_the_same(d, s, caplog):
    caplog.set_level(logging.INFO)
    assert call(d, "VM_get_all", s).error == ["INTERNAL_ERROR", "ValueError: kaboom"]
    assert len(dispatch_errors(caplog)) == 1


def test_async_handler_exception_is_internal_error(d, s, caplog):
    caplog.set_level(logging.INFO)
    r = call(d, "VM_metrics.get_all", s)
    assert r.error == ["INTERNAL_ERROR", "RuntimeError: async kaboom"]
    logged = dispatch_errors(caplog)
    assert len(logged) == 1
    text = logged[0].getMessage()
    assert "VM_metrics.get_all" in text
    assert "Traceback (most recent call last)" in text and "exploding_async_get_all" in text


def test_failed_handler_leaves_no_half_write(d, s, caplog):
    caplog.set_level(logging.INFO)
    host = call(d, "host.get_all_records", s).value
    dom0 = next(iter(host.values()))["control_domain"]
    before = call(d, "VM.get_name_label", s, dom0).value
    commits = d.store.commits
    r = call(d, "VM.set_name_label", s, dom0, "half-written")
    assert r.error == ["INTERNAL_ERROR", "KeyError: 'missing thing'"]
    assert call(d, "VM.get_name_label", s, dom0).value == before
    assert d.store.commits == commits
    assert len(dispatch_errors(caplog)) == 1


def test_api_errors_pass_through_unlogged(d, s, caplog):
    caplog.set_level(logging.INFO)
    assert call(d, "host.get_all", s).error == ["VM_BAD_POWER_STATE", "OpaqueRef:x", "halted", "running"]
    assert dispatch_errors(caplog) == []


def test_dispatcher_keeps_serving_after_internal_errors(d, s):
    for _ in range(3):
        assert call(d, "VM.get_all", s).error[0] == "INTERNAL_ERROR"
    pools = call(d, "pool.get_all", s)
    assert pools.error is None and len(pools.value) == 1
    assert call(d, "VM.get_record", s, "OpaqueRef:NULL").error == ["HANDLE_INVALID", "VM", "OpaqueRef:NULL"]
