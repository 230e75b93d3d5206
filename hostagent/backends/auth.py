"""Authentication port: check a user's password, change it.

Adapters: `auth_local.LocalUsers` (the agent's own user database, the embedded
default) and `auth_pam.PamAuth` (dom0 accounts through PAM). Both block; the
server calls them from a thread pool.

Every error is an `AuthError` whose `reason` may be shown to a client as is.
A failed check always says "Authentication failure", whatever went wrong, so a
client never learns whether a user exists or whether only the password was bad.
"""

from typing import Protocol, runtime_checkable

AUTH_FAILURE = "Authentication failure"


class AuthError(Exception):
    """Root of the port's errors; `reason` is safe to show to a client."""

    def __init__(self, reason: str = AUTH_FAILURE):
        super().__init__(reason)
        self.reason = reason


class AuthenticationFailed(AuthError):
    """Wrong user name or password (deliberately not saying which)."""

    def __init__(self):
        super().__init__(AUTH_FAILURE)


class InvalidUserName(AuthError):
    """A user name that cannot be stored (empty, ':' or control characters)."""


class PasswordRejected(AuthError):
    """A new password that the backend refuses to store, or cannot change."""


class AuthUnavailable(AuthError):
    """The backend itself does not work (unreadable database, no PAM library)."""


@runtime_checkable
class Authenticator(Protocol):
    """What the session layer needs from a user database."""

    kind: str  # "local" or "pam"; shown in logs and host details

    def check(self, user: str, password: str) -> None:
        """Return if `password` is `user`'s; raise AuthError otherwise."""

    def change_password(self, user: str, old: str, new: str) -> None:
        """Replace `user`'s password after checking `old`; raise AuthError on failure."""
