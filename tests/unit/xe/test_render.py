"""Output layout, value formatting, value parsing and error text: the pure parts of xe."""

import pytest

from hostagent.xe import model
from hostagent.xe.errors import Failure, UsageError, sentence
from hostagent.xe.records import value_text
from hostagent.xe.render import minimal_text, record_text
from hostagent.xe.values import parse

MODEL = model.load()


def test_record_layout_matches_xenserver():
    text = record_text([("uuid ( RO)", "3f2c"), ("name-label ( RW)", "web01"), ("power-state ( RO)", "running")])
    assert text == ("uuid ( RO)           : 3f2c\n"
                    "     name-label ( RW): web01\n"
                    "    power-state ( RO): running\n\n\n")
    assert record_text([("uuid ( RO)", "x")]) == "uuid ( RO)    : x\n\n\n"


def test_minimal():
    assert minimal_text(["a", "b,c", ""]) == "a,b\\,c,\n"
    assert minimal_text([]) == "\n"


class NoRefs:
    def uuid(self, cls, ref):
        return {"OpaqueRef:1": "u-1"}.get(ref, "<not in database>")


@pytest.mark.parametrize("type_,value,text", [
    (["string"], "x", "x"), (["int"], "12", "12"), (["bool"], True, "true"), (["bool"], False, "false"),
    (["float"], 0.5, "0.500"), (["enum", ["Halted", "Running"]], "Running", "running"),
    (["enum", ["vt100", "rfb"]], "rfb", "RFB"), (["enum", ["RO", "RW"]], "RW", "RW"),
    (["ref", "VM"], "OpaqueRef:1", "u-1"), (["ref", "VM"], "OpaqueRef:NULL", "<not in database>"),
    (["set", ["string"]], ["a", "b"], "a; b"), (["set", ["ref", "VM"]], ["OpaqueRef:1"], "u-1"),
    (["map", ["string"], ["string"]], {"k": "v", "k2": "v2"}, "k: v; k2: v2"),
    (["map", ["string"], ["string"]], {}, ""),
])
def test_value_text(type_, value, text):
    assert value_text(type_, value, NoRefs()) == text


class Session:
    def call(self, wire, *args):
        assert wire == "VM.get_by_uuid"
        return "OpaqueRef:" + args[0]


@pytest.mark.parametrize("type_,text,value", [
    (["string"], "x y", "x y"), (["int"], "17179869184", "17179869184"), (["bool"], "yes", True),
    (["bool"], "false", False), (["float"], "1.5", 1.5), (["enum", ["Halted", "Running"]], "running", "Running"),
    (["ref", "VM"], "abc", "OpaqueRef:abc"), (["ref", "VM"], "", "OpaqueRef:NULL"),
    (["set", ["string"]], "a,b", ["a", "b"]), (["map", ["string"], ["string"]], "a:1,b:2", {"a": "1", "b": "2"}),
])
def test_parse(type_, text, value):
    assert parse(type_, text, Session(), MODEL) == value


@pytest.mark.parametrize("type_,text,message", [
    (["int"], "ten", "whole number"), (["bool"], "perhaps", "true or false"),
    (["enum", ["Halted", "Running"]], "gone", "one of Halted, Running"), (["float"], "x", "a number"),
])
def test_parse_refuses_naming_the_parameter(type_, text, message):
    with pytest.raises(UsageError, match=message) as e:
        parse(type_, text, Session(), MODEL, name="memory")
    assert "memory" in str(e.value)


def test_failure_text():
    f = Failure(["VM_BAD_POWER_STATE", "OpaqueRef:1", "halted", "running"])
    lines = f.lines(MODEL, lambda name, v: "u (web)" if v.startswith("OpaqueRef:") else v)
    assert lines == ["The VM is not in the power state this operation needs.", "code: VM_BAD_POWER_STATE",
                     "vm: u (web)", "expected: halted", "actual: running"]
    unknown = Failure(["SOMETHING_NEW", "a", "b"]).lines(MODEL)
    assert unknown == ["The operation failed: something new.", "code: SOMETHING_NEW", "parameters: a, b"]
    assert sentence("SR_BACKEND_FAILURE_94", []) == "The storage driver failed."


def test_usage_error_points_at_help():
    assert UsageError("Required parameter not found: uuid").lines() == [
        "Required parameter not found: uuid", "For usage run: 'xe help'"]
