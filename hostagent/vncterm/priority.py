"""vncterm's CPU priority: the one it was started with, and --nice steps below it while its
console floods (console.py says when). Lowered for good, a prompt console would wake late for
every key echo on a busy host; lowered only while flooding, the flood yields to the agent."""

import logging
import os
import resource

log = logging.getLogger("hostagent.vncterm")


class Priority:
    """Lowers the process's priority by ``steps`` on ``lower()`` and returns it to the base
    priority on ``restore()``. ``allow_return()`` (called while still root) raises
    RLIMIT_NICE so that the unprivileged process may return; where that fails (not root)
    a failed return leaves the process lowered, said once in the log."""

    def __init__(self, steps: int, base=None, setpriority=os.setpriority):
        self.steps = steps
        self.base = os.getpriority(os.PRIO_PROCESS, 0) if base is None else base
        self.low = min(19, self.base + steps)
        self._set = setpriority
        self.stuck = False  # could not return to base: lowered for good
        self.told = set()   # the transitions already logged (each is logged once)

    def allow_return(self) -> None:
        """RLIMIT_NICE r allows nice values down to 20 - r: let the process return to base."""
        limit = 20 - self.base
        try:
            resource.setrlimit(resource.RLIMIT_NICE, (limit, limit))
        except (OSError, ValueError) as e:
            log.warning("cannot raise RLIMIT_NICE to %d (%s): after a flood vncterm may not "
                        "be able to return to nice %d", limit, e, self.base)

    def lower(self) -> None:
        if self.stuck:
            return
        try:
            self._set(os.PRIO_PROCESS, 0, self.low)
        except OSError as e:
            log.warning("cannot lower the priority to nice %d: %s", self.low, e)
            return
        self._tell("lower", "the console floods: running at nice %d until it stops "
                   "(logged once)", self.low)

    def restore(self) -> None:
        if self.stuck:
            return
        try:
            self._set(os.PRIO_PROCESS, 0, self.base)
        except PermissionError as e:
            self.stuck = True
            log.warning("cannot return to nice %d after a flood (%s): staying at nice %d",
                        self.base, e, self.low)
            return
        self._tell("restore", "the flood is over: back at nice %d (logged once)", self.base)

    def _tell(self, what: str, message: str, *args) -> None:
        if what not in self.told:
            self.told.add(what)
            log.info(message, *args)
