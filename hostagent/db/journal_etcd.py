"""The store's journal in etcd: the journal port's adapter for pools of three or more hosts.

Everything lives under one prefix per pool, `/hostagent/<pool uuid>/`:

| key | value |
|---|---|
| `obj/<class>/<ref>` | `"<created gen> <changed gen>\\n"` then the object's JSON (record and private fields); `"<created> <changed> z\\n"` then the JSON compressed with zlib when it is 512 bytes or more |
| `del/<gen, 20 digits>` | `[class, ref, created gen]`: a remembered deletion (for event.from) |
| `meta/<key>` | text: `generation`, `horizon`, `layout_version`, and `set_meta`'s keys |
| `intent/<id>` | an intent's JSON (storage work in flight), oldest first by revision |
| `stage/<txid>/<n>`, `commit/<txid>` | a write too large for one etcd transaction (below) |

A write (the batches of several store transactions, group commit) is one etcd
transaction when it fits the members' limits (`max_ops` operations, `max_bytes`
per request: etcd's `--max-txn-ops` and `--max-request-bytes`). A larger one is
written in steps: its operations as JSON text cut into `stage/` parts, then
`commit/<txid>` in one transaction (the commit point), then the operations
themselves in transactions that fit, then the staging keys are deleted. `load`
applies any committed write whose steps did not all happen (a crash between
them) over what it read, and the next `write` of this journal finishes it first;
staged parts without a commit are dropped. A watcher sees such a write's
objects in several revisions.

With `leader` set (a `Leadership`: the election key this host holds and the
revision that created it), every write is conditioned on that key still being
the one created then; when it is not, the transaction stores nothing and
`NotLeader` is raised (fencing). Blocking: call it from worker threads.
"""

import base64
import json
import logging
import threading
import uuid as uuidlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

from ..backends import etcd
from .etcd_values import object_from, object_value
from .journal import DELETIONS_KEPT
from .journal_port import (
    JournalCompacted,
    JournalError,
    JournalUnavailable,
    Loaded,
    NotLeader,
    Row,
    WatchBatch,
)

log = logging.getLogger("hostagent.journal")

LAYOUT_VERSION = 1
ETCD_MAX_TXN_OPS = 128  # etcd's defaults, for members not started by us
ETCD_MAX_REQUEST_BYTES = 1536 * 1024
_MARGIN = 64 * 1024  # room in a request for what is not keys and values
_PER_OP = 32  # bytes a put or delete costs in a request besides its key and value
_GEN_DIGITS = 20

Ops = dict[bytes, bytes | None]  # key -> value, or None for a delete


class Leadership(NamedTuple):
    """The condition of every write: `key` (this host's election key) was created at `revision`."""

    key: str
    revision: int


class EtcdJournal:
    def __init__(self, client: etcd.EtcdClient, pool: str, *, max_ops: int = ETCD_MAX_TXN_OPS,
                 max_bytes: int = ETCD_MAX_REQUEST_BYTES, deletions: int = DELETIONS_KEPT,
                 leader: Leadership | None = None, page: int = 1000):
        if not pool or "/" in pool:
            raise ValueError(f"bad pool name {pool!r}")
        self.client = client
        self.path = f"etcd {','.join(client.endpoints)} /hostagent/{pool}/"  # for messages
        self.prefix = f"/hostagent/{pool}/".encode()
        self.max_ops = max_ops
        self.budget = max_bytes - _MARGIN
        self.keep = deletions
        self.leader = leader
        self.page = page
        self._lock = threading.Lock()
        self._deletions = 0
        self._unfinished: dict[str, list[tuple[bytes, bytes | None]]] = {}  # committed, not applied
        self._stale: list[str] = []  # staged, never committed
        self._scanned = False  # whether the two above were looked for
        with self._errors("open"):
            self._check_layout()
        client.prefer_leader()

    # -------------------------------------------------------------------- keys
    def _key(self, kind: str, name: str) -> bytes:
        return self.prefix + kind.encode() + b"/" + name.encode()

    def _range_of(self, kind: str) -> tuple[bytes, bytes]:
        start = self.prefix + kind.encode() + b"/"
        return start, etcd.prefix_end(start)

    def _compare(self) -> list[dict]:
        leader = self.leader
        return [etcd.created_at(leader.key.encode(), leader.revision)] if leader else []

    @contextmanager
    def _errors(self, what: str):
        try:
            yield
        except etcd.EtcdCompacted as e:
            raise JournalCompacted(f"cannot {what} the database ({self.path}): {e}") from e
        except etcd.EtcdUnavailable as e:
            raise JournalUnavailable(f"cannot {what} the database ({self.path}): {e}") from e
        except etcd.EtcdError as e:
            raise JournalError(f"cannot {what} the database ({self.path}): {e}") from e

    def _check_layout(self) -> None:
        key = self._key("meta", "layout_version")
        found = self.client.get(key)
        if found is None:
            self.client.txn([etcd.created_at(key, 0)], [etcd.put(key, str(LAYOUT_VERSION).encode())])
        elif int(found.value or b"0") > LAYOUT_VERSION:
            raise JournalError(f"database {self.path} has layout version {found.value.decode()}, newer than "
                               f"version {LAYOUT_VERSION} that this hostagent knows: run a newer hostagent")

    def _txn(self, success: list[dict]) -> int:
        result = self.client.txn(self._compare(), success)
        if not result.succeeded:
            raise NotLeader(f"write refused: {self.leader.key} is no longer held since revision "
                            f"{self.leader.revision} (this host is not the master any more)")
        return result.revision

    # ------------------------------------------------------------------- load
    def load(self) -> Loaded:
        with self._lock, self._errors("read"):
            for attempt in range(3):
                try:
                    kvs, revision = self._read_all()
                    break
                except etcd.EtcdCompacted:
                    if attempt == 2:
                        raise
            state = {kv.key: kv.value for kv in kvs
                     if kv.key[len(self.prefix):].partition(b"/")[0] in (b"obj", b"del", b"meta")}
            self._interrupted(kvs)
            for ops in self._unfinished.values():  # committed large writes not all applied: redo them
                for k, v in ops:
                    if v is None:
                        state.pop(k, None)
                    else:
                        state[k] = v
            return self._decode(state, revision)

    def _interrupted(self, kvs: list[etcd.KeyValue]) -> None:
        """Note what large writes left behind (among `kvs`): committed ones to redo, in commit
        order, and staged parts of ones never committed, to drop."""
        stages: dict[str, list[tuple[bytes, bytes]]] = {}
        commits: list[tuple[int, str, bytes]] = []
        for kv in kvs:
            kind, _, name = kv.key[len(self.prefix):].partition(b"/")
            if kind == b"stage":
                stages.setdefault(name.decode().partition("/")[0], []).append((kv.key, kv.value))
            elif kind == b"commit":
                commits.append((kv.mod_revision, name.decode(), kv.value))
        self._unfinished = {txid: self._staged_ops(txid, info, stages.get(txid, []))
                            for _, txid, info in sorted(commits)}
        self._stale = [t for t in stages if t not in self._unfinished]
        self._scanned = True

    def _staged_ops(self, txid: str, info: bytes, parts: list[tuple[bytes, bytes]]):
        try:
            if len(parts) != json.loads(info)["parts"]:
                raise ValueError(f"{len(parts)} parts of {info.decode()}")
            return [(k.encode(), v if v is None else base64.b64decode(v))
                    for k, v in json.loads(b"".join(v for _, v in sorted(parts)))]
        except (ValueError, KeyError, TypeError) as e:
            raise JournalError(f"database {self.path}: the committed write {txid} cannot be read "
                               f"back ({e})") from None

    def _read_all(self) -> tuple[list[etcd.KeyValue], int]:
        """Every key under the prefix, read in pages at one revision."""
        start, end = self.prefix, etcd.prefix_end(self.prefix)
        out: list[etcd.KeyValue] = []
        revision = 0
        while True:
            r = self.client.range(start, end, revision=revision, limit=self.page)
            revision = revision or r.revision
            out.extend(r.kvs)
            if not r.more or not r.kvs:
                return out, revision
            start = r.kvs[-1].key + b"\0"

    def _decode(self, state: dict[bytes, bytes], revision: int) -> Loaded:
        rows, deletions, meta = [], [], {}
        for key, value in state.items():
            kind, _, name = key[len(self.prefix):].partition(b"/")
            if kind == b"obj":
                cls, _, ref = name.decode().partition("/")
                rows.append((cls, ref, *object_from(value)))
            elif kind == b"del":
                cls, ref, born = json.loads(value)
                deletions.append((int(name), cls, ref, born))
            else:
                meta[name.decode()] = value.decode()
        deletions.sort()
        self._deletions = len(deletions)
        horizon = int(meta.get("horizon", 0))
        generation = max([int(meta.get("generation", 0)), horizon] + [r[4] for r in rows]
                         + [d[0] for d in deletions[-1:]])
        return Loaded(rows, generation, deletions, horizon, revision)

    # ------------------------------------------------------------------ write
    def write(self, batches: Iterable[list[Row]]) -> None:
        """Apply the batches in order, all or none, durably (on a quorum of members)."""
        with self._lock, self._errors("write"):
            self._settle()
            ops, dels = self._ops(batches)
            if not ops:
                return
            if len(ops) <= self.max_ops and _size(ops.items()) <= self.budget:
                try:
                    self._txn(_requests(ops.items()))
                except etcd.EtcdTooLarge:  # the members take less than we were told: go in steps
                    self._staged(ops)
            else:
                self._staged(ops)
            self._deletions += dels
            if self._deletions > self.keep + max(100, self.keep // 10):
                self._prune()

    def _ops(self, batches: Iterable[list[Row]]) -> tuple[Ops, int]:
        """The batches as one set of key operations (a later change of a key replaces an
        earlier one: etcd takes each key once per transaction)."""
        ops: Ops = {}
        top = dels = 0
        for rows in batches:
            for cls, ref, data, gen, born in rows:
                key = self._key("obj", f"{cls}/{ref}")
                if data is None:
                    ops[key] = None
                    if gen:
                        ops[self._key("del", f"{gen:0{_GEN_DIGITS}d}")] = json.dumps([cls, ref, born]).encode()
                        dels += 1
                else:
                    ops[key] = object_value(data, born, gen)
                top = max(top, gen)
        if top:
            ops[self._key("meta", "generation")] = str(top).encode()
        return ops, dels

    def _staged(self, ops: Ops) -> None:
        """A write larger than one etcd transaction: staged, committed, applied, cleaned."""
        items = list(ops.items())
        for key, value in items:
            if _size([(key, value)]) > self.budget:
                raise JournalError(f"cannot write {key.decode()} ({len(value or b'')} bytes): larger than "
                                   f"one etcd request may be ({self.budget + _MARGIN} bytes)")
        txid = uuidlib.uuid4().hex
        text = json.dumps([[k.decode(), v if v is None else base64.b64encode(v).decode()]
                           for k, v in items]).encode()
        chunk = self.budget
        parts = [text[i:i + chunk] for i in range(0, len(text), chunk)]
        for n, part in enumerate(parts):
            self._txn([etcd.put(self._key("stage", f"{txid}/{n:08d}"), part)])
        self._txn([etcd.put(self._key("commit", txid), json.dumps({"parts": len(parts)}).encode())])
        self._unfinished[txid] = items  # committed: from here on it is redone if we stop
        self._apply(txid, items)

    def _apply(self, txid: str, items: list[tuple[bytes, bytes | None]]) -> None:
        for group in self._groups(items):
            self._txn(_requests(group))
        start, end = self._range_of(f"stage/{txid}")
        self._txn([etcd.delete(self._key("commit", txid)), etcd.delete(start, end)])
        self._unfinished.pop(txid, None)

    def _groups(self, items):
        group, size = [], 0
        for item in items:
            cost = _size([item])
            if group and (len(group) >= self.max_ops or size + cost > self.budget):
                yield group
                group, size = [], 0
            group.append(item)
            size += cost
        if group:
            yield group

    def _settle(self) -> None:
        """Finish large writes left half-applied, drop never-committed parts (found at load,
        or looked for now by a journal that writes without having loaded)."""
        if not self._scanned:
            kvs = []
            for kind in ("stage", "commit"):
                kvs.extend(self.client.range(*self._range_of(kind)).kvs)
            self._interrupted(kvs)
        for txid, items in list(self._unfinished.items()):
            log.warning("finishing a large write interrupted before (%s, %d keys)", txid, len(items))
            self._apply(txid, items)
        while self._stale:
            start, end = self._range_of(f"stage/{self._stale[0]}")
            self._txn([etcd.delete(start, end)])
            self._stale.pop(0)

    def _prune(self) -> None:
        """Forget all but the newest `keep` deletions; the newest forgotten one is the horizon."""
        start, end = self._range_of("del")
        try:
            r = self.client.range(start, end, limit=self.keep + 1, keys_only=True, sort=("KEY", "DESCEND"))
            if len(r.kvs) <= self.keep:
                self._deletions = r.count
                return
            cutoff = r.kvs[-1].key
            self._txn([etcd.delete(start, cutoff + b"\0"),
                       etcd.put(self._key("meta", "horizon"), str(int(cutoff[len(start):])).encode())])
            self._deletions = self.keep
        except (etcd.EtcdError, NotLeader) as e:  # the write itself is durable; prune next time
            log.warning("could not forget old deletions in %s: %s", self.path, e)

    # ------------------------------------------------------------ meta, intents
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self._errors("read"):
            kv = self.client.get(self._key("meta", key))
        return kv.value.decode() if kv else default

    def set_meta(self, key: str, value: str) -> None:
        with self._errors("write"):
            self._txn([etcd.put(self._key("meta", key), value.encode())])

    def put_intent(self, key: str, data: str) -> None:
        with self._errors("write"):
            self._txn([etcd.put(self._key("intent", key), data.encode())])

    def remove_intent(self, key: str) -> None:
        with self._errors("write"):
            self._txn([etcd.delete(self._key("intent", key))])

    def intents(self) -> list[tuple[str, str]]:
        start, end = self._range_of("intent")
        with self._errors("read"):
            kvs = self.client.range(start, end, sort=("MOD", "ASCEND")).kvs
        return [(kv.key[len(start):].decode(), kv.value.decode()) for kv in kvs]

    def close(self) -> None:
        """Nothing is held open between calls (each thread's HTTP sessions end with it)."""

    # ------------------------------------------------------------------ watch
    def watch(self, revision: int) -> "JournalWatch":
        """The objects and deletions written after `revision` (a Loaded.revision)."""
        return JournalWatch(self, revision)


class JournalWatch:
    def __init__(self, journal: EtcdJournal, revision: int):
        self.journal = journal
        prefix = journal.prefix
        self._watch = journal.client.watch(prefix, etcd.prefix_end(prefix), revision + 1)

    def cancel(self) -> None:
        self._watch.cancel()

    def __iter__(self) -> Iterator[WatchBatch]:
        prefix = self.journal.prefix
        with self.journal._errors("watch"):
            for revision, events in self._watch:
                rows, deletions = [], []
                for ev in events:
                    kind, _, name = ev.key[len(prefix):].partition(b"/")
                    if kind == b"obj":
                        cls, _, ref = name.decode().partition("/")
                        if ev.deleted:
                            rows.append((cls, ref, None, 0, 0))
                        else:
                            rows.append((cls, ref, *object_from(ev.value)))
                    elif kind == b"del" and not ev.deleted:
                        cls, ref, born = json.loads(ev.value)
                        deletions.append((int(name), cls, ref, born))
                if rows or deletions:
                    yield WatchBatch(revision, rows, deletions)


def _size(items) -> int:
    return sum(len(k) + len(v or b"") + _PER_OP for k, v in items)


def _requests(items) -> list[dict]:
    return [etcd.delete(k) if v is None else etcd.put(k, v) for k, v in items]
