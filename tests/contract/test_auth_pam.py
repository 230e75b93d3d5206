"""PamAuth against this machine's real PAM stack, with a throwaway dom0 account.

Needs root (to add a user and for pam_unix to read /etc/shadow) and python-pam.
The PAM service file systemd/pam.d-hostagent is installed as /etc/pam.d/hostagent
for the run when it is absent, and removed again afterwards.
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
SERVICE_FILE = Path("/etc/pam.d/hostagent")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="needs root: adds a throwaway user and pam_unix reads /etc/shadow"),
    pytest.mark.skipif(auth_pam.pam is None, reason="python-pam is not importable"),
    pytest.mark.skipif(not all(shutil.which(c) for c in ("useradd", "chpasswd", "userdel")),
                       reason="useradd/chpasswd/userdel not present"),
]


@pytest.fixture(scope="module")
def pam_service():
    installed = False
    if not SERVICE_FILE.exists():
        shutil.copyfile(SERVICE_SOURCE, SERVICE_FILE)
        os.chmod(SERVICE_FILE, 0o644)
        installed = True
    try:
        yield SERVICE_FILE.name
    finally:
        if installed:
            SERVICE_FILE.unlink()


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
    return PamAuth()


def test_is_an_authenticator(auth):
    assert isinstance(auth, Authenticator)
    assert auth.kind == "pam"
    assert auth.service == "hostagent"


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
