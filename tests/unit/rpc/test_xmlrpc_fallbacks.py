"""The XML-RPC encoder's fallbacks: what they catch, what they log, what they let through.

A value of the wrong Python type (an int field holding a str, a set holding None)
still encodes, and the fallback is logged once per type or field at debug level.
Any other exception is a bug and propagates instead of being swallowed.
"""

import logging
import xmlrpc.client as xc

import pytest

from hostagent.datamodel import types as T
from hostagent.datamodel.api import Api
from hostagent.datamodel.decl import RW, cls, field
from hostagent.rpc.xmlrpc import XmlEncoder

THING = T.RecordOf("Thing")
API = Api((cls("Thing", "a test class", [
    field("uuid", T.STRING),
    field("name_label", T.STRING, RW),
    field("memory", T.INT),
    field("flag", T.BOOL),
    field("parts", T.SetOf(T.Ref("part"))),
    field("config", T.MapOf(T.STRING, T.STRING), RW),
]),), ())
LOGGER = "hostagent.xmlrpc"


def thing(**over):
    rec = {"uuid": "u-1", "name_label": "web-1", "memory": 1 << 30, "flag": True,
           "parts": ["OpaqueRef:p1"], "config": {"k": "v"}}
    rec.update(over)
    return rec


def loads(reply: bytes):
    (value,), _ = xc.loads(reply)
    return value


class Exploding:
    """An iterable whose iteration fails the way a bug would, not the way a wrong type does."""

    def __iter__(self):
        raise RuntimeError("iteration exploded")


@pytest.fixture
def enc():
    return XmlEncoder(API)


def fallbacks(caplog):
    return [r for r in caplog.records if r.name == LOGGER]


def test_a_wrong_type_in_a_field_is_logged_once_naming_the_field(enc, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    for _ in range(3):
        got = loads(enc.success(thing(memory="lots"), THING))["Value"]
        assert got["memory"] == "lots" and got["name_label"] == "web-1"
    logged = [r.getMessage() for r in fallbacks(caplog)]
    about_field = [m for m in logged if "Thing.memory" in m]
    assert len(about_field) == 1, logged
    assert "TypeError" in about_field[0]
    assert all(r.levelno == logging.DEBUG for r in fallbacks(caplog))
    assert len(logged) == len(set(logged))  # each (type or field, exception) once, however often it recurs


def test_each_field_and_exception_type_is_reported_separately(enc, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    enc.success(thing(memory=None), THING)
    enc.success(thing(config=["not", "a", "map"]), THING)
    enc.success(thing(config=["again"]), THING)
    logged = " | ".join(r.getMessage() for r in fallbacks(caplog))
    assert "Thing.memory" in logged and "Thing.config" in logged
    assert logged.count("Thing.config") == 1


def test_a_scalar_fallback_names_its_type(enc, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    assert enc.encoder(T.INT)("12") == "<value>12</value>"
    assert enc.encoder(T.INT)("13") == "<value>13</value>"
    logged = [r.getMessage() for r in fallbacks(caplog)]
    assert len(logged) == 1 and "int" in logged[0], logged


def test_well_typed_values_log_nothing(enc, caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    enc.success({f"OpaqueRef:{i}": thing() for i in range(20)}, T.MapOf(T.Ref("Thing"), THING))
    enc.success(["a", "b"], T.SetOf(T.STRING))
    assert fallbacks(caplog) == []


def test_a_bug_in_a_set_is_not_swallowed(enc):
    with pytest.raises(RuntimeError, match="exploded"):
        enc.encoder(T.SetOf(T.STRING))(Exploding())


def test_a_bug_inside_a_record_is_not_swallowed(enc):
    with pytest.raises(RuntimeError, match="exploded"):
        enc.success(thing(parts=Exploding()), THING)
    with pytest.raises(RuntimeError, match="exploded"):
        enc.success({"OpaqueRef:1": thing(parts=Exploding())}, T.MapOf(T.Ref("Thing"), THING))


def test_a_bug_in_a_map_value_is_not_swallowed(enc):
    with pytest.raises(RuntimeError, match="exploded"):
        enc.success({"k": Exploding()}, T.MapOf(T.STRING, T.SetOf(T.INT)))
