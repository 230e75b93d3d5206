"""Fixtures: a running agent process per test module (or per test where it is killed)."""

import os

import pytest

from .agent import AgentProcess
from .events_support import login, logout


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    a = AgentProcess(str(tmp_path_factory.mktemp("state"))).start()
    yield a
    a.cleanup()


@pytest.fixture
def fresh_agent(tmp_path):
    """An agent of the test's own, for tests that kill or restart it."""
    a = AgentProcess(str(tmp_path / "state"))
    yield a
    a.cleanup()


@pytest.fixture
def agents(tmp_path):
    """`agents(*args, **env)` starts an agent on the test's one state dir (one at a time,
    with extra command-line arguments and environment variables); all are cleaned up."""
    started = []

    def start(*args, **env):
        a = AgentProcess(str(tmp_path / "state"), extra_args=args, env={**os.environ, **env})
        started.append(a)
        return a.start()
    yield start
    for a in started:
        a.cleanup()


@pytest.fixture(scope="module")
def s(agent):
    """A XenAPI session (with call timeouts) on the module's agent."""
    session = login(agent)
    yield session
    logout(session)


@pytest.fixture(scope="module")
def x(s):
    return s.xenapi
