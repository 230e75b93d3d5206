"""The XML-RPC codec: request parsing (incl. hostile bodies) and type-directed replies."""

import datetime
import math
import time
import xmlrpc.client as xc

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hostagent.datamodel import types as T
from hostagent.datamodel.api import Api
from hostagent.datamodel.decl import RW, cls, field
from hostagent.rpc.wire_errors import Malformed
from hostagent.rpc.xmlrpc import WireDateTime, XmlEncoder, escape, normalise_datetime, parse_call

OPS = T.Enum("thing_op", ("start", "stop"))
THING_FIELDS = [
    field("uuid", T.STRING),
    field("name_label", T.STRING, RW),
    field("power", T.Enum("power", ("Halted", "Running"))),
    field("memory", T.INT),
    field("ratio", T.FLOAT),
    field("flag", T.BOOL),
    field("born", T.DATETIME),
    field("owner", T.Ref("host")),
    field("parts", T.SetOf(T.Ref("part"))),
    field("ops", T.SetOf(OPS)),
    field("config", T.MapOf(T.STRING, T.STRING), RW),
    field("counts", T.MapOf(T.STRING, T.INT)),
    field("secret", T.STRING, internal=True),
]
THING = T.RecordOf("Thing")
API = Api((cls("Thing", "a test class", THING_FIELDS),), ())
PUBLIC = [f for f in THING_FIELDS if not f.internal]

# what xmlrpc.client can send: it writes \r and control characters raw, which XML cannot carry
XML_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\ufffe\uffff",
                          min_codepoint=9).filter(lambda c: c in "\t\n" or c >= " ")


@pytest.fixture
def enc():
    return XmlEncoder(API)


def call(method, *params, allow_none=False):
    return xc.dumps(params, method, allow_none=allow_none).encode("utf-8")


def body(inner, name="m"):
    return f"<methodCall><methodName>{name}</methodName><params>{inner}</params></methodCall>".encode()


def param(value_xml):
    return body(f"<param>{value_xml}</param>")


def loads(reply: bytes):
    (value,), method = xc.loads(reply)
    return value


def thing(**over):
    rec = {"uuid": "0b5c3f6e-8d4a-4c1e-9f3a-2b7d6e5f4a3c", "name_label": "web-1", "power": "Running",
           "memory": 8 << 30, "ratio": 0.5, "flag": True, "born": "20240131T13:05:09Z",
           "owner": "OpaqueRef:host-1", "parts": ["OpaqueRef:p1", "OpaqueRef:p2"], "ops": ["start"],
           "config": {"k": "v", "x": "y"}, "counts": {"a": 1, "b": 2 ** 40}}
    rec.update(over)
    return rec


# --------------------------------------------------------------------------- parsing

class TestParse:
    def test_values_from_xmlrpc_client(self):
        when = xc.DateTime(datetime.datetime(2024, 1, 31, 13, 5, 9))
        params = ("s", "", 42, -7, True, False, 1.5, None, [1, ["a"]], {"k": "v", "n": {"m": 1}},
                  when, xc.Binary(b"\x00bin\xff"), str(2 ** 63 - 1), "caf\u00e9 \u2603")
        method, got = parse_call(call("VM.get_record", *params, allow_none=True))
        assert method == "VM.get_record"
        assert got == ["s", "", 42, -7, True, False, 1.5, None, [1, ["a"]], {"k": "v", "n": {"m": 1}},
                       "20240131T13:05:09Z", b"\x00bin\xff", "9223372036854775807", "caf\u00e9 \u2603"]
        assert type(got[10]) is WireDateTime
        assert type(got[2]) is int and type(got[4]) is bool

    def test_login_example_from_the_reference(self):
        req = (b"<?xml version='1.0'?><methodCall><methodName>session.login_with_password</methodName>"
               b"<params><param><value><string>root</string></value></param><param><value><string>"
               b"secret</string></value></param><param><value><string>2.21</string></value></param>"
               b"<param><value><string>my-tool/1.0</string></value></param></params></methodCall>")
        assert parse_call(req) == ("session.login_with_password", ["root", "secret", "2.21", "my-tool/1.0"])

    @pytest.mark.parametrize("xml, value", [
        ("<value>text</value>", "text"),
        ("<value>  spaced  </value>", "  spaced  "),
        ("<value/>", ""),
        ("<value></value>", ""),
        ("<value><string/></value>", ""),
        ("<value><string> a </string></value>", " a "),
        ("<value><int> 12 </int></value>", 12),
        ("<value><i4>-3</i4></value>", -3),
        ("<value><i8>9223372036854775807</i8></value>", 2 ** 63 - 1),
        ("<value><boolean>1</boolean></value>", True),
        ("<value><boolean>true</boolean></value>", True),
        ("<value><boolean>0</boolean></value>", False),
        ("<value><boolean>false</boolean></value>", False),
        ("<value><double>-0.25</double></value>", -0.25),
        ("<value><double>1e3</double></value>", 1000.0),
        ("<value><nil/></value>", None),
        ("<value><base64>aGk=\n</base64></value>", b"hi"),
        ("<value><array><data/></array></value>", []),
        ("<value><array/></value>", []),
        ("<value><struct/></value>", {}),
        ("<value>a&amp;b&lt;c&gt;&quot;&#65;&#x42;</value>", 'a&b<c>"AB'),
        ("<value><![CDATA[<raw>]]></value>", "<raw>"),
        ("<value>a<!-- note -->b</value>", "ab"),
        ("<value><struct><member><name>k</name><value>1</value></member>"
         "<member><name>k</name><value>2</value></member></struct></value>", {"k": "2"}),
        ("<value><struct><member><value>v</value><name>k</name></member></struct></value>", {"k": "v"}),
    ])
    def test_value_forms(self, xml, value):
        assert parse_call(param(xml)) == ("m", [value])

    @pytest.mark.parametrize("text, wire", [
        ("20240131T13:05:09Z", "20240131T13:05:09Z"),
        ("20240131T13:05:09", "20240131T13:05:09Z"),
        ("20240131T130509Z", "20240131T13:05:09Z"),
        ("2024-01-31T13:05:09Z", "20240131T13:05:09Z"),
        ("2024-01-31T13:05:09.123456Z", "20240131T13:05:09Z"),
        ("2024-01-31T14:05:09+01:00", "20240131T13:05:09Z"),
        ("2024-01-31T08:35:09-0430", "20240131T13:05:09Z"),
        ("2024-01-01T00:30:00+01:00", "20231231T23:30:00Z"),
        (" 2024-02-29t23:59:59z ", "20240229T23:59:59Z"),
    ])
    def test_datetimes(self, text, wire):
        got = parse_call(param(f"<value><dateTime.iso8601>{text}</dateTime.iso8601></value>"))[1][0]
        assert got == wire and type(got) is WireDateTime
        assert normalise_datetime(text) == wire

    @pytest.mark.parametrize("text", ["", "yesterday", "20240231T00:00:00Z", "20240131T25:00:00Z",
                                      "2024-01-31T13:05:09+1", "00000101T00:00:00Z",
                                      "\u0662\u0660\u0662\u0664-01-31T13:05:09Z"])
    def test_bad_datetimes(self, text):
        with pytest.raises(Malformed):
            parse_call(param(f"<value><dateTime.iso8601>{text}</dateTime.iso8601></value>"))

    def test_whitespace_between_tags_and_prolog(self):
        req = b"""<?xml version="1.0" encoding="UTF-8"?>
        <methodCall>
          <methodName> VM.start </methodName>
          <params>
            <param> <value> <string>OpaqueRef:x</string> </value> </param>
            <param><value><array>
               <data> <value><i4>1</i4></value> </data>
            </array></value></param>
          </params>
        </methodCall>
        """
        assert parse_call(req) == ("VM.start", ["OpaqueRef:x", [1]])

    def test_no_params_element_means_no_params(self):
        assert parse_call(b"<methodCall><methodName>system.listMethods</methodName></methodCall>") == \
            ("system.listMethods", [])
        assert parse_call(call("system.listMethods")) == ("system.listMethods", [])

    def test_accepts_memoryview_and_str(self):
        raw = call("a.b", "x")
        assert parse_call(memoryview(raw)) == parse_call(raw.decode()) == ("a.b", ["x"])

    @pytest.mark.parametrize("bad", [
        b"",
        b"   ",
        b"<methodResponse><params/></methodResponse>",
        b"<methodCall><params/></methodCall>",
        b"<methodCall><methodName>  </methodName></methodCall>",
        b"<methodCall><methodName>a</methodName><methodName>b</methodName></methodCall>",
        b"<methodCall><methodName>a</methodName><params/><params/></methodCall>",
        b"<methodCall><methodName>a<b/></methodName></methodCall>",
        b"<methodCall>junk<methodName>a</methodName></methodCall>",
        b"<methodCall><methodName>a</methodName></methodCall>trailing",
        b"<methodCall><methodName>a</methodName></methodCall><methodCall/>",
        body("text<param><value>1</value></param>"),
        body("<param></param>"),
        body("<param><value>1</value><value>2</value></param>"),
        param("<value><string>a</string><int>1</int></value>"),
        param("<value>text<int>1</int></value>"),
        param("<value><int>1</int>text</value>"),
        param("<value><float>1</float></value>"),
        param("<value><ex:nil xmlns:ex='http://ws.apache.org/xmlrpc/namespaces/extensions'/></value>"),
        param("<value><nil>x</nil></value>"),
        param("<value><int>1.5</int></value>"),
        param("<value><int>\u0661</int></value>"),
        param("<value><int>1_000</int></value>"),
        param("<value><int></int></value>"),
        param("<value><int>" + "9" * 5000 + "</int></value>"),
        param("<value><double>1_0.5</double></value>"),
        param("<value><double>abc</double></value>"),
        param("<value><boolean>yes</boolean></value>"),
        param("<value><boolean></boolean></value>"),
        param("<value><base64>!!!</base64></value>"),
        param("<value><base64>\u00e9</base64></value>"),
        param("<value><array><data><int>1</int></data></array></value>"),
        param("<value><array><data/><data/></array></value>"),
        param("<value><struct><value>1</value></struct></value>"),
        param("<value><struct><member><name>k</name></member></struct></value>"),
        param("<value><struct><member><value>1</value></member></struct></value>"),
        param("<value><struct><member><name>a</name><name>b</name><value/></member></struct></value>"),
        param("<value><struct>text</struct></value>"),
        param("<value>&undefined;</value>"),
        param("<value>&#0;</value>"),
        param("<value>&#xD800;</value>"),
        param("<value>\x01</value>"),
        call("a.b").replace(b"<methodCall>", b"<?xml-stylesheet href='x'?><methodCall>"),
        call("a.b").replace(b"</methodCall>", b"<?pi x?></methodCall>"),
    ])
    def test_malformed(self, bad):
        with pytest.raises(Malformed):
            parse_call(bad)

    def test_malformed_carries_a_reason(self):
        with pytest.raises(Malformed) as e:
            parse_call(b"<nope/>")
        assert "methodCall" in e.value.reason

    @pytest.mark.parametrize("raw", [
        b"<methodCall><methodName>a</methodName><params><param><value>\xff</value></param></params></methodCall>",
        b"<methodCall><methodName>a</methodName><params><param><value>\xc3\x28</value></param></params></methodCall>",
        b"<methodCall><methodName>a</methodName><params><param><value>\xed\xa0\x80</value></param></params></methodCall>",
        b"<methodCall><methodName>a</methodName><params><param><value>\xc0\xaf</value></param></params></methodCall>",
        # a declared encoding does not turn non-UTF-8 bytes into text
        b"<?xml version='1.0' encoding='ISO-8859-1'?><methodCall><methodName>\xe9</methodName></methodCall>",
    ])
    def test_invalid_utf8(self, raw):
        with pytest.raises(Malformed):
            parse_call(raw)


class TestHostile:
    def test_billion_laughs(self):
        lol = "".join(f'<!ENTITY lol{i} "{"&lol%d;" % (i - 1) * 10}">' for i in range(1, 10))
        req = (f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">{lol}]>'
               "<methodCall><methodName>&lol9;</methodName></methodCall>").encode()
        started = time.monotonic()
        with pytest.raises(Malformed):
            parse_call(req)
        assert time.monotonic() - started < 1

    @pytest.mark.parametrize("doctype", [
        '<!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
        '<!DOCTYPE m SYSTEM "http://192.0.2.1/evil.dtd">',
        '<!DOCTYPE m [<!ENTITY % p SYSTEM "http://192.0.2.1/p.dtd"> %p;]>',
        '<!DOCTYPE methodCall>',
    ])
    def test_external_entities_and_doctypes(self, doctype):
        req = (f'<?xml version="1.0"?>{doctype}<methodCall><methodName>a</methodName><params>'
               "<param><value>&xxe;</value></param></params></methodCall>").encode()
        with pytest.raises(Malformed):
            parse_call(req)

    def test_deep_nesting(self):
        depth = 10_000
        req = body("<param>" + "<value><array><data>" * depth + "</data></array></value>" * depth + "</param>")
        started = time.monotonic()
        with pytest.raises(Malformed) as e:
            parse_call(req)
        assert "deeper" in e.value.reason
        assert time.monotonic() - started < 1

    def test_depth_limit_is_configurable(self):
        def nested(n):  # methodCall/params/param = 3 levels, then 3 per array
            return body("<param>" + "<value><array><data>" * n + "</data></array></value>" * n + "</param>")
        assert parse_call(nested(32))[1] == [_nest(32)]
        with pytest.raises(Malformed):
            parse_call(nested(33))
        assert parse_call(nested(33), max_depth=200)[1] == [_nest(33)]
        with pytest.raises(Malformed):
            parse_call(nested(3), max_depth=10)

    def test_truncated_bodies(self):
        full = call("VM.create", {"name_label": "x", "VCPUs_max": "2", "tags": ["a", "b"]}, True, 1.5)
        started = time.monotonic()
        for cut in range(len(full) - 1):
            if full[:cut].strip() and full[cut:].strip() == b"":
                continue
            with pytest.raises(Malformed):
                parse_call(full[:cut])
        assert time.monotonic() - started < 5

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=300))
    def test_random_bytes(self, raw):
        try:
            parse_call(raw)
        except Malformed as e:
            assert not e.reason.startswith("unexpected"), e.reason

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def test_mutated_calls(self, data):
        good = call("VM.set_other_config", "OpaqueRef:s", {"a": ["1", 2, True, None]}, 0.5, allow_none=True)
        pos = data.draw(st.integers(0, len(good)))
        cut = data.draw(st.integers(0, 20))
        junk = data.draw(st.binary(max_size=12) | st.sampled_from([b"<", b">", b"</value>", b"<value>",
                                                                   b"<struct>", b"&", b"&#0;", b"<!DOCTYPE a>"]))
        mutated = good[:pos] + junk + good[pos + cut:]
        try:
            method, params = parse_call(mutated)
            assert isinstance(method, str) and isinstance(params, list)
        except Malformed as e:
            assert not e.reason.startswith("unexpected"), e.reason

    @settings(max_examples=300, deadline=None)
    @given(st.recursive(
        st.none() | st.booleans() | st.integers(-2 ** 31, 2 ** 31 - 1) | st.floats(allow_nan=False)
        | st.text(XML_CHARS),
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(XML_CHARS, max_size=5), kids,
                                                                  max_size=4),
        max_leaves=20))
    def test_round_trip_from_xmlrpc_client(self, value):
        assert parse_call(call("x.y", value, allow_none=True)) == ("x.y", [value])


def _nest(n):
    v = []
    for _ in range(n - 1):
        v = [v]
    return v


# --------------------------------------------------------------------------- encoding

OK_HEAD = (b'<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name>'
           b"<value>Success</value></member><member><name>Value</name>")
OK_TAIL = b"</member></struct></value></param></params></methodResponse>"


class TestEnvelopes:
    def test_failure_matches_the_reference_literal(self, enc):
        # xapi-protocol.md section 1.3, byte for byte
        literal = ('<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status'
                   '</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array>'
                   '<data><value>VM_IS_TEMPLATE</value><value>OpaqueRef:5f0c…</value><value>start</value>'
                   '</data></array></value></member></struct></value></param></params></methodResponse>')
        assert enc.failure(["VM_IS_TEMPLATE", "OpaqueRef:5f0c…", "start"]) == literal.encode("utf-8")

    def test_small_success_exact(self, enc):
        assert enc.success("OpaqueRef:abc", T.Ref("VM")) == (
            OK_HEAD + b"<value>OpaqueRef:abc</value>" + OK_TAIL)
        assert enc.success(None, T.VOID) == OK_HEAD + b"<value></value>" + OK_TAIL
        assert enc.success(42, T.INT) == OK_HEAD + b"<value>42</value>" + OK_TAIL

    def test_success_round_trips_through_xmlrpc_client(self, enc):
        assert loads(enc.success("x", T.STRING)) == {"Status": "Success", "Value": "x"}
        assert loads(enc.failure(["SESSION_INVALID", "OpaqueRef:s"])) == {
            "Status": "Failure", "ErrorDescription": ["SESSION_INVALID", "OpaqueRef:s"]}

    def test_failure_escapes_and_stringifies(self, enc):
        assert loads(enc.failure(["INTERNAL_ERROR", "<&>", 3])) == {
            "Status": "Failure", "ErrorDescription": ["INTERNAL_ERROR", "<&>", "3"]}

    def test_raw_has_no_status_wrapper(self, enc):
        out = enc.raw(["VM.start", "VM.get_all"], T.SetOf(T.STRING))
        assert out == (b'<?xml version="1.0"?><methodResponse><params><param><value><array><data>'
                       b"<value>VM.start</value><value>VM.get_all</value></data></array></value></param>"
                       b"</params></methodResponse>")
        assert loads(out) == ["VM.start", "VM.get_all"]

    def test_fragment(self, enc):
        assert enc.fragment("OpaqueRef:t", T.Ref("VM")) == "<value>OpaqueRef:t</value>"
        assert enc.fragment(None, T.VOID) == "<value></value>"
        assert enc.fragment([1, 2], T.SetOf(T.INT)) == "<value><array><data><value>1</value><value>2</value></data></array></value>"

    def test_encoder_is_compiled_once(self, enc):
        assert enc.encoder(THING) is enc.encoder(T.RecordOf("Thing"))
        assert enc.encoder(T.SetOf(OPS))(["start"]) == "<value><array><data><value>start</value></data></array></value>"


class TestTypes:
    @pytest.mark.parametrize("t, value, xml", [
        (T.STRING, "", "<value></value>"),
        (T.STRING, "plain", "<value>plain</value>"),
        (T.INT, 0, "<value>0</value>"),
        (T.INT, -(2 ** 63), "<value>-9223372036854775808</value>"),
        (T.INT, 2 ** 63 - 1, "<value>9223372036854775807</value>"),
        (T.BOOL, True, "<value><boolean>1</boolean></value>"),
        (T.BOOL, False, "<value><boolean>0</boolean></value>"),
        (T.FLOAT, 0.5, "<value><double>0.5</double></value>"),
        (T.FLOAT, 1.0, "<value><double>1</double></value>"),
        (T.FLOAT, 0.1, "<value><double>0.1</double></value>"),
        (T.FLOAT, 1e100, "<value><double>1e+100</double></value>"),
        (T.FLOAT, 0.30000000000000004, "<value><double>0.30000000000000004</double></value>"),
        (T.DATETIME, "20240131T13:05:09Z", "<value><dateTime.iso8601>20240131T13:05:09Z</dateTime.iso8601></value>"),
        (T.Ref("VM"), T.NULL_REF, "<value>OpaqueRef:NULL</value>"),
        (OPS, "stop", "<value>stop</value>"),
        (T.SetOf(T.STRING), [], "<value><array><data></data></array></value>"),
        (T.SetOf(T.STRING), ["a", "b"], "<value><array><data><value>a</value><value>b</value></data></array></value>"),
        (T.MapOf(T.STRING, T.STRING), {}, "<value><struct></struct></value>"),
        (T.MapOf(T.STRING, T.STRING), {"a": "b"},
         "<value><struct><member><name>a</name><value>b</value></member></struct></value>"),
        (T.MapOf(T.STRING, T.INT), {"0": 3},
         "<value><struct><member><name>0</name><value>3</value></member></struct></value>"),
        (T.MapOf(T.STRING, T.SetOf(T.STRING)), {"k": ["v"]},
         "<value><struct><member><name>k</name><value><array><data><value>v</value></data></array>"
         "</value></member></struct></value>"),
        (T.VOID, "ignored", "<value></value>"),
        (T.AnyRecord(), {"s": "x", "i": 1, "b": True, "f": 1.5, "l": [None], "d": {}},
         "<value><struct><member><name>s</name><value>x</value></member><member><name>i</name><value>1"
         "</value></member><member><name>b</name><value><boolean>1</boolean></value></member><member>"
         "<name>f</name><value><double>1.5</double></value></member><member><name>l</name><value><array>"
         "<data><value></value></data></array></value></member><member><name>d</name><value><struct>"
         "</struct></value></member></struct></value>"),
    ])
    def test_encodings(self, enc, t, value, xml):
        assert enc.encoder(t)(value) == xml

    def test_record_exact(self, enc):
        got = enc.encoder(THING)(thing())
        assert got == (
            "<value><struct>"
            "<member><name>uuid</name><value>0b5c3f6e-8d4a-4c1e-9f3a-2b7d6e5f4a3c</value></member>"
            "<member><name>name_label</name><value>web-1</value></member>"
            "<member><name>power</name><value>Running</value></member>"
            "<member><name>memory</name><value>8589934592</value></member>"
            "<member><name>ratio</name><value><double>0.5</double></value></member>"
            "<member><name>flag</name><value><boolean>1</boolean></value></member>"
            "<member><name>born</name><value><dateTime.iso8601>20240131T13:05:09Z</dateTime.iso8601></value></member>"
            "<member><name>owner</name><value>OpaqueRef:host-1</value></member>"
            "<member><name>parts</name><value><array><data><value>OpaqueRef:p1</value><value>OpaqueRef:p2</value>"
            "</data></array></value></member>"
            "<member><name>ops</name><value><array><data><value>start</value></data></array></value></member>"
            "<member><name>config</name><value><struct><member><name>k</name><value>v</value></member>"
            "<member><name>x</name><value>y</value></member></struct></value></member>"
            "<member><name>counts</name><value><struct><member><name>a</name><value>1</value></member>"
            "<member><name>b</name><value>1099511627776</value></member></struct></value></member>"
            "</struct></value>")

    def test_record_as_clients_see_it(self, enc):
        got = loads(enc.success({"OpaqueRef:t1": thing()}, T.MapOf(T.Ref("Thing"), THING)))["Value"]
        rec = got["OpaqueRef:t1"]
        assert rec["memory"] == str(8 << 30)  # untyped ints arrive as strings
        assert rec["counts"] == {"a": "1", "b": str(2 ** 40)}
        assert rec["flag"] is True and rec["ratio"] == 0.5
        assert isinstance(rec["born"], xc.DateTime) and rec["born"].value == "20240131T13:05:09Z"
        assert rec["parts"] == ["OpaqueRef:p1", "OpaqueRef:p2"] and rec["config"] == {"k": "v", "x": "y"}
        assert list(rec) == [f.name for f in PUBLIC]

    def test_record_fields_follow_declaration_order_and_defaults(self, enc):
        rec = loads(enc.success({"uuid": "u", "name_label": "n"}, THING))["Value"]
        assert list(rec) == [f.name for f in PUBLIC]
        assert rec["memory"] == "0" and rec["power"] == "Halted" and rec["owner"] == T.NULL_REF
        assert rec["born"].value == T.EPOCH and rec["parts"] == [] and rec["config"] == {}

    def test_record_key_order_does_not_matter(self, enc):
        r = thing()
        shuffled = dict(reversed(list(r.items())))
        assert enc.encoder(THING)(shuffled) == enc.encoder(THING)(r)

    def test_internal_fields_never_leave(self, enc):
        out = enc.success(thing(secret="hunter2"), THING)
        assert b"secret" not in out and b"hunter2" not in out

    def test_struct_types(self, enc):
        batch = T.Struct("event batch", (("events", T.SetOf(T.AnyRecord())), ("token", T.STRING),
                                         ("valid_ref_counts", T.MapOf(T.STRING, T.INT))))
        out = enc.encoder(batch)({"events": [{"id": 1}], "token": "t", "valid_ref_counts": {"vm": 2}, "extra": 1.5})
        assert out == ("<value><struct><member><name>events</name><value><array><data><value><struct><member>"
                       "<name>id</name><value>1</value></member></struct></value></data></array></value></member>"
                       "<member><name>token</name><value>t</value></member><member><name>valid_ref_counts</name>"
                       "<value><struct><member><name>vm</name><value>2</value></member></struct></value></member>"
                       "<member><name>extra</name><value><double>1.5</double></value></member></struct></value>")
        assert enc.encoder(batch)({"token": "t"}) == \
            "<value><struct><member><name>token</name><value>t</value></member></struct></value>"

    def test_unknown_record_class_is_inferred(self, enc):
        assert enc.encoder(T.RecordOf("Nope"))({"a": 1}) == \
            "<value><struct><member><name>a</name><value>1</value></member></struct></value>"

    def test_wire_datetime_inferred(self, enc):
        assert enc.encoder(T.AnyRecord())(WireDateTime("20240101T00:00:00Z")) == \
            "<value><dateTime.iso8601>20240101T00:00:00Z</dateTime.iso8601></value>"


class TestEscaping:
    def test_escape(self):
        assert escape('a&b<c>d"e') == "a&amp;b&lt;c&gt;d&quot;e"
        assert escape("a\x00b\x08c\x0bd\x0ce\x1ff\x7fg") == "abcdef\x7fg"
        assert escape("tab\tlf\ncr\r") == "tab\tlf\ncr&#13;"
        assert escape("x\ud800y\ufffez\uffff") == "xyz"
        assert escape("caf\u00e9 \U0001f600") == "caf\u00e9 \U0001f600"

    def test_strings_everywhere_are_escaped(self, enc):
        nasty = 'x&<y>"\r\x01\ud800'
        clean = 'x&<y>"\r'
        rec = thing(uuid=nasty, name_label="</value></member>", born="2024<", owner=nasty, power=nasty,
                    parts=[nasty, "ok"], ops=[nasty], config={nasty: nasty, "k": "v"},
                    counts={nasty: 1})
        value = loads(enc.success({nasty: rec}, T.MapOf(T.Ref("Thing"), THING)))["Value"]
        got = value[clean]
        assert got["uuid"] == got["owner"] == got["power"] == clean
        assert got["name_label"] == "</value></member>"
        assert got["born"].value == "2024<"
        assert got["parts"] == [clean, "ok"] and got["ops"] == [clean]
        assert got["config"] == {clean: clean, "k": "v"} and got["counts"] == {clean: "1"}

    def test_non_ascii_without_escapes_stays_on_the_fast_path(self, enc):
        rec = thing(name_label="\u65e5\u672c\u8a9e \u2603", config={"\u00e9": "\u00fc"})
        assert loads(enc.success(rec, THING))["Value"]["name_label"] == "\u65e5\u672c\u8a9e \u2603"

    @settings(max_examples=300, deadline=None)
    @given(st.text(), st.text(), st.lists(st.text(max_size=8), max_size=3),
           st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3))
    def test_any_text_gives_well_formed_replies(self, a, b, items, mapping):
        enc = XmlEncoder(API)
        rec = thing(name_label=a, uuid=b, parts=items, config=mapping)
        got = loads(enc.success(rec, THING))["Value"]
        keep = _xml_visible
        assert got["name_label"] == keep(a) and got["uuid"] == keep(b)
        assert got["parts"] == [keep(x) for x in items]
        assert got["config"] == {keep(k): keep(v) for k, v in mapping.items()}


def _xml_visible(s):
    """What a client reads back: characters XML cannot carry are gone."""
    return "".join(c for c in s if c in "\t\n\r" or (c >= " " and not "\ud800" <= c <= "\udfff"
                                                       and c not in "\ufffe\uffff"))


class TestFloats:
    @settings(max_examples=300, deadline=None)
    @given(st.floats(allow_nan=False))
    def test_round_trip(self, x):
        enc = XmlEncoder(API)
        assert loads(enc.success(x, T.FLOAT))["Value"] == x

    def test_sixteen_digits_when_exact(self, enc):
        assert enc.encoder(T.FLOAT)(2.5e-5) == "<value><double>2.5e-05</double></value>"
        assert enc.encoder(T.FLOAT)(123456.789) == "<value><double>123456.789</double></value>"

    def test_special_values(self, enc):
        assert enc.encoder(T.FLOAT)(math.inf) == "<value><double>inf</double></value>"
        assert enc.encoder(T.FLOAT)(math.nan) == "<value><double>nan</double></value>"


class TestRobustness:
    """Values of the wrong Python type still give well-formed XML (inferred), never an exception."""

    @pytest.mark.parametrize("t, value, xml", [
        (T.STRING, None, "<value></value>"),
        (T.STRING, 5, "<value>5</value>"),
        (T.INT, "12", "<value>12</value>"),
        (T.INT, None, "<value></value>"),
        (T.FLOAT, "x", "<value>x</value>"),
        (T.SetOf(T.STRING), ["a", 1], "<value><array><data><value>a</value><value>1</value></data></array></value>"),
        (T.SetOf(T.STRING), 7, "<value>7</value>"),
        (T.MapOf(T.STRING, T.STRING), {1: "a"},
         "<value><struct><member><name>1</name><value>a</value></member></struct></value>"),
        (T.MapOf(T.STRING, T.STRING), "notamap", "<value>notamap</value>"),
        (THING, None, "<value></value>"),
        (THING, "OpaqueRef:x", "<value>OpaqueRef:x</value>"),
    ])
    def test_fallbacks(self, enc, t, value, xml):
        assert enc.encoder(t)(value) == xml

    def test_one_bad_field_only_affects_itself(self, enc):
        good = loads(enc.success(thing(), THING))["Value"]
        bad = loads(enc.success(thing(memory="lots", parts=None, config=[("a", "b")]), THING))["Value"]
        assert bad["memory"] == "lots" and bad["parts"] == [] and bad["config"] == [["a", "b"]]
        for k in good:
            if k not in ("memory", "parts", "config"):
                assert bad[k] == good[k]

    def test_bad_record_in_a_big_map_only_affects_itself(self, enc):
        recs = {f"OpaqueRef:{i}": thing(name_label=f"vm{i}") for i in range(5)}
        recs["OpaqueRef:2"] = thing(flag=None)
        got = loads(enc.success(recs, T.MapOf(T.Ref("Thing"), THING)))["Value"]
        assert [r["name_label"] for r in got.values()] == ["vm0", "vm1", "web-1", "vm3", "vm4"]
        assert got["OpaqueRef:2"]["flag"] is False and got["OpaqueRef:1"]["flag"] is True

    def test_unhashable_type_is_inferred(self, enc):
        class Odd:
            __hash__ = None
            kind = "weird"
        assert enc.encoder(Odd())([1]) == "<value><array><data><value>1</value></data></array></value>"
