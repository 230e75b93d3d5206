"""Fixtures: a running agent process per test module (or per test where it is killed)."""

import os

import pytest

from .agent import AgentProcess
from .events_support import login, logout
from .lab_agent import lab_agent


@pytest.fixture(scope="module")
def agent(request, tmp_path_factory):
    """The module's agent process; the Xen lab's agent for tests marked `lab` when
    HOSTAGENT_LAB_URL names it (lab_agent.py)."""
    a = lab_agent(request) or AgentProcess(str(tmp_path_factory.mktemp("state"))).start()
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
