"""Giving up root once everything is open: an empty root directory, no groups, another uid."""

import contextlib
import ctypes
import os
import pwd
import stat

PR_SET_NO_NEW_PRIVS = 38


class PrivilegeError(Exception):
    """The unprivileged user or the empty root directory is unusable."""


def lookup_user(name: str):
    """(uid, gid) of a user that is not root."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise PrivilegeError(f"no such user: {name}") from None
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise PrivilegeError(f"user {name} has uid or gid 0: pick an unprivileged user")
    return entry.pw_uid, entry.pw_gid


def prepare_root(path: str) -> None:
    """Make sure ``path`` is an empty directory owned by root that nobody else can write,
    creating it (mode 0555) if it is missing."""
    if not os.path.isabs(path):
        raise PrivilegeError(f"--root must be an absolute path, not {path}")
    if not os.path.exists(path):
        parent = os.path.dirname(path.rstrip("/"))
        os.makedirs(parent, mode=0o755, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o555)
        os.chmod(path, 0o555)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise PrivilegeError(f"{path} is not a directory")
    if st.st_uid != 0 or st.st_mode & 0o022:
        raise PrivilegeError(f"{path} must be owned by root and writable by no one else "
                             f"(it is uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})")
    if os.listdir(path):
        raise PrivilegeError(f"{path} is not empty")


def no_new_privileges() -> None:
    """Forbid gaining privileges through exec (setuid binaries) from now on; best effort."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def drop(uid: int, gid: int, root: str) -> None:
    """chroot into ``root``, then drop every group and switch to uid/gid for good."""
    os.chroot(root)
    os.chdir("/")
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    no_new_privileges()
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise PrivilegeError("privileges were not fully dropped")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise PrivilegeError("could regain root after dropping privileges")
