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


async def _login(ctx, uname, pwd, originator, local=False):
    if ctx.origin.local_root:
        user = uname or "root"  # the Unix socket is pre-authenticated as root
    else:
        await _authenticate(ctx, uname, pwd)
        user = uname
    ref = ctx.sessions.create(
        user, originator or ctx.origin.originator,
        superuser=ctx.origin.local_root or user == "root", local=local)
    log.info("session %s opened for %s (%s)", ref.split(":")[-1][:8], user,
             originator or ctx.origin.originator or "no originator")
    return ref


async def login_with_password(ctx, uname, pwd, version, originator):
    return await _login(ctx, uname, pwd, originator)


async def slave_local_login_with_password(ctx, uname, pwd):
    # valid on this host alone: a pool member serves it itself (rpc/pool_gate.py)
    return await _login(ctx, uname, pwd, "", local=True)


async def slave_login(ctx, host, psecret):
    """An intra-pool session for a member presenting the pool secret (xapi's slave_login)."""
    pool = getattr(ctx.rt, "pool", None)
    if pool is None or not pool.secret_ok(psecret):
        log.warning("refused a pool login from %s: wrong pool secret", ctx.origin.peer or ctx.origin.transport)
        await ctx.sleep(ctx.ports.auth_failure_delay)
        raise ApiError("SESSION_AUTHENTICATION_FAILED", "", "the pool secret does not match")
    return ctx.sessions.create("", "", superuser=True, pool=True)


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
    "session.slave_login": slave_login,
    "session.logout": logout,
    "session.local_logout": local_logout,
    "session.change_password": change_password,
}
