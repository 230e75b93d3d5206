"""xe's output against golden files in XenServer's layout (tests/functional/test_xe_goldens/).

Records: `label (XX): value`, labels padded to the longest plus four, the first left-
and the others right-aligned, two empty lines after each record; `--minimal` as one
comma-separated line with `\\,` inside values. UUIDs, dates and what depends on the
machine (its host name, CPUs, disk sizes, versions) are normalised before comparing.
`XE_GOLDEN_UPDATE=1` rewrites the files (check the diff by eye before committing).
"""

import os
import re

import pytest

from .events_support import login, logout
from .test_xe_support import XeRunner, install_vm

GOLDEN = os.path.join(os.path.dirname(__file__), "test_xe_goldens")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DATE = re.compile(r"\d{8}T\d\d:\d\d:\d\dZ")
# fields whose values are the machine's, not the agent's
MACHINE = ("software-version", "capabilities", "cpu-info", "host-CPUs", "address", "physical-size",
           "physical-utilisation", "memory-overhead", "API-version-vendor-implementation",
           "license-server", "cpu-configuration", "bios-strings", "chipset-info")
# values other work on the agent changes (what templates carry, which operations exist)
MOVING = ("allowed-operations", "recommendations", "platform")


@pytest.fixture(scope="module")
def xe(agent, tmp_path_factory):
    return XeRunner(agent, tmp_path_factory.mktemp("xe-home"))


@pytest.fixture(scope="module")
def setup(agent, xe):
    """Two VMs (one with a comma in its name) and the host's name, for normalising."""
    s = login(agent, "xe-layout-test")
    x = s.xenapi
    host = x.host.get_record(x.host.get_all()[0])
    logout(s)
    web = install_vm(xe, "web01")
    db = install_vm(xe, "db,02", template="CentOS 5.0")
    xe("vm-param-set", f"uuid={web}", "other-config:owner=ops", "name-description=the web server")
    return {"web": web, "db": db, "hostname": host["hostname"], "host_label": host["name_label"]}


def normalise(text, setup):
    lines = []
    for line in text.splitlines():
        label, sep, value = line.partition(": ")
        name = label.split(" (")[0].strip()
        if sep and name in MACHINE:
            value = "<machine>"
        elif sep and name in MOVING:
            value = "<moving>"
        elif sep and name == "other-config" and "install-distro" in value:
            # a template's keys are the template's business; the map's form is checked
            value = "; ".join(kv for kv in value.split("; ") if kv.startswith(("owner:", "mac_seed:")))
        lines.append(label + sep + value)
    text = "\n".join(lines) + ("\n" if text.endswith("\n") else "")
    text = UUID.sub("<uuid>", text)
    text = DATE.sub("<date>", text)
    for name in {setup["hostname"], setup["host_label"]}:
        if name:
            text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", "<hostname>", text)
    return text


def check(name, text, setup):
    got = normalise(text, setup)
    path = os.path.join(GOLDEN, name)
    if os.environ.get("XE_GOLDEN_UPDATE") == "1":
        with open(path, "w") as f:
            f.write(got)
    with open(path) as f:
        assert got == f.read(), f"xe output differs from {path}"


def raw(xe, *args):
    return xe.run(*args).stdout


def test_vm_list(xe, setup):
    check("vm-list.txt", raw(xe, "vm-list"), setup)


def test_vm_param_list(xe, setup):
    check("vm-param-list.txt", raw(xe, "vm-param-list", f"uuid={setup['web']}"), setup)


def test_sr_list_params_all(xe, setup):
    check("sr-list-params-all.txt", raw(xe, "sr-list", "params=all"), setup)


def test_host_param_list(xe, setup):
    host = xe("host-list", "--minimal")
    check("host-param-list.txt", raw(xe, "host-param-list", f"uuid={host}"), setup)


def test_minimal(xe, setup):
    out = raw(xe, "vm-list", "is-control-domain=false", "params=name-label", "--minimal")
    assert out == "web01,db\\,02\n"
    out = raw(xe, "vm-list", "--minimal")
    assert sorted(out.strip().split(",")) == sorted([setup["web"], setup["db"], xe("vm-list",
                                                     "is-control-domain=true", "--minimal")])
    assert raw(xe, "vm-list", "name-label=nothing-has-this-name", "--minimal") == "\n"
    check("template-list-minimal.txt", raw(xe, "template-list", "params=name-label", "--minimal"), setup)


def test_layout_rules(xe, setup):
    """The rules themselves, on an output of any length."""
    out = raw(xe, "vm-list", "params=uuid,name-label,power-state,other-config")
    assert out.endswith("\n\n\n") and "\n\n\n\n" not in out
    for record in out.split("\n\n\n")[:-1]:
        lines = record.strip("\n").splitlines()
        labels = [line.split(": ", 1)[0] for line in lines]
        width = max(len(label.strip()) for label in labels) + 4
        assert all(len(label) == width for label in labels)
        assert labels[0].startswith("uuid ( RO)") and labels[0].endswith(" ")
        assert all(label.startswith(" ") and not label.endswith(" ") for label in labels[1:])
        assert labels[-1].strip() == "other-config (MRW)"
