"""This host's membership: role, secret, identity, and calls to other members.

One `Membership` per agent, built by the composition root and reached by actions as
`ctx.rt.pool`. Its role changes without a restart (`become_slave`, `become_master`):
what depends on it (the client gate, heartbeats) reads it on every use. Calls to other
members run the blocking client in the worker given as `run_blocking`, and their
failures become XenAPI errors here: `CANNOT_CONTACT_HOST [host]` when the peer cannot be
reached or is not the one recorded, the peer's own error when it answered with one.
"""

import hmac
import secrets
import logging
from typing import Callable, Dict, Optional

from ..datamodel.errors import ApiError
from ..datamodel.error_table import ERRORS
from . import client, handover, remote, replica, wire
from .identity import Identity
from .role import MASTER, SLAVE, Role, load_role, new_secret, save_role, save_secret, ensure_secret

log = logging.getLogger("hostagent.pool")
GUEST_TIMEOUT = 10.0  # seconds for a member's guest keys (best effort, read again at each sample)

HEARTBEAT_INTERVAL = 10.0  # seconds between a slave's heartbeats
OWN_EVENT_WINDOW = 5.0  # seconds within which a port call's own lifecycle event is expected
HOST_TIMEOUT = 60.0  # seconds without a heartbeat before the master marks a member not live


class Membership:
    def __init__(self, state_dir: str, identity: Identity, run_blocking: Callable, clock: Callable[[], float],
                 heartbeat_interval: float = HEARTBEAT_INTERVAL, host_timeout: float = HOST_TIMEOUT):
        self.state_dir = state_dir
        self.identity = identity
        self.run_blocking = run_blocking
        self.clock = clock
        self.heartbeat_interval = heartbeat_interval
        self.host_timeout = host_timeout
        self.role: Role = load_role(state_dir)
        self.secret: str = ensure_secret(state_dir)
        self.endpoint = ""  # HOST:PORT of this host's TLS listener, once it is open
        self.beats: Dict[str, float] = {}  # master: member host uuid -> time of its last heartbeat
        self.on_change = []  # callbacks(role), run after every role change
        self.open_calls = set()  # connections of calls under way (client.abort ends them)
        self.idle = client.Idle()  # connections to members kept between calls
        self.instance = secrets.token_hex(8)  # this run of the agent, in its heartbeats
        self.instances: Dict[str, str] = {}  # master: member host uuid -> the run whose VMs it reconciled
        self._expected: Dict[tuple, float] = {}  # member: (domain uuid, event) -> until when it is ours
        self._remote: Dict[tuple, object] = {}  # (host, endpoint, cert) -> that member's Ports
        self.freeze = handover.Freeze()  # a master handing over: calls held and counted
        self.copies = replica.Debounce()  # master: when the members' database copies are sent next
        self.copy_gens: Dict[str, int] = {}  # master: member host uuid -> generation of its copy
        # master: member host uuid -> the namespace whose links its agent manages ("" its own),
        # from its heartbeats; absent: it manages none (or has not said yet)
        self.links_of: Dict[str, str] = {}
        self.links_netns: Optional[str] = None  # this agent's, told in its heartbeats (None: none)

    # ------------------------------------------------------------------ state
    @property
    def is_slave(self) -> bool:
        return self.role.is_slave

    def secret_ok(self, presented: Optional[str]) -> bool:
        return bool(presented) and hmac.compare_digest(presented.encode("utf-8"), self.secret.encode("utf-8"))

    def become_slave(self, address: str, master_host: str, master_uuid: str, master_cert: str,
                     secret: str) -> None:
        """Persist the pool's secret, then the role (the commit point), then act on them."""
        save_secret(self.state_dir, secret)
        role = Role(SLAVE, address, master_host, master_uuid, master_cert)
        save_role(self.state_dir, role)
        self.secret, self.role = secret, role
        self._changed()

    def become_master(self, keep_secret: bool = False) -> None:
        """A lone master again, with a secret of its own; with `keep_secret`, the master of
        the same pool (a planned handover)."""
        self.role = Role(MASTER)
        save_role(self.state_dir, self.role)  # first: killed before the new secret, a lone master
        if not keep_secret:                   # with the old one, whose eject can be sent again
            self.secret = new_secret(self.state_dir)
        self.beats.clear()
        self._changed()

    def close(self) -> None:
        """End the calls under way (the agent stops): they fail as CANNOT_CONTACT_HOST."""
        client.abort(self.open_calls)
        self.idle.close()

    def _changed(self) -> None:
        log.info("pool role: %s%s", self.role.role,
                 f" of {self.role.master_address}" if self.role.is_slave else "")
        for cb in list(self.on_change):
            cb(self.role)

    def expect_event(self, uuid: str, what: str) -> None:
        """A member: the master's port call will make this lifecycle event (not to be pushed)."""
        self._expected[(uuid, what)] = self.clock() + OWN_EVENT_WINDOW

    def expected_event(self, uuid: str, what: str) -> bool:
        """Whether the event is one `expect_event` announced (then forgotten), recently."""
        now = self.clock()
        for key in [k for k, until in self._expected.items() if until < now]:
            del self._expected[key]
        return self._expected.pop((uuid, what), None) is not None

    # ------------------------------------------------------------------ calls
    async def call(self, address: str, op: str, payload: dict, *, pinned: Optional[str],
                   host: str, secret: Optional[str] = "", timeout: float = client.TIMEOUT) -> client.Answer:
        """A call to another member, `host` naming it in CANNOT_CONTACT_HOST. `secret` ""
        sends this pool's secret, None sends none (pool.join's first contact)."""
        secret = self.secret if secret == "" else secret
        try:
            return await self.run_blocking(
                lambda: client.call(address, op, payload, secret=secret, pinned=pinned, timeout=timeout,
                                    track=self.open_calls, idle=self.idle))
        except client.Unreachable as e:
            log.warning("pool call %s to %s failed: %s", op, address, e)
            raise ApiError("CANNOT_CONTACT_HOST", host) from None
        except client.Refused as e:
            raise peer_error(e.description) from None

    def ports_for(self, store, host: str, local_ports):
        """The ports of member `host` (its records on this master): proxies to its agent.
        HOST_OFFLINE when it is not live; a slave forwards nothing (CANNOT_CONTACT_HOST)."""
        if self.is_slave:
            raise ApiError("CANNOT_CONTACT_HOST", host)
        metrics = store.get("host", host)["metrics"]
        if not (store.exists("host_metrics", metrics) and store.get("host_metrics", metrics)["live"]):
            raise ApiError("HOST_OFFLINE", host)
        private = store.private_of("host", host)
        links = self.links_of.get(store.get("host", host)["uuid"])  # its heartbeat's word
        key = (host, private.get("pool_endpoint", ""), private.get("pool_cert", ""), links)
        if not key[1] or not key[2]:
            raise ApiError("CANNOT_CONTACT_HOST", host)
        ports = self._remote.get(key)
        if ports is None:
            for old in [k for k in self._remote if k[0] == host]:
                del self._remote[old]
            ports = self._remote[key] = remote.member_ports(
                local_ports, lambda port, op, args: self.port_call(key[1], key[2], host, port, op, args),
                links_netns=links)
        return ports

    async def port_call(self, address: str, cert: str, host: str, port: str, op: str, args):
        """One call of a member's port: its result, or the port's own exception raised here."""
        try:
            body = dict(wire.request(port, op, args), quiet=True)  # its own events: not told back
        except wire.WireError as e:
            raise ApiError("INTERNAL_ERROR", f"{port}.{op} for host {host}: {e}") from None
        timeout = GUEST_TIMEOUT if port == "guest" else client.RELAY_TIMEOUT  # VM work may take long
        answer = await self.call(address, "port", body, pinned=cert, host=host, timeout=timeout)
        value = answer.value
        try:
            if isinstance(value, dict) and "raised" in value:
                error = wire.decode_error(value["raised"])
            elif isinstance(value, dict) and "result" in value:
                return wire.decode(value["result"])
            else:
                raise wire.WireError("neither a result nor an error")
        except wire.WireError as e:
            log.warning("host %s answered %s.%s with something unreadable: %s", host, port, op, e)
            raise ApiError("CANNOT_CONTACT_HOST", host) from None
        raise error

    async def forward(self, op: str, body: bytes, content_type: str, query: str = ""):
        """A raw request to the master (a slave's Unix-socket proxy): (content type, body)."""
        role = self.role
        try:
            ctype, data, _ = await self.run_blocking(
                lambda: client.post(role.master_address, op, body, secret=self.secret, pinned=role.master_cert,
                                    content_type=content_type, query=query, timeout=client.RELAY_TIMEOUT,
                                    track=self.open_calls))
        except client.Unreachable as e:
            log.warning("proxying to the master %s failed: %s", role.master_address, e)
            raise ApiError("CANNOT_CONTACT_HOST", role.master_host or role.master_address) from None
        return ctype, data


def peer_error(description) -> ApiError:
    """A peer's ErrorDescription as an ApiError (INTERNAL_ERROR if it is not one we know)."""
    code, params = description[0], description[1:]
    names = ERRORS.get(code)
    if names is not None and (len(names) == len(params) or len(names) == 1 and params):
        return ApiError(code, *params) if len(names) == len(params) else ApiError(code, list(params))
    return ApiError("INTERNAL_ERROR", "pool member answered " + " ".join(description))
