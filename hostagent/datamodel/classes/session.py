"""session: a logged-in client's handle."""

from ..decl import RW, RO_CONSTRUCTOR as RC, RO_RUNTIME as RO, cls, field, message, param
from ..types import BOOL, DATETIME, STRING, MapOf, Ref, SetOf, EPOCH, NULL_REF

SMAP = MapOf(STRING, STRING)

SESSION = cls(
    "session",
    "A client's authenticated handle; every call but login names one.",
    get_all=False,
    events=False,
    fields=[
        field("uuid", STRING, RO),
        field("this_host", Ref("host"), RO, doc="The host the session was created on."),
        field("this_user", Ref("user"), RO),
        field("last_active", DATETIME, RO, doc="When the session last made a call."),
        field("pool", BOOL, RO, doc="True for sessions between pool members."),
        field("other_config", SMAP, RW, {}),
        field("is_local_superuser", BOOL, RO, False),
        field("subject", Ref("subject"), RO, NULL_REF),
        field("validation_time", DATETIME, RO, EPOCH),
        field("auth_user_sid", STRING, RO, ""),
        field("auth_user_name", STRING, RO, ""),
        field("rbac_permissions", SetOf(STRING), RC, []),
        field("tasks", SetOf(Ref("task")), RO),
        field("parent", Ref("session"), RC, NULL_REF),
        field("originator", STRING, RO, ""),
        field("client_certificate", BOOL, RO, False),
    ],
    messages=[
        message("login_with_password",
                [param("uname", STRING), param("pwd", STRING),
                 param("version", STRING, "1.1"), param("originator", STRING, "")],
                Ref("session"), ["SESSION_AUTHENTICATION_FAILED", "HOST_IS_SLAVE"],
                "Check a user name and password and return a new session.",
                session=False, async_=False),
        message("slave_local_login_with_password",
                [param("uname", STRING), param("pwd", STRING)], Ref("session"),
                ["SESSION_AUTHENTICATION_FAILED"],
                "Log in to this host alone, bypassing the pool master.",
                session=False, async_=False),
        message("slave_login", [param("host", Ref("host")), param("psecret", STRING)], Ref("session"),
                ["SESSION_AUTHENTICATION_FAILED"],
                "An intra-pool session on this host, for a pool member presenting the pool secret.",
                session=False, async_=False),
        message("logout", [], doc="End the calling session.", async_=False),
        message("local_logout", [], doc="End a session made by slave_local_login_with_password.",
                async_=False),
        message("change_password", [param("old_pwd", STRING), param("new_pwd", STRING)],
                errors=["USER_IS_NOT_LOCAL_SUPERUSER", "SESSION_AUTHENTICATION_FAILED"],
                doc="Change the calling user's password.", async_=False),
    ],
)
