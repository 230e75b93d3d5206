"""Hostile request bodies, the wire half: XML-RPC and JSON-RPC encoding of arbitrary
values (including invalid ones) and the cases and world model the generator fills in."""

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any, Optional


MAX_BODY = 300 * 1024
XML_PATHS = ("/", "/RPC2", "/xmlrpc", "/json")
WRONG_TYPE = {"FIELD_TYPE_ERROR", "INVALID_VALUE"}


# ------------------------------------------------------------------ values on the wire

class B64(bytes):
    """An XML-RPC <base64> value."""


class DT(str):
    """An XML-RPC <dateTime.iso8601> value."""


class Raw(bytes):
    """Bytes spliced verbatim into an XML body (for invalid UTF-8)."""


def xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def xml_value(v, rng) -> bytes:
    if v is None:
        inner = b"<nil/>"
    elif isinstance(v, Raw):
        inner = b"<string>" + bytes(v) + b"</string>"
    elif isinstance(v, B64):
        inner = b"<base64>" + base64.b64encode(v) + b"</base64>"
    elif isinstance(v, DT):
        inner = b"<dateTime.iso8601>" + v.encode() + b"</dateTime.iso8601>"
    elif isinstance(v, bool):
        inner = b"<boolean>" + (b"1" if v else b"0") + b"</boolean>"
    elif isinstance(v, int):
        tag = rng.choice((b"int", b"i4", b"i8")) if -2 ** 31 <= v < 2 ** 31 else b"i8"
        inner = b"<" + tag + b">" + str(v).encode() + b"</" + tag + b">"
    elif isinstance(v, float):
        inner = b"<double>" + repr(v).encode() + b"</double>"
    elif isinstance(v, str):
        text = xml_escape(v).encode("utf-8", "surrogatepass")
        inner = b"<string>" + text + b"</string>" if rng.random() < 0.5 else text
    elif isinstance(v, (list, tuple)):
        inner = b"<array><data>" + b"".join(xml_value(x, rng) for x in v) + b"</data></array>"
    elif isinstance(v, dict):
        inner = b"<struct>" + b"".join(
            b"<member><name>" + xml_escape(k).encode() + b"</name>" + xml_value(x, rng) + b"</member>"
            for k, x in v.items()) + b"</struct>"
    else:
        raise TypeError(type(v))
    return b"<value>" + inner + b"</value>"


def xml_call(method: str, params, rng, prolog=True) -> bytes:
    head = b"<?xml version='1.0'?>" if prolog else b""
    return (head + b"<methodCall><methodName>" + xml_escape(method).encode("utf-8", "surrogatepass")
            + b"</methodName><params>"
            + b"".join(b"<param>" + xml_value(p, rng) + b"</param>" for p in params)
            + b"</params></methodCall>")


def json_call(method, params, ident, v2: bool) -> bytes:
    req = {"method": method, "params": params, "id": ident}
    if v2:
        req["jsonrpc"] = "2.0"
    return json.dumps(req).encode("ascii")  # ensure_ascii: lone surrogates become \udXXX escapes


# ------------------------------------------------------------------------------ cases

@dataclass
class Case:
    desc: str
    path: str
    body: bytes
    expect: str  # "500" | "413" | "ok" | "fail" | "ok_or_fail"
    codes: frozenset = frozenset()  # acceptable error codes for fail / ok_or_fail
    exact: Optional[list] = None  # the exact ErrorDescription, when known
    value: Any = None  # the exact result for "ok" cases that check one
    check_value: bool = False
    chunked: bool = False
    json_id: Any = None
    json_v2: bool = False


@dataclass
class World:
    session: str
    dom0: str
    pool: str
    host: str
    dom0_name: str
    pool_description: str


def random_ref(rng) -> str:
    return "OpaqueRef:" + str(uuid.UUID(int=rng.getrandbits(128), version=4))


def junk_text(rng, n) -> str:
    alphabet = "abcdefXYZ0123456789 _-.:/<>&\"'\t\n\u00e9\u20ac\u4e2d\U0001f600"
    return "".join(rng.choice(alphabet) for _ in range(n))
