"""message, secret, blob, user: small classes that stand on their own."""

from ..decl import RW, RO_CONSTRUCTOR as RC, RO_RUNTIME as RO, cls, field
from ..enums import CLS
from ..types import BOOL, DATETIME, INT, STRING, MapOf

SMAP = MapOf(STRING, STRING)


MESSAGE = cls(
    "message",
    "An alert raised about an object, with a priority and a text body.",
    get_all=False,
    fields=[
        field("uuid", STRING, RO),
        field("name", STRING, RO, doc="Alert code (e.g. HA_POOL_OVERCOMMITTED)."),
        field("priority", INT, RO, doc="1 is the most urgent, 5 the least."),
        field("cls", CLS, RO, doc="Class of the object the alert is about."),
        field("obj_uuid", STRING, RO, doc="UUID of that object."),
        field("timestamp", DATETIME, RO),
        field("body", STRING, RO),
    ],
)


SECRET = cls(
    "secret",
    "A value kept apart so other objects can refer to it by reference.",
    constructor=True,
    fields=[
        field("uuid", STRING, RO),
        field("value", STRING, RW, doc="The secret itself."),
        field("other_config", SMAP, RW, {}),
    ],
)


BLOB = cls(
    "blob",
    "A named binary object, fetched and stored over HTTP.",
    by_name_label=True,
    fields=[
        field("uuid", STRING, RO),
        field("name_label", STRING, RW, ""),
        field("name_description", STRING, RW, ""),
        field("size", INT, RO, doc="Bytes."),
        field("public", BOOL, RW, False, doc="Readable without a session."),
        field("last_updated", DATETIME, RC),
        field("mime_type", STRING, RC),
    ],
)


USER = cls(
    "user",
    "A local user account (legacy; login uses the host's accounts).",
    constructor=True,
    get_all=False,
    events=False,
    fields=[
        field("uuid", STRING, RO),
        field("short_name", STRING, RC, doc="Login name."),
        field("fullname", STRING, RW, doc="Name for display."),
        field("other_config", SMAP, RW, {}),
    ],
)
