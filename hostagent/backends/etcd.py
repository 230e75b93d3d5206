"""etcd's key-value API over its JSON gateway (`etcd3gw`): the only module that imports it.

`EtcdClient` knows every member's client URL and sends each request to the
member that answered last, going on to the next when one cannot be reached or
has no quorum (connection refused, a timeout, HTTP 503), for up to `retry_for`
seconds in all. A request is therefore sent again after a timeout whose first
copy may have been applied: callers send only idempotent requests (puts of
whole values, deletes, transactions whose compares still hold after they
applied). etcd's errors become `EtcdError` and its subclasses here.

Blocking, and safe to call from several threads (each thread has its own HTTP
sessions). A watch (`EtcdWatch`) is a blocking iterator for a thread of its own.
TLS to the members is not supported yet: endpoints are http:// URLs.
"""

import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import NamedTuple
from urllib.parse import urlsplit

import etcd3gw
import requests
from etcd3gw import exceptions as gw

log = logging.getLogger("hostagent.etcd")


class EtcdError(Exception):
    """etcd refused a request or answered something unexpected."""


class EtcdUnavailable(EtcdError):
    """No member could be reached, or none had a quorum, within the retry time."""


class EtcdTooLarge(EtcdError):
    """A transaction has more operations, or a request more bytes, than the members take."""


class EtcdCompacted(EtcdError):
    """The revision asked for is older than what the members keep (compacted)."""


class KeyValue(NamedTuple):
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    lease: int


class RangeResult(NamedTuple):
    kvs: list[KeyValue]
    revision: int  # the store's revision the range was read at
    more: bool  # a limit cut the answer short
    count: int  # keys in the whole range


class TxnResult(NamedTuple):
    succeeded: bool  # every compare held (the success ops ran)
    revision: int


class WatchEvent(NamedTuple):
    deleted: bool
    key: bytes
    value: bytes  # b"" for a delete
    revision: int


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix`."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return b"\0"
    p[-1] += 1
    return bytes(p)


# --------------------------------------------------------- transaction parts
def put(key: bytes, value: bytes, lease: int = 0) -> dict:
    op = {"key": _b64(key), "value": _b64(value)}
    if lease:
        op["lease"] = str(lease)
    return {"request_put": op}


def delete(key: bytes, range_end: bytes | None = None) -> dict:
    op = {"key": _b64(key)}
    if range_end is not None:
        op["range_end"] = _b64(range_end)
    return {"request_delete_range": op}


def created_at(key: bytes, revision: int) -> dict:
    """Compare: `key` exists and was created at `revision` (0: `key` does not exist)."""
    return {"key": _b64(key), "result": "EQUAL", "target": "CREATE", "create_revision": str(revision)}


def _kv(item: dict) -> KeyValue:
    return KeyValue(_unb64(item["key"]), _unb64(item.get("value", "")), int(item.get("create_revision", 0)),
                    int(item.get("mod_revision", 0)), int(item.get("lease", 0)))


def _revision(answer: dict) -> int:
    return int(answer.get("header", {}).get("revision", 0))


def _message(e: gw.Etcd3Exception) -> str:
    text = e.detail_text or ""
    try:
        return json.loads(text).get("error") or text
    except (ValueError, AttributeError):
        return text or (e.args[0] if e.args else type(e).__name__)


def _translate(e: gw.Etcd3Exception) -> EtcdError:
    message = _message(e)
    if "too many operations" in message or "request is too large" in message:
        return EtcdTooLarge(message)
    if "compacted" in message:
        return EtcdCompacted(message)
    return EtcdError(message)


# errors after which the request goes to the next member: it may be down, cut off or
# without a leader for a moment
_RETRIED = (gw.ConnectionFailedError, gw.ConnectionTimeoutError, gw.InternalServerError)


def _split(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError(f"etcd endpoint {url!r}: give http://HOST:PORT (TLS is not supported yet)")
    return parts.hostname, parts.port


class EtcdClient:
    def __init__(self, endpoints: Sequence[str], *, timeout: float = 5.0, retry_for: float = 10.0,
                 connect_timeout: float = 1.0):
        """`endpoints`: the members' client URLs; `timeout`: seconds one member has to answer;
        `retry_for`: seconds a request goes on trying the members before EtcdUnavailable."""
        if not endpoints:
            raise ValueError("no etcd endpoint given")
        self.endpoints = list(endpoints)
        self._hosts = [_split(u) for u in self.endpoints]
        self.timeout, self.retry_for, self.connect_timeout = timeout, retry_for, connect_timeout
        self._local = threading.local()
        self.preferred = 0  # the member that answered last

    def _clients(self) -> list[etcd3gw.client]:
        clients = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = [
                etcd3gw.client(host=h, port=p, timeout=(self.connect_timeout, self.timeout), api_path="/v3/",
                               session=_session()) for h, p in self._hosts]
        return clients

    def call(self, path: str, payload: dict) -> dict:
        """POST one gateway request, member after member until one answers."""
        clients = self._clients()
        deadline = time.monotonic() + self.retry_for
        last = None
        while True:
            first = self.preferred
            for k in range(len(clients)):
                i = (first + k) % len(clients)
                c = clients[i]
                try:
                    answer = c.post(c.get_url(path), json=payload)
                except _RETRIED as e:
                    last = f"{self.endpoints[i]}: {_message(e)}"
                    continue
                except gw.Etcd3Exception as e:
                    raise _translate(e) from None
                self.preferred = i
                return answer
            if time.monotonic() >= deadline:
                raise EtcdUnavailable(f"no etcd member answered within {self.retry_for:g} s (last: {last})")
            time.sleep(0.1)

    # ------------------------------------------------------------------ key-value
    def txn(self, compare: Sequence[dict], success: Sequence[dict], failure: Sequence[dict] = ()) -> TxnResult:
        answer = self.call("/kv/txn", {"compare": list(compare), "success": list(success),
                                       "failure": list(failure)})
        return TxnResult(bool(answer.get("succeeded", False)), _revision(answer))

    def range(self, key: bytes, range_end: bytes | None = None, *, revision: int = 0, limit: int = 0,
              keys_only: bool = False, sort: tuple[str, str] | None = None,
              serializable: bool = False) -> RangeResult:
        """Keys from `key` up to `range_end` (just `key` when None), read at `revision` (0: now).
        `sort`: (target, order), e.g. ("MOD", "ASCEND"). `serializable`: this member's own
        copy, without asking the leader (for tests and followers)."""
        payload: dict[str, object] = {"key": _b64(key)}
        if range_end is not None:
            payload["range_end"] = _b64(range_end)
        if revision:
            payload["revision"] = str(revision)
        if limit:
            payload["limit"] = str(limit)
        if keys_only:
            payload["keys_only"] = True
        if serializable:
            payload["serializable"] = True
        if sort:
            payload["sort_target"], payload["sort_order"] = sort
        answer = self.call("/kv/range", payload)
        kvs = [_kv(item) for item in answer.get("kvs", [])]
        return RangeResult(kvs, _revision(answer), bool(answer.get("more", False)),
                           int(answer.get("count", len(kvs))))

    def get(self, key: bytes) -> KeyValue | None:
        kvs = self.range(key).kvs
        return kvs[0] if kvs else None

    # --------------------------------------------------------------------- leases
    def grant(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; its id."""
        return int(self.call("/lease/grant", {"TTL": str(ttl), "ID": "0"})["ID"])

    def keepalive(self, lease: int) -> int:
        """Renew a lease: its TTL again, or -1 when it has expired."""
        answer = self.call("/lease/keepalive", {"ID": str(lease)})
        return int(answer.get("result", {}).get("TTL", -1))

    def revoke(self, lease: int) -> None:
        """End a lease now: its keys are deleted."""
        self.call("/kv/lease/revoke", {"ID": str(lease)})

    def status(self) -> dict:
        """The answering member's status (its id, the leader's, its revision)."""
        return self.call("/maintenance/status", {})

    def prefer_leader(self) -> None:
        """Send requests to the raft leader first (a follower passes writes on to it: one hop
        more); when it changes, requests move on to the next member that answers."""
        try:
            leader = self.status().get("leader")
            members = self.call("/cluster/member/list", {}).get("members", [])
        except EtcdError as e:
            log.info("cannot tell which etcd member leads: %s", e)
            return
        ours = [u.rstrip("/") for u in self.endpoints]
        for m in members:
            if m.get("ID") == leader:
                for url in m.get("clientURLs", []):
                    if url.rstrip("/") in ours:
                        self.preferred = ours.index(url.rstrip("/"))

    def watch(self, key: bytes, range_end: bytes, start_revision: int, *,
              idle: float = 30.0) -> "EtcdWatch":
        return EtcdWatch(self, key, range_end, start_revision, idle)


class EtcdWatch:
    """Changes to keys in [key, range_end) from `start_revision` on, one revision at a time:
    iterate to get (revision, [WatchEvent]) in revision order. A broken stream (its member
    gone, or `idle` seconds without a byte) is opened again, on the next member if need be,
    from the revision after the last one delivered, so nothing is missed or repeated."""

    def __init__(self, client: EtcdClient, key: bytes, range_end: bytes, start_revision: int, idle: float):
        self.client = client
        self.key, self.range_end = key, range_end
        self.next = start_revision
        self.idle = idle
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._response = None

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            response = self._response
        if response is not None:
            _abort(response)

    def __iter__(self) -> Iterator[tuple[int, list[WatchEvent]]]:
        client = self.client
        i = client.preferred
        while not self._cancelled.is_set():
            host, port = client._hosts[i]
            url = f"http://{host}:{port}/v3/watch"
            request = {"create_request": {"key": _b64(self.key), "range_end": _b64(self.range_end),
                                          "start_revision": str(self.next)}}
            try:
                with _session() as session:
                    response = session.post(url, json=request, stream=True,
                                            timeout=(client.connect_timeout, self.idle))
                    with self._lock:
                        self._response = response
                    if self._cancelled.is_set():
                        return
                    if response.status_code != 200:
                        raise requests.ConnectionError(f"HTTP {response.status_code}")
                    for revision, events in self._read(response):
                        self.next = revision + 1
                        yield revision, events
            except (requests.RequestException, OSError, ValueError) as e:
                if self._cancelled.is_set():
                    return
                log.debug("etcd watch on %s broke (%s); opening it again", url, e)
                i = (i + 1) % len(client._hosts)
                time.sleep(0.1)
            finally:
                with self._lock:
                    self._response = None

    def _read(self, response) -> Iterator[tuple[int, list[WatchEvent]]]:
        for line in response.iter_lines():
            if not line.strip():
                continue
            message = json.loads(line)
            if "error" in message:
                raise requests.ConnectionError(str(message["error"]))
            result = message.get("result", {})
            if result.get("canceled"):
                if int(result.get("compact_revision", 0)):
                    raise EtcdCompacted(f"revision {self.next} is compacted (oldest kept: "
                                        f"{result['compact_revision']})")
                raise EtcdError(f"etcd cancelled the watch: {result.get('cancel_reason', '')}")
            grouped: dict[int, list[WatchEvent]] = {}
            for ev in result.get("events", ()):
                kv = ev["kv"]
                rev = int(kv.get("mod_revision", 0))
                grouped.setdefault(rev, []).append(WatchEvent(ev.get("type") == "DELETE", _unb64(kv["key"]),
                                                              _unb64(kv.get("value", "")), rev))
            yield from sorted(grouped.items())


def _session() -> requests.Session:
    """HTTP to the members directly: never through a proxy named in the environment (which
    requests would also look up again at every request)."""
    session = requests.Session()
    session.trust_env = False
    return session


def _abort(response) -> None:
    """Wake a thread blocked reading a streamed response: shut its socket down."""
    try:
        sock = socket.fromfd(response.raw._fp.fileno(), socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()
    except (AttributeError, OSError, ValueError):
        pass
    response.close()
