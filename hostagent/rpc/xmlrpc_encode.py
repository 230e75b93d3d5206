"""XML-RPC replies: encode values by their API type, as xapi spells them.

No whitespace between tags, bare strings, untyped ints, 16-digit doubles,
`<boolean>1</boolean>`. Encoders are compiled once per API type.
"""

import base64
import io
import logging
import operator
import re
from itertools import chain

from ..datamodel.types import RecordOf
from .xmlrpc_parse import WireDateTime

__all__ = ["XmlEncoder", "escape"]

log = logging.getLogger("hostagent.xmlrpc")


# --------------------------------------------------------------------------- encoding
#
# Every API type compiles to an `_Codec`. Its `fast` forms trust that values have
# the Python type the API type implies and may raise when they do not; `safe`
# forms never raise: they retry field by field and finally encode by inference.
# Parents' fast paths call children's fast forms, so a surprise anywhere falls
# back once, at the outermost guard. `put` forms extend a list of pieces, so a
# 10,000-record reply is joined (copied) once instead of once per nesting level.
#
# A fallback catches only what a value of the wrong Python type raises (a non-str
# joined or searched as text, "%d" of None, NaN or infinity, `.items()` of a list)
# and reports it to its encoder, which logs each (type or field, exception) once at
# debug level. Anything else is a bug and propagates.
_WRONG_TYPE = (TypeError, AttributeError, ValueError, OverflowError)

_NEEDS_ESCAPE = re.compile('[&<>"\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]').search
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def escape(s: str) -> str:
    """XML text for `s`: & < > " escaped, CR kept as a reference, non-XML chars dropped."""
    s = _NOT_XML.sub("", s)
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("\r", "&#13;"))


_NOT_PLAIN_BYTES = bytes([*range(0, 9), 11, 12, *range(14, 32)]) + b'&<>"\r'


def _plain(s):
    """Whether s needs no escaping: the regex's verdict at a fraction of its cost on long text."""
    try:
        b = s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return len(b.translate(None, _NOT_PLAIN_BYTES)) == len(b) and (
        s.isascii() or (b"\xef\xbf\xbe" not in b and b"\xef\xbf\xbf" not in b))  # U+FFFE, U+FFFF


def _text(s):
    return escape(s) if _NEEDS_ESCAPE(s) else s


def _key(k):
    return _text(k if isinstance(k, str) else str(k))


def _double(v):
    s = "%.16g" % v
    if v == v and float(s) != v:  # 16 digits lost precision: use the shortest exact form
        s = repr(float(v))
    return "<double>" + s + "</double>"


_TRUE, _FALSE = "<boolean>1</boolean>", "<boolean>0</boolean>"
_STRLIKE = frozenset(("string", "ref", "enum"))
_EMPTY_ARRAY, _EMPTY_STRUCT = "<array><data></data></array>", "<struct></struct>"
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
        return _double(v)
    if isinstance(v, dict):
        return "<struct>" + "".join([
            "<member><name>" + _key(k) + _NAME_VALUE + _infer(x) + "</value></member>"
            for k, x in v.items()]) + "</struct>"
    if isinstance(v, (list, tuple, set, frozenset)):
        return "<array><data>" + "".join(["<value>" + _infer(x) + "</value>" for x in v]) + "</data></array>"
    if isinstance(v, (bytes, bytearray)):
        return "<base64>" + base64.b64encode(v).decode("ascii") + "</base64>"
    return _text(str(v))


def _datetime_fast(v):
    return "<dateTime.iso8601>" + (escape(v) if _NEEDS_ESCAPE(v) else v) + "</dateTime.iso8601>"


class _Codec:
    """The encoders of one API type (text = the inside of a <value>). `rescue` is what
    `safe` does once `fast` failed (careful, then inference); `report` hears of each."""

    __slots__ = ("fast", "safe", "rescue", "fast_put", "put")

    def __init__(self, fast, careful=None, fast_put=None, *, report, label):
        self.fast = fast
        self.rescue = rescue = _infer if careful is None else _first(careful, _infer, report, label + " (careful)")
        self.safe = safe = _first(fast, rescue, report, label)
        self.fast_put = fast_put or (lambda v, out: out.append(fast(v)))
        if fast_put is None:
            self.put = lambda v, out: out.append(safe(v))
        else:
            def put(v, out):
                n = len(out)
                try:
                    fast_put(v, out)
                except _WRONG_TYPE as e:
                    del out[n:]
                    report(label, e)
                    out.append(rescue(v))
            self.put = put


def _first(encode, otherwise, report, label):
    def first(v):
        try:
            return encode(v)
        except _WRONG_TYPE as e:
            report(label, e)
        return otherwise(v)
    return first


_SCALARS_OUT = {  # API type kind -> fast form
    "string": _text, "ref": _text, "enum": _text,
    "datetime": _datetime_fast,
    "int": int.__repr__,  # bools print as 1/0, other types fall back to inference
    "i4": lambda v: "<i4>%d</i4>" % v,  # typed: event.from's valid_ref_counts (xapi sends <i4>)
    "float": _double,
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
_CHUNK = 2048  # pieces per slice when a reply is encoded in slices


class XmlEncoder:
    """Type-directed XML-RPC encoding of internal values, compiled once per type."""

    def __init__(self, api):
        self.api = api
        self._codecs = {}
        self._outer = {}
        self._reported = set()  # (label, exception type) already logged
        self._infer = self._codec(_infer, label="inferred value")
        self._scalars = {k: self._codec(f, label=k) for k, f in _SCALARS_OUT.items()}

    def _codec(self, fast, careful=None, fast_put=None, *, label) -> _Codec:
        return _Codec(fast, careful, fast_put, report=self._fell_back, label=label)

    def _fell_back(self, label, e) -> None:
        """A value did not have the Python type its API type implies: log it once per kind."""
        key = (label, type(e))
        if key not in self._reported:
            self._reported.add(key)
            log.debug("XML-RPC encoding of %s fell back to a slower form after %s: %s",
                      label, type(e).__name__, e)

    def encoder(self, t):
        """A function value -> "<value>…</value>" for API type `t`."""
        try:
            return self._outer[t]
        except (KeyError, TypeError):
            safe = self.codec(t).safe
            enc = lambda v: "<value>" + safe(v) + "</value>"  # noqa: E731
        try:
            self._outer[t] = enc
        except TypeError:  # not a hashable API type
            pass
        return enc

    def codec(self, t) -> _Codec:
        try:
            c = self._codecs.get(t)
        except TypeError:  # not a hashable API type
            return self._infer
        if c is None:
            c = self._codecs[t] = self._compile(t)
        return c

    def _wrap(self, head, value, t, tail) -> bytes:
        out = [head]
        self.codec(t).put(value, out)
        out.append(tail)
        if len(out) <= _CHUNK:
            return "".join(out).encode("utf-8", "replace")
        # Big replies: encode in slices into one growing buffer, so that 100 MB is
        # copied once, not once by join and again by encode.
        buf = io.BytesIO()
        for i in range(0, len(out), _CHUNK):
            buf.write("".join(out[i:i + _CHUNK]).encode("utf-8", "replace"))
        return buf.getvalue()

    def success(self, value, t) -> bytes:
        memo = getattr(value, "encoded", None)  # a reply many callers share (events.SharedValue)
        if memo is not None:
            key = ("xml", t)
            out = memo.get(key)
            if out is None:
                out = memo[key] = self._wrap(_OK_HEAD, value, t, _OK_TAIL)
            return out
        return self._wrap(_OK_HEAD, value, t, _OK_TAIL)

    def failure(self, description) -> bytes:
        items = "".join(["<value>" + _text(str(d)) + "</value>" for d in description])
        return (_FAIL_HEAD + items + _FAIL_TAIL).encode("utf-8", "replace")

    def fragment(self, value, t) -> str:
        return "<value>" + self.codec(t).safe(value) + "</value>"

    def raw(self, value, t) -> bytes:
        return self._wrap(_RAW_HEAD, value, t, _RAW_TAIL)

    # -- compilation

    def _compile(self, t) -> _Codec:
        k = getattr(t, "kind", None)
        if k in self._scalars:
            return self._scalars[k]
        if k == "set":
            return self._set(t)
        if k == "map":
            return self._map(t)
        if k == "record" and t.cls in self.api.classes:
            return self._record(t.cls)
        if k == "struct":
            return self._struct(t)
        if k == "anyrecord":
            return self._anyrecord()
        return self._infer  # records of unmodelled classes, unknown types

    def _anyrecord(self):
        """Event snapshots: a value that knows its class (`.cls`) is encoded as that record."""
        def fast(v):
            cls = getattr(v, "cls", None)
            if cls in self.api.classes:
                return self.codec(RecordOf(cls)).fast(v)
            return _infer(v)
        return self._codec(fast, label="any record")

    def _set(self, t):
        elem = t.elem
        e = self.codec(elem)
        e_fast, e_safe = e.fast, e.safe

        def careful(v):
            return "<array><data>" + "".join(["<value>" + e_safe(x) + "</value>" for x in v]) \
                + "</data></array>"

        if elem.kind in _STRLIKE:
            def fast(v):
                if not v:
                    return _EMPTY_ARRAY
                if _NEEDS_ESCAPE("".join(v)):
                    v = [_text(x) for x in v]
                return "<array><data><value>" + _ITEM_SEP.join(v) + "</value></data></array>"
        else:
            def fast(v):
                return "<array><data>" + "".join(["<value>" + e_fast(x) + "</value>" for x in v]) \
                    + "</data></array>"
        return self._codec(fast, careful, label=repr(t))

    def _map(self, t):
        vt = t.value
        e = self.codec(vt)
        e_safe, e_put = e.safe, e.fast_put

        def careful(d):
            return "<struct>" + "".join([
                "<member><name>" + _key(k) + _NAME_VALUE + e_safe(x) + "</value></member>"
                for k, x in d.items()]) + "</struct>"

        if vt.kind in _STRLIKE:
            def fast(d):
                if not d:
                    return _EMPTY_STRUCT
                if _NEEDS_ESCAPE("".join(d)) or _NEEDS_ESCAPE("".join(d.values())):
                    return careful(d)
                return ("<struct><member><name>" + _MEMBER_SEP.join(map(_NAME_VALUE.join, d.items()))
                        + "</value></member></struct>")
            return self._codec(fast, careful, label=repr(t))

        def fast_put(d, out):
            plain = not _NEEDS_ESCAPE("".join(d))  # raises unless every key is a str
            out.append("<struct>")
            for k, x in d.items():
                out.append("<member><name>" + (k if plain else escape(k)) + _NAME_VALUE)
                e_put(x, out)
                out.append("</value></member>")
            out.append("</struct>")

        def fast(d):
            out = []
            fast_put(d, out)
            return "".join(out)
        return self._codec(fast, careful, fast_put, label=repr(t))

    def _struct(self, t):
        members = {name: self.codec(mt) for name, mt in t.members}
        other = self._infer

        def enc(d, which):  # members absent from the value are left out (options)
            return "<struct>" + "".join([
                "<member><name>" + _key(k) + _NAME_VALUE + getattr(members.get(k, other), which)(x)
                + "</value></member>" for k, x in d.items()]) + "</struct>"
        return self._codec(lambda d: enc(d, "fast"), lambda d: enc(d, "safe"), label=repr(t))

    def _record(self, cls):
        """A list skeleton per class: strings drop into place, only other types cost a call.

        One scan covers every string field and every string in string sets and string
        maps; when it finds nothing to escape (the usual case), those sets and maps are
        spliced with str.join, and ints and bools are formatted inline with "%d".
        """
        fields = self.api.public_fields(cls)
        names = tuple(f.name for f in fields)
        initials = tuple(f.initial for f in fields)
        skeleton, close = [], "<struct>"
        strings, strsets, strmaps, numbers = [], [], [], []  # field indexes
        others = []  # (position, fast encoder, text when empty or None)
        for i, f in enumerate(fields):
            t, j = f.type, 2 * i + 1
            k = t.kind
            head = close + "<member><name>" + escape(f.name) + "</name><value>"
            close = "</value></member>"
            if k in _STRLIKE:
                strings.append(i)
            elif k == "datetime":
                strings.append(i)
                head += "<dateTime.iso8601>"
                close = "</dateTime.iso8601>" + close
            elif k == "int":
                numbers.append(j)
            elif k == "bool":
                numbers.append(j)
                head += "<boolean>"
                close = "</boolean>" + close
            elif k == "set" and t.elem.kind in _STRLIKE:
                strsets.append(i)
            elif k == "map" and t.value.kind in _STRLIKE:
                strmaps.append(i)
            else:
                others.append((j, self.codec(t).fast,
                               _EMPTY_ARRAY if k == "set" else _EMPTY_STRUCT if k == "map" else None))
            skeleton += (head, None)
        skeleton.append(close + "</struct>")
        get_strings, get_sets, get_maps = (_getter(ix) for ix in (strings, strsets, strmaps))
        set_at = tuple(2 * i + 1 for i in strsets)
        map_at = tuple(2 * i + 1 for i in strmaps)
        slow_containers = tuple((j, self.codec(fields[j // 2].type).fast, _EMPTY_ARRAY if j in set_at
                                 else _EMPTY_STRUCT) for j in set_at + map_at)
        strings, numbers, others = tuple(strings), tuple(numbers), tuple(others)
        careful_plan = tuple((f.name, f.initial, self.codec(f.type), f"{cls}.{f.name}",
                              "<member><name>" + escape(f.name) + _NAME_VALUE) for f in fields)
        report = self._fell_back

        def parts(r):
            # records are normally built in declaration order: then skip the lookups
            vals = list(r.values()) if tuple(r) == names else list(map(r.get, names, initials))
            maps = get_maps(vals)
            # a non-str among the strings raises TypeError, and the caller falls back
            probe = "".join(chain(get_strings(vals), chain.from_iterable(get_sets(vals)),
                                  chain.from_iterable(maps), chain.from_iterable(map(dict.values, maps))))
            out = skeleton.copy()
            if _plain(probe):
                out[1::2] = vals
                for j in set_at:
                    v = out[j]
                    out[j] = ("<array><data><value>" + _ITEM_SEP.join(v) + "</value></data></array>"
                              if v else _EMPTY_ARRAY)
                for j in map_at:
                    v = out[j]
                    out[j] = ("<struct><member><name>" + _MEMBER_SEP.join(map(_NAME_VALUE.join, v.items()))
                              + "</value></member></struct>" if v else _EMPTY_STRUCT)
            else:
                for i in strings:
                    vals[i] = _text(vals[i])
                out[1::2] = vals
                for j, enc, empty in slow_containers:
                    v = out[j]
                    out[j] = enc(v) if v else empty
            for j in numbers:
                out[j] = "%d" % out[j]  # bools print 1/0 between the <boolean> tags
            for j, enc, empty in others:
                v = out[j]
                out[j] = empty if empty is not None and not v else enc(v)
            return out

        def careful(r):  # field by field, so that one bad field only affects itself
            out = []
            for name, initial, codec, label, head in careful_plan:
                v = r.get(name, initial)
                try:
                    text = codec.fast(v)
                except _WRONG_TYPE as e:
                    report(label, e)
                    text = codec.rescue(v)
                out += (head, text, "</value></member>")
            return "<struct>" + "".join(out) + "</struct>"

        return self._codec(lambda r: "".join(parts(r)), careful, lambda r, out: out.extend(parts(r)),
                           label=f"{cls} record")


def _getter(indexes):
    """A function list -> tuple of the items at `indexes` (itemgetter returns a bare item for one)."""
    if len(indexes) == 1:
        i = indexes[0]
        return lambda seq: (seq[i],)
    if not indexes:
        return lambda seq: ()
    return operator.itemgetter(*indexes)
