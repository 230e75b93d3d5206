"""event.from tokens across agent restarts (SIGTERM and SIGKILL), with the real XenAPI package;
also event.next after unregistering everything, and a database from a newer hostagent.

A client takes a token, the agent restarts, one object is created, one loaded object is
changed and one destroyed: the old token gets exactly that add, mod and del. The same when the
wall clock has been stepped back a day between the runs: the second agent runs with a
`sitecustomize` (test only, put on PYTHONPATH) that makes its `time.time()` read a day early,
which is what a stepped system clock looks like to the process. A token from the future (not
this agent's) gets the whole state at once instead of waiting out its timeout."""

import os
import sqlite3
import time

import pytest

from ..support import wait_for
from .events_support import event_from, failure_of, login, logout, net_record

DAY = 86400

STEPPED_CLOCK = """\
# test only: this process's wall clock reads {step} seconds off, like a system clock stepped
# between two runs of the agent
import time
_real_time = time.time
time.time = lambda: _real_time() + {step}
"""


def stepped_env(tmp_path, step):
    hook = tmp_path / "stepped-clock"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(STEPPED_CLOCK.format(step=step))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")]))
    return env


def ours(batch, refs):
    """The (ref, operation) pairs of the batch's events about `refs`, and whether others came."""
    got = [(e["ref"], e["operation"]) for e in batch["events"]]
    return {g for g in got if g[0] in refs}, [g for g in got if g[0] not in refs]


def restart(agent, how, env=None):
    (agent.stop if how == "SIGTERM" else agent.kill)()
    if env is not None:
        agent.env = env
    agent.start()
    return login(agent)


@pytest.mark.parametrize("clock", ["same-clock", "clock-stepped-back"])
@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_an_old_token_gets_the_add_mod_and_del_made_after_a_restart(fresh_agent, tmp_path, how, clock):
    fresh_agent.start()
    s = login(fresh_agent)
    x = s.xenapi
    kept, changed, gone = (x.network.create(net_record(n)) for n in ("kept", "changed", "gone"))
    token = event_from(x, ["network"], "", 0.0)["token"]
    env = stepped_env(tmp_path, -DAY) if clock == "clock-stepped-back" else None

    s = restart(fresh_agent, how, env)
    x = s.xenapi
    if env is not None:  # the hook works: the agent's clock is a day behind ours
        probe = x.task.create("clock probe", "")
        created = x.task.get_created(probe).value  # 20261202T07:30:00Z
        assert created <= time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime(time.time() - DAY + 60))
        x.task.destroy(probe)
    new = x.network.create(net_record("new"))
    x.network.set_name_label(changed, "changed after the restart")
    x.network.destroy(gone)
    started = time.monotonic()
    batch = event_from(x, ["network"], token, 20.0)
    assert time.monotonic() - started < 5.0  # answered, not a wait for the timeout
    mine, others = ours(batch, {kept, changed, gone, new})
    assert mine == {(new, "add"), (changed, "mod"), (gone, "del")}, batch["events"]
    assert others == []  # nothing else about networks changed
    assert batch["token"] > token  # tokens stay ordered across restarts and clock steps
    mod = next(e for e in batch["events"] if e["ref"] == changed)
    assert mod["snapshot"]["name_label"] == "changed after the restart"
    assert "snapshot" not in next(e for e in batch["events"] if e["ref"] == gone)

    # the new token is a normal one: nothing more, so the long poll runs to its timeout
    started = time.monotonic()
    quiet = event_from(x, ["network"], batch["token"], 1.0)
    assert quiet["events"] == [] and time.monotonic() - started >= 0.9
    logout(s)


def test_a_token_from_the_future_gets_the_whole_state_at_once(fresh_agent):
    fresh_agent.start()
    s = login(fresh_agent)
    x = s.xenapi
    nets = {x.network.create(net_record(n)) for n in ("a", "b")}
    future = "%020d,%020d" % (10 ** 15, 0)  # far beyond anything this agent issued
    started = time.monotonic()
    batch = event_from(x, ["network"], future, 20.0)
    assert time.monotonic() - started < 5.0
    assert {(e["ref"], e["operation"]) for e in batch["events"]} == {(n, "add") for n in x.network.get_all()}
    assert nets <= set(x.network.get_all())
    assert batch["token"] < future
    # and the token it gives is a working one
    c = x.network.create(net_record("c"))
    after = event_from(x, ["network"], batch["token"], 5.0)
    assert [(e["ref"], e["operation"]) for e in after["events"]] == [(c, "add")]
    logout(s)


def test_event_next_after_unregistering_everything_is_not_registered(agent):
    s = login(agent, timeout=5.0)  # a next that blocks would fail the call after 5 s
    x = s.xenapi
    x.event.register(["vm", "network"])
    x.event.unregister(["vm"])
    x.event.unregister(["network"])
    assert failure_of(x.event.next) == ["SESSION_NOT_REGISTERED", s._session]
    logout(s)


def test_a_database_from_a_newer_hostagent_refuses_to_start(fresh_agent):
    fresh_agent.start()
    fresh_agent.stop()
    from hostagent.db.journal import SCHEMA_VERSION
    with sqlite3.connect(os.path.join(fresh_agent.state_dir, "state.db")) as db:
        db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(RuntimeError, match="exited before listening"):
        fresh_agent.start()
    assert fresh_agent.proc.wait(10) == 1
    wait_for(lambda: "run a newer hostagent" in fresh_agent.log_text(), 5.0, "the refusal in the log")
    line = next(li for li in fresh_agent.log_text().splitlines() if "run a newer hostagent" in li)
    assert f"schema version {SCHEMA_VERSION + 1}" in line and f"version {SCHEMA_VERSION} " in line
