"""A member's links port, as the master's network actions use it: a proxy to its agent.

`RemoteLinks` has the functions of the local `NetworkPort` (backends/netlink/port.py) that
the actions call: each goes to the member's `POST /pool/v1/port` ("links" in wire.py's
allow-list), where the member's own port runs it on the links it manages (its namespace
with `--netns`). A link's failure comes back as the same LinkError subclass. The master
makes one only for a member whose heartbeat says its agent manages links; for one that
does not, the member's ports have no links, as a lone agent without --manage-network.
"""

from collections.abc import Callable

from . import wire


class RemoteLinks:
    def __init__(self, caller: Callable, netns: str):
        self._caller = caller
        self.netns = netns  # the member's namespace ("" its own), as NetworkPort.netns

    def __getattr__(self, name):
        if name.startswith("_") or name not in wire.ALLOWED["links"]:
            raise AttributeError(name)

        async def call(*args):
            return await self._caller("links", name, args)
        return call
