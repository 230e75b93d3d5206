"""XML-RPC codec: `parse_call` for requests, `XmlEncoder` for replies."""

from .wire_errors import Malformed
from .xmlrpc_encode import XmlEncoder, escape
from .xmlrpc_parse import DEFAULT_MAX_DEPTH, WireDateTime, normalise_datetime, parse_call

__all__ = ["DEFAULT_MAX_DEPTH", "Malformed", "WireDateTime", "XmlEncoder", "escape", "normalise_datetime",
           "parse_call"]
