"""The VDI datapath (nbdkit + sm.datapath's plugin over a three-deep VHD chain) beside qemu-nbd
serving a raw file of the same size and contents, in the same run, with the same client.

Set-up: a `file` SR whose volume is a leaf over two bases, the bottom base full of data
and the middle one holding every fourth 2 MiB block, attached through the driver (so
served by its own nbdkit); a raw file with the same bytes served by `qemu-nbd -f raw
-t` (writeback cache, its default). Everything stays in the page cache, so the figures
are the servers' own cost. Each round starts from a fresh, empty leaf and, for the
writes, a fresh sparse raw file (its own qemu-nbd), so both sides write into new space
first; for each pass the two servers run in turn (which goes first swaps every round):

  seq read     the whole disk front to back in --chunk requests (the leaf is empty:
               reads fall through it to both bases)
  rand read    --ops 4 KiB reads at scattered offsets (a stride of 7919 x 4 KiB,
               wrapping: every 4 KiB block once per 262144 on a 1 GiB disk)
  seq write    the whole disk front to back in --chunk requests, then a flush: first
               writes (the leaf allocates every block, the raw file every extent)
  seq rewrite  the same again: both overwrite what they hold
  rand write   --ops 4 KiB writes at the scattered offsets, then a flush

Before the passes every server reads the whole disk once, untimed: the first pass
through a new nbdkit runs at about half speed (a trivial raw-file Python plugin's too),
which the long-lived server of a guest is past.

The client is `qemu-img bench` (its own timing, start-up excluded) with --depth
requests in flight. Prints MiB/s (IOPS for 4 KiB), datapath/qemu-nbd ratios and the
median over --rounds. Targets: seq read >= 0.5, seq write >= 0.35.
Usage: python bench/datapath.py [--size 1G] [--chunk 1M] [--ops 20000] [--depth 1]
       [--rounds 5] [--dir DIR]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from sm import vhd  # noqa: E402
from sm.drivers.filesr import FileDriver  # noqa: E402
from sm.runner import Runner  # noqa: E402

MiB = 1 << 20
BLOCK = 2 * MiB
STRIDE = 7919 * 4096  # a prime number of 4 KiB blocks: scattered, every block in turn
WHAT = ("seq read", "rand read", "seq write", "seq rewrite", "rand write")
TARGETS = {"seq read": 0.5, "seq write": 0.35}
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def size_arg(text):
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = text[-1] if text and text[-1] in UNITS else ""
    return int(float(text[:len(text) - len(unit)]) * UNITS[unit])


def bench(uri, write, size, count, depth, step, pattern):
    """Seconds `qemu-img bench` reports for count requests of size bytes, step apart."""
    argv = ["qemu-img", "bench", "-f", "raw", "-c", str(count), "-d", str(depth),
            "-s", str(size), "-S", str(step)]
    if write:  # one flush after the last request, inside the timing
        argv += ["-w", f"--pattern={pattern}", f"--flush-interval={count}"]
    done = subprocess.run(argv + [uri], capture_output=True, text=True, timeout=3600)
    found = re.search(r"Run completed in ([0-9.]+) seconds", done.stdout)
    if done.returncode != 0 or not found:
        raise SystemExit(f"{' '.join(argv)} {uri}: {done.stdout}{done.stderr}")
    return float(found.group(1))


def fill(bottom, middle, raw_path, size):
    """The bottom base full of data, the middle one every fourth block; the raw file the
    same bytes (what the leaf reads)."""
    pool = os.urandom(64 * MiB + BLOCK)
    with vhd.open(bottom, writable=True) as b, open(raw_path, "wb") as raw:
        for off in range(0, size, BLOCK):
            data = memoryview(pool)[off % (64 * MiB):][:min(BLOCK, size - off)]
            b.write(off, data)
            raw.write(data)
        b.flush()
    with vhd.open(middle, writable=True) as m, open(raw_path, "r+b") as raw:
        for off in range(0, size, 4 * BLOCK):
            data = memoryview(pool)[(off + 12345) % (64 * MiB):][:min(BLOCK, size - off)]
            m.write(off, data)
            raw.seek(off)
            raw.write(data)
        m.flush()


def serve_raw(path, sock):
    """qemu-nbd serving the raw file at path on sock; (process, uri)."""
    proc = subprocess.Popen(["qemu-nbd", "-f", "raw", "-t", "-e", "4", "-k", sock, path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not os.path.exists(sock):
        if proc.poll() is not None:
            raise SystemExit(f"qemu-nbd: {proc.stderr.read().decode()}")
        time.sleep(0.01)
    return proc, f"nbd+unix:///?socket={sock}"


def stop(proc, sock):
    proc.terminate()
    proc.wait()
    if os.path.exists(sock):
        os.unlink(sock)


def run(driver, leaf, chain, raw_path, state, args, results):
    size, chunk = args.size, args.chunk
    reader, read_uri = serve_raw(raw_path, os.path.join(state, "raw.sock"))
    try:
        for r in range(args.rounds):
            os.unlink(chain[0])  # a fresh, empty leaf over the same bases
            vhd.make_child(chain[1], chain[0])
            fresh = os.path.join(os.path.dirname(raw_path), "fresh.raw")
            with open(fresh, "wb") as f:
                f.truncate(size)
            writer, write_uri = serve_raw(fresh, os.path.join(state, "fresh.sock"))
            datapath = driver.vol_attach(leaf, True, "bench").uri
            try:
                if r == 0:
                    same = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw",
                                           datapath, read_uri], capture_output=True, text=True)
                    if same.returncode != 0:
                        raise SystemExit(f"the disks differ: {same.stdout}{same.stderr}")
                # untimed warm-up (see the docstring)
                for uri in (read_uri, write_uri, datapath):
                    bench(uri, False, chunk, size // chunk, args.depth, chunk, 0)
                order = ["qemu-nbd", "datapath"][::-1 if r % 2 else 1]
                row = {}
                for w in WHAT:
                    write = "write" in w
                    for k in order:
                        uri = datapath if k == "datapath" else (write_uri if write else read_uri)
                        if w.startswith("seq"):
                            t = bench(uri, write, chunk, size // chunk, args.depth, chunk, r + 1)
                            row[f"{k} {w}"] = size / MiB / t
                        else:
                            t = bench(uri, write, 4096, args.ops, args.depth, STRIDE, r + 1)
                            row[f"{k} {w}"] = args.ops / t
                        results[f"{k} {w}"].append(row[f"{k} {w}"])
            finally:
                driver.vol_detach(leaf, "bench")
                stop(writer, os.path.join(state, "fresh.sock"))
                os.unlink(fresh)
            print(f"round {r + 1}: " + ", ".join(
                f"{w} {row['qemu-nbd ' + w]:.0f}/{row['datapath ' + w]:.0f}" for w in WHAT)
                + " (qemu-nbd/datapath; MiB/s sequential, IOPS random)", flush=True)
    finally:
        stop(reader, os.path.join(state, "raw.sock"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=size_arg, default=1 << 30, help="disk bytes (1G, 512M)")
    ap.add_argument("--chunk", type=size_arg, default=MiB, help="sequential request (1M)")
    ap.add_argument("--ops", type=int, default=20000, help="4 KiB requests per random pass")
    ap.add_argument("--depth", type=int, default=1, help="requests in flight")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default=None, help="where the files go (default: a temp dir)")
    args = ap.parse_args()
    if args.size % BLOCK or args.chunk & (args.chunk - 1):
        raise SystemExit("--size must be a multiple of 2 MiB and --chunk a power of two")
    for tool in ("nbdkit", "qemu-nbd", "qemu-img"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (Debian: nbdkit nbdkit-plugin-python "
                             f"qemu-utils)")

    work = tempfile.mkdtemp(dir=args.dir, prefix="datapath-bench-")
    state = tempfile.mkdtemp(prefix="dpb-", dir="/tmp")  # short: NBD socket paths
    results = {f"{k} {w}": [] for w in WHAT for k in ("qemu-nbd", "datapath")}
    try:
        os.mkdir(os.path.join(work, "srs"))
        driver = FileDriver(str(uuidlib.uuid4()), {"location": os.path.join(work, "srs")},
                            Runner(), state)
        driver.create(0)
        driver.attach()
        leaf = driver.vol_create(str(uuidlib.uuid4()), args.size).uuid
        driver.vol_snapshot(leaf, str(uuidlib.uuid4()))
        driver.vol_snapshot(leaf, str(uuidlib.uuid4()))
        chain = vhd.chain(driver.volumes.file(leaf))
        raw_path = os.path.join(work, "disk.raw")
        t0 = time.perf_counter()
        fill(chain[2], chain[1], raw_path, args.size)
        print(f"size {args.size >> 20} MiB, chunk {args.chunk >> 10} KiB, {args.ops} random "
              f"4 KiB ops, depth {args.depth}, {args.rounds} rounds, chain of {len(chain)} "
              f"(set-up {time.perf_counter() - t0:.1f}s)", flush=True)
        run(driver, leaf, chain, raw_path, state, args, results)
    finally:
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\nmedian of {args.rounds} rounds [min-max]:")
    print(f"{'':12}{'unit':>7}{'qemu-nbd':>22}{'datapath':>22}{'ratio':>8}  target")
    all_ok = True
    for w in WHAT:
        q, d = med[f"qemu-nbd {w}"], med[f"datapath {w}"]
        spread = {k: f"{min(results[f'{k} {w}']):.0f}-{max(results[f'{k} {w}']):.0f}"
                  for k in ("qemu-nbd", "datapath")}
        target = TARGETS.get(w)
        ok = target is None or d / q >= target
        all_ok &= ok
        verdict = "" if target is None else f">= {target}: {'ok' if ok else 'BELOW TARGET'}"
        unit = "MiB/s" if w.startswith("seq") else "IOPS"
        print(f"{w:12}{unit:>7}{q:9.0f} [{spread['qemu-nbd']:>11}]{d:9.0f} "
              f"[{spread['datapath']:>11}]{d / q:8.2f}  {verdict}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
