"""Errors of the wire codecs (XML-RPC and JSON-RPC), shared by both.

A `Malformed` request is not an API call at all: the HTTP edge answers it with
a 500 page, as xapi does, never with a XenAPI error envelope.
"""


class WireError(Exception):
    """Root of the codec errors."""


class Malformed(WireError):
    """The request body is not a well-formed call; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
