"""Local user database: the agent's own users, salted scrypt hashes in one JSON file.

The file maps user -> {"scheme": "scrypt", "salt": b64, "hash": b64, "n", "r", "p"}.
It is mode 0600 in a 0700 directory (when we create that directory) and is only
ever replaced whole: written to a temporary file beside it, fsynced, renamed over
the old one, then the directory is fsynced. Readers therefore see the old or the
new database, never half of one.

Several writers may exist at once (the running agent and `hostagent passwd`), so
every read-modify-write holds an flock on the database's directory, and every
operation re-reads the file when its stat signature changed.
"""

import base64
import binascii
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import threading
import unicodedata
from typing import Dict, List, Optional, Tuple

from .auth import AuthenticationFailed, AuthUnavailable, InvalidUserName, PasswordRejected

log = logging.getLogger(__name__)

SCHEME = "scrypt"
SCRYPT_N = 2 ** 14
SCRYPT_R = 8
SCRYPT_P = 1
KEY_BYTES = 32
SALT_BYTES = 16
MAX_USER_LEN = 256
# Bounds for parameters read back from the file, so a tampered file cannot make
# a check allocate gigabytes or spin for minutes.
_MAX_N, _MAX_R, _MAX_P = 2 ** 20, 32, 16

_Record = Dict[str, object]
_Stamp = Optional[Tuple[int, int, int, int]]


def validate_user_name(user: str) -> None:
    """Raise InvalidUserName unless `user` can be stored in the database."""
    if not isinstance(user, str) or user == "":
        raise InvalidUserName("user name must not be empty")
    if len(user) > MAX_USER_LEN:
        raise InvalidUserName(f"user name must be at most {MAX_USER_LEN} characters")
    if ":" in user:
        raise InvalidUserName("user name must not contain ':'")
    if any(unicodedata.category(c) == "Cc" for c in user):
        raise InvalidUserName("user name must not contain control characters")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    # maxmem: scrypt needs 128*r*(n+p) bytes plus slack; OpenSSL's default cap is 32 MiB.
    maxmem = 128 * r * (n + p + 2) + (1 << 20)
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt,
                          n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)


def make_record(password: str) -> _Record:
    """A fresh database entry for `password` with a new random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    return {"scheme": SCHEME, "salt": _b64(salt), "hash": _b64(key),
            "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P}


def _matches(record: _Record, password: str) -> bool:
    """Constant-time check of `password` against a stored record; False if malformed."""
    try:
        if record.get("scheme") != SCHEME:
            return False
        n, r, p = record["n"], record["r"], record["p"]
        if not all(type(v) is int for v in (n, r, p)):
            return False
        if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 0 < r <= _MAX_R and 0 < p <= _MAX_P):
            return False
        salt = base64.b64decode(record["salt"], validate=True)
        want = base64.b64decode(record["hash"], validate=True)
        if not salt or not 16 <= len(want) <= 64:
            return False
        got = _scrypt(password, salt, n, r, p, len(want))
    except (AttributeError, KeyError, TypeError, ValueError, binascii.Error):
        return False
    return hmac.compare_digest(got, want)


def _write_atomically(path: str, data: bytes) -> None:
    """Replace `path` with `data` (mode 0600): temp file, fsync, rename, fsync dir."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _ensure_dir(directory: str) -> None:
    """Create `directory` 0700 if missing; an existing one keeps its mode."""
    if os.path.isdir(directory):
        return
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)  # makedirs' mode is filtered by the umask


class LocalUsers:
    """The local user database in one JSON file (`--auth local`)."""

    kind = "local"

    def __init__(self, path):
        self.path = os.fspath(path)
        self._lock = threading.RLock()
        self._users: Dict[str, _Record] = {}
        self._stamp: _Stamp = None
        self._decoy: Optional[_Record] = None

    # -- the port ---------------------------------------------------------------

    def check(self, user: str, password: str) -> None:
        """Return if `password` is `user`'s; AuthenticationFailed otherwise."""
        with self._lock:
            self._refresh()
            record = self._users.get(user) if isinstance(user, str) else None
        if not isinstance(password, str) or password == "":
            raise AuthenticationFailed()
        ok = _matches(record if record is not None else self._decoy_record(), password)
        if record is None or not ok:
            raise AuthenticationFailed()

    def change_password(self, user: str, old: str, new: str) -> None:
        """Set `user`'s password to `new` if `old` is the current one."""
        _check_new_password(new)
        with self._lock, self._file_lock():
            self._refresh()
            self.check(user, old)
            users = dict(self._users)
            users[user] = make_record(new)
            self._save(users)

    def _decoy_record(self) -> _Record:
        """Checked against when the user is unknown, so that case costs one scrypt too."""
        if self._decoy is None:
            self._decoy = make_record(secrets.token_urlsafe(16))
        return self._decoy

    # -- administration ---------------------------------------------------------

    def set_password(self, user: str, password: str) -> None:
        """Create `user` or replace their password."""
        validate_user_name(user)
        _check_new_password(password)
        record = make_record(password)
        with self._lock, self._file_lock():
            self._refresh()
            users = dict(self._users)
            users[user] = record
            self._save(users)

    def users(self) -> List[str]:
        """Names of all users, sorted."""
        with self._lock:
            self._refresh()
            return sorted(self._users)

    def has_users(self) -> bool:
        with self._lock:
            self._refresh()
            return bool(self._users)

    def ensure_root(self, password_file) -> Optional[str]:
        """On an empty database create `root` with a generated password.

        The password is written to `password_file` (0600) before the database, so
        a crash in between leaves no user with an unknown password. Returns the
        password, or None when the database already had users.
        """
        password_file = os.fspath(password_file)
        with self._lock, self._file_lock():
            self._refresh()
            if self._users:
                return None
            password = secrets.token_urlsafe(18)
            try:
                _ensure_dir(os.path.dirname(os.path.abspath(password_file)))
                _write_atomically(password_file, (password + "\n").encode("ascii"))
            except OSError as e:
                log.error("cannot write %s: %s", password_file, e)
                raise AuthUnavailable("cannot write the root password file") from e
            self._save({"root": make_record(password)})
        log.info("created local user root; its password is in %s", password_file)
        return password

    # -- file handling ----------------------------------------------------------

    def _stat_stamp(self) -> _Stamp:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as e:
            log.error("cannot stat local user database %s: %s", self.path, e)
            raise AuthUnavailable("local user database is unreadable") from e
        return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)

    def _refresh(self) -> None:
        """Re-read the file if it changed since we last read or wrote it."""
        stamp = self._stat_stamp()
        if stamp == self._stamp:
            return
        if stamp is None:
            self._users, self._stamp = {}, None
            return
        try:
            with open(self.path, "rb") as f:
                # Stat the open file: the name may be replaced again while we read.
                st = os.fstat(f.fileno())
                data = json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            self._users, self._stamp = {}, None
            return
        except (OSError, ValueError) as e:
            log.error("cannot read local user database %s: %s", self.path, e)
            raise AuthUnavailable("local user database is unreadable") from e
        if not isinstance(data, dict) or not all(
                isinstance(k, str) and isinstance(v, dict) for k, v in data.items()):
            log.error("local user database %s is not a JSON object of records", self.path)
            raise AuthUnavailable("local user database is unreadable")
        if st.st_mode & 0o077:
            log.warning("local user database %s is readable by others (mode %o)",
                        self.path, st.st_mode & 0o777)
        self._users = data
        self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)

    def _save(self, users: Dict[str, _Record]) -> None:
        data = json.dumps(users, indent=1, sort_keys=True).encode("utf-8") + b"\n"
        try:
            _write_atomically(self.path, data)
        except OSError as e:
            log.error("cannot write local user database %s: %s", self.path, e)
            raise AuthUnavailable("cannot write the local user database") from e
        self._users = users
        self._stamp = self._stat_stamp()

    def _file_lock(self):
        """Exclusive flock on the database's directory, across processes."""
        return _DirLock(os.path.dirname(os.path.abspath(self.path)))


class _DirLock:
    """flock(LOCK_EX) on a directory, creating it 0700 first; no extra files needed."""

    def __init__(self, directory: str):
        self.directory = directory
        self.fd = -1

    def __enter__(self):
        try:
            _ensure_dir(self.directory)
            self.fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError as e:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
            log.error("cannot create or lock directory %s: %s", self.directory, e)
            raise AuthUnavailable("cannot write the local user database") from e
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing releases the flock
        self.fd = -1
        return False


def _check_new_password(password: str) -> None:
    if not isinstance(password, str) or password == "":
        raise PasswordRejected("the password must not be empty")

