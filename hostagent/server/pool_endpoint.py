"""The pool's internal endpoint (JSON over HTTPS, /pool/v1/...) and a slave's client gate.

Members call each other here, on the TLS listeners only. `hello` and `join` (a joining
host's first contacts) check the credentials they carry; every other call carries the
pool secret in a header, checked before anything runs (401 otherwise). Replies are
`{"value": ...}` or `{"error": [code, params...]}`. `/pool/v1/rpc` serves a member's
proxied XML-RPC or JSON-RPC body as if it came from this host's own Unix socket.
"""

import json
import logging

from twisted.internet.defer import Deferred
from twisted.web import server

from ..datamodel.errors import ApiError
from ..actions import pool as pool_actions
from ..actions import pool_emergency, pool_forward, pool_handover
from ..pool.client import PREFIX, SECRET_HEADER
from ..rpc import pool_gate
from ..rpc.dispatch import Origin, Reply
from .routes import Caller, Unauthorized

log = logging.getLogger("hostagent.pool")

JOIN_MAX_BODY = 64 * 1024 * 1024  # a joining host's records (many VDIs)
SMALL_MAX_BODY = 64 * 1024  # hello and identity: a few fields
RPC_MAX_BODY = 300 * 1024
TAKE_OVER_MAX_BODY = 512 * 1024 * 1024  # the whole pool database (pool.designate_new_master)


def tls_only(call) -> Caller:
    """The joining host's calls: over TLS; their credentials are checked by the handler."""
    if not call.request.isSecure():
        raise Unauthorized("pool calls come over TLS")
    return Caller("", "")


class SecretAuth:
    """Calls between members: over TLS, with the pool secret."""

    def __init__(self, membership):
        self.membership = membership

    def before_body(self, request) -> bool:
        """Whether the headers admit the caller (routes.py caps the body of one they do not)."""
        presented = request.getHeader(SECRET_HEADER.encode("ascii"))
        return request.isSecure() and self.membership.secret_ok(
            presented.decode("utf-8", "replace") if presented else None)

    def __call__(self, call) -> Caller:
        if not call.request.isSecure():
            raise Unauthorized("pool calls come over TLS")
        if not self.before_body(call.request):
            raise Unauthorized("pool call without the pool secret")
        return Caller("", "")


class JsonOp:
    """One internal call: a JSON body in, `fn(ctx, payload)` (plain or async), JSON out."""

    methods = (b"POST",)

    def __init__(self, runtime, fn):
        self.runtime, self.fn = runtime, fn

    def render(self, call):
        request = call.request
        try:
            payload = json.loads(request.content.read() or b"{}")
        except (ValueError, RecursionError):  # not JSON, or nested beyond the parser's depth
            payload = None
        ctx = self.runtime.context(None, None, call.origin, None)

        async def run():
            try:
                out = self.fn(ctx, payload if isinstance(payload, dict) else {})
                value = (await out) if hasattr(out, "__await__") else out
                return {"value": value}
            except ApiError as e:
                return {"error": e.description}

        def answer(reply):
            if not call.over:
                request.setHeader(b"Content-Type", b"application/json")
                request.write(json.dumps(reply).encode("utf-8"))
                request.finish()

        def crashed(failure):
            log.error("pool call %s failed: %s", request.path.decode(), failure.getTraceback())
            answer({"error": ["INTERNAL_ERROR", failure.getErrorMessage()]})

        Deferred.fromCoroutine(run()).addCallback(answer).addErrback(crashed)
        return server.NOT_DONE_YET


class RpcRelay:
    """A member's proxied API call, answered as if made on this host's Unix socket."""

    methods = (b"POST",)

    def __init__(self, api_resource):
        self.api = api_resource

    def render(self, call):
        body = call.request.content.read()
        origin = Origin("unix", f"pool member {call.origin.peer}", call.origin.originator)
        return self.api.serve_body(call.request, body, origin, json=call.query.get("codec") == "json")


class SlaveGate:
    """The client gate of the API site (see rpc/pool_gate.py): None while this host is a master."""

    def __init__(self, membership, store):
        self.membership, self.store = membership, store

    def __call__(self, method, params, origin, body, is_json):
        freeze = self.membership.freeze
        if freeze.holds(method):  # a handover is under way: decide once it has ended
            held = Deferred()
            freeze.wait(lambda: held.callback(None))
            return held.addCallback(lambda _: self(method, params, origin, body, is_json))
        verdict = pool_gate.verdict_for(self.membership, self.store, method, params, origin.transport)
        if verdict is None or verdict == pool_gate.SERVE:
            return None  # served here (see `serving`)
        if isinstance(verdict, ApiError):
            return Reply(error=verdict.description)
        ctype = "application/json" if is_json else "text/xml"
        return Deferred.fromCoroutine(
            self.membership.forward("rpc", body, ctype, query="codec=json" if is_json else "codec=xml"))

    def serving(self, method):
        """A call served here begins: the callable to run when it ends (None: not counted),
        so that a handover waits for the calls under way."""
        freeze = self.membership.freeze
        if not freeze.counts(method):
            return None
        freeze.begin()
        return freeze.end


def register(router, runtime, membership, relay_api) -> None:
    """Route /pool/v1/... on every listener (refused unless over TLS)."""
    secret = SecretAuth(membership)
    router.route(PREFIX + "hello", JsonOp(runtime, pool_actions.serve_hello), auth=tls_only,
                 max_body=SMALL_MAX_BODY)
    router.route(PREFIX + "join", JsonOp(runtime, pool_actions.serve_join), auth=tls_only,
                 max_body=JOIN_MAX_BODY)
    router.route(PREFIX + "heartbeat", JsonOp(runtime, pool_actions.serve_heartbeat), auth=secret)
    router.route(PREFIX + "eject", JsonOp(runtime, pool_actions.serve_eject), auth=secret)
    router.route(PREFIX + "port", JsonOp(runtime, pool_forward.serve_port), auth=secret)
    router.route(PREFIX + "domain_event", JsonOp(runtime, pool_forward.serve_domain_event), auth=secret)
    router.route(PREFIX + "take_over", JsonOp(runtime, pool_handover.serve_take_over), auth=secret,
                 max_body=TAKE_OVER_MAX_BODY)
    router.route(PREFIX + "identity", JsonOp(runtime, pool_emergency.serve_identity), auth=tls_only,
                 max_body=SMALL_MAX_BODY)
    router.route(PREFIX + "db_copy", JsonOp(runtime, pool_emergency.serve_db_copy), auth=secret,
                 max_body=TAKE_OVER_MAX_BODY)
    router.route(PREFIX + "repoint", JsonOp(runtime, pool_handover.serve_repoint), auth=secret)
    router.route(PREFIX + "rpc", RpcRelay(relay_api), auth=secret, max_body=RPC_MAX_BODY)
