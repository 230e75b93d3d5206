"""Sequential write and read throughput of sm.vhd beside a raw file, in the same run.

A raw file and a dynamic VHD of --size bytes are written front to back in
--chunk pieces (os.pwrite / Image.write, the same unique data: random bytes
generated up front), then read front to back in --chunk pieces (os.pread /
Image.read; every chunk is checked). Each call is timed on its own, and the
two files are worked *interleaved*, chunk by chunk (which goes first swaps
every chunk), so both see the same moment of a shared machine and of a
virtual disk whose speed drifts by 2x from minute to minute:

  write      create, all chunks, then fsync (inside the timing);
  read cold  after fsync and posix_fadvise(DONTNEED) on both whole files:
             both start outside the page cache, reads come from the device
             (readahead included);
  read warm  straight after, both files in the page cache: the layer's own
             CPU cost.

Also one file at a time, as a cross-check ("cold, alone": A B B A after the
interleaved passes, each after DONTNEED), and the block-device requests the
cold reads caused (/proc/diskstats). Prints MiB/s, VHD/raw ratios (target
>= 0.5) and the median over --rounds.
Usage: python bench/vhd_io.py [--size 1G] [--chunk 1M] [--rounds 3] [--dir DIR]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from sm import vhd  # noqa: E402

WHAT = ("write", "read cold", "read warm", "read cold, alone")
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def size_arg(text):
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = text[-1] if text and text[-1] in UNITS else ""
    return int(float(text[:len(text) - len(unit)]) * UNITS[unit])


def disk_stats(dev):
    """(read requests, bytes read) of block device `dev` so far, or None."""
    try:
        with open("/proc/diskstats") as f:
            for line in f:
                x = line.split()
                if (int(x[0]), int(x[1])) == dev:
                    return int(x[3]), int(x[5]) * 512
    except OSError:
        pass
    return None


def drop_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class Pool:
    def __init__(self, data, period):
        self.view, self.period = memoryview(data), period

    def at(self, off, n):
        return self.view[off % self.period:][:n]


class Raw:
    def __init__(self, path, size, writable):
        self.fd = os.open(path, (os.O_RDWR | os.O_CREAT) if writable else os.O_RDONLY, 0o644)

    def write(self, off, data):
        os.pwrite(self.fd, data, off)

    def read(self, off, n):
        return os.pread(self.fd, n, off)

    def flush(self):
        os.fsync(self.fd)

    def close(self):
        os.close(self.fd)


class Vhd:
    def __init__(self, path, size, writable):
        if writable:
            vhd.create_dynamic(path, size)
        self.img = vhd.open(path, writable=writable)
        self.write, self.read, self.flush = self.img.write, self.img.read, self.img.flush

    def close(self):
        self.img.close()


KINDS = {"raw": Raw, "vhd": Vhd}


def interleaved(paths, size, chunk, pool, writing):
    """Both files front to back, chunk by chunk; seconds spent in each file's calls."""
    spent = {k: 0.0 for k in paths}
    handles = {}
    for k in paths:
        t0 = time.perf_counter()
        handles[k] = KINDS[k](paths[k], size, writing)
        spent[k] += time.perf_counter() - t0
    order = list(paths)
    for i, off in enumerate(range(0, size, chunk)):
        n = min(chunk, size - off)
        want = pool.at(off, n)
        for k in (order if i % 2 == 0 else order[::-1]):
            t0 = time.perf_counter()
            if writing:
                handles[k].write(off, want)
            else:
                got = handles[k].read(off, n)
            spent[k] += time.perf_counter() - t0
            if not writing and got != want:
                raise SystemExit(f"{k}: wrong data read back at {off}")
    for k in order:
        t0 = time.perf_counter()
        if writing:
            handles[k].flush()
        handles[k].close()
        spent[k] += time.perf_counter() - t0
    return spent


def alone(path, kind, size, chunk, pool):
    drop_cache(path)
    t0 = time.perf_counter()
    h = KINDS[kind](path, size, False)
    for off in range(0, size, chunk):
        n = min(chunk, size - off)
        if h.read(off, n) != pool.at(off, n):
            raise SystemExit(f"{kind}: wrong data read back at {off}")
    h.close()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=size_arg, default=1 << 30, help="bytes (1G, 512M, ...)")
    ap.add_argument("--chunk", type=size_arg, default=1 << 20, help="bytes per call (1M)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the files go (default: a temp dir)")
    args = ap.parse_args()
    size, chunk = args.size, args.chunk
    # Unique data (no repeating pattern a storage layer below could deduplicate), up to 2 GiB.
    # Chunk i is pool[i * chunk % pool_len:][:chunk]; the extra chunk covers the wrap-around.
    pool_len = min(-(-size // chunk) * chunk, max(chunk, (2 << 30) // chunk * chunk))
    pool = Pool(os.urandom(pool_len + chunk), pool_len)

    results = {f"{k} {w}": [] for w in WHAT for k in KINDS}
    io = {k: [0, 0, 0] for k in KINDS}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="vhd-bench-") as d:
        st = os.stat(d)
        dev = (os.major(st.st_dev), os.minor(st.st_dev))
        dev = dev if disk_stats(dev) else None
        paths = {"raw": os.path.join(d, "disk.raw"), "vhd": os.path.join(d, "disk.vhd")}
        print(f"size {size >> 20} MiB, chunk {chunk >> 10} KiB, {args.rounds} rounds, in {d}")
        for r in range(args.rounds):
            for p in paths.values():
                if os.path.exists(p):
                    os.unlink(p)
            order = dict(reversed(paths.items())) if r % 2 else dict(paths)
            t = {f"{k} write": v for k, v in
                 interleaved(order, size, chunk, pool, True).items()}
            for p in paths.values():
                drop_cache(p)
            t.update({f"{k} read cold": v for k, v in
                      interleaved(order, size, chunk, pool, False).items()})
            t.update({f"{k} read warm": v for k, v in
                      interleaved(order, size, chunk, pool, False).items()})
            one = {k: [] for k in KINDS}
            for k in list(order) + list(order)[::-1]:
                before = disk_stats(dev) if dev else None
                one[k].append(alone(paths[k], k, size, chunk, pool))
                if before:
                    after = disk_stats(dev)
                    io[k] = [io[k][0] + after[0] - before[0], io[k][1] + after[1] - before[1],
                             io[k][2] + 1]
            for k in KINDS:
                t[f"{k} read cold, alone"] = statistics.mean(one[k])
            mibs = {k: size / (1 << 20) / v for k, v in t.items()}
            for k, v in mibs.items():
                results[k].append(v)
            print(f"round {r + 1}: " + ", ".join(
                f"{w} {mibs['raw ' + w]:.0f}/{mibs['vhd ' + w]:.0f}" for w in WHAT)
                + " MiB/s (raw/vhd)")
        info = vhd.info(paths["vhd"])
        print(f"vhd file: {info['physical_size'] / (1 << 20):.1f} MiB for "
              f"{info['virtual_size'] >> 20} MiB virtual, {info['allocated'] >> 20} MiB allocated")

    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\nmedian of {args.rounds} rounds, MiB/s [min-max]:")
    print(f"{'':18}{'raw':>22}{'vhd':>22}{'vhd/raw':>9}")
    for w in WHAT:
        r, v = med[f"raw {w}"], med[f"vhd {w}"]
        spread = {k: f"{min(results[f'{k} {w}']):.0f}-{max(results[f'{k} {w}']):.0f}"
                  for k in KINDS}
        print(f"{w:18}{r:8.0f} [{spread['raw']:>11}]{v:8.0f} [{spread['vhd']:>11}]{v / r:9.2f}")
    if dev:
        print("\nblock-device reads per cold read, one file at a time (/proc/diskstats, "
              "other processes' I/O included):")
        for k in KINDS:
            req, nbytes, n = io[k]
            print(f"  {k}: {req / n:.0f} requests, {nbytes / n / (1 << 20):.1f} MiB "
                  f"({nbytes / max(req, 1) / 1024:.0f} KiB each)")
    worst = min(med[f"vhd {w}"] / med[f"raw {w}"] for w in WHAT[:3])
    print(f"\nlowest ratio of write / read cold / read warm: {worst:.2f} (target >= 0.5): "
          f"{'ok' if worst >= 0.5 else 'BELOW TARGET'}")
    return 0 if worst >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
