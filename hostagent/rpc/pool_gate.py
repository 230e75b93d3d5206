"""What a pool member (a slave) does with a client's call, as xapi does.

A slave serves its own whitelist (pool and emergency logins, local logout) and calls
made with a session valid on it alone (intra-pool sessions from `session.slave_login`,
emergency sessions from `slave_local_login_with_password`). Everything else belongs to
the master: a TCP client gets `HOST_IS_SLAVE [master address]` and reconnects there; a
Unix-socket client (local root, xe on the host) is proxied to the master unchanged.
Unlike xapi, `session.login_with_password` on the Unix socket is proxied too: the slave
holds no copy of the pool's sessions, so the session must be the master's.
"""

from typing import Optional, Union

from ..datamodel.errors import ApiError

SERVE, PROXY = "serve", "proxy"

# served by a slave itself whoever calls (of xapi's whitelist, what the agent implements)
WHITELIST = frozenset({
    "session.slave_login",
    "session.slave_local_login_with_password",
    "session.local_logout",
    "system.listMethods",
})


def decide(store, master_address: str, method, params, transport: str) -> Union[str, ApiError]:
    """SERVE, PROXY, or the ApiError to answer with."""
    name = method[6:] if isinstance(method, str) and method.startswith("Async.") else method
    if name in WHITELIST:
        return SERVE
    if _own_session(store, params[0] if params else None):
        return SERVE
    if transport == "unix":
        return PROXY
    return ApiError("HOST_IS_SLAVE", master_address)


def _own_session(store, ref) -> bool:
    """A session this host serves itself: intra-pool or emergency-local."""
    if not isinstance(ref, str) or not store.exists("session", ref):
        return False
    return bool(store.get("session", ref)["pool"] or store.private_of("session", ref).get("local"))


def verdict_for(membership, store, method, params, transport: str) -> Optional[Union[str, ApiError]]:
    """None when this host is a master (it serves everything), else `decide`'s answer."""
    if not membership.is_slave:
        return None
    return decide(store, membership.role.master_address, method, params, transport)
