"""The JSON-RPC 1.0 / 2.0 codec: request validation and reply shapes."""

import json
import time

import pytest
from hypothesis import given, settings, strategies as st

from hostagent.datamodel import types as T
from hostagent.rpc.jsonrpc import V1, V2, Call, failure, parse_call, success
from hostagent.rpc.wire_errors import Malformed


def req(**fields):
    return json.dumps(fields).encode()


class TestParse:
    def test_v1(self):
        assert parse_call(req(method="VM.get_all", params=["OpaqueRef:s"], id=7)) == \
            Call("VM.get_all", ["OpaqueRef:s"], 7, V1)

    def test_v2(self):
        call = parse_call(req(jsonrpc="2.0", method="VM.get_all", params=["s"], id="x"))
        assert call == Call("VM.get_all", ["s"], "x", V2)
        assert call.version == 2 and call.id == "x"

    def test_v2_params_may_be_omitted(self):
        assert parse_call(req(jsonrpc="2.0", method="system.listMethods", id=1)).params == []

    def test_ids_keep_their_type(self):
        assert parse_call(req(method="m", params=[], id="7")).id == "7"
        assert parse_call(req(method="m", params=[], id=0)).id == 0
        assert parse_call(req(method="m", params=[], id=2 ** 70)).id == 2 ** 70

    def test_values_decode_exactly(self):
        body = b'{"method":"m","params":[9007199254740993,18446744073709551617,1.5,true,null,"\\u00e9",{"a":[]}],"id":1}'
        params = parse_call(body).params
        assert params == [2 ** 53 + 1, 2 ** 64 + 1, 1.5, True, None, "\u00e9", {"a": []}]
        assert type(params[0]) is int and type(params[1]) is int

    def test_utf8_body(self):
        assert parse_call('{"method":"m","params":["caf\u00e9"],"id":1}'.encode()).params == ["caf\u00e9"]

    @pytest.mark.parametrize("body", [
        b"",
        b"not json",
        b"[]",
        b'"string"',
        b'{"method":"m","params":[]}',  # no id
        b'{"method":"m","params":[],"id":null}',
        b'{"method":"m","params":[],"id":true}',
        b'{"method":"m","params":[],"id":1.5}',
        b'{"method":"m","params":[],"id":[1]}',
        b'{"params":[],"id":1}',  # no method
        b'{"method":null,"params":[],"id":1}',
        b'{"method":"","params":[],"id":1}',
        b'{"method":3,"params":[],"id":1}',
        b'{"method":"m","id":1}',  # v1 needs params
        b'{"method":"m","params":{"a":1},"id":1}',
        b'{"jsonrpc":"2.0","method":"m","params":{"a":1},"id":1}',
        b'{"jsonrpc":"2.0","method":"m","params":"x","id":1}',
        b'{"jsonrpc":"1.0","method":"m","params":[],"id":1}',
        b'{"jsonrpc":2.0,"method":"m","params":[],"id":1}',
        b'{"jsonrpc":null,"method":"m","params":[],"id":1}',
        b'{"method":"m","params":[NaN],"id":1}',
        b'{"method":"m","params":[Infinity],"id":1}',
        b'{"method":"m","params":[],"id":1} trailing',
        b'{"method":"m","params":["\xff"],"id":1}',
        b'\xef\xbb\xbf{"method":"m","params":[],"id":1}',  # a BOM is not JSON
        b'{"method":"m","params":[1' + b"0" * 5000 + b'],"id":1}',
    ])
    def test_malformed(self, body):
        with pytest.raises(Malformed):
            parse_call(body)

    def test_deep_nesting_fails_fast(self):
        body = b'{"method":"m","params":' + b"[" * 100_000 + b"]" * 100_000 + b',"id":1}'
        started = time.monotonic()
        with pytest.raises(Malformed):
            parse_call(body)
        assert time.monotonic() - started < 2

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=200))
    def test_random_bytes(self, raw):
        try:
            parse_call(raw)
        except Malformed:
            pass

    @settings(max_examples=300, deadline=None)
    @given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                        lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids), max_leaves=10))
    def test_any_json_object_either_parses_or_is_malformed(self, value):
        body = json.dumps({"method": "m", "params": value, "id": 1}).encode()
        try:
            call = parse_call(body)
        except Malformed:
            assert not isinstance(value, list)
        else:
            assert call.params == value


V1_CALL = Call("VM.get_all", [], 7, V1)
V2_CALL = Call("VM.get_all", [], "x", V2)


class TestReplies:
    def test_v1_success(self):
        assert success(["OpaqueRef:a"], T.SetOf(T.Ref("VM")), V1_CALL) == \
            b'{"result":["OpaqueRef:a"],"error":null,"id":7}'

    def test_v2_success_has_no_error_key(self):
        out = success(["OpaqueRef:a"], T.SetOf(T.Ref("VM")), V2_CALL)
        assert out == b'{"jsonrpc":"2.0","result":["OpaqueRef:a"],"id":"x"}'
        assert "error" not in json.loads(out)

    def test_void_is_the_empty_string(self):
        assert success(None, T.VOID, V1_CALL) == b'{"result":"","error":null,"id":7}'
        assert success(None, T.VOID, V2_CALL) == b'{"jsonrpc":"2.0","result":"","id":"x"}'

    def test_v1_failure(self):
        assert failure(["VM_BAD_POWER_STATE", "OpaqueRef:v", "halted", "running"], V1_CALL) == \
            b'{"result":null,"error":["VM_BAD_POWER_STATE","OpaqueRef:v","halted","running"],"id":7}'

    def test_v2_failure(self):
        out = failure(["SESSION_INVALID", "OpaqueRef:s"], V2_CALL)
        assert out == (b'{"jsonrpc":"2.0","error":{"code":1,"message":"SESSION_INVALID",'
                       b'"data":["OpaqueRef:s"]},"id":"x"}')

    def test_failure_before_a_call_is_v2_with_id_0(self):
        assert json.loads(failure(["HOST_IS_SLAVE", "192.0.2.1"])) == {
            "jsonrpc": "2.0", "error": {"code": 1, "message": "HOST_IS_SLAVE", "data": ["192.0.2.1"]}, "id": 0}

    def test_failure_params_are_strings(self):
        assert json.loads(failure(["X", 3], V1_CALL))["error"] == ["X", "3"]

    def test_ids_echoed_with_their_type(self):
        assert json.loads(success(1, T.INT, Call("m", [], "7", V1)))["id"] == "7"
        assert json.loads(success(1, T.INT, Call("m", [], 7, V2)))["id"] == 7

    def test_big_ints_stay_exact(self):
        value = {"memory": 2 ** 63 - 1, "n": -(2 ** 63), "big": 2 ** 53 + 1}
        out = success(value, T.MapOf(T.STRING, T.INT), V1_CALL)
        assert b"9223372036854775807" in out and b"9007199254740993" in out
        assert json.loads(out)["result"] == value

    def test_values_as_is(self):
        rec = {"name_label": "caf\u00e9 \u2603", "ratio": 0.1, "flag": False, "born": "20240131T13:05:09Z",
               "tags": [], "other_config": {"k": "v"}}
        out = success(rec, T.AnyRecord(), V2_CALL)
        assert "caf\u00e9 \u2603".encode() in out  # UTF-8, not \\u escapes
        assert json.loads(out)["result"] == rec

    def test_lone_surrogate_still_gives_valid_json(self):
        out = success("a\ud800b", T.STRING, V1_CALL)
        out.decode("utf-8")
        assert json.loads(out)["result"] == "a\ud800b"

    def test_round_trip(self):
        call = parse_call(req(jsonrpc="2.0", method="m", params=[], id="abc"))
        assert json.loads(success({"a": [1, 2]}, T.AnyRecord(), call)) == {
            "jsonrpc": "2.0", "result": {"a": [1, 2]}, "id": "abc"}
