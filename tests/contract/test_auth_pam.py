"""PamAuth against this machine's real PAM stack, with a throwaway dom0 account.

Needs root (to add a user and for pam_unix to read /etc/shadow) and python-pam.
The shipped PAM service file systemd/pam.d-hostagent is installed for the run
under a throwaway service name (/etc/pam.d/ha-test-<random>) and removed again:
an existing /etc/pam.d/hostagent is never touched, and concurrent runs of this
file cannot remove each other's service file mid-run.
"""

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from hostagent.backends import auth_pam
from hostagent.backends.auth import (AUTH_FAILURE, Authenticator, AuthenticationFailed,
                                     PasswordRejected)
from hostagent.backends.auth_pam import PamAuth

REPO = Path(__file__).resolve().parents[2]
SERVICE_SOURCE = REPO / "systemd" / "pam.d-hostagent"
PAM_DIR = Path("/etc/pam.d")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="needs root: adds a throwaway user and pam_unix reads /etc/shadow"),
    pytest.mark.skipif(auth_pam.pam is None, reason="python-pam is not importable"),
    pytest.mark.skipif(not all(shutil.which(c) for c in ("useradd", "chpasswd", "userdel")),
                       reason="useradd/chpasswd/userdel not present"),
]


@pytest.fixture(scope="module")
def pam_service():
    """The shipped service file, installed under a name of its own for this run."""
    name = "ha-test-" + secrets.token_hex(4)
    path = PAM_DIR / name
    shutil.copyfile(SERVICE_SOURCE, path)
    os.chmod(path, 0o644)
    try:
        yield name
    finally:
        path.unlink()


def _make_user():
    """A new system account without home or shell; returns its name."""
    name = "ha-test-" + secrets.token_hex(4)
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    return name


def _remove_user(name):
    subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def account():
    password = secrets.token_urlsafe(12)
    name = _make_user()
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True,
                       check=True, capture_output=True)
        yield name, password
    finally:
        _remove_user(name)


@pytest.fixture
def auth(pam_service):
    return PamAuth(service=pam_service)


def test_is_an_authenticator(auth, pam_service):
    assert isinstance(auth, Authenticator)
    assert auth.kind == "pam"
    assert auth.service == pam_service  # its file exists, so no fallback


def test_right_password_passes(auth, account):
    name, password = account
    auth.check(name, password)


def test_wrong_password_fails(auth, account):
    name, password = account
    with pytest.raises(AuthenticationFailed) as e:
        auth.check(name, password + "x")
    assert e.value.reason == AUTH_FAILURE


def test_unknown_user_fails_the_same_way(auth, account):
    _, password = account
    with pytest.raises(AuthenticationFailed) as e:
        auth.check("ha-test-nosuchuser", password)
    assert e.value.reason == AUTH_FAILURE


@pytest.mark.parametrize("user, password", [("", "x"), ("root", "a\x00b"), ("a\x00b", "x")])
def test_odd_input_fails_cleanly(auth, user, password):
    with pytest.raises(AuthenticationFailed) as e:
        auth.check(user, password)
    assert e.value.reason == AUTH_FAILURE


def test_empty_password_never_reaches_pam_nullok(auth):
    """common-auth has `nullok`: an account without a password would pass PAM with ""."""
    name = _make_user()
    try:
        subprocess.run(["passwd", "-d", name], check=True, capture_output=True)
        with pytest.raises(AuthenticationFailed):
            auth.check(name, "")
    finally:
        _remove_user(name)


def test_change_password_is_refused_with_a_pointer_to_passwd(auth, account):
    name, password = account
    with pytest.raises(PasswordRejected) as e:
        auth.change_password(name, password, "new-" + password)
    assert "passwd(1)" in e.value.reason
    auth.check(name, password)  # unchanged


def test_missing_service_file_falls_back_to_login(account, tmp_path):
    name, password = account
    auth = PamAuth(service="hostagent", pam_dir=str(tmp_path))  # no file there
    assert auth.service == "login"
    auth.check(name, password)


def test_installed_service_file_is_used(tmp_path):
    (tmp_path / "hostagent").write_text(SERVICE_SOURCE.read_text())
    assert PamAuth(pam_dir=str(tmp_path)).service == "hostagent"


def test_shipped_service_file_checks_auth_and_account():
    lines = [ln.split() for ln in SERVICE_SOURCE.read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines == [["@include", "common-auth"], ["@include", "common-account"]]
