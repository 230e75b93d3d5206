"""vm-export then vm-import with xe: a progress bar on a terminal, none without one.

The export's XVA goes back in as a new VM with the same name and disks. On a
pseudo-terminal (the pty module) xe draws `label [###   ]  NN%` lines redrawn with
carriage returns and wipes them at the end; with a pipe, or with --minimal, its
output is only its result.
"""

import os
import pty
import re
import subprocess

import pytest

from .events_support import login, logout
from .test_xe_support import XE_TIMEOUT, XeRunner, install_vm

BAR = re.compile(r"\r(export|import|start) \[[# ]{40}\] +\d+%")


@pytest.fixture(scope="module")
def xe(agent, tmp_path_factory):
    return XeRunner(agent, tmp_path_factory.mktemp("xe-home"))


@pytest.fixture(scope="module")
def x(agent):
    s = login(agent, "xe-progress-test")
    yield s.xenapi
    logout(s)


def on_terminal(xe, *args):
    """(exit status, everything written to the terminal) of `xe args` with a pty as stdout."""
    master, slave = pty.openpty()
    p = subprocess.Popen([xe.binary, *args], env=xe.env, stdout=slave, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    status = p.wait(XE_TIMEOUT)
    assert status == 0, p.stderr.read().decode()
    return b"".join(chunks).decode()


def test_export_import_round_trip_with_a_bar_on_a_terminal(xe, x, tmp_path):
    vm = install_vm(xe, "roundtrip")
    xva = str(tmp_path / "roundtrip.xva")
    out = on_terminal(xe, "vm-export", f"uuid={vm}", f"filename={xva}")
    assert BAR.search(out), repr(out)
    assert out.rstrip("\r\n").endswith("Export succeeded")
    assert os.path.getsize(xva) > 0

    out = on_terminal(xe, "vm-import", f"filename={xva}")
    assert BAR.search(out), repr(out)
    new = out.replace("\r", "\n").split()[-1]
    assert new != vm
    ref = x.VM.get_by_uuid(new)
    assert x.VM.get_name_label(ref) == "roundtrip"
    old_disks = [x.VBD.get_userdevice(v) for v in x.VM.get_VBDs(x.VM.get_by_uuid(vm))]
    assert sorted(x.VBD.get_userdevice(v) for v in x.VM.get_VBDs(ref)) == sorted(old_disks)


def test_no_bar_without_a_terminal_or_with_minimal(xe, x, tmp_path):
    vm = install_vm(xe, "quiet")
    xva = str(tmp_path / "quiet.xva")
    p = xe.run("vm-export", f"uuid={vm}", f"filename={xva}")
    assert p.stdout == "Export succeeded\n" and "\r" not in p.stderr
    p = xe.run("vm-import", f"filename={xva}")
    assert "\r" not in p.stdout and re.fullmatch(r"[0-9a-f-]{36}\n", p.stdout)
    # on a terminal, --minimal keeps the output to the result
    out = on_terminal(xe, "vm-import", f"filename={xva}", "--minimal")
    assert not BAR.search(out) and re.fullmatch(r"[0-9a-f-]{36}\r?\n", out), repr(out)
    # a lifecycle operation draws its bar on a terminal too, and nothing on a pipe
    assert BAR.search(on_terminal(xe, "vm-start", f"uuid={vm}"))
    xe("vm-shutdown", f"uuid={vm}", "--force")
    p = xe.run("vm-start", f"uuid={vm}")
    assert p.stdout == ""
