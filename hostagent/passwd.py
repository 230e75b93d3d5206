"""`hostagent passwd USER [--state-dir DIR]`: set a user's password in the local user database.

The password is the first line of stdin (without its line ending), so scripts can
pipe it in; on a terminal it is asked for twice without echo. The database is
`<state-dir>/users.json`, the one `hostagent serve --auth local` reads; a running
agent picks the change up on its next login check.
"""

import argparse
import getpass
import os
from typing import List, Optional, TextIO

from .backends.auth import AuthError, InvalidUserName, PasswordRejected
from .backends.auth_local import LocalUsers, validate_user_name
from .paths import SYSTEM_STATE_DIR, USERS_FILE, default_state_dir

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Exit(Exception):
    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse writing to the given streams and returning instead of exiting."""

    def __init__(self, out: TextIO, err: TextIO, **kw):
        super().__init__(**kw)
        self._out, self._err = out, err

    def print_help(self, file=None):
        (file or self._out).write(self.format_help())

    def print_usage(self, file=None):
        (file or self._out).write(self.format_usage())

    def exit(self, status=0, message=None):
        if message:
            self._err.write(message)
        raise _Exit(status)

    def error(self, message):
        self.print_usage(self._err)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser(stdout: TextIO, stderr: TextIO) -> _Parser:
    p = _Parser(stdout, stderr, prog="hostagent passwd",
                description="Set USER's password in the local user database "
                            "(used by `hostagent serve --auth local`). The password is read "
                            "from the first line of stdin, or asked for twice on a terminal.")
    p.add_argument("user", metavar="USER")
    p.add_argument("--state-dir", metavar="DIR", default=None,
                   help="state directory holding users.json (default: %s as root, "
                        "else $XDG_STATE_HOME/hostagent)" % SYSTEM_STATE_DIR)
    return p


def _read_password(user: str, stdin: TextIO, stderr: TextIO) -> Optional[str]:
    """The new password, or None (after a message on stderr) if the two entries differ."""
    if _isatty(stdin):
        first = getpass.getpass(f"New password for {user}: ", stream=stderr)
        second = getpass.getpass(f"Retype new password for {user}: ", stream=stderr)
        if first != second:
            stderr.write("hostagent passwd: passwords do not match\n")
            return None
        return first
    line = stdin.readline()
    if line.endswith("\n"):
        line = line[:-1]
    if line.endswith("\r"):
        line = line[:-1]
    return line


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def main(argv: List[str], stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Run `hostagent passwd`; `argv` are the arguments after `passwd`. Returns the exit code."""
    try:
        args = _parser(stdout, stderr).parse_args(argv)
    except _Exit as e:
        return e.status
    try:
        validate_user_name(args.user)  # before asking for a password
    except InvalidUserName as e:
        stderr.write(f"hostagent passwd: {e.reason}\n")
        return EXIT_USAGE
    try:
        password = _read_password(args.user, stdin, stderr)
    except KeyboardInterrupt:
        stderr.write("\nhostagent passwd: interrupted\n")
        return EXIT_INTERRUPTED
    except EOFError:
        password = ""
    if password is None:
        return EXIT_USAGE
    if password == "":
        stderr.write("hostagent passwd: refusing an empty password\n")
        return EXIT_USAGE
    state_dir = args.state_dir or default_state_dir()
    db = LocalUsers(os.path.join(state_dir, USERS_FILE))
    try:
        db.set_password(args.user, password)
    except (InvalidUserName, PasswordRejected) as e:
        stderr.write(f"hostagent passwd: {e.reason}\n")
        return EXIT_USAGE
    except AuthError as e:
        cause = f": {e.__cause__}" if e.__cause__ else ""
        stderr.write(f"hostagent passwd: {e.reason} ({db.path}){cause}\n")
        return EXIT_FAILED
    stdout.write(f"password set for {args.user}\n")
    return EXIT_OK

