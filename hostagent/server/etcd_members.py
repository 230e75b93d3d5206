"""Supervision of the etcd member an agent runs (backends/etcd_member.py): started with
the agent, started again when it dies, stopped when the agent stops.

The member's blocking work (starting it, waiting for it to stop) runs through
`run_blocking` (a thread pool owned by server/); checking on it is a non-blocking
wait on the reactor every `interval` seconds. A member that keeps dying is
started again after 1, 2, 4 ... up to 30 s, and after 60 s of running counts as
healthy again.
"""

import logging
from collections.abc import Callable

from twisted.internet import task
from twisted.internet.defer import Deferred

from ..backends.etcd_member import EtcdMember, EtcdMemberError

log = logging.getLogger("hostagent.etcd")

MAX_BACKOFF = 30.0
HEALTHY_AFTER = 60.0


class MemberSupervisor:
    def __init__(self, reactor, member: EtcdMember, run_blocking: Callable, interval: float = 1.0):
        self.reactor = reactor
        self.member = member
        self.run_blocking = run_blocking
        self.interval = interval
        self.restarts = 0  # how often the member was started again after dying
        self._stopping = False
        self._starting = False
        self._backoff = 1.0
        self._started_at = 0.0
        self._restart: object | None = None  # the pending delayed call
        self._loop = task.LoopingCall(self._check)
        self._loop.clock = reactor

    async def start(self) -> None:
        """Start the member and watch it; raises EtcdMemberError when it cannot start."""
        self._stopping = False
        await self._start_member()
        self._loop.start(self.interval, now=False)

    async def _start_member(self) -> None:
        self._starting = True
        try:
            await self.run_blocking(self.member.start)
            self._started_at = self.reactor.seconds()
        finally:
            self._starting = False

    def _check(self) -> None:
        if self._stopping or self._starting or self._restart is not None:
            return
        code = self.member.exited()
        if code is None:
            if self.reactor.seconds() - self._started_at > HEALTHY_AFTER:
                self._backoff = 1.0
            return
        delay = self._backoff
        self._backoff = min(MAX_BACKOFF, self._backoff * 2)
        log.warning("etcd member %s exited (status %s); starting it again in %g s: %s", self.member.spec.name,
                    code, delay, self.member.log_tail(500).strip().splitlines()[-1:] or "")
        self._restart = self.reactor.callLater(delay, self._again)

    def _again(self) -> None:
        self._restart = None
        if self._stopping:
            return
        self.restarts += 1

        def failed(failure):
            failure.trap(EtcdMemberError, OSError)
            log.error("etcd member %s could not start again: %s", self.member.spec.name,
                      failure.getErrorMessage())
        Deferred.fromCoroutine(self._start_member()).addErrback(failed)

    async def stop(self) -> None:
        """Stop watching and stop the member (SIGTERM, then SIGKILL)."""
        self._stopping = True
        if self._loop.running:
            self._loop.stop()
        if self._restart is not None:
            self._restart.cancel()
            self._restart = None
        await self.run_blocking(self.member.stop)
