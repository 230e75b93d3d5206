"""CLI text turned into API values of a field's type (the reverse of records.py)."""

from .errors import UsageError

NULL_REF = "OpaqueRef:NULL"
TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0")


def parse(type_, text, session, model, name="value"):
    """The API value `text` stands for; refs are given as uuids (or an empty string for none)."""
    kind = type_[0]
    if kind == "string" or kind == "datetime":
        return text
    if kind == "int":
        try:
            return str(int(text))  # as a string: XML-RPC's <int> cannot hold 64-bit sizes
        except ValueError:
            raise UsageError(f"Parameter {name} must be a whole number, not {text!r}") from None
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise UsageError(f"Parameter {name} must be a number, not {text!r}") from None
    if kind == "bool":
        low = text.lower()
        if low in TRUE:
            return True
        if low in FALSE:
            return False
        raise UsageError(f"Parameter {name} must be true or false, not {text!r}")
    if kind == "enum":
        for v in type_[1]:
            if v.lower() == text.lower():
                return v
        raise UsageError(f"Parameter {name} must be one of {', '.join(type_[1])}, not {text!r}")
    if kind == "ref":
        return ref_of(type_[1], text, session, model)
    if kind == "set":
        items = [x.strip() for x in text.split(",") if x.strip()]
        return [parse(type_[1], x, session, model, name) for x in items]
    if kind == "map":
        out = {}
        for item in (x for x in text.split(",") if x.strip()):
            k, sep, v = item.partition(":")
            if not sep:
                raise UsageError(f"Parameter {name} takes key:value pairs separated by commas")
            out[k.strip()] = parse(type_[2], v.strip(), session, model, name)
        return out
    raise UsageError(f"Parameter {name} cannot be set from the command line")


def ref_of(cls_name, text, session, model):
    if text in ("", NULL_REF, "<not in database>"):
        return NULL_REF
    if text.startswith("OpaqueRef:"):
        return text
    return session.call(f"{cls_name}.get_by_uuid", text)
