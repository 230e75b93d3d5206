"""Running the real `xe` program against an agent process (no tests of its own).

`XeRunner(agent, home)` runs the installed `xe` console script (or, when the venv
predates it, `python -m hostagent.xe` behind a small wrapper) with HOME set to a
scratch directory and HOSTAGENT_CONFIG naming the agent's Unix socket, so a bare
`xe vm-list` reaches that agent as it would on a dom0.
"""

import os
import subprocess
import sys

XE_TIMEOUT = 120


def xe_binary(directory) -> str:
    installed = os.path.join(os.path.dirname(sys.executable), "xe")
    if os.path.exists(installed):
        return installed
    wrapper = os.path.join(str(directory), "xe")
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\nexec {sys.executable} -m hostagent.xe "$@"\n')
    os.chmod(wrapper, 0o755)
    return wrapper


class XeRunner:
    def __init__(self, agent, home):
        self.agent = agent
        self.home = str(home)
        os.makedirs(self.home, exist_ok=True)
        self.binary = xe_binary(self.home)
        self.config = os.path.join(self.home, "hostagent.conf")
        with open(self.config, "w") as f:
            f.write(f"[hostagent]\nunix-socket = {agent.socket}\n")
        self.env = {**os.environ, "HOME": self.home, "HOSTAGENT_CONFIG": self.config}
        self.env.pop("XE_EXTRA_ARGS", None)

    def run(self, *args, env=None, input=None, check=True):
        """The CompletedProcess of `xe args...`; with check, a failure shows its stderr."""
        p = subprocess.run([self.binary, *args], env={**self.env, **(env or {})}, input=input,
                           capture_output=True, text=True, timeout=XE_TIMEOUT, check=False)
        if check and p.returncode != 0:
            raise AssertionError(f"xe {' '.join(args)} exited {p.returncode}:\n{p.stderr}{p.stdout}")
        return p

    def __call__(self, *args, **kw) -> str:
        """stdout of a successful `xe args...`, without its final newline."""
        return self.run(*args, **kw).stdout.rstrip("\n")

    def fails(self, *args, **kw):
        p = self.run(*args, check=False, **kw)
        assert p.returncode != 0, f"xe {' '.join(args)} succeeded:\n{p.stdout}"
        assert "Traceback" not in p.stderr, p.stderr
        return p


def install_vm(xe, name, template="Debian Etch 4.0") -> str:
    return xe("vm-install", f"template={template}", f"new-name-label={name}")


def parse_records(text):
    """xe's record output as a list of {field: value} (markers dropped)."""
    out = []
    for block in text.split("\n\n\n"):
        if not block.strip():
            continue
        rec = {}
        for line in block.strip("\n").splitlines():
            label, _, value = line.partition(": ")
            rec[label.split(" (")[0].strip()] = value
        out.append(rec)
    return out
