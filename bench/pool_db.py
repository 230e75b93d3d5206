"""The pool database on etcd beside the lone host's SQLite journal, in one run, on loopback.

The real store and group commit (hostagent/db/store.py, hostagent/server/durability.py)
on a real Twisted reactor: 8 concurrent writers each change one VM record per store
transaction (a record of the real VM class, a few KB of JSON) and wait until it is
durable, as an API call waits before its reply: to SQLite (WAL, synchronous=FULL, in
a temporary directory) and to etcd, three members started
here on 127.0.0.1-3 with the flags the agent gives them; the two are measured in short
alternating rounds, so both see the same load from the rest of the machine. Prints acknowledged
transactions per second, p50 and p99 latency of each, and etcd's figures as ratios of
SQLite's (target: throughput at least 0.3 of SQLite's), with the machine's load average.

Usage: python bench/pool_db.py [--seconds 10] [--writers 8] [--rounds 10]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.threads import deferToThread

from hostagent.backends.etcd_member import MAX_REQUEST_BYTES, MAX_TXN_OPS
from hostagent.datamodel.api import build_api
from hostagent.db.journal import Journal
from hostagent.db.journal_etcd import EtcdJournal
from hostagent.db.store import Store
from hostagent.server.durability import GroupCommit
from tests.contract.etcd_support import Cluster


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Subject:
    """A journal behind its own group commit and store, with one VM per writer."""

    def __init__(self, journal, writers):
        self.journal = journal
        self.commit = GroupCommit(reactor, journal)
        self.store = Store(build_api(), submit=self.commit.submit)
        self.writers = writers
        self.latencies = []
        self.elapsed = 0.0

    async def start(self):
        self.commit.start()
        with self.store.transaction():
            self.vms = [self.store.create("VM", {"name_label": f"writer {n}", "other_config": {"bench": "x" * 200}})
                        for n in range(self.writers)]
        await self.commit.wait(self.commit.issued)

    async def measure(self, seconds):
        """`writers` concurrent writers for `seconds`: each changes its VM, waits until durable."""
        store, commit = self.store, self.commit
        end = time.monotonic() + seconds

        async def writer(vm):
            i = 0
            while time.monotonic() < end:
                start = time.monotonic()
                with store.transaction():
                    store.set("VM", vm, "name_description", f"change {i}")
                await commit.wait(store.last_durable)
                self.latencies.append(time.monotonic() - start)
                i += 1
        began = time.monotonic()
        await gatherResults([Deferred.fromCoroutine(writer(vm)) for vm in self.vms])
        self.elapsed += time.monotonic() - began

    def rate(self):
        return len(self.latencies) / self.elapsed

    async def stop(self):
        await deferToThread(self.commit.stop)


def report(name, s):
    lat = s.latencies
    print(f"{name:8s} {s.rate():9.1f} txn/s   p50 {statistics.median(lat) * 1000:7.2f} ms   "
          f"p99 {percentile(lat, 99) * 1000:7.2f} ms   ({len(lat)} transactions)")


async def run(args):
    with tempfile.TemporaryDirectory(prefix="pool-db-") as base:
        cluster = Cluster(Path(base) / "etcd", hosts=("127.0.0.1", "127.0.0.2", "127.0.0.3"))
        await deferToThread(cluster.start)
        sqlite = Journal(str(Path(base) / "state.db"))
        try:
            journal = await deferToThread(EtcdJournal, cluster.client(), str(uuid.uuid4()),
                                          max_ops=MAX_TXN_OPS, max_bytes=MAX_REQUEST_BYTES)
            subjects = {"sqlite": Subject(sqlite, args.writers), "etcd x3": Subject(journal, args.writers)}
            for s in subjects.values():
                await s.start()
            # short rounds, alternating, so that both see the same load from the rest of the machine
            for _ in range(args.rounds):
                for s in subjects.values():
                    await s.measure(args.seconds / args.rounds)
            for s in subjects.values():
                await s.stop()
        finally:
            sqlite.close()
            await deferToThread(cluster.stop)
    base_s, etcd_s = subjects["sqlite"], subjects["etcd x3"]
    print(f"{args.writers} concurrent writers, {args.seconds:g} s each in {args.rounds} alternating rounds; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    report("sqlite", base_s)
    report("etcd x3", etcd_s)
    print(f"etcd/sqlite: throughput {etcd_s.rate() / base_s.rate():.2f} (target >= 0.3), "
          f"p99 latency {percentile(etcd_s.latencies, 99) / percentile(base_s.latencies, 99):.2f}x")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="how long each journal is measured")
    ap.add_argument("--writers", type=int, default=8, help="concurrent writers")
    ap.add_argument("--rounds", type=int, default=10, help="alternating rounds the time is cut into")
    args = ap.parse_args(argv)
    failure = []

    def done(result):
        if hasattr(result, "getTraceback"):
            failure.append(result.getTraceback())
        reactor.stop()
    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(run(args)).addBoth(done))
    reactor.run()
    if failure:
        print(failure[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
