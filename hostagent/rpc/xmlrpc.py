"""XML-RPC codec: parse a methodCall, encode XenAPI replies by API type.

Parsing is hardened (no DTDs or entities, bounded nesting, a closed set of
tags, UTF-8 only) and raises nothing but `Malformed`. Encoding follows xapi's
spelling: no whitespace between tags, bare strings, untyped ints, 16-digit
doubles, `<boolean>1</boolean>`. Encoders are compiled once per API type.
"""

import base64
import binascii
import re
from datetime import datetime, timedelta
from itertools import compress
from xml.parsers import expat

from ..datamodel import types as T
from .wire_errors import Malformed

__all__ = ["Malformed", "WireDateTime", "XmlEncoder", "escape", "normalise_datetime", "parse_call"]

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


def _double(text):
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
    "double": lambda text, kids: _double(text),
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
            ptag, _, kids = parent = stack[-1]
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


# --------------------------------------------------------------------------- encoding

_NEEDS_ESCAPE = re.compile('[&<>"\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]').search
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape(s: str) -> str:
    """XML text for `s`: & < > " escaped, CR kept as a reference, non-XML chars dropped."""
    s = _NOT_XML.sub("", s)
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("\r", "&#13;"))


def _text(s):
    return escape(s) if _NEEDS_ESCAPE(s) else s


def _fmt_double(v):
    s = "%.16g" % v
    if v == v and float(s) != v:  # 16 digits lost precision: use the shortest exact form
        s = repr(float(v))
    return "<double>" + s + "</double>"


_TRUE, _FALSE = "<boolean>1</boolean>", "<boolean>0</boolean>"
_STRLIKE = frozenset(("string", "ref", "enum"))
_MEMBER_SEP = "</value></member><member><name>"  # joins "name</name><value>text" pieces
_NAME_VALUE = "</name><value>"
_ITEM_SEP = "</value><value>"


def _infer(v) -> str:
    """The inside of a <value> for a value whose API type is unknown: go by Python type."""
    if isinstance(v, str):
        if isinstance(v, WireDateTime):
            return "<dateTime.iso8601>" + _text(v) + "</dateTime.iso8601>"
        return _text(v)
    if v is None:
        return ""
    if isinstance(v, bool):
        return _TRUE if v else _FALSE
    if isinstance(v, int):
        return int.__repr__(v)
    if isinstance(v, float):
        return _fmt_double(v)
    if isinstance(v, dict):
        return "<struct>" + "".join([
            "<member><name>" + _text(k if isinstance(k, str) else str(k)) + _NAME_VALUE
            + _infer(x) + "</value></member>" for k, x in v.items()]) + "</struct>"
    if isinstance(v, (list, tuple, set, frozenset)):
        return "<array><data>" + "".join(["<value>" + _infer(x) + "</value>" for x in v]) + "</data></array>"
    if isinstance(v, (bytes, bytearray)):
        return "<base64>" + base64.b64encode(v).decode("ascii") + "</base64>"
    return _text(str(v))


def _guarded(fast):
    """`fast` trusts the value's Python type; on a surprise, encode by inference instead."""
    def enc(v):
        try:
            return fast(v)
        except Exception:
            return _infer(v)
    return enc


def _str_fast(v):
    return escape(v) if _NEEDS_ESCAPE(v) else v


def _datetime_fast(v):
    return "<dateTime.iso8601>" + (escape(v) if _NEEDS_ESCAPE(v) else v) + "</dateTime.iso8601>"


_SCALAR_INNER = {
    "string": _guarded(_str_fast),
    "ref": _guarded(_str_fast),
    "enum": _guarded(_str_fast),
    "datetime": _guarded(_datetime_fast),
    "int": _guarded(int.__repr__),  # bools print as 1/0, anything else falls back
    "float": _guarded(_fmt_double),
    "bool": lambda v: _TRUE if v else _FALSE,
    "void": lambda v: "",
}

_OK_HEAD = ('<?xml version="1.0"?><methodResponse><params><param><value><struct><member>'
            "<name>Status</name><value>Success</value></member><member><name>Value</name><value>")
_OK_TAIL = "</value></member></struct></value></param></params></methodResponse>"
_FAIL_HEAD = ('<?xml version="1.0"?><methodResponse><params><param><value><struct><member>'
              "<name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name>"
              "<value><array><data>")
_FAIL_TAIL = "</data></array></value></member></struct></value></param></params></methodResponse>"
_RAW_HEAD = '<?xml version="1.0"?><methodResponse><params><param><value>'
_RAW_TAIL = "</value></param></params></methodResponse>"


class XmlEncoder:
    """Type-directed XML-RPC encoding of internal values, compiled once per type."""

    def __init__(self, api):
        self.api = api
        self._inner = {}  # type -> value -> text inside <value>
        self._outer = {}  # type -> value -> "<value>…</value>"

    def encoder(self, t):
        """A function value -> "<value>…</value>" for API type `t`."""
        try:
            return self._outer[t]
        except KeyError:
            inner = self.inner(t)
            enc = self._outer[t] = lambda v: "<value>" + inner(v) + "</value>"
            return enc

    def inner(self, t):
        """A function value -> the text inside <value> for API type `t`."""
        try:
            return self._inner[t]
        except KeyError:
            enc = self._inner[t] = self._compile(t)
            return enc
        except TypeError:  # not a hashable API type
            return _infer

    def success(self, value, t) -> bytes:
        return (_OK_HEAD + self.inner(t)(value) + _OK_TAIL).encode("utf-8", "replace")

    def failure(self, description) -> bytes:
        items = "".join(["<value>" + _text(str(d)) + "</value>" for d in description])
        return (_FAIL_HEAD + items + _FAIL_TAIL).encode("utf-8", "replace")

    def fragment(self, value, t) -> str:
        return "<value>" + self.inner(t)(value) + "</value>"

    def raw(self, value, t) -> bytes:
        return (_RAW_HEAD + self.inner(t)(value) + _RAW_TAIL).encode("utf-8", "replace")

    # -- compilation

    def _compile(self, t):
        k = getattr(t, "kind", None)
        if k in _SCALAR_INNER:
            return _SCALAR_INNER[k]
        if k == "set":
            return self._set(t.elem)
        if k == "map":
            return self._map(t.value)
        if k == "record" and t.cls in self.api.classes:
            return self._record(t.cls)
        if k == "struct":
            return self._struct(t)
        return _infer  # AnyRecord, records of unmodelled classes, unknown types

    def _set(self, elem):
        if elem.kind in _STRLIKE:
            def fast(v):
                if not v:
                    return "<array><data></data></array>"
                if _NEEDS_ESCAPE("".join(v)):
                    v = [_text(x) for x in v]
                return "<array><data><value>" + _ITEM_SEP.join(v) + "</value></data></array>"
        else:
            inner = self.inner(elem)

            def fast(v):
                return "<array><data>" + "".join(["<value>" + inner(x) + "</value>" for x in v]) \
                    + "</data></array>"
        return _guarded(fast)

    def _map(self, vt):
        inner = self.inner(vt)

        def careful(d):
            return "<struct>" + "".join([
                "<member><name>" + _text(k if isinstance(k, str) else str(k)) + _NAME_VALUE
                + inner(x) + "</value></member>" for k, x in d.items()]) + "</struct>"

        if vt.kind in _STRLIKE:
            def fast(d):
                if not d:
                    return "<struct></struct>"
                if _NEEDS_ESCAPE("".join(d)) or _NEEDS_ESCAPE("".join(d.values())):
                    return careful(d)
                return ("<struct><member><name>" + _MEMBER_SEP.join(map(_NAME_VALUE.join, d.items()))
                        + "</value></member></struct>")
        else:
            def fast(d):
                if not d:
                    return "<struct></struct>"
                keys = "".join(d)
                if _NEEDS_ESCAPE(keys):
                    return careful(d)
                return "<struct>" + "".join([
                    "<member><name>" + k + _NAME_VALUE + inner(x) + "</value></member>"
                    for k, x in d.items()]) + "</struct>"
        return _guarded(fast)

    def _struct(self, t):
        members = {name: self.inner(mt) for name, mt in t.members}
        get = members.get

        def fast(d):  # members absent from the value are left out (options)
            return "<struct>" + "".join([
                "<member><name>" + _text(k) + _NAME_VALUE + get(k, _infer)(x) + "</value></member>"
                for k, x in d.items()]) + "</struct>"
        return _guarded(fast)

    def _record(self, cls):
        """One %-template per class: strings, ints and bools go in without a Python call."""
        fields = self.api.public_fields(cls)
        names = tuple(f.name for f in fields)
        initials = tuple(f.initial for f in fields)
        template, close = ["<struct>"], ""
        checked = []  # per field: is it a string whose escaping is checked in one go
        complex_ = []  # (index, encoder) of fields that need a call
        for i, f in enumerate(fields):
            k = f.type.kind
            template.append(close + "<member><name>" + escape(f.name).replace("%", "%%") + "</name><value>")
            close = "</value></member>"
            checked.append(k in _STRLIKE or k == "datetime")
            if k in _STRLIKE:
                template.append("%s")
            elif k == "datetime":
                template.append("<dateTime.iso8601>%s</dateTime.iso8601>")
            elif k == "int":
                template.append("%d")
            elif k == "bool":
                template.append("<boolean>%d</boolean>")
            else:
                template.append("%s")
                complex_.append((i, self.inner(f.type)))
        template.append(close + "</struct>")
        template = "".join(template)
        slow_plan = tuple((f.name, "<member><name>" + escape(f.name) + "</name><value>",
                           f.initial, self.inner(f.type)) for f in fields)
        checked = tuple(checked)
        complex_ = tuple(complex_)

        def careful(r):
            out = ["<struct>"]
            for name, head, initial, inner in slow_plan:
                out += (head, inner(r.get(name, initial)), "</value></member>")
            out.append("</struct>")
            return "".join(out)

        def fast(r):
            vals = list(map(r.get, names, initials))
            # one scan for all string fields; a non-str among them raises TypeError
            if _NEEDS_ESCAPE("".join(compress(vals, checked))):
                return careful(r)
            for i, inner in complex_:
                vals[i] = inner(vals[i])
            return template % tuple(vals)

        def enc(r):
            try:
                return fast(r)
            except Exception:
                try:
                    return careful(r)
                except Exception:
                    return _infer(r)
        return enc

