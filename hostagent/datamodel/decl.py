"""The declaration vocabulary: classes, fields, messages, relations.

A class module in `classes/` builds one `Cls` from `field(...)` and `message(...)`
calls. Nothing here knows about the wire or the store; `api.py` assembles the
declarations and derives the implicit messages from them.
"""

from dataclasses import dataclass
from typing import Any, Optional, Tuple

from .types import Type, VOID, zero

RW = "RW"
RO_CONSTRUCTOR = "RO/constructor"
RO_RUNTIME = "RO/runtime"
QUALIFIERS = (RW, RO_CONSTRUCTOR, RO_RUNTIME)

# lifecycle marks (the latest transition xapi records for a field or message)
PUBLISHED = ""
PROTOTYPED = "prototyped"
DEPRECATED = "deprecated"
REMOVED = "removed"


class _Missing:
    def __repr__(self):
        return "MISSING"


MISSING = _Missing()


@dataclass(frozen=True)
class Field:
    name: str
    type: Type
    qualifier: str
    default: Any = MISSING
    doc: str = ""
    lifecycle: str = PUBLISHED
    internal: bool = False  # stored but never shown on the wire

    def __post_init__(self):
        if self.qualifier not in QUALIFIERS:
            raise ValueError(f"{self.name}: bad qualifier {self.qualifier!r}")

    @property
    def initial(self):
        """The value a new object gets when its creator says nothing."""
        return zero(self.type) if self.default is MISSING else self.default

    @property
    def required_in_create(self) -> bool:
        """Members a constructor's record must carry (no declared default)."""
        return self.qualifier != RO_RUNTIME and self.default is MISSING


@dataclass(frozen=True)
class Param:
    name: str
    type: Type
    default: Any = MISSING
    doc: str = ""


@dataclass(frozen=True)
class Message:
    """An explicit (hand-implemented) message of a class."""

    name: str
    params: Tuple[Param, ...] = ()  # the session is not listed
    result: Type = VOID
    errors: Tuple[str, ...] = ()
    doc: str = ""
    session: bool = True  # takes a session as first argument
    async_: bool = True  # has an Async.* form
    lifecycle: str = PUBLISHED
    sets: Optional[str] = None  # a plain setter of this (RO/constructor) field: no action needed
    # "side-effecting" messages need an implementation in actions/; pure reads
    # may too. Everything that is declared must be implemented.

    @property
    def required_count(self) -> int:
        return sum(1 for p in self.params if p.default is MISSING)


@dataclass(frozen=True)
class Cls:
    name: str
    doc: str
    fields: Tuple[Field, ...]
    messages: Tuple[Message, ...] = ()
    constructor: bool = False  # implicit create(record) / destroy(self)
    get_all: bool = True  # get_all, get_all_records, *_where
    by_name_label: bool = False  # get_by_name_label
    events: bool = True  # emits add/mod/del
    stored: bool = True  # lives in the object store

    def field(self, name: str) -> Optional[Field]:
        for f in self.fields:
            if f.name == name:
                return f
        return None


@dataclass(frozen=True)
class Relation:
    """A ref field kept in step with a set field on the other class.

    `one` is (class, ref field); `many` is (class, ref-set field). Creating,
    changing or destroying the `one` side updates the set on the `many` side.
    """

    one: Tuple[str, str]
    many: Tuple[str, str]


def field(name, type, qualifier=RO_RUNTIME, default=MISSING, doc="", lifecycle=PUBLISHED,
          internal=False):
    return Field(name, type, qualifier, default, doc, lifecycle, internal)


def param(name, type, default=MISSING, doc=""):
    return Param(name, type, default, doc)


def message(name, params=(), result=VOID, errors=(), doc="", session=True, async_=True,
            lifecycle=PUBLISHED, sets=None):
    return Message(name, tuple(params), result, tuple(errors), doc, session, async_, lifecycle, sets)


def cls(name, doc, fields, messages=(), constructor=False, get_all=True, by_name_label=False,
        events=True, stored=True):
    return Cls(name, doc, tuple(fields), tuple(messages), constructor, get_all, by_name_label,
               events, stored)
