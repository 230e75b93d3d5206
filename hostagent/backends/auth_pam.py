"""PAM adapter (`--auth pam`): XenAPI logins are checked against dom0 accounts.

This is the only module that imports python-pam. It uses the PAM service
`hostagent`, whose file ships as `systemd/pam.d-hostagent` and must be installed
as `/etc/pam.d/hostagent` (it includes common-auth and common-account). When that
file is missing the service `login` is used instead, with a warning; `login`
adds a 3 s failure delay and refuses non-root users while /etc/nologin exists.

The agent must run as root: pam_unix lets other users check only their own
password. Every failure becomes AuthenticationFailed ("Authentication failure")
so clients cannot tell unknown users from wrong passwords; PAM's own reason is
logged at debug level (at warning level when PAM itself is broken).
"""

import logging
import os

from .auth import AuthenticationFailed, AuthUnavailable, PasswordRejected

try:
    import pam
except ImportError:  # reported when a PamAuth is built, not on import
    pam = None

log = logging.getLogger(__name__)

DEFAULT_SERVICE = "hostagent"
FALLBACK_SERVICE = "login"
PAM_DIR = "/etc/pam.d"
CHANGE_REFUSED = "changing passwords of dom0 accounts is done with passwd(1) on the host"

# Results that mean PAM or its configuration is broken rather than the credentials bad.
_SYSTEM_FAILURES = frozenset(
    getattr(pam, name) for name in (
        "PAM_ABORT", "PAM_BUF_ERR", "PAM_CONV_ERR", "PAM_MODULE_UNKNOWN", "PAM_OPEN_ERR",
        "PAM_SERVICE_ERR", "PAM_SYMBOL_ERR", "PAM_SYSTEM_ERR")
    if pam is not None and hasattr(pam, name))


class PamAuth:
    """Check dom0 accounts through the PAM service `service`."""

    kind = "pam"

    def __init__(self, service: str = DEFAULT_SERVICE, pam_dir: str = PAM_DIR):
        if pam is None:
            raise AuthUnavailable("PAM support is not installed (python-pam)")
        self.requested_service = service
        self.pam_dir = pam_dir
        self._warned_fallback = False

    @property
    def service(self) -> str:
        """The service actually used: the requested one if its file exists, else `login`.

        Looked up on every check so installing the file takes effect without a restart.
        """
        if os.path.exists(os.path.join(self.pam_dir, self.requested_service)):
            return self.requested_service
        if not self._warned_fallback:
            self._warned_fallback = True
            log.warning("PAM service file %s is missing; using service %r instead "
                        "(install systemd/pam.d-hostagent there)",
                        os.path.join(self.pam_dir, self.requested_service), FALLBACK_SERVICE)
        return FALLBACK_SERVICE

    def check(self, user: str, password: str) -> None:
        """Return if PAM accepts `password` for `user` (auth and account); raise otherwise."""
        if not isinstance(user, str) or not isinstance(password, str) or not user or not password:
            # common-auth says `nullok`: never let an empty password reach it.
            raise AuthenticationFailed()
        service = self.service
        # A fresh handle per call: python-pam objects are not thread-safe.
        # resetcreds=False: we open no login session, so there are no credentials to set.
        handle = pam.pam()
        try:
            ok = handle.authenticate(user, password, service=service, resetcreds=False)
        except ValueError as e:  # NUL in user or password
            log.debug("PAM refused the input for %r: %s", user, e)
            raise AuthenticationFailed() from None
        except Exception as e:  # libpam missing or unusable
            log.error("PAM service %r failed: %r", service, e)
            raise AuthUnavailable("PAM is not working on this host") from None
        if ok:
            return
        level = logging.WARNING if handle.code in _SYSTEM_FAILURES else logging.DEBUG
        log.log(level, "PAM service %r refused %r: %s (code %s)",
                service, user, handle.reason, handle.code)
        raise AuthenticationFailed()

    def change_password(self, user: str, old: str, new: str) -> None:
        """Always refused: python-pam has no binding for pam_chauthtok.

        Changing a dom0 account's password is done with passwd(1) on the host.
        """
        raise PasswordRejected(CHANGE_REFUSED)
