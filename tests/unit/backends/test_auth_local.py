"""LocalUsers: the local user database file (scrypt records, 0600, atomic replacement)."""

import base64
import hashlib
import json
import os
import stat
import threading

import pytest

from hostagent.backends import auth_local
from hostagent.backends.auth import (AUTH_FAILURE, Authenticator, AuthenticationFailed,
                                     AuthError, AuthUnavailable, InvalidUserName,
                                     PasswordRejected)
from hostagent.backends.auth_local import LocalUsers


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "state" / "users.json"


@pytest.fixture
def db(db_path):
    return LocalUsers(db_path)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def reason_of(fn, *args):
    with pytest.raises(AuthError) as info:
        fn(*args)
    return info.value


def test_is_an_authenticator(db):
    assert isinstance(db, Authenticator)
    assert db.kind == "local"


def test_set_then_check(db):
    db.set_password("alice", "s3cret")
    db.check("alice", "s3cret")  # no exception


def test_wrong_password_unknown_user_and_empty_password_look_the_same(db):
    db.set_password("alice", "s3cret")
    errors = [reason_of(db.check, "alice", "wrong"),
              reason_of(db.check, "bob", "s3cret"),
              reason_of(db.check, "alice", ""),
              reason_of(db.check, "", "s3cret"),
              reason_of(db.check, "al:ice", "s3cret")]
    assert {type(e) for e in errors} == {AuthenticationFailed}
    assert {e.reason for e in errors} == {AUTH_FAILURE}
    assert {str(e) for e in errors} == {AUTH_FAILURE}


def test_check_on_missing_database_fails_without_creating_anything(db, db_path):
    assert reason_of(db.check, "root", "x").reason == AUTH_FAILURE
    assert not db_path.parent.exists()
    assert db.users() == [] and not db.has_users()


def test_file_is_0600_and_new_directory_0700(db, db_path):
    old = os.umask(0o022)
    try:
        db.set_password("alice", "pw")
    finally:
        os.umask(old)
    assert mode(db_path) == 0o600
    assert mode(db_path.parent) == 0o700


def test_existing_directory_keeps_its_mode(tmp_path):
    os.chmod(tmp_path, 0o755)
    LocalUsers(tmp_path / "users.json").set_password("alice", "pw")
    assert mode(tmp_path) == 0o755
    assert mode(tmp_path / "users.json") == 0o600


def test_record_format_is_salted_scrypt(db, db_path):
    secret = "plain-text-secret-9f2c"  # no base64 alphabet run this long turns up by chance
    db.set_password("alice", secret)
    rec = json.loads(db_path.read_text())["alice"]
    assert rec["scheme"] == "scrypt"
    assert (rec["n"], rec["r"], rec["p"]) == (2 ** 14, 8, 1)
    salt = base64.b64decode(rec["salt"])
    assert len(salt) == 16
    # An independent computation from the documented parameters gives the stored hash.
    want = hashlib.scrypt(secret.encode(), salt=salt, n=2 ** 14, r=8, p=1, dklen=32)
    assert base64.b64decode(rec["hash"]) == want
    assert secret not in db_path.read_text()


def test_salts_differ_for_the_same_password(db, db_path):
    db.set_password("alice", "same")
    db.set_password("bob", "same")
    data = json.loads(db_path.read_text())
    assert data["alice"]["salt"] != data["bob"]["salt"]
    assert data["alice"]["hash"] != data["bob"]["hash"]


def test_set_password_replaces(db):
    db.set_password("alice", "one")
    db.set_password("alice", "two")
    db.check("alice", "two")
    assert reason_of(db.check, "alice", "one").reason == AUTH_FAILURE
    assert db.users() == ["alice"]


def test_change_password(db):
    db.set_password("alice", "old")
    db.set_password("bob", "bobs")
    db.change_password("alice", "old", "new")
    db.check("alice", "new")
    assert reason_of(db.check, "alice", "old").reason == AUTH_FAILURE
    db.check("bob", "bobs")  # others untouched


def test_change_password_needs_the_old_one(db):
    db.set_password("alice", "old")
    e = reason_of(db.change_password, "alice", "wrong", "new")
    assert isinstance(e, AuthenticationFailed) and e.reason == AUTH_FAILURE
    assert isinstance(reason_of(db.change_password, "nobody", "old", "new"), AuthenticationFailed)
    db.check("alice", "old")


def test_change_password_refuses_empty_new(db):
    db.set_password("alice", "old")
    assert isinstance(reason_of(db.change_password, "alice", "old", ""), PasswordRejected)
    db.check("alice", "old")


def test_set_password_refuses_empty(db, db_path):
    e = reason_of(db.set_password, "alice", "")
    assert isinstance(e, PasswordRejected) and "empty" in e.reason
    assert not db_path.exists()


def test_users_and_has_users(db):
    assert not db.has_users()
    db.set_password("bob", "b")
    db.set_password("alice", "a")
    assert db.has_users()
    assert db.users() == ["alice", "bob"]


@pytest.mark.parametrize("name, words", [
    ("", "empty"),
    ("a:b", "':'"),
    ("a\nb", "control"),
    ("tab\there", "control"),
    ("nul\x00", "control"),
    ("del\x7f", "control"),
    ("c1\x85", "control"),
    ("x" * 257, "at most"),
])
def test_bad_user_names(db, db_path, name, words):
    e = reason_of(db.set_password, name, "pw")
    assert isinstance(e, InvalidUserName)
    assert words in e.reason
    assert not db_path.exists()


def test_unusual_but_valid_user_names(db):
    for name in ("root", "a b", "Jürgen", "x" * 256, "user@example.com"):
        db.set_password(name, "pw")
        db.check(name, "pw")


def test_non_ascii_passwords(db):
    db.set_password("alice", "päss wörd ✓")
    db.check("alice", "päss wörd ✓")


def test_ensure_root_on_empty_database(db, db_path, tmp_path):
    pwfile = tmp_path / "state" / "root-password"
    password = db.ensure_root(pwfile)
    assert password and len(password) >= 24
    assert pwfile.read_text() == password + "\n"
    assert mode(pwfile) == 0o600
    assert mode(db_path) == 0o600
    assert db.users() == ["root"]
    db.check("root", password)


def test_ensure_root_does_nothing_when_users_exist(db, tmp_path):
    db.set_password("alice", "pw")
    pwfile = tmp_path / "root-password"
    assert db.ensure_root(pwfile) is None
    assert not pwfile.exists()
    assert db.users() == ["alice"]


def test_ensure_root_only_once(db, tmp_path):
    pwfile = tmp_path / "root-password"
    first = db.ensure_root(pwfile)
    assert LocalUsers(db.path).ensure_root(pwfile) is None
    assert pwfile.read_text() == first + "\n"
    db.check("root", first)


def test_ensure_root_creates_no_user_if_the_password_file_cannot_be_written(db, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    assert isinstance(reason_of(db.ensure_root, blocker / "root-password"), AuthUnavailable)
    assert not db.has_users()


def test_ensure_root_passwords_are_random(tmp_path):
    a = LocalUsers(tmp_path / "a" / "users.json").ensure_root(tmp_path / "a" / "pw")
    b = LocalUsers(tmp_path / "b" / "users.json").ensure_root(tmp_path / "b" / "pw")
    assert a != b


def test_reload_after_another_writer(db, db_path):
    db.set_password("alice", "pw")
    assert db.users() == ["alice"]
    LocalUsers(db_path).set_password("bob", "bobs")  # e.g. `hostagent passwd` meanwhile
    db.check("bob", "bobs")
    assert db.users() == ["alice", "bob"]


def test_reload_after_external_edit_in_place(db, db_path):
    db.set_password("alice", "pw")
    db.check("alice", "pw")
    data = json.loads(db_path.read_text())
    data["carol"] = data.pop("alice")
    st = os.stat(db_path)
    db_path.write_text(json.dumps(data))  # same inode; make sure the mtime moves
    os.utime(db_path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert db.users() == ["carol"]
    db.check("carol", "pw")
    assert reason_of(db.check, "alice", "pw").reason == AUTH_FAILURE


def test_deleted_file_means_no_users(db, db_path):
    db.set_password("alice", "pw")
    db_path.unlink()
    assert not db.has_users()
    assert reason_of(db.check, "alice", "pw").reason == AUTH_FAILURE


def test_writer_does_not_lose_other_writers_users(db, db_path):
    other = LocalUsers(db_path)
    db.set_password("alice", "a")
    other.set_password("bob", "b")  # other had never read the file
    db.set_password("carol", "c")   # db's cache is stale: it must re-read first
    assert LocalUsers(db_path).users() == ["alice", "bob", "carol"]


def test_concurrent_writers_lose_nothing(db_path):
    names = [f"user{i}" for i in range(8)]
    barrier = threading.Barrier(len(names))

    def write(name):
        db = LocalUsers(db_path)  # one instance each, like separate processes
        barrier.wait()
        db.set_password(name, "pw")

    threads = [threading.Thread(target=write, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert LocalUsers(db_path).users() == names


def test_writes_leave_no_temporary_files(db, db_path, tmp_path):
    db.set_password("alice", "pw")
    db.set_password("bob", "pw")
    db.change_password("alice", "pw", "pw2")
    db.ensure_root(tmp_path / "state" / "root-password")  # no-op: users exist
    assert sorted(os.listdir(db_path.parent)) == ["users.json"]


def test_failed_write_keeps_old_file_and_removes_temp(db, db_path, monkeypatch):
    db.set_password("alice", "pw")
    before = db_path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(auth_local.os, "replace", broken_replace)
    e = reason_of(db.set_password, "bob", "pw")
    assert isinstance(e, AuthUnavailable)
    monkeypatch.undo()
    assert db_path.read_bytes() == before
    assert os.listdir(db_path.parent) == ["users.json"]
    assert db.users() == ["alice"]  # the cache did not take the failed change either


def test_corrupt_file_is_an_auth_error_not_a_crash(db, db_path):
    db_path.parent.mkdir()
    db_path.write_text("{not json")
    e = reason_of(db.check, "root", "pw")
    assert isinstance(e, AuthUnavailable)
    assert "{not json" not in e.reason
    db_path.write_text("[1, 2]")
    assert isinstance(reason_of(db.users), AuthUnavailable)


@pytest.mark.parametrize("tamper", [
    {"scheme": "md5"},
    {"n": 3},
    {"n": 2 ** 30},
    {"r": 0},
    {"p": "1"},
    {"salt": "***"},
    {"hash": ""},
])
def test_malformed_records_never_match(db, db_path, tamper):
    db.set_password("alice", "pw")
    data = json.loads(db_path.read_text())
    data["alice"].update(tamper)
    _rewrite(db_path, data)
    with pytest.raises(AuthenticationFailed):
        LocalUsers(db_path).check("alice", "pw")


def test_a_record_that_is_not_an_object_makes_the_database_unreadable(db_path):
    _rewrite(db_path, {"bob": "not a record"})
    with pytest.raises(AuthUnavailable):
        LocalUsers(db_path).check("bob", "x")


def test_records_with_other_scrypt_parameters_still_work(db, db_path):
    salt = os.urandom(16)
    key = hashlib.scrypt(b"pw", salt=salt, n=2 ** 10, r=4, p=2, dklen=32)
    _rewrite(db_path, {"old": {"scheme": "scrypt", "salt": base64.b64encode(salt).decode(),
                               "hash": base64.b64encode(key).decode(), "n": 2 ** 10, "r": 4,
                               "p": 2}})
    db.check("old", "pw")
    assert reason_of(db.check, "old", "pW").reason == AUTH_FAILURE


def _rewrite(path, data):
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data))
    os.utime(path, ns=(0, 1_000_000_000))  # a stamp no earlier read can have seen
