"""Consoles through the agent's CONNECT /console: keystroke-to-screen latency, and what a
flooding console costs the API, in one run on a real KVM guest.

The agent runs on qemu:///system (libvirtd as tests/kvm starts it; needs root and /dev/kvm)
with one guest: the tests' kit kernel booted straight into a busybox shell on its serial port
(`rdinit=/bin/sh`), so the agent serves that serial console with a vncterm. A small RFB
client (raw encoding) reaches it through CONNECT /console and:

1. idle: API p99 of VM.get_record from an open-loop client (--rate calls/s) while the console
   is quiet and the viewer connected, --idle-seconds before the floods and as long again
   after them (pooled: a p99 over a few seconds says more about the machine's other work at
   that moment than about the agent);
2. flood: the same calls while the guest prints --flood-mib MiB (`yes | head -c`) and the
   viewer takes every screen update it is offered, as a watching client would;
3. keystrokes: --keys characters typed one at a time, each timed from the key event sent to
   the screen update that shows its echo (through the guest's tty, vncterm, and the relay);
   then the same keys from a viewer connected to the vncterm itself (the baseline: what the
   relay adds);
4. the flood of 2 again, watched by that direct viewer: what the flood costs the API when
   the agent relays none of it (qemu and vncterm busy all the same);
5. the floor: the same flood with no viewer and vncterm stopped (SIGSTOP; the bench reads the
   console's pty itself and throws the bytes away): what the guest's own output (qemu
   emulating the serial port) costs the API, which no console server can take back.

The API calls come from a child process of their own (the same one in every phase), so that
they never wait on this process's interpreter while a viewer decodes a screen.
Prints p50/p99 of each, the flood's duration and bytes relayed, the CPU seconds the agent,
vncterm, the guest's qemu and this process used in each phase, the load average, and the
ratios against the targets: keystroke p99 <= 50 ms; API p99 under flood <= 2x idle. On a
machine without hardware virtualisation the guest runs under TCG and its own echo dominates
keystroke times.
Usage: python bench/console.py [--flood-mib 10] [--keys 200] [--rate 50]
"""

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from bench.event_storm import connect, latencies, login, rpc
from tests.functional.agent import AgentProcess
from tests.kvm import guestkit, libvirtd
from tests.kvm.domain import stage_kit

MiB = 1 << 20


class Rfb:
    """A minimal RFB 3.8 viewer (security None, raw encoding) over a connected socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.updates = 0
        self.others = 0
        self.bytes = 0
        version = self.read(12)
        assert version.startswith(b"RFB 003."), version
        sock.sendall(b"RFB 003.008\n")
        n = self.read(1)[0]
        types = self.read(n)
        assert 1 in types, types
        sock.sendall(b"\x01")
        assert self.read(4) == b"\0\0\0\0"
        sock.sendall(b"\x01")  # shared
        self.width, self.height = struct.unpack(">HH", self.read(4))
        self.bpp = self.read(16)[0] // 8
        self.read(struct.unpack(">I", self.read(4))[0])
        sock.sendall(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: raw
        self.fb = bytearray(self.width * self.height * self.bpp)

    def read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise EOFError("console closed")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def request(self, incremental=True):
        self.sock.sendall(struct.pack(">BBHHHH", 3, int(incremental), 0, 0, self.width, self.height))

    def next_update(self):
        """Read server messages up to and including the next framebuffer update (bells and
        cut texts before it are counted in `others`)."""
        while not self.update():
            self.others += 1

    def update(self):
        """Read one server message; True when it was a framebuffer update."""
        kind = self.read(1)[0]
        if kind == 0:
            self.read(1)
            (rects,) = struct.unpack(">H", self.read(2))
            for _ in range(rects):
                x, y, w, h, enc = struct.unpack(">HHHHi", self.read(12))
                if enc == 0:
                    self.bytes += w * h * self.bpp
                    pixels = self.read(w * h * self.bpp)
                    row = w * self.bpp
                    for r in range(h):
                        at = ((y + r) * self.width + x) * self.bpp
                        self.fb[at:at + row] = pixels[r * row:(r + 1) * row]
            self.updates += 1
            return True
        if kind == 2:  # bell
            return False
        if kind == 3:  # cut text
            self.read(3)
            self.read(struct.unpack(">I", self.read(4))[0])
            return False
        raise ValueError(f"unexpected server message {kind}")

    def text(self):
        """The screen as text (vncterm's font read back), for reports."""
        from hostagent.vncterm.render import read_text
        px = self.fb
        rgb = bytearray(len(px) // 4 * 3)  # 32 bpp little-endian BGRX -> RGB
        rgb[0::3], rgb[1::3], rgb[2::3] = px[2::4], px[1::4], px[0::4]
        return "\n".join(read_text(bytes(rgb), self.width, self.height))

    def key(self, keysym):
        self.sock.sendall(struct.pack(">BBxxI", 4, 1, keysym) + struct.pack(">BBxxI", 4, 0, keysym))

    def ctrl(self, letter):
        """Ctrl-<letter>, as a viewer sends it: Control_L held around the letter."""
        press = struct.pack(">BBxxI", 4, 1, 0xffe3) + struct.pack(">BBxxI", 4, 1, ord(letter))
        self.sock.sendall(press + struct.pack(">BBxxI", 4, 0, ord(letter)) + struct.pack(">BBxxI", 4, 0, 0xffe3))

    def type(self, text):
        for ch in text:
            self.key(0xff0d if ch == "\r" else ord(ch))  # Return is a keysym of its own


class Probe:
    """The API client of every phase: one child process of its own timing VM.get_record at
    --rate calls a second (open loop) from start() to result(), or for measure(seconds). Apart
    from the viewers' threads, so that it never waits for this process's interpreter (the
    viewer decoding a screen) instead of for the agent."""

    def __init__(self, agent, vm, rate):
        import multiprocessing
        ctx = multiprocessing.get_context("fork")  # forked before any thread of ours runs
        self.stop = ctx.Event()
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_probe_main, args=(child, agent.port, agent.password, vm, rate, self.stop),
                                daemon=True)
        self.proc.start()

    def start(self):
        self.stop.clear()
        self.conn.send(3600.0)

    def result(self):
        self.stop.set()
        return self.conn.recv()

    def measure(self, seconds):
        self.stop.clear()
        self.conn.send(seconds)
        return self.conn.recv()

    def close(self):
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.proc.join(10)


def _probe_main(conn, port, password, vm, rate, stop):
    while (seconds := conn.recv()) is not None:
        conn.send(latencies(port, password, vm, seconds, rate, stop))


def open_console(port, query):
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(f"CONNECT /console?{query} HTTP/1.0\r\n\r\n".encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += sock.recv(1)
    if b" 200 " not in head.split(b"\r\n")[0]:
        raise RuntimeError(head)
    return sock


def nice_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[16])
    except OSError:
        return None


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


def cpu_seconds(pid):
    """User+system CPU seconds of a process (all its threads) so far; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def find_qemu(vm_uuid):
    """The pid of the guest's qemu (its command line names the VM's uuid), or 0."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read()
            except OSError:
                continue
            if b"qemu" in argv.split(b"\0")[0] and vm_uuid.encode() in argv:
                return int(entry)
    return 0


class Phase:
    """CPU seconds each process used, and the load average, over one phase."""

    def __init__(self, pids):
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self.t0 = time.monotonic()
        self.load0 = os.getloadavg()[0]

    def end(self, label):
        seconds = time.monotonic() - self.t0
        used = {name: cpu_seconds(pid) - self.start[name] for name, pid in self.pids.items()}
        self.summary = (f"{label}: {seconds:.0f} s, load {self.load0:.1f} -> {os.getloadavg()[0]:.1f}; "
                        "CPU % of one core: " + ", ".join(f"{name} {100 * v / seconds:.0f}"
                                                          for name, v in used.items()))
        return self


def drain_until_quiet(viewer, quiet, report=None):
    """Take updates (asking for each) until none comes for `quiet` seconds; returns the time
    of the last one. With `report` (a time), prints progress every 10 s from then on."""
    viewer.sock.settimeout(quiet)
    last = time.monotonic()
    with contextlib.suppress(TimeoutError, socket.timeout):  # quiet for `quiet` seconds: done
        while True:
            viewer.request()
            viewer.next_update()
            last = time.monotonic()
            if report is not None and last > report:
                report = last + 10
                print(f"  ... {viewer.updates} updates so far; the screen's last line: "
                      f"{viewer.text().rstrip().splitlines()[-1:]}", flush=True)
    viewer.sock.settimeout(60)
    viewer.buf.clear()  # a request may be outstanding; the next update answers it
    return last


def flood(viewer, probe, args, marker):
    """The guest prints --flood-mib MiB while `viewer` takes every update and a probe times
    VM.get_record; (probe latencies, seconds the flood took, bytes of pixels received)."""
    size = int(args.flood_mib * MiB)
    viewer.type(f"busybox yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU"
                f" | busybox head -c {size}; echo END-$((40+{marker - 40}))\r")
    t0 = time.monotonic()
    before = viewer.bytes
    probe.start()
    while True:
        last = drain_until_quiet(viewer, 3.0, report=time.monotonic() + 10)
        if f"END-{marker}" in viewer.text():
            break
        if time.monotonic() - t0 > 1800:
            raise SystemExit("the flood did not end within 30 min:\n" + viewer.text())
    return probe.result(), last - t0, viewer.bytes - before


def floor_flood(pty, vncterm_pid, probe, args, marker):
    """The flood with no viewer and vncterm stopped: the bench reads the guest's console pty
    itself (bytes thrown away) and types the same command; (probe latencies, seconds)."""
    size = int(args.flood_mib * MiB)
    os.kill(vncterm_pid, signal.SIGSTOP)
    fd = os.open(pty, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, f"busybox yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU"
                     f" | busybox head -c {size}; echo END-$((40+{marker - 40}))\r".encode())
        t0 = time.monotonic()
        probe.start()
        tail, total = b"", 0
        want = f"END-{marker}".encode()
        while want not in tail:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise SystemExit("the console pty closed during the floor phase")
            total += len(chunk)
            tail = (tail + chunk)[-200:]
            if time.monotonic() - t0 > 1800:
                raise SystemExit("the floor flood did not end within 30 min")
        seconds = time.monotonic() - t0
        probe_out = probe.result()
    finally:
        os.close(fd)
        os.kill(vncterm_pid, signal.SIGCONT)
    print(f"  floor: {total / MiB:.1f} MiB read from the pty in {seconds:.1f} s", flush=True)
    return probe_out, seconds


def keystrokes(viewer, n):
    """Seconds from each key event to the screen update showing its echo, one key at a time."""
    out = []
    for i in range(n):
        viewer.request()
        t = time.perf_counter()
        viewer.key(ord("a") + i % 26)
        viewer.next_update()
        out.append(time.perf_counter() - t)
        if i % 60 == 59:
            viewer.ctrl("u")  # the shell clears the line
            drain_until_quiet(viewer, 0.5)
    drain_until_quiet(viewer, 0.5)
    viewer.ctrl("u")
    drain_until_quiet(viewer, 0.5)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flood-mib", type=float, default=10.0)
    ap.add_argument("--keys", type=int, default=200)
    ap.add_argument("--rate", type=float, default=50.0, help="API calls per second of the probe")
    ap.add_argument("--idle-seconds", type=float, default=60.0,
                    help="seconds of the idle phase, before the floods and again after them")
    args = ap.parse_args()
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")

    daemons = libvirtd.Daemons()
    daemons.start()
    kit = guestkit.build()
    work = Path(tempfile.mkdtemp(prefix="hostagent-kvm-bench-", dir="/var/tmp"))
    work.chmod(0o755)
    kernel, initrd = stage_kit(kit, work)
    (work / "state").mkdir(mode=0o755)
    agent = AgentProcess(str(work / "state"), extra_args=("--libvirt-uri", libvirtd.URI))
    agent.start()
    conn = connect(agent.port)
    s = login(conn, agent.password)
    vm = rpc(conn, "VM.create", s, {
        "name_label": "console bench", "name_description": "", "user_version": "1", "is_a_template": False,
        "affinity": "OpaqueRef:NULL", "memory_static_max": str(96 * MiB), "memory_dynamic_max": str(96 * MiB),
        "memory_dynamic_min": str(96 * MiB), "memory_static_min": str(96 * MiB), "VCPUs_params": {},
        "VCPUs_max": "1", "VCPUs_at_startup": "1", "actions_after_shutdown": "destroy",
        "actions_after_reboot": "destroy", "actions_after_crash": "destroy", "PV_bootloader": "",
        "PV_kernel": str(kernel), "PV_ramdisk": str(initrd),
        "PV_args": "console=ttyS0,115200 quiet rdinit=/bin/sh", "PV_bootloader_args": "", "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order", "HVM_boot_params": {"order": "c"}, "platform": {"acpi": "1"},
        "PCI_bus": "", "domain_type": "hvm", "recommendations": "", "other_config": {}})
    try:
        started = time.monotonic()
        rpc(conn, "VM.start", s, vm, False, False)
        deadline = time.monotonic() + 60
        vt100 = None
        while vt100 is None and time.monotonic() < deadline:
            for c in rpc(conn, "VM.get_consoles", s, vm):
                if rpc(conn, "console.get_protocol", s, c) == "vt100":
                    vt100 = c
            time.sleep(0.2)
        if vt100 is None:
            raise SystemExit("the guest's text console never appeared:\n" + agent.log_text()[-3000:])
        probe = Probe(agent, vm, args.rate)  # before any viewer: the child holds no socket of theirs
        viewer = Rfb(open_console(agent.port, f"ref={vt100}&session_id={s}"))
        print(f"console {viewer.width}x{viewer.height}, {viewer.bpp * 8} bpp; waiting for the guest's shell")
        viewer.request(incremental=False)
        viewer.next_update()
        deadline = time.monotonic() + 300  # TCG on a busy machine: the boot may take minutes
        while not viewer.text().rstrip().endswith("#"):
            if time.monotonic() > deadline:
                raise SystemExit("no shell prompt on the guest's console:\n" + viewer.text())
            viewer.type("\r")
            drain_until_quiet(viewer, 2.0)
        print(f"shell prompt after {time.monotonic() - started:.0f} s")

        term = json.loads(next((work / "state" / "consoles").glob("vm-*.json")).read_text())
        vm_uuid = rpc(conn, "VM.get_uuid", s, vm)
        pids = {"agent": agent.proc.pid, "vncterm": term["pid"], "qemu": find_qemu(vm_uuid),
                "bench": os.getpid(), "probe": probe.proc.pid}
        print(f"pids: {pids}; vncterm's nice value: {nice_of(term['pid'])}")
        phases = []

        # 1. idle
        phase = Phase(pids)
        idle = probe.measure(args.idle_seconds)
        phases.append(phase.end("idle before the floods"))

        # 2. flood: the viewer (through the relay) takes every update while the probe runs
        phase = Phase(pids)
        flood_probe, flood_seconds, relayed = flood(viewer, probe, args, marker=42)
        phases.append(phase.end("flood through the relay"))
        # 3. keystrokes through the relay, then (the baseline) straight to the vncterm
        keys = keystrokes(viewer, args.keys)
        viewer.sock.close()
        direct = Rfb(socket.create_connection(("127.0.0.1", term["port"]), timeout=60))
        direct.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        direct.request(incremental=False)
        direct.next_update()
        keys_direct = keystrokes(direct, args.keys)
        # 4. the baseline of 2: the same flood watched by a viewer connected to vncterm itself
        phase = Phase(pids)
        direct_probe, direct_seconds, _ = flood(direct, probe, args, marker=43)
        phases.append(phase.end("flood watched straight from vncterm"))
        direct.sock.close()
        # 5. the floor: the same flood, nobody watching, vncterm stopped
        phase = Phase(pids)
        floor_probe, floor_seconds = floor_flood(term["pty"], term["pid"], probe, args, marker=44)
        phases.append(phase.end("floor (no viewer, vncterm stopped)"))
        # 1 again: idle after the floods, a viewer connected through the relay
        viewer_after = Rfb(open_console(agent.port, f"ref={vt100}&session_id={s}"))
        viewer_after.request(incremental=False)
        viewer_after.next_update()
        phase = Phase(pids)
        idle_after = probe.measure(args.idle_seconds)
        phases.append(phase.end("idle after the floods"))
        probe.close()
        viewer_after.sock.close()
    finally:
        try:
            conn = connect(agent.port)  # the first one may have been closed while idle
            rpc(conn, "VM.hard_shutdown", login(conn, agent.password), vm)
        except Exception as e:  # noqa: BLE001 - report, then clean up the rest
            print(f"cannot stop the guest: {e}")
        agent.cleanup()
        daemons.stop()
        import shutil
        shutil.rmtree(work, ignore_errors=True)

    idle_before_p99, idle_after_p99 = pct(idle, 0.99), pct(idle_after, 0.99)
    idle = idle + idle_after
    idle_p99, flood_p99 = pct(idle, 0.99), pct(flood_probe, 0.99)
    key_p50, key_p99 = statistics.median(keys) * 1000, pct(keys, 0.99)
    direct_p50, direct_p99 = statistics.median(keys_direct) * 1000, pct(keys_direct, 0.99)
    print(f"flood: {args.flood_mib:g} MiB printed in {flood_seconds:.1f} s; "
          f"{viewer.updates} updates, {relayed / MiB:.1f} MiB of pixels relayed to the viewer")
    print(f"API VM.get_record p50/p99, console idle : {pct(idle, 0.5):.1f} / {idle_p99:.1f} ms ({len(idle)} calls; "
          f"p99 {idle_before_p99:.1f} ms before the floods, {idle_after_p99:.1f} ms after)")
    print(f"API VM.get_record p50/p99, console flood: {pct(flood_probe, 0.5):.1f} / {flood_p99:.1f} ms "
          f"({len(flood_probe)} calls)")
    print(f"  ratio flood/idle p99: {flood_p99 / idle_p99:.2f} (target <= 2)")
    direct_flood_p99 = pct(direct_probe, 0.99)
    print(f"API VM.get_record p50/p99, the same flood watched straight from vncterm (no relay): "
          f"{pct(direct_probe, 0.5):.1f} / {direct_flood_p99:.1f} ms ({len(direct_probe)} calls, "
          f"{direct_seconds:.1f} s)")
    print(f"  ratio flood through the relay / flood without it, p99: {flood_p99 / direct_flood_p99:.2f}")
    floor_p99 = pct(floor_probe, 0.99)
    print(f"API VM.get_record p50/p99, the same flood with no viewer and vncterm stopped (the floor): "
          f"{pct(floor_probe, 0.5):.1f} / {floor_p99:.1f} ms ({len(floor_probe)} calls, {floor_seconds:.1f} s)")
    print(f"  ratio floor/idle p99: {floor_p99 / idle_p99:.2f}; flood through the relay / floor: "
          f"{flood_p99 / floor_p99:.2f}")
    for phase in phases:
        print(phase.summary)
    print(f"keystroke to screen update through CONNECT /console p50/p99: {key_p50:.1f} / {key_p99:.1f} ms "
          f"({len(keys)} keys; target p99 <= 50 ms: {'met' if key_p99 <= 50 else 'MISSED'})")
    print(f"keystroke to screen update straight to vncterm (baseline) p50/p99: {direct_p50:.1f} / "
          f"{direct_p99:.1f} ms; ratio relay/direct p50 {key_p50 / direct_p50:.2f}, p99 {key_p99 / direct_p99:.2f}")


if __name__ == "__main__":
    main()
