"""The intent log: storage work in flight, written down before it starts.

A multi-step storage operation (VDI create, clone, snapshot, resize, copy, SR
create) first records an intent: what it is about to do, on which SR, and the
uuids of the volumes it will make. The intent is durable before the driver
runs, and is removed only once the operation's records are durable. An intent
found at start-up therefore names work the agent was killed in the middle of;
`storage_boot` settles it (see there for what each kind becomes).

While an intent is pending, scans leave the volumes it names alone: the
operation that owns them writes their records itself.
"""

import json
import uuid as uuidlib
from typing import Callable, Dict, List


class IntentLog:
    def __init__(self, put: Callable, remove: Callable, load: Callable, run_blocking: Callable):
        """put(id, text) / remove(id) / load() -> [(id, text)] are the journal's blocking
        methods; run_blocking(fn, *args) runs one off the reactor, returning an awaitable."""
        self._put, self._remove, self._load = put, remove, load
        self.run_blocking = run_blocking
        self.pending: Dict[str, dict] = {}

    def recorded(self) -> List[tuple]:
        """[(id, intent)] left by an earlier run (start-up only)."""
        out = []
        for key, text in self._load():
            try:
                out.append((key, json.loads(text)))
            except ValueError:
                out.append((key, {"op": "unreadable", "text": text}))
        return out

    async def begin(self, op: str, sr: str, new=(), **facts) -> str:
        """Durably record an operation on SR `sr` that will make volumes `new`."""
        key = str(uuidlib.uuid4())
        intent = {"op": op, "sr": sr, "new": list(new), **facts}
        self.pending[key] = intent
        try:
            await self.run_blocking(self._put, key, json.dumps(intent, sort_keys=True))
        except BaseException:
            self.pending.pop(key, None)
            raise
        return key

    async def end(self, key: str) -> None:
        self.pending.pop(key, None)
        await self.run_blocking(self._remove, key)

    async def forget(self, key: str) -> None:
        """Remove an intent recorded by an earlier run, once settled."""
        await self.run_blocking(self._remove, key)

    def in_flight(self, sr_uuid: str, exclude: str = None) -> set:
        """Volume uuids that operations running now on SR `sr_uuid` are making (but
        not the operation `exclude`, which is asking)."""
        return {u for k, i in self.pending.items() if i["sr"] == sr_uuid and k != exclude
                for u in i["new"]}
