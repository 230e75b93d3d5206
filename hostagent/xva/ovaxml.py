"""ova.xml: an XVA's table of contents, as xapi writes and reads it.

The file is one XML-RPC `<value>` (no prolog) holding a struct of `version` (hostname,
date, product_version, product_brand, build_number as strings; xapi_major, xapi_minor,
export_vsn as untyped values) and `objects`, an array of `{class, id, snapshot}` structs
where `id` is `Ref:<n>` and `snapshot` the object's full record with every reference
rewritten to an exported object's id or to OpaqueRef:NULL. The writer takes each
snapshot already encoded (the agent's typed XML-RPC encoder gives it); the reader gives
plain values back: strings (untyped ints stay strings, as on the wire), ints for
`<int>`/`<i4>`, floats, booleans, dicts and lists.
"""

import base64
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import XvaError

EXPORT_VSN = 2
MAX_OVA_XML = 64 * 1024 * 1024  # bytes of ova.xml an importer reads at most
MAX_DEPTH = 64


@dataclass(frozen=True)
class XvaObject:
    cls: str  # the datamodel class name: VM, VBD, VIF, VDI, SR, network, ...
    id: str  # Ref:<n>
    snapshot: dict[str, Any]  # the record, references as ids (or OpaqueRef:NULL)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def encode(value) -> str:
    """A plain value as an XML-RPC `<value>`: ints untyped (as xapi writes 64-bit ints)."""
    if isinstance(value, bool):
        return f"<value><boolean>{int(value)}</boolean></value>"
    if isinstance(value, int):
        return f"<value>{value}</value>"
    if isinstance(value, float):
        return f"<value><double>{value!r}</double></value>"
    if isinstance(value, str):
        return f"<value>{_escape(value)}</value>"
    if isinstance(value, dict):
        members = "".join(f"<member><name>{_escape(str(k))}</name>{encode(v)}</member>"
                          for k, v in value.items())
        return f"<value><struct>{members}</struct></value>"
    if isinstance(value, (list, tuple)):
        return "<value><array><data>" + "".join(encode(v) for v in value) + "</data></array></value>"
    raise TypeError(f"no XML-RPC form for {type(value).__name__}")


def write(version: dict[str, Any], objects: Iterable[tuple[str, str, str]]) -> bytes:
    """ova.xml of `version` (see module doc) and `objects`: (class, id, snapshot) with the
    snapshot an encoded `<value>…</value>` string."""
    items = "".join(
        "<value><struct>"
        f"<member><name>class</name>{encode(cls)}</member>"
        f"<member><name>id</name>{encode(ref_id)}</member>"
        f"<member><name>snapshot</name>{snapshot}</member>"
        "</struct></value>"
        for cls, ref_id, snapshot in objects)
    text = ("<value><struct>"
            f"<member><name>version</name>{encode(version)}</member>"
            f"<member><name>objects</name><value><array><data>{items}</data></array></value></member>"
            "</struct></value>")
    return text.encode("utf-8")


def version(hostname: str, date: str, product_version: str, brand: str, build: str,
            xapi: tuple[int, int]) -> dict[str, Any]:
    return {"hostname": hostname, "date": date, "product_version": product_version,
            "product_brand": brand, "build_number": build, "xapi_major": xapi[0],
            "xapi_minor": xapi[1], "export_vsn": EXPORT_VSN}


# --------------------------------------------------------------------------- reading
def _value(el, depth: int):
    if depth > MAX_DEPTH:
        raise XvaError("IMPORT_ERROR", "ova.xml nests deeper than it may")
    kids = list(el)
    if not kids:
        return el.text or ""
    node = kids[0]
    tag, text = node.tag, node.text or ""
    if tag == "string":
        return text
    if tag in ("int", "i4", "i8"):
        return int(text.strip())
    if tag == "boolean":
        return text.strip() == "1"
    if tag == "double":
        return float(text.strip())
    if tag == "dateTime.iso8601":
        return text.strip()
    if tag == "base64":
        return base64.b64decode(text)
    if tag == "nil":
        return None
    if tag == "struct":
        out = {}
        for member in node.findall("member"):
            name, value = member.find("name"), member.find("value")
            if name is None or value is None:
                raise XvaError("IMPORT_ERROR", "ova.xml: a struct member lacks its name or value")
            out[name.text or ""] = _value(value, depth + 1)
        return out
    if tag == "array":
        data = node.find("data")
        return [] if data is None else [_value(v, depth + 1) for v in data.findall("value")]
    raise XvaError("IMPORT_ERROR", f"ova.xml: unknown XML-RPC type <{tag}>")


def read(data: bytes) -> tuple[dict[str, Any], list[XvaObject]]:
    """(version, objects) of an ova.xml; IMPORT_ERROR when it is not one."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise XvaError("IMPORT_ERROR", f"ova.xml is not XML: {e}") from None
    if root.tag != "value":
        raise XvaError("IMPORT_ERROR", f"ova.xml holds <{root.tag}>, not an XML-RPC value "
                                       "(a legacy XVA 0.1 archive is not supported)")
    top = _value(root, 0)
    if not isinstance(top, dict) or not isinstance(top.get("version"), dict) \
            or not isinstance(top.get("objects"), list):
        raise XvaError("IMPORT_ERROR", "ova.xml lacks its version or objects")
    vsn = str(top["version"].get("export_vsn", "0"))
    if vsn.strip() != str(EXPORT_VSN):
        raise XvaError("IMPORT_ERROR", f"export format version {vsn} is not supported "
                                       f"(only {EXPORT_VSN})")
    objects = []
    for item in top["objects"]:
        if not isinstance(item, dict) or not isinstance(item.get("snapshot"), dict):
            raise XvaError("IMPORT_ERROR", "ova.xml: an object is not a {class, id, snapshot} struct")
        objects.append(XvaObject(str(item.get("class", "")), str(item.get("id", "")), item["snapshot"]))
    return top["version"], objects
