"""The composition root: build every object of a running agent from a Config.

Nothing else constructs long-lived objects; tests build agents through
`build()` with their own config (and, where they want, their own clock).
"""

import logging
import os
import sys
import time
import uuid as uuidlib
from typing import Callable, List

from twisted.internet import endpoints, task
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.threads import deferToThread, deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from .. import __version__
from ..actions import all_handlers, consoles, domains, pif, pif_metrics, pool_forward, storage_boot, templates
from ..backends.nbd_block import NbdBlockDevices
from ..actions.bootstrap import ensure_host, machine
from ..actions.context import Ports, Runtime
from ..actions.host_facts import HostMonitor
from ..actions.intents import IntentLog
from ..actions.oprules import TABLES
from ..actions.reconcile import Reconcilers
from ..backends import hostinfo, netlink, nftables, udev
from ..backends.auth import AuthError
from ..backends.consoles import HOST_KEY, ConsolePort, Vncterms
from ..backends.guest_agent import TestGuestAgent, XenstoreGuestAgent
from ..backends.hypervisor import Domains, Hypervisor, HypervisorError
from ..backends.hypervisor.access import grant_state_access
from ..backends.hypervisor.port import DomainPort
from ..backends.xenstore import FakeXenstore, Xenstore
from ..backends.storage import Storage
from ..config import Config, migrate_uri
from ..datamodel.api import build_api
from ..datamodel.errors import ApiError
from ..db.journal import Journal, JournalError
from ..db.store import Store
from ..paths import HOST_UUID_FILE, ROOT_PASSWORD_FILE, USERS_FILE
from ..actions import pool as pool_actions
from ..actions import pool_emergency
from ..pool.identity import ensure_identity, load_identity
from ..pool.membership import Membership
from ..rpc.dispatch import Dispatcher
from ..rpc.events import EventHub, EventLimits
from ..rpc.sessions import SessionManager
from ..rpc.tasks import TaskManager
from ..rpc.xmlrpc import XmlEncoder
from .durability import GroupCommit
from .transfer_url import UrlImport
from .console import ConsoleSettler, Relays
from .console_pool import register as console_routes
from .feed import Feed
from .locks import SharedExclusiveLock
from .listeners import listen_all
from .site import ApiResource, ApiSite, xapi_router
from . import pool_endpoint
from . import transfer_routes
from .waiters import Waiter
from .watched import WatchedSource

log = logging.getLogger("hostagent")


# seconds between two samples of the hypervisor's figures (host memory, CPU use)
SAMPLE_INTERVAL = 5.0


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
        self.commit.on_durable.append(self.store.settled)
        self.commit.on_failure.append(self._journal_failed)
        self.store.load(self.journal.load())  # objects, generation counter, remembered deletions
        self.generated_password = None  # set by _auth() on a first start
        self.exit_code = 0  # what `serve` returns once the reactor stops
        # reports from adapters' threads (libvirt events, samples) become work on the reactor
        self.reconcilers = None
        self.feed = Feed(reactor, self._reconcile)
        # libvirt: one connection, its calls serialised in a pool of their own
        self.hypervisor = Hypervisor(config.libvirt_uri, on_event=self.feed.put)
        self.hypervisor.start_events()
        self.libvirt_pool = ThreadPool(1, 1, name="libvirt")
        self.node = self._node_facts()
        if self.node is not None:
            grant_state_access(config.state_dir, self.node.driver)
        self.facts = machine(hostinfo.probe(config.address or netlink.management_address()), self.node)
        self.host_ref = ensure_host(self.store, self.facts, __version__, clock, self._host_uuid())
        self.auth = self._auth()
        self.sessions = SessionManager(self.store, clock, lambda: self.host_ref)
        self.tasks = TaskManager(self.store, clock, lambda: self.host_ref)
        sleep = lambda s: task.deferLater(reactor, max(0.0, s), lambda: None)  # noqa: E731
        self.events = EventHub(self.store, clock, lambda: Waiter(reactor), sleep,
                               EventLimits(queue=config.event_queue))
        self.sessions.on_destroy.append(self.events.session_gone)
        self.encoder = XmlEncoder(self.api)
        # storage drivers block (files, LVM, mounts): their own worker pool, which calls
        # enter only once they hold their SR's lock (queued on the reactor, no thread)
        self.storage_pool = ThreadPool(1, 4, name="storage")
        in_storage_pool = lambda fn, *a: deferToThreadPool(reactor, self.storage_pool, fn, *a)  # noqa: E731
        self.storage = Storage(config.state_dir, in_storage_pool,
                               make_lock=lambda: SharedExclusiveLock(reactor), start=shield)
        self.intents = IntentLog(self.journal.put_intent, self.journal.remove_intent,
                                 self.journal.intents, deferToThread)
        in_libvirt_pool = lambda fn, *a: deferToThreadPool(reactor, self.libvirt_pool, fn, *a)  # noqa: E731
        driver = self.node.driver if self.node else None
        if driver == "Xen":  # libxl takes no NBD disk: VHD chains as /dev/nbdN (nbd-client)
            self.storage.nbd_devices = NbdBlockDevices(config.state_dir)
        xenstore = Xenstore() if driver == "Xen" else FakeXenstore()
        # vncterms are started and stopped in a worker of their own
        self.console_pool = ThreadPool(1, 1, name="consoles")
        self.consoles = ConsolePort(Vncterms(config.state_dir),
                                    lambda fn, *a: deferToThreadPool(reactor, self.console_pool, fn, *a),
                                    host_console=config.host_console)
        ports = Ports(
            storage=self.storage,
            intents=self.intents,
            authenticate=lambda u, p: deferToThread(self.auth.check, u, p),
            change_password=lambda u, o, n: deferToThread(self.auth.change_password, u, o, n),
            auth_failure_delay=config.auth_failure_delay,
            hypervisor=self.hypervisor,
            domains=DomainPort(Domains(self.hypervisor, migrate_uri(config, self.facts.address)), in_libvirt_pool,
                              driver),
            xenstore=xenstore,
            guest_agent={"Xen": XenstoreGuestAgent(xenstore), "TEST": TestGuestAgent()}.get(driver),
            scratch_dir=os.path.join(config.state_dir, "suspend"),
            boot_dir=os.path.join(config.state_dir, "boot"),
            run_blocking=deferToThread,
            consoles=self.consoles,
            links=(netlink.NetworkPort(config.netns or None, deferToThread, udev.nic_facts)
                   if config.manage_network else None),
            filters=nftables.VifFilters(config.netns or None, deferToThread) if config.manage_network else None,
            url_import=lambda ctx, *a: self.url_import(ctx, *a),  # made below, with the transfers
        )
        self.membership = self._membership()
        self.membership.links_netns = (config.netns or "") if config.manage_network else None
        self.runtime = Runtime(store=self.store, sessions=self.sessions, tasks=self.tasks, events=self.events,
                               ports=ports, host=self.host_ref, clock=clock, sleep=sleep, shield=shield,
                               wait_durable=self.commit.wait, pool=self.membership)
        self.dispatcher = Dispatcher(self.api, self.runtime, all_handlers(), oplock_tables=TABLES,
                                     spawn=self._spawn, fragment=self.encoder.fragment,
                                     cancelled=(CancelledError,))
        self.runtime.oplocks = self.dispatcher.oplocks
        # HTTP handlers (/export, /import, /console, ...) register here before any listener opens
        self.router = xapi_router(self.dispatcher)
        # the pool's internal endpoint (/pool/v1/...), and what a slave does with clients' calls
        self.gate = pool_endpoint.SlaveGate(self.membership, self.store)
        pool_endpoint.register(self.router, self.runtime, self.membership,
                               ApiResource(self.dispatcher, self.encoder, "unix", gate=self.gate))
        self._pool_loop = task.LoopingCall(self.pool_tick)
        self._pool_loop.clock = reactor
        # CONNECT /console: relays closed when their session ends or their VM stops
        self.relays = Relays()
        self.sessions.on_destroy.append(self.relays.session_gone)
        self.consoles.on_vm_gone.append(self.relays.vm_gone)
        console_routes(self.router, self.runtime, reactor, self.relays, self.membership)  # members' too
        self.console_settler = ConsoleSettler(reactor, self.runtime)
        self.transfer_pool = transfer_routes.transfer_pool()
        transfers = transfer_routes.register(self.router, self.runtime, self.encoder, reactor, self.transfer_pool)
        self.url_import = UrlImport(transfers)  # VM.import, in the transfers' thread pool
        self.monitor = HostMonitor()
        self._reading_guests = False
        self.reconcilers = self._reconcilers(config.state_dir)
        # with --manage-network, from start on (see _watch_links): the kernel's link notifications
        # and udev's NIC events, their sockets watched by the reactor
        self.link_monitor = self.nic_events = None
        self._sampler = task.LoopingCall(self.sample)
        self._sampler.clock = reactor
        self.ports: List = []
        self.urls: List[str] = []
        self._gc = task.LoopingCall(self.collect)
        self._gc.clock = reactor

    def _membership(self) -> Membership:
        """This host's TLS identity (made at first start unless --cert/--key), role and secret."""
        config = self.config
        if config.cert and config.key:
            identity = load_identity(config.cert, config.key)
        else:
            hosts = [spec.rpartition(":")[0] for spec in config.tls_listen]
            identity = ensure_identity(config.state_dir, self.store.get("host", self.host_ref)["uuid"],
                                       [config.address, self.facts.address, *hosts, self.facts.hostname])
        # calls to other members block a worker each (a proxied event.from for long): a pool
        # of their own, so they never starve the reactor's default pool
        self.pool_threads = ThreadPool(1, 32, name="pool")
        in_pool_threads = lambda fn, *a: deferToThreadPool(self.reactor, self.pool_threads, fn, *a)  # noqa: E731
        return Membership(config.state_dir, identity, in_pool_threads, self.clock,
                          config.pool_heartbeat, config.pool_host_timeout)

    async def pool_tick(self) -> None:
        """Every heartbeat interval: a slave beats to its master; a master marks silent members."""
        ctx = self.runtime.internal()
        try:
            if self.membership.is_slave:
                await pool_actions.beat(ctx)
            else:
                pool_actions.mark_silent(ctx)
                # the members' database copies (when due): not waited for by the heartbeats
                Deferred.fromCoroutine(pool_emergency.send_copies(ctx)).addErrback(
                    lambda f: log.error("database copies: %s", f.getTraceback()))
        except ApiError as e:
            log.warning("pool heartbeat: %s", " ".join(e.description))

    async def _watch_links(self) -> None:
        """Links changed behind the agent's back (carrier, removals: `link` reports) and NICs that
        appear, go or are renamed (`nic` reports), followed from now on (the sockets are made,
        and the links dumped once, in a worker thread)."""
        netns = self.config.netns or None
        try:
            events = await deferToThread(netlink.LinkEvents, netns)
            self.link_monitor = WatchedSource(self.reactor, events, self.feed, "link")
            self.link_monitor.start()
        except netlink.LinkError as e:
            log.warning("links changed behind the agent's back are not followed: %s", e)
        try:
            events = await deferToThread(udev.NetDeviceEvents, netns)
            self.nic_events = WatchedSource(self.reactor, events, self.feed, "nic")
            self.nic_events.start()
        except udev.UdevError as e:
            log.warning("NICs that appear or go are not followed: %s", e)

    def collect(self):
        """Periodic clean-up: idle sessions, old tasks."""
        self.sessions.expire_idle()
        self.tasks.collect()

    def _journal_failed(self, error) -> None:
        """The database cannot be written: nothing more is acknowledged (the journal refuses),
        and the agent stops so that its supervisor restarts it from what is durable; the
        changes whose callers got this error live only in memory until then."""
        log.critical("stopping: %s", error)
        self.exit_code = 1
        if self.reactor.running:
            self.reactor.callLater(0, self.reactor.stop)

    def _reconcilers(self, state_dir: str) -> Reconcilers:
        """What start-up settles, in order, and which reports the adapters send."""
        r = Reconcilers(self.runtime)
        r.at_start("tasks that died with the last run fail", lambda ctx: ctx.tasks.fail_interrupted())
        r.at_start("storage", lambda ctx: storage_boot.start(ctx, state_dir))
        r.at_start("built-in templates", templates.ensure)
        r.at_start("VMs and their domains", domains.at_start)
        r.at_start("PIFs on their bridges", pif.at_start)
        r.at_start("who runs device models", consoles.report_device_model)
        r.at_start("console terminals (adopted, started, stopped)", consoles.at_start)
        # allowed operations follow this host's SM capabilities; no operation survives a restart
        r.at_start("operation locks", lambda ctx: self.dispatcher.oplocks.reset())
        r.on("domain", pool_forward.push_lifecycle)  # a pool member's go to its master
        r.on("host_sample", self._sampled)
        r.on("link", pif.link_changed)
        r.on("nic", pif_metrics.nic_changed)
        r.on("connection", lambda ctx, v: log.warning("libvirt %s: connection %s", self.config.libvirt_uri, v[0]))
        return r

    async def _sampled(self, ctx, sample):
        """Every host sample: the host's figures, then the domains' (VM_metrics) and what
        running guests publish."""
        self.monitor.apply(ctx, sample)
        if self._reading_guests:
            return  # the last round still runs (many guests, slow xenstore): skip this one
        self._reading_guests = True
        try:
            await domains.figures(ctx)
            await domains.guest_metrics(ctx)
        finally:
            self._reading_guests = False

    async def _reconcile(self, kind, value):
        if self.reconcilers is not None:
            await self.reconcilers.apply(kind, value)

    def _node_facts(self):
        """The hypervisor's view of the machine, or None (with a warning) when libvirt cannot
        be reached now; the periodic sample fills the figures in once it can."""
        try:
            return self.hypervisor.node_facts()
        except HypervisorError as e:
            log.warning("hypervisor facts unavailable, using /proc for now: %s", e)
            return None

    def _host_uuid(self) -> str:
        """This host's uuid, kept in the state dir; made on the first start (or taken from
        the pool's master for a state dir from before hosts were named)."""
        path = os.path.join(self.config.state_dir, HOST_UUID_FILE)
        try:
            with open(path) as f:
                value = f.read().strip()
            return str(uuidlib.UUID(value))
        except FileNotFoundError:
            pass
        except ValueError:
            raise JournalError(f"{path} does not hold a host uuid; restore it or remove it") from None
        pools = self.store.all("pool")
        value = (self.store.get("host", next(iter(pools.values()))["master"])["uuid"] if pools
                 else str(uuidlib.uuid4()))
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(value + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return value

    def sample(self):
        """Sample the hypervisor's figures off the reactor and report them."""
        d = deferToThreadPool(self.reactor, self.libvirt_pool, self.hypervisor.sample)

        def report(sample):
            return self.feed.put_here("host_sample", sample)

        def unavailable(failure):
            failure.trap(HypervisorError)
            log.info("cannot sample the hypervisor: %s", failure.getErrorMessage())
        return d.addCallbacks(report, unavailable)

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
        self.libvirt_pool.start()
        self.console_pool.start()
        self.transfer_pool.start()
        self.pool_threads.start()
        # changes made while loading (first start, refreshed host facts) become durable first
        await self.commit.wait(self.commit.issued)
        # reconciled before any client can look: tasks of the last run settled, SRs
        # re-attached, interrupted storage work settled, scans done, locks reset
        await self.reconcilers.start()
        if self.config.manage_network:
            await self._watch_links()
        await self.commit.wait(self.commit.issued)
        tcp_site = lambda: ApiSite(self.dispatcher, self.encoder, "tcp", router=self.router,  # noqa: E731
                                   gate=self.gate)
        identity = self.membership.identity
        for p, url in await listen_all(self.reactor, self.config, tcp_site, identity.cert_path,
                                       identity.key_path):
            self.ports.append(p)
            self.urls.append(url)
            if url.startswith("https://") and not self.membership.endpoint:
                self.membership.endpoint = self._endpoint(p.getHost())
        path = self.config.socket_path
        if path:
            if os.path.exists(path):
                os.unlink(path)
            ep = endpoints.UNIXServerEndpoint(self.reactor, path, mode=0o600)
            self.ports.append(await ep.listen(ApiSite(self.dispatcher, self.encoder, "unix", router=self.router,
                                                      gate=self.gate)))
            self.urls.append(f"unix:{path}")
        self._gc.start(30.0, now=False)
        self._pool_loop.start(self.config.pool_heartbeat, now=True)
        self._sampler.start(SAMPLE_INTERVAL, now=True)
        self.consoles.on_change = self.console_settler.poke  # VMs that start or stop
        self.console_settler.start()

    async def stop(self):
        for loop in (self._gc, self._sampler, self._pool_loop):
            if loop.running:
                loop.stop()
        for p in self.ports:
            await p.stopListening()
        self.ports = []
        # console relays close; guests' vncterms run on (adopted by the next start, ended by
        # their guests), the host's login prompt stops with the agent that manages it
        self.consoles.on_change = None
        self.console_settler.stop()
        self.relays.close_all()
        if self.consoles.host_console:
            await self.consoles.stop(HOST_KEY)
        for watched in (self.link_monitor, self.nic_events):
            if watched is not None:
                watched.stop()
        # queued storage calls are refused; running ones end in their threads, joined off
        # the reactor so their results (and records) still arrive
        self.storage.close()
        await deferToThread(self.storage_pool.stop)
        if self.commit.failed is None:  # after a failed write there is nothing more to wait for
            await self.commit.wait(self.commit.issued)
        # worker threads are joined off the reactor, as the storage pool's above
        self.membership.close()  # a proxied long call would hold its worker (and the stop) for long
        for pool in (self.commit, self.libvirt_pool, self.transfer_pool, self.console_pool, self.pool_threads):
            await deferToThread(pool.stop)
        await deferToThread(self.hypervisor.close)
        self.journal.close()

    def _endpoint(self, where) -> str:
        """HOST:PORT other members use to reach this TLS listener (a wildcard: host.address)."""
        host = where.host
        if host in ("0.0.0.0", "::"):
            host = self.store.get("host", self.host_ref)["address"] or "127.0.0.1"
        return f"[{host}]:{where.port}" if ":" in host else f"{host}:{where.port}"

    def _password_file_works(self) -> bool:
        """Whether the generated root password file still holds root's password."""
        try:
            with open(self.password_file) as f:
                self.auth.check("root", f.read().strip())
            return True
        except (OSError, AuthError):
            return False

    def banner(self, out=sys.stdout) -> None:
        """Where the agent listens and how to log in. Never a secret: under systemd this
        lands in the journal; a generated password is only ever in its 0600 file."""
        for url in self.urls:
            print(f"hostagent listening on {url}", file=out)
        if self.config.auth == "local":
            change = f"hostagent passwd USER --state-dir {self.config.state_dir}"
            if self.generated_password:
                print(f"Generated a password for root, kept in {self.password_file} (readable by root "
                      "only)", file=out)
            users = self.auth.users()
            if "root" in users and self._password_file_works():
                print(f"Log in as root with the password in {self.password_file} "
                      f"(change it with: {change.replace('USER', 'root')})", file=out)
            elif users:
                print(f"Log in as a local user ({', '.join(users)}); set passwords with: {change}",
                      file=out)
            else:
                print(f"Log in: no local user exists yet; make one with: {change}", file=out)
        else:
            print("Log in with a dom0 account (PAM)", file=out)
        out.flush()
