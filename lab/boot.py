#!/usr/bin/env python3
"""Boot the lab's dom0 image under QEMU: Xen by multiboot, dom0 from the image, ssh forwarded.

    python3 lab/boot.py            # boot, wait for ssh, print timings, power off
    python3 lab/boot.py --hold     # ... and keep it running until Ctrl-C (prints the ssh command)

The image (build/lab/current, made by lab/build.py in the shared cache) is never written: each
boot runs on a qcow2 overlay in its own build/lab/run/<pid>/ (two labs may run from one
checkout). QEMU's serial port (Xen's and dom0's consoles) goes to serial.log there. The
network is QEMU's user mode with restrict=on: dom0 reaches
nothing, the host reaches dom0's ssh and the agent's API through loopback ports.
`Dom0` is what lab/run.py uses.
"""

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from build import KEY, OUT, ROOT  # noqa: F401 - lab/run.py takes ROOT from here

# xen-lab-notes.md: -monitor off (Xen panics on MWAIT under TCG), smap=0 (dom0 crashes at once).
# thread=single: one host thread runs both virtual CPUs in turn. With thread=multi (QEMU 7.2)
# dom0's init once died of SIGSEGV with its own code unmapped; thread=single did not end such
# crashes (docs/lab.md, "Stability"), but costs nothing measurable and takes one race away.
TCG = ["-accel", "tcg,thread=single,tb-size=512", "-cpu", "EPYC,-monitor"]
MEMORY_MIB = 2048
# dom0_max_vcpus=1: dom0's user processes died of corrupted memory (docs/lab.md, "Stability")
# seconds after its kernel hot-added ZONE_DEVICE memory for grant mappings (Linux's unpopulated
# alloc, no command-line switch avoids it); with one dom0 vCPU no page-table change or TLB flush
# has to reach another dom0 CPU. Under thread=single the second vCPU bought dom0 no speed.
XEN_CMDLINE = ("dom0_mem=1024M,max:1024M dom0_max_vcpus=1 console=com1 com1=115200,8n1"
               " noreboot smap=0")
# net.ifnames=0: dom0's NIC stays eth0, as lab/initramfs.py configured it
DOM0_CMDLINE = "root=/dev/vda rw console=hvc0 net.ifnames=0"
# A second, empty virtual disk (dom0's /dev/vdb) for the LVM SR tests (tests/lab): a sparse
# qcow2 in the run dir, made at each boot, so it costs only what the tests write.
DATA_DISK_MIB = 1024


def log(msg):
    print(f"lab: {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def has_real_kvm():
    """KVM with VMX/SVM (this project's machines have a /dev/kvm without either)."""
    if not os.path.exists("/dev/kvm"):
        return False
    flags = Path("/proc/cpuinfo").read_text()
    return " vmx" in flags or " svm" in flags


class Dom0:
    def __init__(self, image_dir=None, run_dir=None, ssh_port=None, api_port=None):
        self.image_dir = Path(image_dir or OUT / "current").resolve()
        self.run_dir = Path(run_dir or OUT / "run" / str(os.getpid()))
        self.key = KEY
        self.ssh_port = ssh_port or free_port()
        self.api_port = api_port or free_port()
        self.serial_log = self.run_dir / "serial.log"
        self.proc = None
        self.peak_rss_kib = 0
        # One ssh connection (key exchange, login) shared by every later command, the tests'
        # included: each new connection costs dom0 seconds of emulated crypto.
        mux = self.run_dir / "ssh.sock"
        self.mux = mux if len(str(mux)) < 100 else Path(tempfile.gettempdir()) / f"hostagent-lab-{self.ssh_port}.sock"

    @property
    def api_url(self):
        return f"http://127.0.0.1:{self.api_port}"

    def ssh_argv(self):
        return ["ssh", "-i", str(self.key), "-p", str(self.ssh_port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=60",
                # a key exchange cheap to emulate (the default sntrup761 one costs dom0 seconds)
                "-o", "KexAlgorithms=curve25519-sha256",
                "-o", f"ControlPath={self.mux}", "-o", "ControlMaster=no", "root@127.0.0.1"]

    def ssh_command(self):
        return " ".join(self.ssh_argv())

    def qemu_argv(self, overlay):
        img = self.image_dir
        accel = ["-accel", "kvm", "-cpu", "host"] if os.environ.get("LAB_KVM") == "1" and has_real_kvm() else TCG
        fwd = (f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22,"
               f"hostfwd=tcp:127.0.0.1:{self.api_port}-:8080")
        # -nodefaults: no floppy, CD-ROM or VGA for dom0's kernel and udev to probe
        return ["qemu-system-x86_64", *accel, "-nodefaults", "-m", str(MEMORY_MIB), "-smp", "2",
                "-display", "none", "-monitor", "none", "-no-reboot",
                "-serial", f"file:{self.serial_log}",
                "-kernel", str(img / "xen"), "-append", XEN_CMDLINE,
                "-initrd", f"{img / 'vmlinuz'} {DOM0_CMDLINE},{img / 'initrd'}",
                "-drive", f"file={overlay},format=qcow2,if=virtio,cache=unsafe",
                "-drive", f"file={self.run_dir / 'data.qcow2'},format=qcow2,if=virtio,cache=unsafe",
                "-netdev", f"user,id=n0,restrict=on,{fwd}",
                "-device", "virtio-net-pci,netdev=n0"]

    def start(self):
        if not (self.image_dir / "dom0.img").exists():
            raise SystemExit(f"lab: no image in {self.image_dir}: run lab/build.py first")
        if not shutil.which("qemu-system-x86_64"):
            raise SystemExit("lab: qemu-system-x86_64 is missing (apt-get install qemu-system-x86)")
        for old in self.run_dir.parent.glob("*"):  # earlier boots whose process is gone
            if old.is_dir() and old.name.isdigit() and not Path(f"/proc/{old.name}").exists():
                shutil.rmtree(old, ignore_errors=True)
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True)
        overlay = self.run_dir / "dom0.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
                        "-b", str(self.image_dir / "dom0.img"), str(overlay)], check=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(self.run_dir / "data.qcow2"),
                        f"{DATA_DISK_MIB}M"], check=True)
        argv = self.qemu_argv(overlay)
        (self.run_dir / "qemu.argv").write_text(" ".join(argv) + "\n")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=open(self.run_dir / "qemu.out", "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log(f"qemu pid {self.proc.pid}; serial log {self.serial_log}")

    def sample_rss(self):
        """QEMU's peak resident memory so far (VmHWM), in KiB."""
        with contextlib.suppress(OSError, ValueError):  # QEMU gone meanwhile: the peak stands
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))
        return self.peak_rss_kib

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ssh(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"qemu exited ({self.proc.returncode}) before ssh answered; "
                                   f"see {self.serial_log} and {self.run_dir / 'qemu.out'}")
            try:
                r = subprocess.run(self.ssh_argv() + ["true"], capture_output=True, timeout=90)
            except subprocess.TimeoutExpired:
                continue
            if r.returncode == 0:
                self.start_mux()
                return
            time.sleep(2)
        raise RuntimeError(f"no ssh after {timeout} s; see {self.serial_log}")

    def start_mux(self):
        """The shared connection (ssh -M in the background; ssh_argv's commands use it, and
        connect on their own when it is gone)."""
        argv = self.ssh_argv()
        argv[argv.index("ControlMaster=no")] = "ControlMaster=yes"
        subprocess.run(argv[:-1] + ["-N", "-f", "-o", "ControlPersist=yes", "-o", "ServerAliveInterval=15",
                                    "-o", "ServerAliveCountMax=8", argv[-1]],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=120, check=False)

    def ssh(self, command, check=True, timeout=600, capture=True, input=None):
        r = subprocess.run(self.ssh_argv() + [command], capture_output=capture, text=True,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise RuntimeError(f"dom0: `{command}` failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    def put(self, local, remote):
        """Copy local files or directories to a dom0 path (tar over ssh, no scp/sftp needed)."""
        local = [Path(p) for p in ([local] if isinstance(local, (str, Path)) else local)]
        tar = subprocess.Popen(["tar", "-C", str(local[0].parent), "-cf", "-", *(p.name for p in local)],
                               stdout=subprocess.PIPE)
        r = subprocess.run(self.ssh_argv() + [f"mkdir -p {remote} && tar -C {remote} -xf -"],
                           stdin=tar.stdout, capture_output=True, text=True)
        tar.stdout.close()
        if tar.wait() != 0 or r.returncode != 0:
            raise RuntimeError(f"copy to dom0:{remote} failed: {r.stderr}")

    def responsive(self):
        """dom0 alive and answering ssh within a few seconds."""
        if not self.alive():
            return False
        try:
            return subprocess.run(self.ssh_argv() + ["true"], capture_output=True, timeout=90).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def crash_lines(self):
        """Lines of the serial log that say dom0 or Xen crashed."""
        try:
            text = self.serial_log.read_text(errors="replace")
        except OSError:
            return []
        marks = ("Kernel panic", "Dom0 crashed", "Panic on CPU", "BUG: ", "Oops:", "segfault at")
        return [line.strip() for line in text.splitlines() if any(m in line for m in marks)]

    def poweroff(self, timeout=90):
        if not self.alive():
            return
        self.sample_rss()
        if not self.responsive():
            log("dom0 does not answer ssh: killing qemu")
            self.kill()
            return
        # the connection may drop before ssh returns, or dom0 answer slowly under load
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(self.ssh_argv() + ["systemctl poweroff"], capture_output=True, timeout=90)
        try:
            self.proc.wait(timeout)
            log("dom0 powered off; qemu exited")
        except subprocess.TimeoutExpired:
            log(f"no power-off after {timeout} s: killing qemu")
            self.kill()

    def kill(self):
        if self.mux.exists():  # the shared connection's ssh, ended by its own socket
            with contextlib.suppress(subprocess.TimeoutExpired):
                subprocess.run(self.ssh_argv()[:-1] + ["-O", "exit", "root@127.0.0.1"],
                               capture_output=True, timeout=10, check=False)
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hold", action="store_true", help="keep dom0 running until Ctrl-C")
    ap.add_argument("--ssh-port", type=int)
    ap.add_argument("--api-port", type=int)
    args = ap.parse_args()
    t0 = time.monotonic()
    lab = Dom0(ssh_port=args.ssh_port, api_port=args.api_port)
    lab.start()
    try:
        lab.wait_ssh()
        t_ssh = time.monotonic() - t0
        log(f"ssh up after {t_ssh:.1f} s: {lab.ssh_command()}")
        print(lab.ssh("xl info | grep -E '^(xen_version|total_memory|free_memory|virt_caps)'").stdout, end="")
        if args.hold:
            log(f"holding; agent port {lab.api_url}; Ctrl-C (or SIGTERM to pid {os.getpid()}) powers off")
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C or SIGTERM: power off below
                while lab.alive():
                    time.sleep(5)
                    lab.sample_rss()
        t1 = time.monotonic()
        lab.poweroff()
        log(f"boot to ssh {t_ssh:.1f} s, power-off {time.monotonic() - t1:.1f} s, "
            f"total {time.monotonic() - t0:.1f} s, qemu peak RSS {lab.peak_rss_kib / 1024:.0f} MiB")
    finally:
        lab.kill()


if __name__ == "__main__":
    sys.exit(main())
