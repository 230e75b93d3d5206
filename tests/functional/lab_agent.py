"""The agent in the Xen lab's dom0 (docs/lab.md) in place of a local agent process.

Tests marked `lab` drive the agent only through its API (no state dir, no Unix socket, no
restarts), so they can run against a remote agent too: when HOSTAGENT_LAB_URL (and
HOSTAGENT_LAB_PASSWORD) name one, as lab/run.py sets them for `pytest -m "xen or lab"`, the
`agent` fixture of a module whose selected tests are all marked `lab` is a `LabAgent` rather
than a new `python -m hostagent serve`. Without the variables (make test) nothing changes.
Tests that share the lab's agent remove what they make.
"""

import os
from urllib.parse import urlsplit


class LabAgent:
    """What the functional tests read of an AgentProcess: url (with its trailing slash), port,
    password. The rest (state dir, socket, restarts) is the local agent's only."""

    state_dir = None
    socket = None

    def __init__(self, url: str, password: str):
        self.url = url.rstrip("/") + "/"
        parts = urlsplit(self.url)
        if parts.hostname != "127.0.0.1" or not parts.port:
            # tests open raw connections to 127.0.0.1:port (lab/boot.py forwards a loopback port)
            raise ValueError(f"HOSTAGENT_LAB_URL must be http://127.0.0.1:PORT, not {url!r}")
        self.port = parts.port
        self._password = password

    @property
    def password(self) -> str:
        return self._password

    def log_text(self) -> str:
        return ""

    def alive(self) -> bool:
        return True

    def cleanup(self):
        """Nothing to stop: the lab's agent belongs to the lab."""


def lab_agent(request) -> LabAgent | None:
    """The lab's agent for this module-scoped request, or None to start a local one."""
    url = os.environ.get("HOSTAGENT_LAB_URL")
    if not url:
        return None
    mine = [item for item in request.session.items if item.module is request.module]
    if not mine or not all(item.get_closest_marker("lab") for item in mine):
        return None
    password = os.environ.get("HOSTAGENT_LAB_PASSWORD")
    if not password:
        raise RuntimeError("HOSTAGENT_LAB_URL is set without HOSTAGENT_LAB_PASSWORD (lab/run.py sets both)")
    return LabAgent(url, password)
