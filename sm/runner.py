"""The one way sm runs external tools (lvs, vgcreate, mount, umount, losetup, mkfs...).

Every command is an argv list (never a shell string), runs with LC_ALL=C so
output is parseable, in a session of its own so a timeout kills the whole
process group, and fails with ToolFailed/Timeout naming the error-table entry
the call site chose (``error="NFSMount"``). ``RecordingRunner`` has the same
interface and replays canned results, for tests of command construction where
the real tool cannot run (an NFS mount without a server).
"""

import json as _json
import os
import signal
import subprocess
from dataclasses import dataclass

from sm.errors import Timeout, ToolFailed

# Debian's non-root PATH (and a venv's) may lack the sbin directories LVM lives in.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


@dataclass(frozen=True)
class Result:
    rc: int
    stdout: str
    stderr: str


def command_env(extra: dict | None = None) -> dict:
    """The environment commands run with: ours, C locale, sbin on PATH, plus extra."""
    env = dict(os.environ)
    path = env.get("PATH", "/usr/bin:/bin").split(":")
    env["PATH"] = ":".join(path + [d for d in _SBIN if d not in path])
    env["LC_ALL"] = "C"
    # LVM warns about every inherited descriptor; we close them anyway.
    env["LVM_SUPPRESS_FD_WARNINGS"] = "1"
    env.update(extra or {})
    return env


class Runner:
    """Runs commands with a default timeout; ``record(argv, result)`` sees each one."""

    def __init__(self, timeout: float = 60, env: dict | None = None, record=None):
        self.timeout = timeout
        self.env = command_env(env)
        self.record = record

    def run(self, argv, input: str | None = None, timeout: float | None = None,
            ok_codes=(0,), error: str = "SMGeneral") -> Result:
        """Run argv; a status outside ok_codes raises ToolFailed(error=error)."""
        argv = [str(a) for a in argv]
        limit = self.timeout if timeout is None else timeout
        result = self._execute(argv, input, limit, error)
        if self.record is not None:
            self.record(argv, result)
        return check(argv, result, ok_codes, error)

    def json(self, argv, timeout: float | None = None, error: str = "SMGeneral"):
        """Run a ``--reportformat json`` style command and parse its stdout."""
        result = self.run(argv, timeout=timeout, error=error)
        try:
            return _json.loads(result.stdout)
        except ValueError as exc:
            raise ToolFailed(argv, result.rc, result.stdout,
                             f"unparseable JSON output: {exc}", error) from None

    def _execute(self, argv, input, limit, error) -> Result:
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env,
                start_new_session=True, close_fds=True)
        except FileNotFoundError:
            return Result(127, "", f"{argv[0]}: command not found")
        except PermissionError as exc:
            return Result(126, "", f"{argv[0]}: {exc.strerror}")
        try:
            stdout, stderr = proc.communicate(input, timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise Timeout(argv, limit, error) from None
        except BaseException:
            _kill_group(proc)
            raise
        return Result(proc.returncode, stdout, stderr)


def _kill_group(proc):
    """Kill the command and everything it started, then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    # Descendants are dead too, so nothing keeps the pipes open any more.
    proc.communicate()


def check(argv, result: Result, ok_codes, error: str) -> Result:
    """Return result, or raise ToolFailed when its status is not acceptable."""
    if result.rc not in ok_codes:
        raise ToolFailed(argv, result.rc, result.stdout, result.stderr, error)
    return result


class RecordingRunner(Runner):
    """Records every argv and replays canned results instead of running anything.

    ``when(prefix, rc=..., stdout=..., stderr=...)`` answers commands whose argv
    starts with prefix (the newest matching rule wins; ``times`` limits how often
    it answers). Unmatched commands succeed with empty output. A rule with
    ``timeout=True`` raises Timeout, as the real runner does.
    """

    def __init__(self, timeout: float = 60, env: dict | None = None, record=None):
        super().__init__(timeout, env, record)
        self.calls: list[list[str]] = []
        self.inputs: list[str | None] = []
        self._rules: list[dict] = []

    def when(self, prefix, rc: int = 0, stdout: str = "", stderr: str = "",
             times: int | None = None, timeout: bool = False):
        self._rules.append(dict(prefix=[str(a) for a in prefix], result=Result(rc, stdout, stderr),
                                times=times, timeout=timeout))
        return self

    def when_json(self, prefix, value, **kw):
        return self.when(prefix, stdout=_json.dumps(value), **kw)

    def commands(self, name: str | None = None) -> list[list[str]]:
        """The recorded argvs, optionally only those of one tool."""
        return [c for c in self.calls if name is None or c[0] == name]

    def _execute(self, argv, input, limit, error) -> Result:
        self.calls.append(list(argv))
        self.inputs.append(input)
        for rule in reversed(self._rules):
            if argv[:len(rule["prefix"])] != rule["prefix"]:
                continue
            if rule["times"] is not None:
                if rule["times"] <= 0:
                    continue
                rule["times"] -= 1
            if rule["timeout"]:
                raise Timeout(argv, limit, error)
            return rule["result"]
        return Result(0, "", "")

