"""Turn decoded wire values into typed internal values, or XenAPI errors.

XML-RPC clients send ints as decimal strings or <int>; JSON-RPC sends numbers.
Both arrive here as plain Python values and leave as the internal forms of
`datamodel.types`. A wrong type is FIELD_TYPE_ERROR [name]; a bad enum
spelling or a string that is not valid Unicode is INVALID_VALUE [name, value].
"""

import re
from datetime import datetime, timezone

from ..datamodel.api import Api
from ..datamodel.decl import RO_RUNTIME
from ..datamodel.errors import ApiError
from ..datamodel.types import Type

_INT = re.compile(r"\s*[-+]?\d+\s*\Z")
_COMPACT_DT = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2}):(\d{2}):(\d{2})Z?\Z")
INT64 = (-(2 ** 63), 2 ** 63 - 1)


class Coercer:
    def __init__(self, api: Api):
        self.api = api

    def value(self, t: Type, v, name: str):
        k = t.kind
        if k in ("string", "ref"):
            if v is None:
                return "" if k == "string" else v
            if not isinstance(v, str):
                raise ApiError("FIELD_TYPE_ERROR", name)
            return _unicode(v, name)
        if k == "enum":
            if not isinstance(v, str):
                raise ApiError("FIELD_TYPE_ERROR", name)
            if v not in t.values:
                raise ApiError("INVALID_VALUE", name, _unicode(v, name))
            return v
        if k == "int":
            if isinstance(v, bool):
                raise ApiError("FIELD_TYPE_ERROR", name)
            if isinstance(v, str) and _INT.match(v):
                v = int(v)
            if not isinstance(v, int) or not INT64[0] <= v <= INT64[1]:
                raise ApiError("FIELD_TYPE_ERROR", name)
            return v
        if k == "float":
            if isinstance(v, bool):
                raise ApiError("FIELD_TYPE_ERROR", name)
            if isinstance(v, (int, float)):
                return float(v)
            if isinstance(v, str):
                try:
                    f = float(v)
                except ValueError:
                    raise ApiError("FIELD_TYPE_ERROR", name) from None
                if f != f or f in (float("inf"), float("-inf")):
                    raise ApiError("FIELD_TYPE_ERROR", name)
                return f
            raise ApiError("FIELD_TYPE_ERROR", name)
        if k == "bool":
            if isinstance(v, bool):
                return v
            raise ApiError("FIELD_TYPE_ERROR", name)
        if k == "datetime":
            if not isinstance(v, str):
                raise ApiError("FIELD_TYPE_ERROR", name)
            return datetime_text(v, name)
        if k == "set":
            if not isinstance(v, list):
                raise ApiError("FIELD_TYPE_ERROR", name)
            out = []
            for x in v:
                x = self.value(t.elem, x, name)
                if x not in out:
                    out.append(x)
            return out
        if k == "map":
            if not isinstance(v, dict):
                raise ApiError("FIELD_TYPE_ERROR", name)
            return {str(self.value(t.key, _key(t.key, a), name)): self.value(t.value, b, name)
                    for a, b in v.items()}
        if k == "record":
            return self.record(t.cls, v)
        raise ApiError("FIELD_TYPE_ERROR", name)

    def record(self, cls: str, v) -> dict:
        """A constructor's argument: given writable fields, checked; mandatory ones present."""
        if not isinstance(v, dict):
            raise ApiError("FIELD_TYPE_ERROR", "args")
        out = {}
        for f in self.api.public_fields(cls):
            if f.qualifier == RO_RUNTIME:
                continue
            if f.name in v:
                out[f.name] = self.value(f.type, v[f.name], f.name)
            elif f.required_in_create:
                raise ApiError("FIELD_TYPE_ERROR", f.name)
        return out


def _key(t: Type, k: str):
    """Map keys always arrive as strings; int keys are checked as ints."""
    if t.kind == "int":
        return k if not isinstance(k, str) else (int(k) if _INT.match(k) else k)
    return k


def _unicode(s: str, name: str) -> str:
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError("INVALID_VALUE", name, "Invalid UTF-8 string in parameter") from None
    return s


def datetime_text(v: str, name: str = "value") -> str:
    """Normalise a datetime to the wire form YYYYMMDDTHH:MM:SSZ (UTC)."""
    m = _COMPACT_DT.match(v)
    if m:
        return "%s%s%sT%s:%s:%sZ" % m.groups()
    try:
        d = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError("FIELD_TYPE_ERROR", name) from None
    if d.tzinfo is not None:
        d = d.astimezone(timezone.utc)
    return d.strftime("%Y%m%dT%H:%M:%SZ")


def now_text(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y%m%dT%H:%M:%SZ")
