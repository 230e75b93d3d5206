"""An etcd member run by the agent: the real `etcd` started, restarted by the supervisor when
it dies, stopped at the end; a member a killed agent left running is replaced at the next start."""

import os
import signal
import subprocess

import pytest
from twisted.internet import task
from twisted.internet.defer import Deferred, fail, succeed

from hostagent.backends.etcd_member import EtcdMember, EtcdMemberError, MemberSpec
from hostagent.server.etcd_members import MemberSupervisor
from tests.support import wait_for

from .etcd_support import Cluster, free_port

pytestmark = pytest.mark.slow


def run_now(fn, *args):
    """The thread pool's stand-in: runs the call at once (the test thread)."""
    try:
        return succeed(fn(*args))
    except Exception as e:  # noqa: BLE001 - handed on as a Deferred would be
        return fail(e)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def started(d: Deferred):
    out = []
    d.addBoth(out.append)
    assert out == [None], out
    return out


def test_the_supervisor_starts_again_a_member_that_died_and_stops_it_at_the_end(tmp_path):
    [member] = Cluster(tmp_path).members
    clock = task.Clock()
    sup = MemberSupervisor(clock, member, run_now, interval=1.0)
    started(Deferred.fromCoroutine(sup.start()))
    member.wait_ready(30)
    first = member.pid
    with open(member.pid_file) as f:
        assert int(f.read()) == first
    member.signal(signal.SIGKILL)
    wait_for(lambda: member.exited() is not None, 5, "the member to die")
    clock.advance(1.0)  # noticed; started again after 1 s
    assert member.pid == first and sup.restarts == 0
    clock.advance(1.0)
    assert sup.restarts == 1 and member.pid != first and member.running()
    member.wait_ready(30)  # on the same data dir, serving again
    started(Deferred.fromCoroutine(sup.stop()))
    assert not alive(first) and member.process is None and not os.path.exists(member.pid_file)
    clock.advance(10.0)
    assert sup.restarts == 1  # nothing watches it any more


def test_a_member_left_running_by_a_killed_agent_is_replaced(tmp_path):
    [spec] = [m.spec for m in Cluster(tmp_path).members]
    old = EtcdMember(spec)
    old.start()  # as an agent killed with SIGKILL leaves it: running, its pid file written
    old.wait_ready(30)
    leftover = old.pid
    new = EtcdMember(spec)
    try:
        new.start()
        assert not alive(leftover) and new.pid != leftover
        new.wait_ready(30)
    finally:
        new.stop()
        old.process.wait(5)


def test_a_pid_file_naming_another_process_is_left_alone(tmp_path):
    [spec] = [m.spec for m in Cluster(tmp_path).members]
    other = subprocess.Popen(["sleep", "60"])
    try:
        os.makedirs(spec.home, exist_ok=True)
        with open(os.path.join(spec.home, "etcd.pid"), "w") as f:
            f.write(f"{other.pid}\n")
        m = EtcdMember(spec)
        m.start()
        m.stop()
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_a_member_that_cannot_start_says_why(tmp_path):
    spec = MemberSpec("m1", str(tmp_path / "m1"), f"http://127.0.0.1:{free_port('127.0.0.1')}",
                      "http://127.0.0.1:1", {"m1": "http://127.0.0.1:1"})
    with pytest.raises(EtcdMemberError) as ei:
        EtcdMember(spec, command=str(tmp_path / "no-such-etcd")).start()
    assert "not installed" in str(ei.value)
    m = EtcdMember(spec._replace(peer_url="http://192.0.2.1:2380"))  # an address not ours
    m.start()
    try:
        with pytest.raises(EtcdMemberError) as ei:
            m.wait_ready(20)
        assert "exited" in str(ei.value)
    finally:
        m.stop()
