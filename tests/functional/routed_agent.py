"""`hostagent serve` with a test handler on its router, for test_routed_site.py.

    python tests/functional/routed_agent.py serve [options of hostagent serve]

`/count` (PUT or POST, streaming, xapi's authentication) counts the body's bytes as
they arrive and keeps none of them. Once a MiB is in it answers at once with
`first MiB after N bytes` (before the client has sent the rest), and at the end
`total N pieces P largest L user U`.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from hostagent.cli import main  # noqa: E402
from hostagent.server import wiring  # noqa: E402

MiB = 1 << 20


class Count:
    methods = ("PUT", "POST")

    def stream(self, call):
        return _Counting(call)


class _Counting:
    def __init__(self, call):
        self.call = call
        self.total = self.pieces = self.largest = 0
        self.told = False
        call.request.setHeader(b"Content-Type", b"text/plain")

    def dataReceived(self, data):
        self.total += len(data)
        self.pieces += 1
        self.largest = max(self.largest, len(data))
        if not self.told and self.total >= MiB:
            self.told = True
            self.call.request.write(b"first MiB after %d bytes\n" % self.total)

    def bodyEnded(self):
        self.call.request.write(b"total %d pieces %d largest %d user %s\n" % (
            self.total, self.pieces, self.largest, self.call.caller.user.encode()))
        self.call.request.finish()


_start = wiring.Agent.start


async def start(self):
    await _start(self)
    self.router.route("/count", Count(), streaming=True)  # after listening: routes are looked up per request


wiring.Agent.start = start

if __name__ == "__main__":
    sys.exit(main())
