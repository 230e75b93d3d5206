"""The composition root: build every object of a running agent from a Config.

Nothing else constructs long-lived objects; tests build agents through
`build()` with their own config (and, where they want, their own clock).
"""

import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, List

from twisted.internet import endpoints, task
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.threads import deferToThread, deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from .. import __version__
from ..actions import all_handlers, storage_boot
from ..actions.bootstrap import ensure_host
from ..actions.intents import IntentLog
from ..actions.oprules import TABLES
from ..backends import hostinfo
from ..backends.storage import Storage
from ..config import Config, parse_hostport
from ..datamodel.api import build_api
from ..db.journal import Journal
from ..db.store import Store
from ..paths import ROOT_PASSWORD_FILE, USERS_FILE
from ..rpc.dispatch import Dispatcher
from ..rpc.events import EventHub, EventLimits
from ..rpc.sessions import SessionManager
from ..rpc.tasks import TaskManager
from ..rpc.xmlrpc import XmlEncoder
from .durability import GroupCommit
from .site import ApiSite
from .waiters import Waiter

log = logging.getLogger("hostagent")


@dataclass
class Services:
    """What actions may use besides the store (ports and timing)."""

    authenticate: Callable
    change_password: Callable
    sleep: Callable
    auth_failure_delay: float
    clock: Callable[[], float]
    storage: object = None  # backends.storage.Storage
    intents: object = None  # actions.intents.IntentLog
    shield: Callable = None  # shield(coroutine) -> awaitable that runs on if the caller leaves


def shield(coro):
    """Run a coroutine to its end even when its caller stops waiting (a client that hangs
    up cancels its call): storage work must not stop between the storage and its records."""
    work = Deferred.fromCoroutine(coro)
    out = Deferred()

    def done(result):
        if not out.called:
            (out.errback if isinstance(result, Failure) else out.callback)(result)
        elif isinstance(result, Failure):
            log.warning("work finished after its caller left, failing: %s", result.getErrorMessage())
        return None
    work.addBoth(done)
    return out


class Agent:
    def __init__(self, config: Config, reactor, clock: Callable[[], float] = time.time):
        self.config = config
        self.reactor = reactor
        self.clock = clock
        os.makedirs(config.state_dir, mode=0o700, exist_ok=True)
        self.api = build_api()
        self.journal = Journal(os.path.join(config.state_dir, "state.db"))
        self.commit = GroupCommit(reactor, self.journal)
        self.store = Store(self.api, submit=self.commit.submit)
        for cls, ref, data in self.journal.load():
            self.store.load_row(cls, ref, data)
        self.generated_password = None  # set by _auth() on a first start
        self.facts = hostinfo.probe(config.address)
        self.host_ref = ensure_host(self.store, self.facts, __version__, clock)
        self.auth = self._auth()
        self.sessions = SessionManager(self.store, clock, lambda: self.host_ref)
        self.tasks = TaskManager(self.store, clock, lambda: self.host_ref)
        sleep = lambda s: task.deferLater(reactor, max(0.0, s), lambda: None)  # noqa: E731
        self.events = EventHub(self.store, clock, lambda: Waiter(reactor), sleep,
                               EventLimits(queue=config.event_queue))
        self.sessions.on_destroy.append(self.events.session_gone)
        self.encoder = XmlEncoder(self.api)
        # storage drivers block (files, LVM, mounts): their own worker pool
        self.storage_pool = ThreadPool(1, 4, name="storage")
        in_storage_pool = lambda fn, *a: deferToThreadPool(reactor, self.storage_pool, fn, *a)  # noqa: E731
        self.storage = Storage(config.state_dir, in_storage_pool)
        self.intents = IntentLog(self.journal.put_intent, self.journal.remove_intent,
                                 self.journal.intents, deferToThread)
        services = Services(
            authenticate=lambda u, p: deferToThread(self.auth.check, u, p),
            change_password=lambda u, o, n: deferToThread(self.auth.change_password, u, o, n),
            sleep=sleep,
            auth_failure_delay=config.auth_failure_delay,
            clock=clock,
            storage=self.storage,
            intents=self.intents,
            shield=shield,
        )
        self.dispatcher = Dispatcher(self.api, self.store, self.sessions, all_handlers(), services,
                                     wait_durable=self.commit.wait, tasks=self.tasks, events=self.events,
                                     oplock_tables=TABLES, spawn=self._spawn, fragment=self.encoder.fragment,
                                     cancelled=(CancelledError,))
        self.dispatcher.oplocks.reset()
        self.ports: List = []
        self.urls: List[str] = []
        self._gc = task.LoopingCall(self.collect)
        self._gc.clock = reactor

    def collect(self):
        """Periodic clean-up: idle sessions, old tasks."""
        self.sessions.expire_idle()
        self.tasks.collect()

    def _spawn(self, coro):
        def crashed(failure):
            log.error("background work failed: %s", failure.getTraceback())
        return Deferred.fromCoroutine(coro).addErrback(crashed)

    def _auth(self):
        if self.config.auth == "pam":
            from ..backends.auth_pam import PamAuth
            return PamAuth()
        from ..backends.auth_local import LocalUsers
        users = LocalUsers(os.path.join(self.config.state_dir, USERS_FILE))
        self.password_file = os.path.join(self.config.state_dir, ROOT_PASSWORD_FILE)
        self.generated_password = users.ensure_root(self.password_file)
        return users

    async def start(self):
        self.commit.start()
        self.storage_pool.start()
        # changes made while loading (first start, refreshed host facts) become durable first
        await self.commit.wait(self.commit.issued)
        # storage reconciled before any client can look: SRs re-attached, interrupted work
        # settled, scans done, the local SR made on a first start
        await storage_boot.start(self.store, self.dispatcher.services, self.config.state_dir,
                                 self.commit.wait)
        self.dispatcher.oplocks.reset()  # allowed operations follow this host's SM capabilities
        await self.commit.wait(self.commit.issued)
        for spec in self.config.listen:
            host, port = parse_hostport(spec)
            ep = endpoints.TCP4ServerEndpoint(self.reactor, port, interface=host)
            p = await ep.listen(ApiSite(self.dispatcher, self.encoder, "tcp"))
            self.ports.append(p)
            self.urls.append(f"http://{host}:{p.getHost().port}/")
        for spec in self.config.tls_listen:
            host, port = parse_hostport(spec)
            desc = f"ssl:port={port}:interface={host}:privateKey={self.config.key}:certKey={self.config.cert}"
            ep = endpoints.serverFromString(self.reactor, desc)
            p = await ep.listen(ApiSite(self.dispatcher, self.encoder, "tcp"))
            self.ports.append(p)
            self.urls.append(f"https://{host}:{p.getHost().port}/")
        path = self.config.socket_path
        if path:
            if os.path.exists(path):
                os.unlink(path)
            ep = endpoints.UNIXServerEndpoint(self.reactor, path, mode=0o600)
            self.ports.append(await ep.listen(ApiSite(self.dispatcher, self.encoder, "unix")))
            self.urls.append(f"unix:{path}")
        self._gc.start(30.0, now=False)

    async def stop(self):
        if self._gc.running:
            self._gc.stop()
        for p in self.ports:
            await p.stopListening()
        self.ports = []
        await self.commit.wait(self.commit.issued)
        self.commit.stop()
        self.storage_pool.stop()
        self.journal.close()

    def banner(self, out=sys.stdout) -> None:
        for url in self.urls:
            print(f"hostagent listening on {url}", file=out)
        if self.config.auth == "local":
            if self.generated_password:
                print(f"Generated a password for root: {self.generated_password}", file=out)
            print(f"Log in as root with the password in {self.password_file} "
                  f"(change it with: hostagent passwd root --state-dir {self.config.state_dir})", file=out)
        else:
            print("Log in with a dom0 account (PAM)", file=out)
        out.flush()
