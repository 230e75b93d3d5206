"""The agent starts, prints where it listens, and the real XenAPI client logs in."""

import XenAPI


def test_login_over_tcp_and_unix_socket(agent):
    s = XenAPI.Session(agent.url)
    s.xenapi.login_with_password("root", agent.password, "1.0", "smoke-test")
    try:
        pools = s.xenapi.pool.get_all()
        assert len(pools) == 1
    finally:
        s.xenapi.session.logout()
    local = XenAPI.Session("http://" + agent.socket.replace("/", "_") + "/", transport=XenAPI.UDSTransport())
    local.xenapi.login_with_password("", "")
    try:
        assert local.xenapi.session.get_is_local_superuser(local._session) is True
    finally:
        local.xenapi.session.logout()


def test_first_start_prints_the_generated_password_once(fresh_agent):
    import os
    import stat
    fresh_agent.start()
    printed = [line.split(": ", 1)[1].strip() for line in fresh_agent.banner
               if line.startswith("Generated a password for root:")]
    assert printed == [fresh_agent.password]
    mode = stat.S_IMODE(os.stat(os.path.join(fresh_agent.state_dir, "root-password")).st_mode)
    assert mode == 0o600
    fresh_agent.stop()
    fresh_agent.start()  # a second start generates nothing
    assert not any(line.startswith("Generated") for line in fresh_agent.banner)
