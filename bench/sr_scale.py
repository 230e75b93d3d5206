"""VDI.create and SR.scan on a file SR of 10, 100 and 1,000 VDIs, through the sm driver.

    python bench/sr_scale.py [--sizes 10,100,1000] [--creates 5] [--scans 3] [--dir DIR]

For each size a fresh `file` SR is filled with that many VHD files (made with sm.vhd
directly, untimed; one in ten has been snapshotted, so the SR holds read-only bases and
differencing leaves as a used one does), then one driver object, as the agent's storage
port keeps one per SR, is timed on what the agent's calls do:

  VDI.create  vol_create then stat (the SR's new sizes), --creates times; the new files
              are removed again so every call sees the same SR;
  SR.scan     scan then stat, --scans times, reported per VDI.

Baselines in the same run, on the same directory: for a create, sm.vhd.create_dynamic of
one file and its rename into place (what any VDI.create must do); for a scan, listdir and
one os.stat per file (what any scan must do). Prints the median per call, the ratio to
the baseline, and the ratio to the same figure at the smallest size: a driver that stays
flat as the SR grows keeps that last ratio near 1 (per VDI for a scan). No assertions.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid as uuidlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from sm import vhd  # noqa: E402
from sm.drivers.filesr import FileDriver  # noqa: E402
from sm.runner import Runner  # noqa: E402

MiB = 1 << 20
SIZE = 64 * MiB


def new_uuid():
    return str(uuidlib.uuid4())


def fill(path, count):
    """`count` VHD files in `path`: leaves, and per ten one snapshot (a base, two leaves)."""
    made = 0
    while made < count:
        leaf = os.path.join(path, new_uuid() + ".vhd")
        vhd.create_dynamic(leaf, SIZE)
        made += 1
        if made % 10 == 9 and made + 2 <= count:
            base = os.path.join(path, new_uuid() + ".vhd")
            vhd.snapshot(leaf, base, os.path.join(path, new_uuid() + ".vhd"))
            os.chmod(base, 0o444)
            made += 2


def timed(fn, times):
    out = []
    for _ in range(times):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def measure(top, count, creates, scans):
    sr_uuid = new_uuid()
    location = os.path.join(top, f"n{count}")
    driver = FileDriver(sr_uuid, {"location": location}, Runner(), os.path.join(top, "state"))
    driver.create(0)
    driver.attach()
    path = driver.sr_path()
    fill(path, count)
    assert len(driver.scan()) == count

    made = []

    def create():
        uuid = new_uuid()
        driver.vol_create(uuid, SIZE)
        driver.stat()
        made.append(uuid)

    def scan():
        assert len(driver.scan()) == count
        driver.stat()

    def base_create():
        uuid = new_uuid()
        tmp = os.path.join(path, f".tmp-bench-{uuid}.vhd")
        vhd.create_dynamic(tmp, SIZE)
        os.replace(tmp, os.path.join(path, uuid + ".vhd"))
        made.append(uuid)

    def base_scan():
        for name in os.listdir(path):
            os.stat(os.path.join(path, name))

    def tidy():
        for uuid in made:
            os.unlink(os.path.join(path, uuid + ".vhd"))
        made.clear()

    driver.scan()  # a first pass outside the timing, as the agent's attach and start-up scan
    figures = {}
    for name, fn, times in (("base create", base_create, creates), ("create", create, creates),
                            ("base scan", base_scan, scans), ("scan", scan, scans)):
        figures[name] = timed(fn, times)
        tidy()
    shutil.rmtree(location)
    return figures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--creates", type=int, default=5)
    ap.add_argument("--scans", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the SRs go (default: a temporary "
                                                "directory under $TMPDIR)")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    top = tempfile.mkdtemp(prefix="sr_scale-", dir=args.dir)
    try:
        rows = [(n, measure(top, n, args.creates, args.scans)) for n in sizes]
    finally:
        shutil.rmtree(top, ignore_errors=True)
    first = rows[0][1]
    print(f"file SR, median of {args.creates} creates and {args.scans} scans per size "
          f"(ms; 'x base' = ratio to the baseline in the same run, "
          f"'x {sizes[0]}' = ratio to the figure at {sizes[0]} VDIs):")
    print(f"  {'VDIs':>5}  {'create':>8} {'base':>7} {'x base':>7} {'x ' + str(sizes[0]):>7}"
          f"   {'scan/VDI':>8} {'base':>7} {'x base':>7} {'x ' + str(sizes[0]):>7}   "
          f"{'scan':>8}")
    for n, f in rows:
        per, base_per = f["scan"] / n, f["base scan"] / n
        print(f"  {n:>5}  {f['create'] * 1e3:8.2f} {f['base create'] * 1e3:7.2f} "
              f"{f['create'] / f['base create']:7.1f} {f['create'] / first['create']:7.1f}"
              f"   {per * 1e3:8.3f} {base_per * 1e3:7.3f} {per / base_per:7.1f} "
              f"{per / (first['scan'] / sizes[0]):7.1f}   {f['scan'] * 1e3:8.1f}")


if __name__ == "__main__":
    main()
