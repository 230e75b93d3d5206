"""event: one change notification, as event.from and event.next deliver them.

Events are not stored objects: they have no uuid, no get_all and no events of
their own."""

from ..decl import RO_CONSTRUCTOR as RC, RO_RUNTIME as RO, DEPRECATED, cls, field, message, param
from ..enums import EVENT_OPERATION
from ..types import DATETIME, FLOAT, I4, INT, STRING, AnyRecord, MapOf, SetOf, Struct, VOID

# What next/from put on the wire: xapi sends id and timestamp as strings, and
# event.from leaves the snapshot out of deletions (a member that is absent).
EVENT_RECORD = Struct("event record", (
    ("id", STRING), ("timestamp", STRING), ("class", STRING), ("operation", STRING),
    ("ref", STRING), ("snapshot", AnyRecord()),
))
EVENT_BATCH = Struct("an event batch", (
    ("events", SetOf(EVENT_RECORD)), ("valid_ref_counts", MapOf(STRING, I4)), ("token", STRING),
))
CLASSES = SetOf(STRING)


EVENT = cls(
    "event",
    "A record that an object was added, modified or deleted.",
    get_all=False,
    stored=False,
    events=False,
    fields=[
        field("snapshot", AnyRecord(), RO, doc="The object's record as of the change."),
        field("id", INT, RC, doc="Position in the change stream; grows with each event."),
        field("timestamp", DATETIME, RC, lifecycle=DEPRECATED),
        field("class", STRING, RC, doc="Lower-case name of the changed object's class (\"vm\")."),
        field("operation", EVENT_OPERATION, RC),
        field("ref", STRING, RC, doc="Reference of the changed object."),
        field("obj_uuid", STRING, RC, lifecycle=DEPRECATED),
    ],
    messages=[
        message("register", [param("classes", CLASSES)], VOID, (),
                "Subscribe this session's event.next queue to classes (\"*\" for all, \"vm/<ref>\" for one "
                "object); only changes after the first registration are delivered.", async_=False),
        message("unregister", [param("classes", CLASSES)], VOID, (),
                "Remove exactly these subscriptions from this session's queue.", async_=False),
        message("next", [], SetOf(EVENT_RECORD), ("SESSION_NOT_REGISTERED", "EVENTS_LOST"),
                "Block until this session's queue holds events, then return them all (EVENTS_LOST if the "
                "queue overflowed: register again and re-read what you need).", async_=False),
        message("from", [param("classes", CLASSES), param("token", STRING), param("timeout", FLOAT)],
                EVENT_BATCH, ("SESSION_NOT_REGISTERED", "EVENTS_LOST"),
                "Return every subscribed object changed since the token (everything for \"\"), waiting "
                "up to timeout seconds for a change; the reply's token continues from there.", async_=False),
        message("get_current_id", [], INT, (), "The id the next event will carry.", async_=False),
        message("inject", [param("class", STRING), param("ref", STRING)], STRING, (),
                "Record a change to the object without changing it; returns a token from just before it.",
                async_=False),
    ],
)
