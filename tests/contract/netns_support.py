"""A throwaway network namespace for the links adapter's contract tests (root)."""

import contextlib
import os
import subprocess
import uuid

import pytest


@contextlib.contextmanager
def throwaway_netns(*commands):
    """A new namespace `ha-<hex>`, each `ip -n <ns> ...` command of `commands` run in it
    (given as argument lists without the `ip -n <ns>`), deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    name = "ha-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in commands:
            subprocess.run(["ip", "-n", name, *command], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
