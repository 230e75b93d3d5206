"""XML-RPC requests: parse a methodCall into a method name and plain values.

Parsing is hardened (no DTDs or entities, bounded nesting, a closed set of
tags, UTF-8 only) and raises nothing but `Malformed`.
"""

import base64
import binascii
import re
from datetime import datetime, timedelta
from xml.parsers import expat

from .wire_errors import Malformed

__all__ = ["Malformed", "WireDateTime", "normalise_datetime", "parse_call"]

DEFAULT_MAX_DEPTH = 100


class WireDateTime(str):
    """A decoded `<dateTime.iso8601>`, normalised to "YYYYMMDDTHH:MM:SSZ" (UTC)."""

    __slots__ = ()


# --------------------------------------------------------------------------- parsing

_WS = " \t\r\n"  # XML whitespace; str.strip() alone would also eat Unicode spaces
_SCALARS = ("string", "int", "i4", "i8", "boolean", "double", "dateTime.iso8601", "base64", "nil")
_CHILDREN = {
    "methodCall": frozenset(("methodName", "params")),
    "params": frozenset(("param",)),
    "param": frozenset(("value",)),
    "value": frozenset(_SCALARS + ("array", "struct")),
    "array": frozenset(("data",)),
    "data": frozenset(("value",)),
    "struct": frozenset(("member",)),
    "member": frozenset(("name", "value")),
}
_TEXTUAL = frozenset(("methodName", "name", "value") + _SCALARS[:-1])  # nil holds nothing
_SINGLES = frozenset(("methodCall", "param", "value", "array", "member"))  # no repeated child

_INT = re.compile(r"[+-]?[0-9]{1,40}\Z")
_FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,5})?|inf|infinity|nan)\Z",
                    re.IGNORECASE)
_BOOLS = {"1": True, "true": True, "0": False, "false": False}
_DATETIME = re.compile(
    r"([0-9]{4})-?([0-9]{2})-?([0-9]{2})[Tt ]([0-9]{2}):?([0-9]{2}):?([0-9]{2})(?:[.,][0-9]+)?"
    r"(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2})?)?\Z")


def normalise_datetime(text: str) -> WireDateTime:
    """xapi's compact form, or RFC 3339 (dashes, fractions, offsets), as UTC WireDateTime."""
    m = _DATETIME.match(text.strip(_WS))
    if not m:
        raise Malformed(f"bad dateTime {text[:40]!r}")
    y, mo, d, h, mi, s, _, sign, oh, om = m.groups()
    try:
        when = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
        if sign:
            offset = timedelta(hours=int(oh), minutes=int(om or 0))
            when = when - offset if sign == "+" else when + offset
    except (ValueError, OverflowError):
        raise Malformed(f"bad dateTime {text[:40]!r}") from None
    return WireDateTime("%04d%02d%02dT%02d:%02d:%02dZ" % (
        when.year, when.month, when.day, when.hour, when.minute, when.second))


def _int(text):
    t = text.strip(_WS)
    if not _INT.match(t):
        raise Malformed(f"bad int {t[:40]!r}")
    return int(t)


def _parse_double(text):
    t = text.strip(_WS)
    if not _FLOAT.match(t):
        raise Malformed(f"bad double {t[:40]!r}")
    return float(t)


def _boolean(text):
    b = _BOOLS.get(text.strip(_WS).lower())
    if b is None:
        raise Malformed(f"bad boolean {text[:40]!r}")
    return b


def _base64(text):
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Malformed("bad base64") from None


def _only(kids, tag, where):
    for k, v in kids:
        if k == tag:
            return v
    raise Malformed(f"<{where}> without <{tag}>")


def _method_name(text, kids):
    name = text.strip(_WS)
    if not name:
        raise Malformed("empty methodName")
    return name


def _value(text, kids):
    if not kids:
        return text
    if text.strip(_WS):
        raise Malformed("text beside a typed value")
    return kids[0][1]


# tag -> (element text, [(child tag, child value)]) -> decoded value
_CONVERT = {
    "methodCall": lambda text, kids: (_only(kids, "methodName", "methodCall"),
                                      next((v for k, v in kids if k == "params"), [])),
    "methodName": _method_name,
    "params": lambda text, kids: [v for _, v in kids],
    "param": lambda text, kids: _only(kids, "value", "param"),
    "value": _value,
    "array": lambda text, kids: kids[0][1] if kids else [],
    "data": lambda text, kids: [v for _, v in kids],
    "struct": lambda text, kids: dict(v for _, v in kids),  # duplicate names: last wins
    "member": lambda text, kids: (_only(kids, "name", "member"), _only(kids, "value", "member")),
    "name": lambda text, kids: text,
    "string": lambda text, kids: text,
    "int": lambda text, kids: _int(text),
    "i4": lambda text, kids: _int(text),
    "i8": lambda text, kids: _int(text),
    "boolean": lambda text, kids: _boolean(text),
    "double": lambda text, kids: _parse_double(text),
    "dateTime.iso8601": lambda text, kids: normalise_datetime(text),
    "base64": lambda text, kids: _base64(text),
    "nil": lambda text, kids: None,
}


class _CallBuilder:
    """expat callbacks; each open element is a frame [tag, text chunks, decoded children]."""

    def __init__(self, max_depth):
        self.max_depth = max_depth
        self.stack = []
        self.result = None

    def start(self, tag, attrs):
        stack = self.stack
        if stack:
            ptag, _, kids = stack[-1]
            if tag not in _CHILDREN.get(ptag, ()):
                raise Malformed(f"<{tag[:40]}> inside <{ptag}>")
            if kids and ptag in _SINGLES and (ptag == "value" or any(k == tag for k, _ in kids)):
                raise Malformed(f"extra <{tag}> inside <{ptag}>")
            if len(stack) >= self.max_depth:
                raise Malformed(f"nesting deeper than {self.max_depth}")
        elif tag != "methodCall" or self.result is not None:
            raise Malformed(f"<{tag[:40]}> is not a methodCall")
        stack.append((tag, [], []))

    def end(self, tag):
        tag, chunks, kids = self.stack.pop()
        value = _CONVERT[tag]("".join(chunks), kids)
        if self.stack:
            self.stack[-1][2].append((tag, value))
        else:
            self.result = value

    def chars(self, data):
        if self.stack and self.stack[-1][0] in _TEXTUAL:
            self.stack[-1][1].append(data)
        elif data.strip(_WS):
            raise Malformed("text outside a value")


def _refuse(what):
    def handler(*args):
        raise Malformed(f"{what} not allowed")
    return handler


def parse_call(body: bytes, max_depth: int = DEFAULT_MAX_DEPTH):
    """(method name, [params]) of an XML-RPC methodCall; Malformed for anything else."""
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")  # lone surrogates then fail as bad UTF-8
    builder = _CallBuilder(max_depth)
    parser = expat.ParserCreate("UTF-8")  # overrides any declared encoding: UTF-8 only
    parser.buffer_text = True
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.chars
    parser.StartDoctypeDeclHandler = _refuse("DOCTYPE")
    parser.EntityDeclHandler = _refuse("entity declaration")
    parser.UnparsedEntityDeclHandler = _refuse("entity declaration")
    parser.ExternalEntityRefHandler = _refuse("external entity")
    parser.ProcessingInstructionHandler = _refuse("processing instruction")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(bytes(body), True)
    except Malformed:
        raise
    except expat.ExpatError as e:
        raise Malformed(f"not well-formed XML: {e}") from None
    except MemoryError:
        raise
    except Exception as e:  # a bug here must still look like a bad request, never a crash
        raise Malformed(f"unexpected {type(e).__name__}: {e}") from e
    if builder.result is None:
        raise Malformed("no methodCall")
    return builder.result
