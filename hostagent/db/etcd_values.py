"""How the etcd journal writes an object's value (and reads it back): its generations on a
first line, then its JSON, compressed when long."""

import zlib

COMPRESS_FROM = 512  # bytes of JSON from which an object's value is compressed


def object_value(data: str, born: int, gen: int) -> bytes:
    """An object's value: its generations, then its JSON (zlib-compressed when long: every
    byte of a write costs time in the gateway, the raft log and each member's WAL)."""
    raw = data.encode()
    if len(raw) >= COMPRESS_FROM:
        return f"{born} {gen} z\n".encode() + zlib.compress(raw, 1)
    return f"{born} {gen}\n".encode() + raw


def object_from(value: bytes) -> tuple[str, int, int]:
    """(JSON, created gen, changed gen) of an object's value."""
    head, _, data = value.partition(b"\n")
    born, changed, *how = head.split()
    if how == [b"z"]:
        data = zlib.decompress(data)
    return data.decode(), int(born), int(changed)
