"""The hostagent-vncterm command: arguments, start-up order, privilege drop, the event loop."""

import argparse
import asyncio
import codecs
import ipaddress
import logging
import os
import resource
import signal
import socket
import sys

from .client import Client
from .console import Console
from .emulator import Emulator
from .font import load_font
from .priority import Priority
from .privdrop import PrivilegeError, drop, lookup_user, prepare_root
from .render import Framebuffer
from .terminal import TerminalError, open_pty, spawn_login

log = logging.getLogger("hostagent.vncterm")

DEFAULT_ROOT = "/var/empty/hostagent-vncterm"
DEFAULT_NICE = 10

DESCRIPTION = """\
Serve one text console as a VNC (RFB 3.3/3.7/3.8, security None) desktop on a loopback
address. The screen is emulated as a VT100/xterm terminal (pyte) and drawn with an 8x16
bitmap console font; keys typed in the viewer are sent to the console. Updates carry only
what changed and are sent only when a viewer asks for them (raw pixels, or ZRLE when the
viewer prefers it; scrolls as CopyRect), so a flood of output costs little. Up to 32
viewers may watch at once.

The console is either --pty PATH (a character device such as the /dev/pts/N that libvirt
reports for a guest's serial or Xen PV console, opened read/write in raw mode) or --login
(the host's own console: a new pty with a login prompt, agetty or login, run as root so it
can authenticate; never a shell without a password).

Start-up order: open the console, listen on --listen:--port, write the chosen port to
--port-file (atomically; remove a stale one before starting), then drop privileges: no supplementary groups, the uid/gid of
--user, chroot into --root (an empty directory owned by root; created 0555 if missing).
Run as non-root, the drop is skipped with a warning.

While its console floods (2 KiB or more in each of four half-second windows in a row),
vncterm runs --nice steps below the priority it was started with (default 10, shown in ps's
NI column), yielding the CPU to the host's management agent and its API; it returns to its
starting priority within a second of the flood's end, so that typing is never slowed. Started
as root, it raises RLIMIT_NICE before dropping privileges so that it may return; otherwise a
return that is refused leaves it lowered (logged once). The host console's login program
always runs at the caller's priority.

Exit status: 0 when the console hangs up (the guest stopped; in --login mode when the login
session ends) or on SIGTERM/SIGINT/SIGHUP; 1 when the console or the socket cannot be
opened or privileges cannot be dropped; 2 for bad arguments.
"""

EXAMPLE = """\
example:
  hostagent-vncterm --pty /dev/pts/3 --port-file /run/vm1.port --title vm1 &
  vncviewer 127.0.0.1::$(cat /run/vm1.port)
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hostagent-vncterm", description=DESCRIPTION,
                                epilog=EXAMPLE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pty", metavar="PATH", help="the console's character device")
    src.add_argument("--login", action="store_true",
                     help="host console: a new pty running a login prompt")
    p.add_argument("--listen", default="127.0.0.1", metavar="ADDR",
                   help="loopback address to listen on (default 127.0.0.1; others are refused)")
    p.add_argument("--port", type=int, default=0,
                   help="TCP port (default 0: any free port, see --port-file)")
    p.add_argument("--port-file", metavar="FILE",
                   help="write the listening port here (decimal and a newline), atomically")
    p.add_argument("--user", default="nobody", help="user to run as after start-up (default nobody)")
    p.add_argument("--root", default=DEFAULT_ROOT, metavar="DIR",
                   help=f"empty directory to chroot into (default {DEFAULT_ROOT})")
    p.add_argument("--title", help="desktop name shown by viewers")
    p.add_argument("--cols", type=int, default=80, help="screen width in characters (default 80)")
    p.add_argument("--rows", type=int, default=25, help="screen height in lines (default 25)")
    p.add_argument("--nice", type=int, default=DEFAULT_NICE, metavar="N",
                   help=f"run N steps below the starting priority while the console floods, "
                        f"0..19 (default {DEFAULT_NICE}; 0: never lower): a console's output "
                        "must never starve the management agent")
    return p


def check_args(parser, args) -> None:
    host = "127.0.0.1" if args.listen == "localhost" else args.listen
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        parser.error(f"--listen {args.listen}: not an IP address (only loopback ones are accepted)")
    if not loopback:
        parser.error(f"--listen {args.listen}: not a loopback address; vncterm listens on "
                     "loopback only (remote viewers go through the agent's /console)")
    args.listen = host
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    if not 10 <= args.cols <= 400 or not 4 <= args.rows <= 200:
        parser.error("--cols must be 10..400 and --rows 4..200")
    if args.pty is not None and not args.pty:
        parser.error("--pty needs a path")
    if not 0 <= args.nice <= 19:
        parser.error("--nice must be between 0 and 19")


def write_port_file(path: str, port: int) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=128, reuse_port=False)
    sock.setblocking(False)
    return sock


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, 65536), hard))


def _stop_early(signum, _frame) -> None:
    """SIGTERM before the event loop runs: exit 0 all the same (the console closes with us)."""
    raise SystemExit(0)


def main(argv=None) -> int:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _stop_early)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"hostagent-vncterm[{os.getpid()}]: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    is_root = os.geteuid() == 0
    try:
        ids = lookup_user(args.user) if is_root else None
        if is_root:
            prepare_root(args.root)
    except PrivilegeError as e:
        print(f"hostagent-vncterm: {e}", file=sys.stderr)
        return 2
    font = load_font()
    title = args.title or (f"console {args.pty}" if args.pty else
                           f"{socket.gethostname()} host console")
    child = None
    try:
        if args.login:
            if not is_root:
                log.warning("not root: the login prompt will not be able to authenticate")
            fd, child = spawn_login(args.cols, args.rows)
        else:
            fd = open_pty(args.pty)
        sock = listen(args.listen, args.port)
        port = sock.getsockname()[1]
        if args.port_file:
            write_port_file(args.port_file, port)
    except (TerminalError, OSError) as e:
        print(f"hostagent-vncterm: {e}", file=sys.stderr)
        return 1
    log.info("serving %s on %s port %d", args.pty or "a login prompt", args.listen, port)
    priority = None
    if args.nice:
        priority = Priority(args.nice)
        priority.allow_return()  # while still root
        log.info("running at nice %d; nice %d while the console floods", priority.base, priority.low)
    loop = asyncio.new_event_loop()
    emulator = Emulator(args.cols, args.rows)
    emulator.feed(b"\x1b[m \x08")  # warm pyte up (wcwidth tables, unicodedata) before the chroot
    fb = Framebuffer(font, args.cols, args.rows)
    raise_fd_limit()
    for codec in ("utf-8", "latin-1", "ascii", "idna"):
        codecs.lookup(codec)  # codecs load lazily: load the ones we use before the chroot
    if is_root:
        try:
            drop(*ids, args.root)
        except (PrivilegeError, OSError) as e:
            print(f"hostagent-vncterm: cannot drop privileges: {e}", file=sys.stderr)
            return 1
        log.info("running as %s (uid %d) in %s", args.user, ids[0], args.root)
    else:
        log.warning("not root: privileges are not dropped (no chroot, no setuid)")
    try:
        return loop.run_until_complete(serve(loop, fd, sock, emulator, fb, title, child,
                                                   priority))
    finally:
        loop.close()


async def serve(loop, fd, sock, emulator, fb, title, child, priority=None) -> int:
    console = Console(loop, fd, emulator, fb, priority)
    name = title.encode("utf-8")[:255]
    server = await loop.create_server(lambda: Client(console, name), sock=sock)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, console.finish, f"signal {signal.Signals(sig).name}")
    if child is not None:
        loop.add_signal_handler(signal.SIGCHLD, _reap, console, child)
        _reap(console, child)
    console.start()
    await console.finished
    server.close()
    for client in list(console.clients):
        client.transport.close()
    await asyncio.sleep(0)
    os.close(fd)
    return 0


def _reap(console, pid: int) -> None:
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        done, status = pid, 0
    if done == pid:
        console.finish(f"the login program exited (status {os.waitstatus_to_exitcode(status)})")


if __name__ == "__main__":
    sys.exit(main())
