"""Fixtures: a running agent process per test module (or per test where it is killed)."""

import pytest

from .agent import AgentProcess


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
