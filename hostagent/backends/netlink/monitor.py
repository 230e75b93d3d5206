"""The link monitor: the kernel's link notifications (RTNLGRP_LINK) of a namespace, read without blocking.

`LinkEvents(netns)` opens a plain netlink socket subscribed to the link group,
made inside the namespace (a socket stays in the namespace it was made in), and
dumps the links once to know where they start. The server watches `fileno()`;
`read()` takes the notifications waiting and returns one report for each link
that appeared (`new`), went (`deleted`) or changed state:
`{name, deleted, new, carrier, up, master}` (master a name or None). A
notification that changes none of those (statistics, an address) reports
nothing; a rename is the old name going and the new appearing. Bridge port
notifications (family AF_BRIDGE) are not about links coming or going and are
skipped. When the socket overflows (ENOBUFS: notifications were lost) the links
are dumped again and the differences reported.

pyroute2 is not used here: it buffers broadcast messages where a select() on its
socket does not see them, so its socket cannot be watched by a reactor.
"""

import errno
import logging
import socket
import struct

from .errors import LinkError, in_netns
from .read import NLMSG_ERROR, RTM_DELLINK, RTM_NEWLINK, parse_link, raw_links

log = logging.getLogger("hostagent.netlink")

RTMGRP_LINK = 1
AF_UNSPEC = 0
RECEIVE_BUFFER = 1 << 21


class LinkEvents:
    def __init__(self, netns: str | None = None):
        self.netns = netns

        def make():
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                 0)  # NETLINK_ROUTE
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
                sock.bind((0, RTMGRP_LINK))  # subscribed before the dump: nothing falls between
                return sock, raw_links()
            except OSError:
                sock.close()
                raise
        try:
            self._sock, found = in_netns(netns, make)
        except OSError as e:
            raise LinkError(f"listen to the links of {netns or 'this namespace'}: {e}", "", e.errno or 0) from None
        self._known: dict[int, dict] = {li["index"]: li for li in found}

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    def _state(self, li: dict) -> dict:
        master = self._known.get(li["master"]) if li["master"] else None
        return {"name": li["name"], "deleted": False, "carrier": li["carrier"], "up": li["up"],
                "master": master["name"] if master else None}

    def _apply(self, kind: int, li: dict, out: list[dict]) -> None:
        old = self._known.get(li["index"])
        before = self._state(old) if old else None
        if kind == RTM_DELLINK:
            if old is not None:
                del self._known[li["index"]]
                out.append(dict(before, deleted=True))
            return
        if li["name"] is None:
            return
        renamed = old is not None and old["name"] != li["name"]
        if renamed:
            out.append(dict(before, deleted=True))
        self._known[li["index"]] = li
        now = self._state(li)
        if before is None or renamed or now != before:
            out.append(dict(now, new=before is None or renamed))

    def _resync(self) -> list[dict]:
        """After lost notifications: the links dumped again, the differences reported (masters
        named as the new dump has them)."""
        found = {li["index"]: li for li in in_netns(self.netns, raw_links)}
        before = {index: self._state(li) for index, li in self._known.items()}
        self._known = found
        out: list[dict] = [dict(state, deleted=True) for index, state in before.items() if index not in found]
        for index, li in found.items():
            old, now = before.get(index), self._state(li)
            renamed = old is not None and old["name"] != now["name"]
            if renamed:
                out.append(dict(old, deleted=True))
            if old is None or renamed or now != old:
                out.append(dict(now, new=old is None or renamed))
        return out

    def read(self) -> list[dict]:
        out: list[dict] = []
        while True:
            try:
                data = self._sock.recv(1 << 17)
            except BlockingIOError:
                return out
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    log.warning("link notifications were lost (the socket overflowed): reading every link again")
                    try:
                        out.extend(self._resync())
                    except OSError as again:
                        log.warning("cannot read the links again: %s", again)
                    continue
                raise LinkError(f"link notifications: {e}", "", e.errno or 0) from None
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if length < 16:
                    break
                if kind in (RTM_NEWLINK, RTM_DELLINK) and length >= 32:
                    li = parse_link(data, offset, length)
                    if li["family"] == AF_UNSPEC:
                        self._apply(kind, li, out)
                elif kind == NLMSG_ERROR:
                    log.debug("a netlink error on the link monitor's socket")
                offset += (length + 3) & ~3
