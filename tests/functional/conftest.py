"""Fixtures: a running agent process per test module (or per test where it is killed)."""

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


@pytest.fixture(scope="module")
def s(agent):
    """A XenAPI session (with call timeouts) on the module's agent."""
    session = login(agent)
    yield session
    logout(session)


@pytest.fixture(scope="module")
def x(s):
    return s.xenapi
