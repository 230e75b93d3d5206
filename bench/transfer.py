"""XVA export and import throughput of the agent beside reading and writing the same VHD
directly with sm.vhd, in one run; and the agent's peak RSS growth while it transfers.

A VDI of --size bytes (default 2 GiB) on the agent's default SR gets --fill of its 1 MiB
chunks filled (default every other one: 50% data), written behind the agent's back with
sm.vhd from a pool of random bytes; a VM holds it. Then, each timed on its own:

  direct write  a new dynamic VHD in the bench dir gets the same chunks (sm.vhd, fsync);
  direct read   the VDI's VHD read over its allocated extents in 1 MiB pieces (sm.vhd);
  export        GET /export of the VM (plain XVA) by curl into /dev/null, until the
                export's task has succeeded;
  import        PUT of an XVA file (one more export, not timed) by curl to /import on the
                default SR, until the task has succeeded.

Each runs --rounds times, interleaved, and the fastest run counts: the machine is shared,
and a slow run measures the neighbours more than the code.
Throughput is data bytes (the filled chunks) per second; the ratios are export/direct read
and import/direct write (targets >= 0.5). RSS: VmRSS of the agent sampled every 50 ms,
peak minus the value before the first transfer (target < 64 MiB). The VDI's file leaves
the page cache (fsync, POSIX_FADV_DONTNEED) before the direct read and before the export,
so both read from the device, as a disk that is not in use would be.

Usage: python bench/transfer.py [--size 2G] [--fill 0.5] [--rounds 3] [--dir DIR]
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from sm import vhd
from tests.functional.agent import AgentProcess
from tests.functional.storage_util import (
    login,
    vdi_record,
    vhd_path,
    vm_record,
    wait_task,
)

MiB = 1 << 20
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def size_arg(text):
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = text[-1] if text and text[-1] in UNITS else ""
    return int(float(text[:len(text) - len(unit)]) * UNITS[unit])


class Pool:
    """Random bytes, handed out in 1 MiB slices that differ from chunk to chunk."""

    def __init__(self, size=64 * MiB, seed=7):
        self.data = memoryview(random.Random(seed).randbytes(size + MiB))
        self.size = size

    def chunk(self, n):
        off = (n * 4099 * 512) % self.size
        return self.data[off:off + MiB]


def filled(size, fill):
    """The chunk numbers that hold data: an even spread of `fill` of them."""
    count = size // MiB
    step = 1 / fill if fill > 0 else count + 1
    return sorted({int(k * step) for k in range(int(count * fill))} & set(range(count)))


def write_vhd(path, size, chunks, pool, create=True):
    if create:
        vhd.create_dynamic(path, size)
    with vhd.open(path, writable=True) as img:
        for n in chunks:
            img.write(n * MiB, pool.chunk(n))
        img.flush()
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def drop_cache(path):
    """The file's pages out of the page cache: the next read comes from the device."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_vhd(path):
    total = 0
    with vhd.open(path) as img:
        for start, length in img.extents():
            for off in range(start, start + length, MiB):
                total += len(img.read(off, min(MiB, start + length - off)))
    return total


class RssWatch:
    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, threading.Event()
        self.base = self.sample()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def sample(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.sample())
            time.sleep(0.05)

    def done(self):
        self.stop.set()
        self.thread.join()
        return self.peak - self.base


def curl(*args):
    """curl, the HTTP client of both transfers (a C client: its own cost stays small)."""
    r = subprocess.run(["curl", "-sS", "--fail", "-D", "-", *args], capture_output=True, timeout=1800,
                       check=True)
    head = r.stdout.decode("latin-1")
    return next(line.split(":", 1)[1].strip() for line in head.splitlines()
                if line.lower().startswith("task-id:"))


def export(agent, session, vm, path, x):
    """GET /export into the file at `path`, or read and dropped when `path` is None."""
    query = urllib.parse.urlencode({"session_id": session, "ref": vm})
    task = curl("-o", path or os.devnull, f"{agent.url.rstrip('/')}/export?{query}")
    assert wait_task(x, task, timeout=600) == "success"


def import_(agent, session, path, sr, x):
    query = urllib.parse.urlencode({"session_id": session, "sr_id": sr})
    task = curl("-T", path, "-o", os.devnull, f"{agent.url.rstrip('/')}/import?{query}")
    assert wait_task(x, task, timeout=600) == "success", x.task.get_error_info(task)


def timed(fn, *args):
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=size_arg, default=2 << 30, help="the VDI's virtual size (default 2G)")
    ap.add_argument("--fill", type=float, default=0.5, help="share of 1 MiB chunks holding data (0.5)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each; the fastest counts (3)")
    ap.add_argument("--dir", default=None, help="where the agent's state and the files go (a temp dir)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="transfer-bench-", dir=args.dir)
    agent = AgentProcess(os.path.join(work, "state"), extra_args=["--log-level", "WARNING"]).start()
    try:
        s = login(agent)
        x = s.xenapi
        sr = x.pool.get_default_SR(x.pool.get_all()[0])
        vdi = x.VDI.create(vdi_record(sr, args.size, "bench disk"))
        vm = x.VM.create(vm_record("bench vm"))
        x.VBD.create({"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": True, "mode": "RW", "type": "Disk",
                      "unpluggable": True, "empty": False, "other_config": {}, "qos_algorithm_type": "",
                      "qos_algorithm_params": {}})
        pool, chunks = Pool(), filled(args.size, args.fill)
        data = len(chunks) * MiB
        source = vhd_path(agent.state_dir, x.SR.get_uuid(sr), x.VDI.get_uuid(vdi))
        write_vhd(source, args.size, chunks, pool, create=False)
        print(f"VDI {args.size / MiB:.0f} MiB, {data / MiB:.0f} MiB of data ({len(chunks)} chunks)")

        xva = os.path.join(work, "vm.xva")
        export(agent, s._session, vm, xva, x)  # the file the imports send (not timed)
        direct = os.path.join(work, "direct.vhd")
        watch = RssWatch(agent.proc.pid)
        times = {"direct read": [], "export": [], "direct write": [], "import": []}
        for _ in range(args.rounds):
            times["direct write"].append(timed(write_vhd, direct, args.size, chunks, pool))
            os.unlink(direct)
            drop_cache(source)
            times["direct read"].append(timed(read_vhd, source))
            drop_cache(source)
            times["export"].append(timed(export, agent, s._session, vm, None, x))
            times["import"].append(timed(import_, agent, s._session, xva, sr, x))
        growth = watch.done()
        t_read, t_export = min(times["direct read"]), min(times["export"])
        t_write, t_import = min(times["direct write"]), min(times["import"])

        def rate(t):
            return data / MiB / t
        print(f"{'':14}{'MiB/s':>10}{'seconds':>10}")
        for name, t in (("direct read", t_read), ("export", t_export), ("direct write", t_write),
                        ("import", t_import)):
            print(f"{name:14}{rate(t):10.1f}{t:10.2f}")
        print(f"export / direct read:  {t_read / t_export:.2f} (target >= 0.5)")
        print(f"import / direct write: {t_write / t_import:.2f} (target >= 0.5)")
        print(f"XVA file: {os.path.getsize(xva) / MiB:.0f} MiB; fastest of {args.rounds} rounds; all (s): "
              + "; ".join(f"{k} {' '.join(f'{t:.2f}' for t in v)}" for k, v in times.items()))
        print(f"agent peak RSS growth during the transfers: {growth / MiB:.1f} MiB (target < 64)")
        s.xenapi.session.logout()
    finally:
        agent.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
