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
