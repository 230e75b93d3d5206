"""A state dir whose disk fills up (a small tmpfs, as root): the agent acknowledges nothing
it could not write, stops with exit status 1, and after a restart on a freed disk every
acknowledged change is there and nothing else is."""

import os
import subprocess
import threading

import pytest
import XenAPI

from .agent import AgentProcess
from .test_foundations import vm_record

pytestmark = pytest.mark.root


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_stops_acknowledgements_and_loses_none(small_disk, tmp_path):
    state = small_disk / "state"
    agent = AgentProcess(str(state), extra_args=("--unix-socket", ""))
    agent.start()
    try:
        s = XenAPI.Session(agent.url)
        s.xenapi.login_with_password("root", agent.password, "1.0", "disk-full")
        filler = "x" * (200 * 1024)  # each VM record carries 200 KiB: the disk fills in a few dozen
        acked, refused, lock = [], [], threading.Lock()
        for i in range(200):
            rec = vm_record(f"vm-{i}")
            rec["name_description"] = filler
            try:
                s.xenapi.VM.create(rec)
            except XenAPI.Failure as e:
                refused.append(e.details)
                break
            except OSError:  # the agent stopped mid-call
                break
            with lock:
                acked.append(f"vm-{i}")
        assert acked, "no write succeeded before the disk filled"
        assert refused and refused[0][0] == "INTERNAL_ERROR", refused
        agent.proc.wait(15)
        assert agent.proc.returncode == 1
        assert "the database cannot be written" in agent.log_text()
    finally:
        agent.stop()
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = AgentProcess(str(state), extra_args=("--unix-socket", ""))
    again.start()
    try:
        s = XenAPI.Session(again.url)
        s.xenapi.login_with_password("root", again.password, "1.0", "disk-full")
        names = sorted(r["name_label"] for r in s.xenapi.VM.get_all_records().values()
                       if r["name_label"].startswith("vm-"))
        assert names == sorted(acked)  # every acknowledged VM, and not the refused one
        s.xenapi.VM.create(vm_record("after the disk was freed"))
    finally:
        again.cleanup()
