"""JSON-RPC 1.0 / 2.0 codec (xapi's `POST /jsonrpc`).

Internal values are already JSON-shaped (ints stay JSON integers at any size,
datetimes are strings), so replies are one compact `json.dumps`. Requests
that are not a call (no id, no method, params not a list, a `jsonrpc` member
other than "2.0") raise `Malformed`; the edge answers those with HTTP 500.
"""

import json
from typing import Any, List, NamedTuple, Union

from ..datamodel import types as T
from .wire_errors import Malformed

__all__ = ["Call", "Malformed", "failure", "parse_call", "success"]

V1, V2 = 1, 2


class Call(NamedTuple):
    method: str
    params: List[Any]
    id: Union[int, str]
    version: int  # V1 or V2


def _no_constant(name):
    raise Malformed(f"{name} is not JSON")


_decode = json.JSONDecoder(parse_constant=_no_constant).decode
_encode = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":")).encode
_encode_ascii = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode


def parse_call(body: bytes) -> Call:
    """The call in a JSON-RPC request body; Malformed if it is not one."""
    try:
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else str(body)
        req = _decode(text)
    except Malformed:
        raise
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError included
        raise Malformed(f"not JSON: {e}"[:200]) from None
    if not isinstance(req, dict):
        raise Malformed("request is not an object")
    if "jsonrpc" in req:
        if req["jsonrpc"] != "2.0":
            raise Malformed("jsonrpc must be \"2.0\"")
        version = V2
    else:
        version = V1
    method = req.get("method")
    if not isinstance(method, str) or not method:
        raise Malformed("missing method")
    ident = req.get("id")
    if ident is None or isinstance(ident, bool) or not isinstance(ident, (int, str)):
        raise Malformed("id must be a string or an integer")
    if "params" in req:
        params = req["params"]
        if not isinstance(params, list):
            raise Malformed("params must be an array")
    elif version == V2:
        params = []
    else:
        raise Malformed("missing params")
    return Call(method, params, ident, version)


def _dump(obj) -> bytes:
    try:
        return _encode(obj).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: let json escape it instead
        return _encode_ascii(obj).encode("ascii")


def success(value, type: T.Type, call: Call) -> bytes:
    if type == T.VOID:
        value = ""
    memo = getattr(value, "encoded", None)  # a reply many callers share (events.SharedValue)
    if memo is not None:
        inner = memo.get("json")
        if inner is None:
            inner = memo["json"] = _dump(value)
        ident = _dump(call.id)
        if call.version == V2:
            return b'{"jsonrpc":"2.0","result":' + inner + b',"id":' + ident + b"}"
        return b'{"result":' + inner + b',"error":null,"id":' + ident + b"}"
    if call.version == V2:
        return _dump({"jsonrpc": "2.0", "result": value, "id": call.id})
    return _dump({"result": value, "error": None, "id": call.id})


def failure(description, call: Call = None) -> bytes:
    """An API error [CODE, params…]; without a call (rejected before dispatch) v2 with id 0."""
    description = [str(d) for d in description]
    if call is None or call.version == V2:
        return _dump({"jsonrpc": "2.0",
                      "error": {"code": 1, "message": description[0] if description else "",
                                "data": description[1:]},
                      "id": 0 if call is None else call.id})
    return _dump({"result": None, "error": description, "id": call.id})
