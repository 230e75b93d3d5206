"""scripts/xe-completion.bash, run by bash with COMP_WORDS set as readline would.

Commands come from `xe help --all --minimal`, parameter names from
`xe help <command> --minimal`, uuids and name labels from the agent.
"""

import os
import subprocess

import pytest

from .test_xe_support import XeRunner, install_vm

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "xe-completion.bash")


@pytest.fixture(scope="module")
def xe(agent, tmp_path_factory):
    return XeRunner(agent, tmp_path_factory.mktemp("xe-home"))


def complete(xe, *words, wordbreaks=None):
    """COMPREPLY of the completion function for the words (the last is being completed)."""
    words = [xe.binary, *words]
    setup = "" if wordbreaks is None else f"COMP_WORDBREAKS={wordbreaks!r}\n"
    script = (f"source {SCRIPT}\n{setup}COMP_WORDS=({' '.join(_quote(w) for w in words)})\n"
              f"COMP_CWORD={len(words) - 1}\n_xe\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n")
    p = subprocess.run(["bash", "-c", script], env=xe.env, capture_output=True, text=True, timeout=120,
                       check=True)
    return [line for line in p.stdout.splitlines() if line]


def _quote(word):
    return "'" + word.replace("'", "'\\''") + "'"


def test_commands(xe):
    assert complete(xe, "vm-param-l") == ["vm-param-list"]
    got = complete(xe, "vm-s")
    assert {"vm-start", "vm-shutdown", "vm-snapshot", "vm-suspend"} <= set(got)
    assert all(c.startswith("vm-s") for c in got)
    assert len(complete(xe, "")) > 200


def test_parameter_names(xe):
    assert complete(xe, "vm-param-get", "") == ["uuid=", "param-name=", "param-key="]
    assert complete(xe, "vdi-create", "sr") == ["sr-uuid="]
    assert "new-name-label=" in complete(xe, "vm-clone", "new")
    assert {"name-label=", "power-state=", "params="} <= set(complete(xe, "vm-list", ""))


def test_uuids_and_name_labels_from_the_agent(xe):
    vm = install_vm(xe, "complete me")
    sr = xe("sr-list", "--minimal")
    assert complete(xe, "vm-param-list", "uuid=") == [f"uuid={u}" for u in
                                                      xe("vm-list", "--minimal").split(",")]
    assert complete(xe, "vdi-create", f"sr-uuid={sr[:4]}") == [f"sr-uuid={sr}"]
    assert complete(xe, "vm-start", "vm=comp") == ["vm=complete\\ me"]
    assert f"vm={vm}" in complete(xe, "vm-start", "vm=")
    assert "Debian\\ Etch\\ 4.0" in complete(xe, "vm-install", "template", "=", "Deb")
    assert complete(xe, "vm-param-get", f"uuid={vm}", "param-name=power") == ["param-name=power-state"]
    assert {"class=vm", "class=template", "class=sr", "class=task"} <= set(complete(xe, "event-wait", "class="))


def test_words_split_at_equals_signs(xe):
    """Bash's default COMP_WORDBREAKS splits `uuid=x` into `uuid`, `=`, `x`."""
    vm = xe("vm-list", "name-label=complete me", "--minimal") or install_vm(xe, "complete me")
    assert complete(xe, "vm-param-list", "uuid", "=", vm[:6]) == [vm]
    assert complete(xe, "vm-param-list", "uuid", "=") == xe("vm-list", "--minimal").split(",")
    assert complete(xe, "event-wait", "class", "=", "vm-m") == ["vm-metrics"]
