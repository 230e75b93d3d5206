"""`hostagent passwd`: main() with in-memory streams and a temporary state dir."""

import io
import os
import stat

import pytest

from hostagent import passwd, paths
from hostagent.backends.auth import AUTH_FAILURE, AuthError
from hostagent.backends.auth_local import LocalUsers


def run(argv, stdin_text):
    out, err = io.StringIO(), io.StringIO()
    code = passwd.main(argv, io.StringIO(stdin_text), out, err)
    return code, out.getvalue(), err.getvalue()


def test_sets_password_from_first_line_of_stdin(tmp_path):
    state = tmp_path / "state"
    code, out, err = run(["alice", "--state-dir", str(state)], "s3cret\nignored second line\n")
    assert (code, out, err) == (0, "password set for alice\n", "")
    db_file = state / paths.USERS_FILE
    assert stat.S_IMODE(os.stat(db_file).st_mode) == 0o600
    db = LocalUsers(db_file)
    assert db.users() == ["alice"]
    db.check("alice", "s3cret")
    with pytest.raises(AuthError) as e:
        db.check("alice", "s3cret\n")
    assert e.value.reason == AUTH_FAILURE


@pytest.mark.parametrize("text, password", [
    ("no newline", "no newline"),
    ("crlf\r\n", "crlf"),
    (" spaces kept \n", " spaces kept "),
])
def test_line_endings(tmp_path, text, password):
    assert run(["bob", "--state-dir", str(tmp_path)], text)[0] == 0
    LocalUsers(tmp_path / paths.USERS_FILE).check("bob", password)


def test_replaces_an_existing_password_and_keeps_other_users(tmp_path):
    run(["alice", "--state-dir", str(tmp_path)], "one\n")
    run(["bob", "--state-dir", str(tmp_path)], "bobs\n")
    assert run(["alice", "--state-dir", str(tmp_path)], "two\n")[0] == 0
    db = LocalUsers(tmp_path / paths.USERS_FILE)
    db.check("alice", "two")
    db.check("bob", "bobs")


@pytest.mark.parametrize("stdin_text", ["", "\n", "\r\n"])
def test_empty_password_is_refused(tmp_path, stdin_text):
    code, out, err = run(["alice", "--state-dir", str(tmp_path)], stdin_text)
    assert code == 2
    assert out == ""
    assert "empty password" in err
    assert not (tmp_path / paths.USERS_FILE).exists()


def test_bad_user_name_is_refused(tmp_path):
    code, out, err = run(["a:b", "--state-dir", str(tmp_path)], "pw\n")
    assert code == 2 and out == ""
    assert "':'" in err
    assert not (tmp_path / paths.USERS_FILE).exists()


def test_missing_user_is_a_usage_error(tmp_path):
    code, out, err = run(["--state-dir", str(tmp_path)], "pw\n")
    assert code == 2 and out == ""
    assert "usage: hostagent passwd" in err and "USER" in err


def test_help_goes_to_stdout():
    code, out, err = run(["--help"], "")
    assert code == 0 and err == ""
    assert "usage: hostagent passwd" in out and "--state-dir" in out


def test_unwritable_state_dir_fails_with_exit_1(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = run(["alice", "--state-dir", str(blocker / "state")], "pw\n")
    assert code == 1 and out == ""
    assert "hostagent passwd:" in err


def test_default_state_dir_is_used(tmp_path, monkeypatch):
    monkeypatch.setattr(passwd, "default_state_dir", lambda: str(tmp_path / "dflt"))
    assert run(["carol"], "pw\n")[0] == 0
    LocalUsers(tmp_path / "dflt" / paths.USERS_FILE).check("carol", "pw")


def test_tty_prompts_twice_and_requires_a_match(tmp_path, monkeypatch):
    answers = iter(["first", "second"])
    monkeypatch.setattr(passwd.getpass, "getpass", lambda prompt, stream=None: next(answers))
    tty = io.StringIO()
    tty.isatty = lambda: True
    out, err = io.StringIO(), io.StringIO()
    code = passwd.main(["alice", "--state-dir", str(tmp_path)], tty, out, err)
    assert code == 2 and "do not match" in err.getvalue()
    assert not (tmp_path / paths.USERS_FILE).exists()

    answers = iter(["same", "same"])
    out, err = io.StringIO(), io.StringIO()
    assert passwd.main(["alice", "--state-dir", str(tmp_path)], tty, out, err) == 0
    LocalUsers(tmp_path / paths.USERS_FILE).check("alice", "same")


def test_default_state_dir_rules(tmp_path):
    assert paths.default_state_dir(euid=0, environ={}) == "/var/lib/hostagent"
    assert paths.default_state_dir(euid=1000, environ={"XDG_STATE_HOME": "/x/state",
                                                       "HOME": "/home/u"}) == "/x/state/hostagent"
    assert paths.default_state_dir(euid=1000, environ={"HOME": "/home/u"}) \
        == "/home/u/.local/state/hostagent"
    # A relative XDG_STATE_HOME is invalid by the spec and ignored.
    assert paths.default_state_dir(euid=1000, environ={"XDG_STATE_HOME": "rel",
                                                       "HOME": "/home/u"}) \
        == "/home/u/.local/state/hostagent"
    assert paths.USERS_FILE == "users.json" and paths.ROOT_PASSWORD_FILE == "root-password"
