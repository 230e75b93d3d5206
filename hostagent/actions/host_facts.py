"""This host's live figures from the hypervisor: memory and CPU utilisation.

The server samples the hypervisor port periodically and reports each
`Sample` here; `HostMonitor` turns it into host_metrics (memory_total,
memory_free, last_updated) and host_cpu utilisation. A figure is written
only when it moved by more than a small step, so an idle host makes no
stream of events.
"""

from ..rpc.coerce import now_text

MEMORY_STEP = 1 << 20  # bytes of memory_free movement worth an update
UTILISATION_STEP = 0.01


class HostMonitor:
    def __init__(self):
        self.last = None  # the previous Sample, for CPU deltas

    def apply(self, ctx, sample) -> None:
        prev, self.last = self.last, sample
        store, host = ctx.store, ctx.host
        rec = store.get("host", host)
        with store.transaction():
            metrics = rec["metrics"]
            if store.exists("host_metrics", metrics):
                m = store.get("host_metrics", metrics)
                if (m["memory_total"] != sample.memory_total
                        or abs(m["memory_free"] - sample.memory_free) >= MEMORY_STEP):
                    store.update("host_metrics", metrics, memory_total=sample.memory_total,
                                 memory_free=sample.memory_free, last_updated=now_text(ctx.clock()))
            if prev is None:
                return
            for cpu in rec["host_CPUs"]:
                c = store.get("host_cpu", cpu)
                now, before = sample.cpu_busy.get(c["number"]), prev.cpu_busy.get(c["number"])
                if now is None or before is None or now[1] <= before[1]:
                    continue
                use = min(1.0, max(0.0, (now[0] - before[0]) / (now[1] - before[1])))
                if abs(use - c["utilisation"]) >= UTILISATION_STEP:
                    store.set("host_cpu", cpu, "utilisation", use)
