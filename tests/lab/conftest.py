"""The lab's XenAPI session (tests/lab, docs/lab.md): the agent in dom0 named by lab/run.py."""

import os

import pytest


@pytest.fixture(scope="module")
def api():
    import XenAPI
    session = XenAPI.Session(os.environ["HOSTAGENT_LAB_URL"])
    session.xenapi.login_with_password("root", os.environ["HOSTAGENT_LAB_PASSWORD"], "1.0", "hostagent-lab")
    yield session.xenapi
    session.xenapi.session.logout()
