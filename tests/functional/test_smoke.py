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


def test_first_start_names_the_password_file_but_never_prints_the_secret(fresh_agent):
    """Under systemd stdout lands in the journal: the banner says where the generated
    password is, never the password itself."""
    import os
    import stat
    fresh_agent.start()
    text = "".join(fresh_agent.banner)
    password_file = os.path.join(fresh_agent.state_dir, "root-password")
    assert fresh_agent.password not in text and fresh_agent.password not in "".join(fresh_agent.log_lines)
    assert f"Generated a password for root, kept in {password_file}" in text
    assert f"Log in as root with the password in {password_file}" in text
    mode = stat.S_IMODE(os.stat(password_file).st_mode)
    assert mode == 0o600
    fresh_agent.stop()
    fresh_agent.start()  # a second start generates nothing
    assert not any(line.startswith("Generated") for line in fresh_agent.banner)


def test_banner_when_another_user_was_made_first(fresh_agent):
    """`hostagent passwd carol` on a new state dir: serve makes no root and says so,
    instead of pointing at a root-password file that does not exist."""
    import os
    import subprocess
    import sys
    subprocess.run([sys.executable, "-m", "hostagent", "passwd", "carol", "--state-dir", fresh_agent.state_dir],
                   input="carols-secret\n", text=True, check=True, capture_output=True)
    fresh_agent.start()
    text = "".join(fresh_agent.banner)
    assert not os.path.exists(os.path.join(fresh_agent.state_dir, "root-password"))
    assert "root-password" not in text
    assert "Log in as a local user (carol)" in text
    s = XenAPI.Session(fresh_agent.url)
    s.xenapi.login_with_password("carol", "carols-secret", "1.0", "smoke-test")
    s.xenapi.session.logout()
