"""The master's database copies on its members and the emergency calls (docs/pools.md,
"Emergencies"): the master of three agents (pool_support) is killed with SIGKILL, a member
takes the pool over from its copy, the other follows it.
"""

import json

import XenAPI

from hostagent.pool.replica import COPY_FILE

from .events_support import TimeoutTransport
from .pool_support import ADDRESSES, failure, form_pool, live, template, three_hosts, wait_for


def _local(h):
    """An emergency session on a member (valid there alone, served even on a slave)."""
    s = XenAPI.Session(h.agent.url, transport=TimeoutTransport(30))
    s.slave_local_login_with_password("root", h.agent.password)
    return s.xenapi


def _copy_has(h, text):
    try:
        with open(h.file(COPY_FILE)) as f:
            return text in f.read()
    except FileNotFoundError:
        return False


def test_a_member_takes_the_pool_over_from_its_copy(tmp_path):
    with three_hosts(tmp_path) as hosts:
        a, b, c = hosts
        xa = form_pool(hosts)
        # writes on the master reach both members' copies
        pool_ref = xa.pool.get_all()[0]
        xa.pool.add_to_other_config(pool_ref, "before-emergency", "kept")
        t = template(xa)
        vm = xa.VM.clone(t, "made before the emergency")
        xa.VM.set_is_a_template(vm, False)
        wait_for(lambda: all(_copy_has(h, "made before the emergency") and _copy_has(h, "before-emergency")
                             for h in (b, c)), 15, "the members' copies current")
        with open(b.file(COPY_FILE)) as f:
            assert json.load(f)["master"] == xa.host.get_uuid(a.ref)
        # a member refuses what belongs to a master
        assert failure(_local(c).pool.recover_slaves) == ["HOST_IS_SLAVE", a.tls]

        a.agent.kill()
        assert _local(b).pool.emergency_transition_to_master() == ""
        assert not _copy_has(b, "before-emergency")  # a master keeps no copy
        xb = b.session().xenapi
        assert xb.pool.get_master(pool_ref) == b.ref
        assert sorted(xb.host.get_address(h) for h in xb.host.get_all()) == list(ADDRESSES)
        assert not live(xb, a.ref)
        assert xb.pool.get_other_config(pool_ref)["before-emergency"] == "kept"
        assert xb.VM.get_name_label(vm) == "made before the emergency"
        # c follows the dead master until told: by hand, checked against the certificates in its copy
        xc = _local(c)
        assert failure(xc.pool.emergency_reset_master, a.tls) == ["CANNOT_CONTACT_HOST", a.tls]
        assert failure(xc.pool.emergency_reset_master, "127.0.0.3:1") == ["CANNOT_CONTACT_HOST", "127.0.0.3:1"]
        assert xc.pool.emergency_reset_master(b.tls) == ""
        assert failure(xb.pool.emergency_reset_master, c.tls)[0] == "OPERATION_NOT_ALLOWED"
        # and by the new master (c follows it already: told again)
        assert set(xb.pool.recover_slaves()) == {c.ref}
        details = failure(XenAPI.Session(c.agent.url, transport=TimeoutTransport(30)).xenapi.login_with_password,
                          "root", c.agent.password, "2.21", "pool-test")
        assert details == ["HOST_IS_SLAVE", b.tls]
        wait_for(lambda: live(xb, c.ref), 10, "c heartbeating to b")
        # work on c through the new master
        xb.VM.start_on(vm, c.ref, False, False)
        assert xb.VM.get_resident_on(vm) == c.ref and xb.VM.get_power_state(vm) == "Running"
        xb.VM.hard_shutdown(vm)
        assert xb.VM.get_power_state(vm) == "Halted"
        # the new master sends its own copies to c
        xb.pool.add_to_other_config(pool_ref, "after-emergency", "yes")
        wait_for(lambda: _copy_has(c, "after-emergency"), 15, "c's copy from the new master")
        with open(c.file(COPY_FILE)) as f:
            assert json.load(f)["master"] == xb.host.get_uuid(b.ref)
        # the emergency call on a master changes nothing
        assert xb.pool.emergency_transition_to_master() == ""
        assert xb.pool.get_master(pool_ref) == b.ref
