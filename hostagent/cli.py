"""The `hostagent` command: serve the XenAPI, manage local users, check a dom0."""

import argparse
import sys

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    from .config import add_serve_options
    p = argparse.ArgumentParser(
        prog="hostagent",
        description="A XenAPI (xapi) host agent for Xen dom0: serves XML-RPC and JSON-RPC to "
                    "XenServer/XCP-ng clients and manages domains through libvirt.")
    p.add_argument("--version", action="version", version=f"hostagent {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    s = sub.add_parser("serve", help="run the agent in the foreground",
                       description="Run the agent in the foreground, logging to stderr. With no options "
                                   "it uses the embedded default: libvirt test:///default, a file SR in the "
                                   "state dir and the local user database. Stops cleanly on SIGTERM/SIGINT; "
                                   "every acknowledged change is already on disk.")
    add_serve_options(s)
    pw = sub.add_parser("passwd", help="set a local user's password (read from stdin)",
                        description="Store USER's password (first line of stdin, or prompted twice on a "
                                    "terminal) as a salted hash in the state dir's user database.")
    pw.add_argument("user", metavar="USER")
    pw.add_argument("--state-dir", metavar="DIR", help="default: as for serve")
    doc = sub.add_parser("doctor", help="report what this dom0 lacks for the agent",
                         description="Check this machine as a dom0 for the agent: Xen running, libvirt's "
                                     "xen driver, xenstore tools, bridges, free memory, nbdkit and "
                                     "nbd-client, qemu deprivilege users. Exit status 1 when something "
                                     "the agent needs is missing.")
    doc.add_argument("--libvirt-uri", default="xen:///system", metavar="URI")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        from .config import ConfigError, load
        try:
            config = load(args)
        except ConfigError as e:
            parser.exit(2, f"hostagent: {e}\n")
        from .server.run import serve
        return serve(config)
    if args.command == "doctor":
        from . import doctor
        return doctor.main(argv[1:])
    if args.command == "passwd":
        from . import passwd
        return passwd.main(argv[1:], sys.stdin, sys.stdout, sys.stderr)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
