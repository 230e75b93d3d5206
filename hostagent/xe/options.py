"""The command line as XenServer's xe reads it: connection options, `key=value`
parameters and `--flags`, with `XE_EXTRA_ARGS` and `~/.xe` beneath it.

Precedence: the command line, then `XE_EXTRA_ARGS` (comma-separated `k=v`, `\\,`
escapes a comma), then the rc file `~/.xe` (lines `key=value`). Connection keys
are `server` (`-s`, `-h`), `port` (`-p`), `username` (`-u`), `password` (`-pw`),
`passwordfile` (`-pwf`: user name on line 1, password on line 2), `nossl`
(`--nossl`) and `debug` (`--debug`).
"""

import contextlib
import os

from .errors import UsageError

SHORT = {"-s": "server", "-h": "server", "-p": "port", "-u": "username", "-pw": "password",
         "-pwf": "passwordfile"}
CONNECTION_KEYS = ("server", "port", "username", "password", "passwordfile", "nossl", "debug")
TRUE = ("true", "yes", "on", "1")


class Options:
    """Connection settings plus the command and its parameters."""

    def __init__(self):
        self.server = ""
        self.port = 0
        self.port_given = False
        self.username = "root"
        self.password = "null"
        self.nossl = False
        self.debug = False
        self.no_verify = True
        self.minimal = False
        self.command = None
        self.topic = None  # `xe help <topic>`
        self.params = {}  # CLI name -> value, in the order given
        self.flags = set()  # --force, --multiple, ...

    def flag(self, name: str) -> bool:
        return name in self.flags or self.params.get(name, "").lower() in TRUE


def split_extra_args(text: str):
    """`XE_EXTRA_ARGS`: comma-separated `k=v`, with `\\,` for a literal comma."""
    items, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] == ",":
            cur.append(",")
            i += 2
            continue
        if c == ",":
            items.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    items.append("".join(cur))
    return [x.strip() for x in items if x.strip()]


def read_rc(path: str):
    """`~/.xe`: one `key=value` per line; `#` starts a comment."""
    pairs = []
    with contextlib.suppress(OSError):  # no such file: nothing set there
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    key, _, value = line.partition("=")
                    pairs.append((key.strip(), value.strip()))
    return pairs


def parse(argv, environ=os.environ) -> Options:
    opts = Options()
    settings = {}  # connection keys from every layer; later layers win
    home = environ.get("HOME") or os.path.expanduser("~")
    for key, value in read_rc(os.path.join(home, ".xe")):
        if key in CONNECTION_KEYS:
            settings[key] = value
    for item in split_extra_args(environ.get("XE_EXTRA_ARGS", "")):
        key, eq, value = item.partition("=")
        if eq and key in CONNECTION_KEYS:
            settings[key] = value
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in SHORT:
            if i + 1 >= len(argv):
                raise UsageError(f"Option {arg} needs a value")
            settings[SHORT[arg]] = argv[i + 1]
            i += 2
            continue
        if arg.startswith("--"):
            name = arg[2:]
            if name == "minimal":
                opts.minimal = True
            elif name in ("nossl", "debug"):
                settings[name] = "true"
            elif name == "verify-certificate":
                opts.no_verify = False
            elif not name:
                raise UsageError("Bad option: --")
            else:
                opts.flags.add(name)
            i += 1
            continue
        key, eq, value = arg.partition("=")
        if eq:
            if key in CONNECTION_KEYS:
                settings[key] = value
            elif key == "minimal":
                opts.minimal = value.lower() in TRUE
            else:
                opts.params[key] = value
        elif opts.command is None:
            opts.command = arg
        elif opts.command == "help" and opts.topic is None:
            opts.topic = arg
        else:
            raise UsageError(f"Unexpected argument: {arg} (parameters are name=value)")
        i += 1
    _apply(opts, settings)
    return opts


def _apply(opts: Options, s: dict):
    opts.server = s.get("server", "")
    if "port" in s:
        try:
            opts.port = int(s["port"])
        except ValueError:
            raise UsageError(f"Port must be a number, not {s['port']!r}") from None
        opts.port_given = True
    opts.nossl = s.get("nossl", "").lower() in TRUE
    opts.debug = s.get("debug", "").lower() in TRUE
    if "username" in s:
        opts.username = s["username"]
    if "password" in s:
        opts.password = s["password"]
    if "passwordfile" in s:
        try:
            with open(s["passwordfile"], encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise UsageError(f"Cannot read the password file {s['passwordfile']}: {e.strerror}") from None
        if len(lines) < 2:
            raise UsageError(f"The password file {s['passwordfile']} must hold a user name line and a "
                             "password line")
        opts.username, opts.password = lines[0].strip(), lines[1].rstrip("\n")
