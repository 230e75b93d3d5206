"""The link monitor: link changes of a namespace reported from a thread."""

import logging
import threading
from typing import Callable, Optional

from .errors import LinkError
from .read import link_states

log = logging.getLogger("hostagent.netlink")


class LinkMonitor:
    """Link changes reported from a thread: `report("link", {name, deleted, new, carrier, up,
    master})` for each link that appeared (new), went (deleted) or changed (`report` must be
    thread-safe).

    It compares a dump of the namespace's links every `interval` seconds rather than
    listening to netlink's multicast group: pyroute2 0.9 buffers broadcast messages where a
    select() on its socket cannot see them, and one dump per interval is cheap."""

    def __init__(self, netns: Optional[str], report: Callable[[str, dict], None], interval: float = 1.0):
        self.netns = netns
        self.report = report
        self.interval = interval
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="link-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Blocks until the thread has ended (at most one dump and one interval)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @staticmethod
    def _state(li: dict) -> dict:
        return {"name": li["name"], "deleted": False, "carrier": li["carrier"], "up": li["up"],
                "master": li["master"]}

    def _run(self) -> None:
        before = None
        while not self._stop.is_set():
            try:
                now = {li["name"]: self._state(li) for li in link_states(self.netns)}
            except LinkError as e:
                log.warning("link monitor: %s", e)
                now = before
            if before is not None and now is not None:
                for name, state in now.items():
                    if before.get(name) != state:
                        self.report("link", dict(state, new=name not in before))
                for name in before.keys() - now.keys():
                    self.report("link", dict(before[name], deleted=True))
            before = now
            self._stop.wait(self.interval)


