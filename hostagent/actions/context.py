"""What an action sees: its call, this host, the agent's managers and ports, all typed.

The composition root builds one `Runtime`; the dispatcher asks it for a
`Context` per call (`runtime.context(entry, session, origin, task)`), and
work that runs outside any call (start-up reconciliation, backend events)
gets `runtime.internal()`: the same class, with no session and no task, so
progress, cancellation and checkpoints are no-ops there.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable, Optional

from ..datamodel.errors import ApiError
from ..db.store import Store
from ..rpc import implicit
from ..rpc.dispatch import Origin
from ..rpc.events import EventHub
from ..rpc.sessions import SessionManager
from ..rpc.tasks import TaskManager

if TYPE_CHECKING:  # the ports' types, for readers and checkers; nothing here calls them
    from ..backends.hypervisor import Hypervisor
    from ..backends.hypervisor.port import DomainPort
    from ..backends.netlink import NetworkPort
    from ..backends.nftables import VifFilters
    from ..backends.storage import Storage
    from .intents import IntentLog

INTERNAL = Origin("internal", "agent", "hostagent")


@dataclass(frozen=True)
class Ports:
    """The backends actions may use."""

    storage: "Storage"
    intents: "IntentLog"
    authenticate: Callable[[str, str], Awaitable[None]]  # raises backends.auth.AuthError
    change_password: Callable[[str, str, str], Awaitable[None]]
    auth_failure_delay: float = 5.0
    hypervisor: Optional["Hypervisor"] = None
    domains: Optional["DomainPort"] = None  # domains, run in the hypervisor's worker thread
    xenstore: Optional[object] = None  # backends.xenstore: Xenstore on a dom0, else FakeXenstore
    guest_agent: Optional[object] = None  # backends.guest_agent
    scratch_dir: str = ""  # where suspend images pass through on their way to and from a VDI
    boot_dir: str = ""  # eliloader's downloads and kernels read from guest disks, per VM uuid
    run_blocking: Optional[Callable] = None  # run_blocking(fn, *args): other blocking work (downloads)
    links: Optional["NetworkPort"] = None  # bridges, VLANs, NICs; None unless --manage-network
    consoles: Optional[object] = None  # backends.consoles.ConsolePort: the vncterms
    filters: Optional["VifFilters"] = None  # VIF locking_mode rules (nft); None unless --manage-network
    url_import: Optional[Callable] = None  # url_import(ctx, url, sr, restore, force): VM.import's work


@dataclass
class Runtime:
    """The agent's long-lived parts that actions reach, built by the composition root."""

    store: Store
    sessions: SessionManager
    tasks: TaskManager
    events: Optional[EventHub]
    ports: Ports
    host: str  # this host's ref (host identity: the state dir's host uuid)
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable]
    shield: Callable = None  # shield(coroutine): runs on to its end if the caller leaves
    wait_durable: Optional[Callable] = None  # wait_durable(ticket): awaitable
    oplocks: Optional[object] = None  # rpc.oplocks.OpLocks, once the dispatcher has made it
    pool: Optional[object] = None  # pool.membership.Membership: role, secret, calls to members

    def ports_for(self, host: str) -> Ports:
        """The ports that do host-bound work on `host`: this host's own, or a pool member's
        proxies to its agent (pool/remote.py): HOST_OFFLINE when that member is not live,
        CANNOT_CONTACT_HOST when it cannot be reached (or this host is not the master)."""
        if host == self.host:
            return self.ports
        if self.pool is not None and self.store.exists("host", host):
            return self.pool.ports_for(self.store, host, self.ports)
        raise ApiError("CANNOT_CONTACT_HOST", host)

    def context(self, entry, session: Optional[str], origin: Origin, task: Optional[str]) -> "Context":
        return Context(self, entry, session, origin, task)

    def internal(self) -> "Context":
        """A context for the agent's own work (start-up, backend events): no call, no task."""
        return Context(self, None, None, INTERNAL, None)


class Context:
    """One call (or one piece of the agent's own work) as an action sees it."""

    __slots__ = ("rt", "entry", "session", "origin", "task", "store")

    def __init__(self, rt: Runtime, entry, session: Optional[str], origin: Origin, task: Optional[str]):
        self.rt = rt
        self.entry = entry
        self.session = session
        self.origin = origin
        self.task = task
        self.store = rt.store

    # the agent's parts
    @property
    def tasks(self) -> TaskManager:
        return self.rt.tasks

    @property
    def events(self) -> EventHub:
        return self.rt.events

    @property
    def sessions(self) -> SessionManager:
        return self.rt.sessions

    @property
    def ports(self) -> Ports:
        return self.rt.ports

    @property
    def oplocks(self):
        return self.rt.oplocks

    @property
    def host(self) -> str:
        """This host's ref."""
        return self.rt.host

    def clock(self) -> float:
        return self.rt.clock()

    def on_host(self, host: str) -> "Context":
        """This call, doing its host-bound work on `host`: `ctx.host` is that host (the VM's
        resident_on, the PBD whose SR is plugged) and `ctx.ports` its ports (see ports_for).
        The task, session and database stay the master's."""
        if host == self.host:
            return self
        if host == self.rt.host:  # back from a member to this host
            return Context(self.rt, self.entry, self.session, self.origin, self.task)
        return OnHost(self.rt, self.entry, self.session, self.origin, self.task, host, self.rt.ports_for(host))

    @property
    def remote(self) -> bool:
        """Whether host-bound work goes to another member (ctx.on_host)."""
        return False

    # the call
    def need(self, cls: str, ref) -> dict:
        return implicit.need(self.store, cls, ref)

    def progress(self, fraction: float) -> None:
        """Report progress (0..1) on the call's task, if it has one."""
        if self.task:
            self.rt.tasks.set_progress(self.task, fraction)

    def cancellable(self, yes: bool = True) -> None:
        """Declare that this operation stops at checkpoints when cancelled."""
        if self.task:
            self.rt.tasks.set_cancellable(self.task, yes)

    def checkpoint(self) -> None:
        """Raise TASK_CANCELLED if someone cancelled this call's task."""
        if self.task and self.rt.tasks.cancel_requested(self.task):
            raise ApiError("TASK_CANCELLED", self.task)

    def sleep(self, seconds: float):
        """An awaitable pause on the agent's clock."""
        return self.rt.sleep(seconds)

    def shielded(self, coro):
        """The coroutine, run to its end even if the client hangs up mid-call."""
        return self.rt.shield(coro) if self.rt.shield is not None else coro

    async def durable(self) -> None:
        """Wait until every change committed so far is on disk."""
        if self.rt.wait_durable is not None and self.store.last_durable is not None:
            await self.rt.wait_durable(self.store.last_durable)


class OnHost(Context):
    """A context whose host-bound work runs on another pool member (Context.on_host)."""

    __slots__ = ("_host", "_ports")

    def __init__(self, rt, entry, session, origin, task, host: str, ports: Ports):
        super().__init__(rt, entry, session, origin, task)
        self._host, self._ports = host, ports

    @property
    def host(self) -> str:
        return self._host

    @property
    def ports(self) -> Ports:
        return self._ports

    @property
    def remote(self) -> bool:
        return True
