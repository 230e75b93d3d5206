"""session: log in and out, change passwords."""

import logging

from ..backends.auth import AuthError
from ..datamodel.errors import ApiError

log = logging.getLogger("hostagent.session")


async def _authenticate(ctx, uname: str, pwd: str) -> None:
    try:
        await ctx.ports.authenticate(uname, pwd)
    except AuthError as e:
        log.warning("failed login for %r from %s", uname, ctx.origin.peer or ctx.origin.transport)
        await ctx.sleep(ctx.ports.auth_failure_delay)
        raise ApiError("SESSION_AUTHENTICATION_FAILED", uname, e.reason) from None


async def _login(ctx, uname, pwd, originator):
    if ctx.origin.local_root:
        user = uname or "root"  # the Unix socket is pre-authenticated as root
    else:
        await _authenticate(ctx, uname, pwd)
        user = uname
    ref = ctx.sessions.create(
        user, originator or ctx.origin.originator,
        superuser=ctx.origin.local_root or user == "root")
    log.info("session %s opened for %s (%s)", ref.split(":")[-1][:8], user,
             originator or ctx.origin.originator or "no originator")
    return ref


async def login_with_password(ctx, uname, pwd, version, originator):
    return await _login(ctx, uname, pwd, originator)


async def slave_local_login_with_password(ctx, uname, pwd):
    # a lone host is its own master: until pools exist such a session is an ordinary one
    return await _login(ctx, uname, pwd, "")


def logout(ctx):
    ctx.sessions.destroy(ctx.session, "logout")
    return ""


def local_logout(ctx):
    ctx.sessions.destroy(ctx.session, "local logout")
    return ""


async def change_password(ctx, old_pwd, new_pwd):
    rec = ctx.need("session", ctx.session)
    if not rec["is_local_superuser"]:
        raise ApiError("USER_IS_NOT_LOCAL_SUPERUSER", rec["auth_user_name"])
    user = rec["auth_user_name"] or "root"
    try:
        await ctx.ports.change_password(user, old_pwd, new_pwd)
    except AuthError as e:
        raise ApiError("SESSION_AUTHENTICATION_FAILED", user, e.reason) from None
    log.info("password changed for %s", user)
    return ""


HANDLERS = {
    "session.login_with_password": login_with_password,
    "session.slave_local_login_with_password": slave_local_login_with_password,
    "session.logout": logout,
    "session.local_logout": local_logout,
    "session.change_password": change_password,
}
