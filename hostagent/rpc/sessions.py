"""Sessions: creation, validation, eviction by group caps, idle expiry.

Caps follow today's xapi: at most 500 sessions per non-empty originator, 500
per non-root user, 400 anonymous ones (root or no user, no originator) and
400 intra-pool ones. A new session beyond a cap evicts the least recently
active session of its group (never one with a pending task). Sessions idle
for 24 hours expire. `last_active` moves on every call; it is kept in memory
and reaches the database with the session's next durable write.
"""

import logging
from dataclasses import dataclass
from typing import Callable, Dict, Optional

from ..datamodel.errors import ApiError
from ..datamodel.types import NULL_REF
from ..db.store import Store
from .coerce import now_text

log = logging.getLogger("hostagent.sessions")

IDLE_TIMEOUT = 24 * 3600.0


@dataclass(frozen=True)
class Limits:
    per_originator: int = 500
    per_user: int = 500
    anonymous: int = 400
    pool: int = 400
    idle_timeout: float = IDLE_TIMEOUT


class SessionManager:
    def __init__(self, store: Store, clock: Callable[[], float], host_ref: Callable[[], str],
                 limits: Limits = Limits()):
        self.store = store
        self.clock = clock
        self.host_ref = host_ref
        self.limits = limits
        self.active: Dict[str, float] = {}  # ref -> last call time (seconds)
        self.on_destroy = []  # callbacks(ref) run when a session ends (event waiters)
        now = clock()
        for ref in store.all("session"):
            self.active[ref] = store.private["session"][ref].get("active", now)

    # --------------------------------------------------------------- lifecycle
    def create(self, user: str, originator: str, superuser: bool, pool: bool = False,
               parent: str = NULL_REF, local: bool = False) -> str:
        """A new session; `local`: valid on this host alone (slave_local_login), which a
        pool member serves itself instead of sending its client to the master."""
        now = self.clock()
        group = self._group(user, originator, pool)
        with self.store.transaction():
            ref = self.store.create("session", {
                "this_host": self.host_ref(),
                "last_active": now_text(now),
                "pool": pool,
                "is_local_superuser": superuser,
                "auth_user_name": user,
                "originator": originator,
                "parent": parent,
                "rbac_permissions": [],
            }, private={"group": list(group), "active": now, **({"local": True} if local else {})})
        self.active[ref] = now
        self._enforce_cap(group)
        return ref

    def check(self, ref) -> dict:
        """The session's record, refreshed as active; SESSION_INVALID otherwise."""
        rec = self.store.tables["session"].get(ref) if isinstance(ref, str) else None
        if rec is None:
            raise ApiError("SESSION_INVALID", ref if isinstance(ref, str) else "")
        now = self.clock()
        if now - self.active[ref] >= 1.0:
            rec["last_active"] = now_text(now)  # runtime field, deliberately not journaled
            self.store.private["session"][ref]["active"] = now
        self.active[ref] = now
        return rec

    def destroy(self, ref: str, reason: str = "logout") -> None:
        if not self.store.exists("session", ref):
            return
        with self.store.transaction():
            self.store.delete("session", ref)
        self.active.pop(ref, None)
        log.info("session %s ended (%s)", _short(ref), reason)
        for cb in list(self.on_destroy):
            cb(ref)

    # ------------------------------------------------------------- collection
    def expire_idle(self) -> int:
        """Destroy sessions idle longer than the timeout; returns how many."""
        cutoff = self.clock() - self.limits.idle_timeout
        stale = [r for r, t in self.active.items() if t < cutoff and not self._busy(r)]
        for r in stale:
            self.destroy(r, "idle for more than %d s" % self.limits.idle_timeout)
        return len(stale)

    def _group(self, user: str, originator: str, pool: bool):
        if pool:
            return ("pool", "")
        if originator:
            return ("originator", originator)
        if user and user != "root":
            return ("user", user)
        return ("anonymous", "")

    def _cap(self, group) -> int:
        kind = group[0]
        return {"pool": self.limits.pool, "originator": self.limits.per_originator,
                "user": self.limits.per_user}.get(kind, self.limits.anonymous)

    def _enforce_cap(self, group) -> None:
        members = [r for r in self.active
                   if tuple(self.store.private["session"][r].get("group", ())) == tuple(group)]
        excess = len(members) - self._cap(group)
        if excess <= 0:
            return
        candidates = sorted((r for r in members if not self._busy(r)), key=lambda r: self.active[r])
        for r in candidates[:excess]:
            log.warning("session %s evicted: more than %d sessions for %s %s",
                        _short(r), self._cap(group), group[0], group[1] or "(none)")
            self.destroy(r, "evicted")

    def _busy(self, ref: str) -> bool:
        """Sessions with a pending task are never evicted or expired."""
        tasks = self.store.tables.get("task", {})
        for t in self.store.tables["session"][ref]["tasks"]:
            rec = tasks.get(t)
            if rec is not None and rec["status"] == "pending":
                return True
        return False


def _short(ref: str) -> str:
    return ref.split(":", 1)[-1][:8]


def session_ref_or_none(ref: Optional[str]) -> Optional[str]:
    return ref if isinstance(ref, str) and ref.startswith("OpaqueRef:") else None
