"""event: one change notification, as event.from and event.next deliver them.

Events are not stored objects: they have no uuid, no get_all and no events of
their own."""

from ..decl import RO_CONSTRUCTOR as RC, RO_RUNTIME as RO, DEPRECATED, cls, field
from ..enums import EVENT_OPERATION
from ..types import DATETIME, INT, STRING, AnyRecord


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
)
