"""API types as frozen values.

Every field, parameter and result carries one of these. Values inside the
agent use plain Python forms chosen so they survive JSON round trips:

  string, enum, ref     -> str   (refs are "OpaqueRef:<uuid>", null is NULL_REF)
  int                   -> int
  float                 -> float
  bool                  -> bool
  datetime              -> str in the wire form "YYYYMMDDTHH:MM:SSZ"
  set                   -> list (order kept, no duplicates)
  map                   -> dict whose keys are always str (the wire spelling)
  record                -> dict field name -> value
"""

from dataclasses import dataclass, field
from typing import Tuple

NULL_REF = "OpaqueRef:NULL"
EPOCH = "19700101T00:00:00Z"


class Type:
    """Base of all API types; `xapi` is the notation used in xapi's docs."""

    kind = "?"

    @property
    def xapi(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True)
class Prim(Type):
    name: str

    @property
    def kind(self):
        return self.name

    @property
    def xapi(self):
        return self.name


STRING = Prim("string")
INT = Prim("int")
FLOAT = Prim("float")
BOOL = Prim("bool")
DATETIME = Prim("datetime")
VOID = Prim("void")
# an int that XML-RPC must carry typed as <i4> (event.from's valid_ref_counts,
# the one place xapi sends a typed int); JSON-RPC sends a number as usual
I4 = Prim("i4")


@dataclass(frozen=True)
class Ref(Type):
    cls: str
    kind = "ref"

    @property
    def xapi(self):
        return f"{self.cls} ref"


@dataclass(frozen=True)
class Enum(Type):
    name: str
    values: Tuple[str, ...] = field(compare=False)
    kind = "enum"

    @property
    def xapi(self):
        return f"enum {self.name}"


@dataclass(frozen=True)
class SetOf(Type):
    elem: Type
    kind = "set"

    @property
    def xapi(self):
        return f"{self.elem.xapi} set"


@dataclass(frozen=True)
class MapOf(Type):
    key: Type
    value: Type
    kind = "map"

    @property
    def xapi(self):
        return f"({self.key.xapi} -> {self.value.xapi}) map"


@dataclass(frozen=True)
class RecordOf(Type):
    cls: str
    kind = "record"

    @property
    def xapi(self):
        return f"{self.cls} record"


@dataclass(frozen=True)
class Struct(Type):
    """An anonymous structure with typed members (e.g. an event batch)."""

    name: str
    members: Tuple[Tuple[str, Type], ...] = field(compare=False)
    kind = "struct"

    @property
    def xapi(self):
        return self.name


@dataclass(frozen=True)
class AnyRecord(Type):
    """A record whose class is only known at run time (event snapshots)."""

    kind = "anyrecord"

    @property
    def xapi(self):
        return "<class> record"


def walk(t: Type):
    """`t` and every type inside it (set elements, map keys and values, struct members)."""
    yield t
    if t.kind == "set":
        yield from walk(t.elem)
    elif t.kind == "map":
        yield from walk(t.key)
        yield from walk(t.value)
    elif t.kind == "struct":
        for _, m in t.members:
            yield from walk(m)


def zero(t: Type):
    """The value a field of type `t` takes when nothing else is said."""
    k = t.kind
    if k in ("string",):
        return ""
    if k == "int":
        return 0
    if k == "float":
        return 0.0
    if k == "bool":
        return False
    if k == "datetime":
        return EPOCH
    if k == "ref":
        return NULL_REF
    if k == "enum":
        return t.values[0]
    if k == "set":
        return []
    if k in ("map", "record", "anyrecord", "struct"):
        return {}
    raise ValueError(f"no zero value for {t.xapi}")
