"""Hostile request bodies, the generator: 1,000 seeded cases of bad XML, bad JSON, hostile
XML features, deep nesting, wrong types, counts and refs, and legal calls that are undone."""

import functools
import json
import random
import uuid
from typing import Any, List, Tuple

from .hostile_wire import (B64, DT, MAX_BODY, WRONG_TYPE, XML_PATHS, Case, Raw, World, json_call,
                           junk_text, random_ref, xml_call)


class Generator:
    """Builds the seeded list of cases."""

    def __init__(self, rng: random.Random, world: World):
        self.rng = rng
        self.w = world
        self.next_id = 0

    # -- helpers
    def xml_path(self):
        return self.rng.choice(XML_PATHS)

    def ident(self):
        self.next_id += 1
        return self.rng.choice((self.next_id, f"id-{self.next_id}"))

    def call_case(self, desc, method, params, expect, codes=(), exact=None, proto=None, xml_ok=True,
                  value=None, check_value=False) -> Case:
        """A call encoded for XML-RPC or JSON-RPC (proto None: random)."""
        rng = self.rng
        if proto is None:
            proto = "xml" if (xml_ok and rng.random() < 0.5) else "json"
        if proto == "xml":
            body = xml_call(method, params, rng, prolog=rng.random() < 0.7)
            return Case(desc + " [xml]", self.xml_path(), body, expect, frozenset(codes), exact,
                        value, check_value)
        ident, v2 = self.ident(), rng.random() < 0.5
        return Case(desc + " [json]", "/jsonrpc", json_call(method, params, ident, v2), expect,
                    frozenset(codes), exact, value, check_value, json_id=ident, json_v2=v2)

    def valid_xml(self):
        w, rng = self.w, self.rng
        method, params = rng.choice((
            ("VM.get_record", [w.session, w.dom0]),
            ("VM.set_name_label", [w.session, w.dom0, "x" * rng.randint(0, 40)]),
            ("VM.add_to_other_config", [w.session, w.dom0, "k", "v"]),
            ("network.create", [w.session, {"name_label": "n", "other_config": {"a": "b"}}]),
            ("session.login_with_password", ["root", "pw", "1.0", "fuzz"]),
            ("VM.set_user_version", [w.session, w.dom0, 7]),
            ("VM.set_tags", [w.session, w.dom0, ["a", "b"]]),
        ))
        return method, xml_call(method, params, rng)

    def valid_json(self):
        w, rng = self.w, self.rng
        method, params = rng.choice((
            ("VM.get_record", [w.session, w.dom0]),
            ("VM.set_name_label", [w.session, w.dom0, "y" * rng.randint(0, 40)]),
            ("network.create", [w.session, {"name_label": "n", "other_config": {}}]),
            ("VM.set_other_config", [w.session, w.dom0, {"a": "b"}]),
        ))
        return json_call(method, params, self.ident(), rng.random() < 0.5)

    # -- XML bodies that are not calls: HTTP 500
    def xml_malformed(self) -> Case:
        rng = self.rng
        kind = rng.choice(("truncated", "unbalanced", "garbage", "bad_utf8", "doctype", "nesting",
                           "structure", "scalar", "pi", "empty", "control"))
        _, body = self.valid_xml()
        if kind == "truncated":
            body = body[:rng.randrange(0, len(body) - 1)]
        elif kind == "unbalanced":
            tags = [i for i in range(len(body)) if body.startswith(b"</", i)]
            at = rng.choice(tags)
            end = body.index(b">", at) + 1
            choice = rng.random()
            if choice < 0.4:  # drop a closing tag
                body = body[:at] + body[end:]
            elif choice < 0.7:  # close a tag that is not open
                body = body[:at] + b"</bogus>" + body[at:]
            else:  # close twice
                body = body[:end] + body[at:end] + body[end:]
        elif kind == "garbage":
            n = rng.choice((1, 7, 100, 4096, 65536))
            body = rng.randbytes(n)
            if rng.random() < 0.5:
                body = b"<methodCall>" + body
        elif kind == "bad_utf8":
            bad = rng.choice((b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
                              b"\x80", b"\xe2\x82", b"\xf4\x90\x80\x80"))
            label = Raw(b"ok" + bad + b"ok")
            w = self.w
            body = xml_call("VM.set_name_label", [w.session, w.dom0, label], rng)
            if rng.random() < 0.3:
                body = body.replace(b"<?xml version='1.0'?>", b"<?xml version='1.0' encoding='ISO-8859-1'?>")
        elif kind == "doctype":
            body = rng.choice((
                b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;'
                b'&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'
                b'&lol2;&lol2;">]><methodCall><methodName>&lol3;</methodName><params/></methodCall>',
                b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                b'<methodCall><methodName>VM.get_all</methodName><params><param><value>&xxe;</value>'
                b'</param></params></methodCall>',
                b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY % pe SYSTEM "http://127.0.0.1:1/x.dtd"> %pe;]>'
                b'<methodCall><methodName>VM.get_all</methodName><params/></methodCall>',
                b'<!DOCTYPE methodCall SYSTEM "http://127.0.0.1:1/evil.dtd"><methodCall><methodName>'
                b'VM.get_all</methodName><params/></methodCall>',
                b'<?xml version="1.0"?><!DOCTYPE m [<!ELEMENT methodCall ANY>]><methodCall><methodName>'
                b'VM.get_all</methodName><params/></methodCall>',
                b'<methodCall><methodName>&undefined;</methodName><params/></methodCall>',
            ))
        elif kind == "nesting":
            depth = rng.choice((101, 1000, 10000, 10000))
            if rng.random() < 0.5:
                opening, closing = b"<value><array><data>", b"</data></array></value>"
            else:
                opening, closing = b"<value><struct><member><name>k</name>", b"</member></struct></value>"
            head = b"<methodCall><methodName>VM.get_record</methodName><params><param>"
            tail = b"</param></params></methodCall>"
            body = head + opening * depth + closing * depth + tail
            if len(body) > MAX_BODY or rng.random() < 0.3:
                body = head + opening * depth  # never closed (10,000 closed levels do not fit)
            if len(body) > MAX_BODY:
                body = head + opening * ((MAX_BODY - len(head)) // len(opening))
        elif kind == "structure":
            w = self.w
            body = rng.choice((
                b"<methodResponse><params/></methodResponse>",
                b"<methodCall><methodName>VM.get_all</methodName><params/></methodCall><methodCall/>",
                b"<methodCall>text<methodName>VM.get_all</methodName><params/></methodCall>",
                b"<methodCall><methodName>VM.get_all</methodName><params><param><value><bogus/></value>"
                b"</param></params></methodCall>",
                b"<methodCall><methodName>VM.get_all</methodName><params><param><value>a</value>"
                b"<value>b</value></param></params></methodCall>",
                b"<methodCall><methodName>VM.get_all</methodName><params/><params/></methodCall>",
                b"<methodCall><params/></methodCall>",
                b"<methodCall><methodName></methodName><params/></methodCall>",
                b"<methodCall><methodName>VM.get_all</methodName><params><param><value><struct><member>"
                b"<value>x</value></member></struct></value></param></params></methodCall>",
                b"<methodCall><methodName>VM.get_all</methodName><params><param><value><array><value>x"
                b"</value></array></value></param></params></methodCall>",
                b"<methodCall><methodName>VM.get_all</methodName><params><param><value>x<string>y"
                b"</string></value></param></params></methodCall>",
                b"<methodCall><methodName>VM.get_all</methodName><params><param><value><string>"
                b"<string>x</string></string></value></param></params></methodCall>",
                b"<x:methodCall xmlns:x='urn:x'><methodName>VM.get_all</methodName></x:methodCall>",
                ("<methodCall><methodName>VM.get_record</methodName><params><param><value>%s</value></param>"
                 "<param>oops</param></params></methodCall>" % w.session).encode(),
            ))
        elif kind == "scalar":
            bad = rng.choice((b"<int>abc</int>", b"<int></int>", b"<i4>1.5</i4>", b"<i8>" + b"9" * 41 + b"</i8>",
                              b"<boolean>2</boolean>", b"<boolean>yes</boolean>", b"<double>1e</double>",
                              b"<double>0x10</double>", b"<base64>!!!not base64</base64>", b"<base64>abc</base64>",
                              b"<dateTime.iso8601>tomorrow</dateTime.iso8601>",
                              b"<dateTime.iso8601>20241399T99:99:99Z</dateTime.iso8601>",
                              b"<nil>x</nil>", b"<int><int>1</int></int>"))
            body = (b"<methodCall><methodName>VM.set_user_version</methodName><params><param><value>"
                    + self.w.session.encode() + b"</value></param><param><value>" + self.w.dom0.encode()
                    + b"</value></param><param><value>" + bad + b"</value></param></params></methodCall>")
        elif kind == "pi":
            body = b"<?xml version='1.0'?><?evil run='rm -rf /'?>" + body.split(b"?>", 1)[-1]
        elif kind == "empty":
            body = rng.choice((b"", b" ", b"\r\n\r\n", b"<?xml version='1.0'?>", b"<!-- only a comment -->"))
        elif kind == "control":
            body = body.replace(b"</methodName>", rng.choice((b"&#0;", b"&#1;", b"\x01", b"&#xD800;", b"\x00"))
                                + b"</methodName>", 1)
        return Case(f"xml malformed: {kind}", self.xml_path(), body, "500")

    # -- JSON bodies that are not calls: HTTP 500
    def json_malformed(self) -> Case:
        rng, w = self.rng, self.w
        kind = rng.choice(("truncated", "garbage", "bad_utf8", "constant", "nesting", "shape", "params",
                           "id", "method", "version", "bigint", "trailing"))
        good = self.valid_json()
        if kind == "truncated":
            body = good[:rng.randrange(0, len(good) - 1)]
        elif kind == "garbage":
            body = rng.randbytes(rng.choice((1, 9, 300, 20000)))
            if rng.random() < 0.5:
                body = b'{"method": ' + body
        elif kind == "bad_utf8":
            bad = rng.choice((b"\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80"))
            body = (b'{"method": "VM.set_name_label", "params": ["' + w.session.encode() + b'", "'
                    + w.dom0.encode() + b'", "x' + bad + b'x"], "id": 1}')
        elif kind == "constant":
            c = rng.choice((b"NaN", b"Infinity", b"-Infinity"))
            body = b'{"method": "VM.set_user_version", "params": ["' + w.session.encode() + b'", "' \
                   + w.dom0.encode() + b'", ' + c + b'], "id": 1}'
        elif kind == "nesting":
            depth = rng.choice((10000, 100000))
            if rng.random() < 0.5:
                body = b'{"method": "VM.get_record", "params": ' + b"[" * depth + b"]" * depth + b', "id": 1}'
            else:
                depth = min(depth, 50000)
                body = b'{"method": "VM.get_record", "params": [' + b'{"a":' * depth + b"1" + b"}" * depth \
                       + b'], "id": 1}'
        elif kind == "shape":
            body = rng.choice((b"[]", b"[" + good + b"]", b"1", b'"VM.get_all"', b"null", b"true", b"{}"))
        elif kind == "params":
            params = rng.choice(({"session": w.session}, "x", 1, None, True))
            body = json.dumps({"jsonrpc": "2.0", "method": "VM.get_all", "params": params, "id": 1}).encode()
        elif kind == "id":
            req = {"method": "VM.get_all", "params": [w.session]}
            if rng.random() < 0.5:
                req["jsonrpc"] = "2.0"
            ident = rng.choice((None, True, False, 1.5, [1], {"a": 1}, "missing"))
            if ident != "missing":
                req["id"] = ident
            body = json.dumps(req).encode()
        elif kind == "method":
            req = {"params": [w.session], "id": 3}
            m = rng.choice((42, None, "", ["VM.get_all"], {"name": "VM.get_all"}, 1.5, True, "missing"))
            if m != "missing":
                req["method"] = m
            if rng.random() < 0.5:
                req["jsonrpc"] = "2.0"
            body = json.dumps(req).encode()
        elif kind == "version":
            ver = rng.choice(("1.0", 2.0, 2, None, "2", "3.0", ""))
            body = json.dumps({"jsonrpc": ver, "method": "VM.get_all", "params": [w.session], "id": 1}).encode()
        elif kind == "bigint":
            body = (b'{"method": "VM.set_user_version", "params": ["' + w.session.encode() + b'", "'
                    + w.dom0.encode() + b'", ' + b"7" * rng.choice((4301, 10000, 100000)) + b'], "id": 1}')
        else:  # trailing
            body = good + rng.choice((b"x", b"{}", b",", b"]", b"\x00"))
        if kind == "params" and rng.random() < 0.5:  # the v1 form without params is no call either
            body = json.dumps({"method": "VM.get_all", "id": 9}).encode()
        return Case(f"json malformed: {kind}", "/jsonrpc", body, "500")

    # -- wrong types in one parameter position
    SPECS = (
        ("VM.get_record", ["session", "ref:VM"]),
        ("VM.set_name_label", ["session", "ref:VM", "string"]),
        ("VM.add_to_other_config", ["session", "ref:VM", "string", "string"]),
        ("VM.remove_from_other_config", ["session", "ref:VM", "string"]),
        ("VM.add_tags", ["session", "ref:VM", "string"]),
        ("VM.set_tags", ["session", "ref:VM", "set"]),
        ("VM.set_other_config", ["session", "ref:VM", "map"]),
        ("VM.set_user_version", ["session", "ref:VM", "int"]),
        ("VM.set_actions_after_reboot", ["session", "ref:VM", "enum"]),
        ("VM.set_is_a_template", ["session", "ref:VM", "bool"]),
        ("VM.set_affinity", ["session", "ref:VM", "ref:host"]),
        ("VM.destroy", ["session", "ref:VM"]),
        ("VM.create", ["session", "record:VM"]),
        ("network.create", ["session", "record:network"]),
        ("network.destroy", ["session", "ref:network"]),
        ("pool.set_name_description", ["session", "ref:pool", "string"]),
        ("host.get_record", ["session", "ref:host"]),
        ("VM.get_by_uuid", ["session", "string"]),
        ("VM.get_all_records_where", ["session", "string"]),
        ("session.login_with_password", ["string", "string", "string", "string"]),
        ("session.change_password", ["session", "string", "string"]),
    )

    def real_ref(self, cls):
        return {"VM": self.w.dom0, "host": self.w.host, "pool": self.w.pool}.get(cls)

    def valid_value(self, kind, proto):
        """A well-typed value for a non-target position (refs may or may not exist)."""
        rng, w = self.rng, self.w
        if kind == "session":
            return w.session
        if kind.startswith("ref:"):
            real = self.real_ref(kind[4:])
            return real if real and rng.random() < 0.6 else random_ref(rng)
        if kind == "string":
            return junk_text(rng, rng.randint(1, 30))
        if kind == "set":
            return [junk_text(rng, 3) for _ in range(rng.randint(0, 3))]
        if kind == "map":
            return {junk_text(rng, 4): junk_text(rng, 4) for _ in range(rng.randint(0, 3))}
        if kind == "int":
            return rng.choice((0, 7, -1, 2 ** 40, "12"))
        if kind == "enum":
            return rng.choice(("destroy", "restart"))
        if kind == "bool":
            return rng.random() < 0.5
        if kind == "record:VM":
            return vm_record(junk_text(rng, 10))
        if kind == "record:network":
            return {"name_label": junk_text(rng, 8), "name_description": "", "other_config": {}}
        raise AssertionError(kind)

    def wrong_value(self, kind, proto) -> Tuple[Any, frozenset]:
        """A wrongly-typed value for `kind` and the error codes it may draw."""
        rng = self.rng
        xml = proto == "xml"
        nested = rng.choice(([1, [2, [3]]], {"a": {"b": [1]}}, [], {}))
        common = [12345, 2.5, True, nested, [junk_text(rng, 3)], {"k": "v"}]
        if xml:
            common.append(B64(rng.randbytes(rng.randint(0, 20))))
        if kind == "session":
            v = rng.choice(common + [random_ref(rng), "", None, "OpaqueRef:NULL", junk_text(rng, 20)])
            return v, frozenset({"SESSION_INVALID"})
        if kind.startswith("ref:"):
            v = rng.choice(common + [None])
            codes = WRONG_TYPE | ({"HANDLE_INVALID"} if v is None else set())
            return v, frozenset(codes)
        if kind == "string":
            return rng.choice(common), frozenset(WRONG_TYPE)
        if kind == "int":
            pool = [2.5, True, False, nested, {"k": "v"}, None, "twelve", "1.5", 2 ** 63, -2 ** 63 - 1, ""]
            if xml:
                pool += [B64(b"12"), DT("20240101T00:00:00Z")]
            return rng.choice(pool), frozenset(WRONG_TYPE)
        if kind == "bool":
            pool = [1, 0, "true", "1", 2.0, nested, None, {"a": "b"}] + ([B64(b"\x01")] if xml else [])
            return rng.choice(pool), frozenset(WRONG_TYPE)
        if kind == "enum":
            pool = [7, True, nested, None, "Restart", "RESTART", "reboot", "", junk_text(rng, 6)]
            return rng.choice(pool), frozenset(WRONG_TYPE)
        if kind == "set":
            pool = ["a", 5, {"k": "v"}, None, [1, 2], [["a"]], [{"a": "b"}], [True], [2.5]]
            return rng.choice(pool), frozenset(WRONG_TYPE)
        if kind == "map":
            pool = ["a", 5, ["a", "b"], None, {"k": 1}, {"k": ["v"]}, {"k": {"x": "y"}}, {"k": True},
                    {"k": 2.5}]
            return rng.choice(pool), frozenset(WRONG_TYPE)
        if kind.startswith("record:"):
            good = self.valid_value(kind, proto)
            how = rng.choice(("not_struct", "missing", "bad_field"))
            if how == "not_struct":
                return rng.choice(common[:-1] + ["record", None]), frozenset(WRONG_TYPE)
            mandatory = [k for k in good if k in MANDATORY[kind[7:]]]
            if how == "missing":
                del good[rng.choice(mandatory)]
            else:
                name = rng.choice(mandatory)
                good[name] = {"not": "this"} if not isinstance(good[name], dict) else "not a map"
            return good, frozenset(WRONG_TYPE)
        raise AssertionError(kind)

    def wrong_types(self, method=None, kinds=None, pos=None, proto=None) -> Case:
        rng = self.rng
        if method is None:
            method, kinds = rng.choice(self.SPECS)
            proto = rng.choice(("xml", "json"))
            pos = rng.randrange(len(kinds))
        # a valid-typed login or password change costs a scrypt: keep those to the type errors
        params = [self.valid_value(k, proto) for k in kinds]
        bad, codes = self.wrong_value(kinds[pos], proto)
        params[pos] = bad
        return self.call_case(f"wrong type: {method} param {pos} ({kinds[pos]}) = {short(bad)}", method,
                              params, "fail", codes, proto=proto)

    # -- wrong numbers of parameters
    def wrong_count(self) -> Case:
        rng, w = self.rng, self.w
        method, kinds = rng.choice(self.SPECS)
        session = kinds[0] == "session"
        arity = len(kinds) - (1 if session else 0)  # none of these has defaults except login
        required = 2 if method == "session.login_with_password" else arity
        bad_counts = [n for n in range(0, arity + 4) if not required <= n <= arity]
        n = rng.choice(bad_counts)
        extra = [junk_text(rng, 5) for _ in range(n)]
        if session:
            if n == 0 and rng.random() < 0.5:
                params = []  # no session at all: received counts without the session, as xapi
                exact = ["MESSAGE_PARAMETER_COUNT_MISMATCH", method, str(required), "-1"]
            else:
                params = [w.session] + extra
                exact = ["MESSAGE_PARAMETER_COUNT_MISMATCH", method, str(required), str(n)]
        else:
            params = extra
            exact = ["MESSAGE_PARAMETER_COUNT_MISMATCH", method, str(required), str(n)]
        return self.call_case(f"wrong count: {method} with {n}", method, params, "fail",
                              {"MESSAGE_PARAMETER_COUNT_MISMATCH"}, exact=exact)

    # -- unknown methods
    def unknown_method(self) -> Case:
        rng, w = self.rng, self.w
        name = rng.choice((
            f"VM.frobnicate_{rng.getrandbits(32):x}", f"Nope{rng.getrandbits(16):x}.get_all",
            "vm.get_all", "VM..get_all", "VM.get_all.x", ".get_all", "VM.", "pool_frob", "a" * 5000,
            f"{junk_text(rng, 12).strip() or 'x'}.{rng.getrandbits(16):x}", "VM.get_record\u00e9",
            "session.login", "VM.destroy_all",
        ))
        how = rng.choice(("session", "bad_session", "none"))
        if how == "session":
            params, exact = [w.session, "x"], ["MESSAGE_METHOD_UNKNOWN", name]
        elif how == "bad_session":
            bad = random_ref(rng)
            params, exact = [bad], ["SESSION_INVALID", bad]
        else:
            params, exact = [], ["MESSAGE_METHOD_UNKNOWN", name]
        return self.call_case(f"unknown method {short(name)} ({how})", name, params, "fail",
                              {exact[0]}, exact=exact)

    # -- well-typed calls naming objects that do not exist
    def random_refs(self) -> Case:
        rng, w = self.rng, self.w
        bad = rng.choice((random_ref(rng), "OpaqueRef:NULL", "garbage", "", w.session, w.pool, w.host,
                          "OpaqueRef:" + "0" * 36, "OpaqueRef:" + junk_text(rng, 30)))
        choice = rng.randrange(9)
        if choice == 0:
            m, params, exact = "VM.get_record", [w.session, bad], ["HANDLE_INVALID", "VM", bad]
        elif choice == 1:
            m, params, exact = "VM.destroy", [w.session, bad], ["HANDLE_INVALID", "VM", bad]
        elif choice == 2:
            m, params, exact = ("VM.set_name_label", [w.session, bad, junk_text(rng, 10)],
                                ["HANDLE_INVALID", "VM", bad])
        elif choice == 3:
            m, params, exact = ("VM.add_to_other_config", [w.session, bad, "k", "v"],
                                ["HANDLE_INVALID", "VM", bad])
        elif choice == 4:
            m, params, exact = "network.destroy", [w.session, bad], ["HANDLE_INVALID", "network", bad]
        elif choice == 5:
            # an existing VM given a host that does not exist
            bad = bad if bad not in (w.host, "OpaqueRef:NULL") else random_ref(rng)
            m, params, exact = ("VM.set_affinity", [w.session, w.dom0, bad], ["HANDLE_INVALID", "host", bad])
        elif choice == 6:
            bad = bad if bad not in (w.host, "OpaqueRef:NULL") else random_ref(rng)
            rec = vm_record("never created " + junk_text(rng, 5))
            rec["affinity"] = bad
            m, params, exact = "VM.create", [w.session, rec], ["HANDLE_INVALID", "host", bad]
        elif choice == 7:
            u = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            m, params, exact = "VM.get_by_uuid", [w.session, u], ["UUID_INVALID", "VM", u]
        else:
            m, params, exact = "VM.get_record", [w.session, w.host], ["HANDLE_INVALID", "VM", w.host]
        return self.call_case(f"random ref: {m} {short(bad)}", m, params, "fail", {exact[0]}, exact=exact)

    # -- big but legal bodies that still fail (and a query language fuzz)
    def huge_failing(self) -> Case:
        rng, w = self.rng, self.w
        n = rng.randint(100 * 1024, 250 * 1024)
        big = "z" * n
        choice = rng.randrange(4)
        if choice == 0:
            ref = random_ref(rng)
            return self.call_case("huge: set_name_label on a missing VM", "VM.set_name_label",
                                  [w.session, ref, big], "fail", {"HANDLE_INVALID"},
                                  exact=["HANDLE_INVALID", "VM", ref])
        if choice == 1:
            name = "VM.x" + big[: n // 2]
            return self.call_case("huge: unknown method name", name, [w.session], "fail",
                                  {"MESSAGE_METHOD_UNKNOWN"}, exact=["MESSAGE_METHOD_UNKNOWN", name])
        if choice == 2:
            return self.call_case("huge: many parameters", "VM.get_record",
                                  [w.session] + ["p"] * (n // 80), "fail",
                                  {"MESSAGE_PARAMETER_COUNT_MISMATCH"})
        return self.call_case("huge: many tags, one of them wrong", "VM.set_tags",
                              [w.session, w.dom0, ["t%d" % i for i in range(n // 60)] + [7]],
                              "fail", WRONG_TYPE)

    def query_fuzz(self) -> Case:
        rng, w = self.rng, self.w
        expr = rng.choice((
            junk_text(rng, rng.randint(0, 60)), "field " * 50, "(" * 5000, "not " * 3000 + "true",
            'field "name__label" = ', 'field "nonexistent" = "x"', '"', "true and", "or or or",
            'field "name__label" = "x" and (true or', "\\", "))", "=",
        ))
        return self.call_case(f"query fuzz {short(expr)}", "VM.get_all_records_where", [w.session, expr],
                              "ok_or_fail", {"INVALID_VALUE"})

    def read_only(self) -> Case:
        rng, w = self.rng, self.w
        m, params = rng.choice((("VM.get_all", [w.session]), ("VM.get_record", [w.session, w.dom0]),
                                ("pool.get_all_records", [w.session]), ("system.listMethods", []),
                                ("VM_get_record", [w.session, w.dom0]), ("host.get_record", [w.session, w.host])))
        return self.call_case(f"read-only {m}", m, params, "ok")

    def oversize(self) -> Case:
        rng, w = self.rng, self.w
        n = rng.choice((MAX_BODY + 1, MAX_BODY + 1024, 310 * 1024, 512 * 1024, 2 * 1024 * 1024))
        # a real mutation padded past the limit: it must never run
        head = xml_call("pool.set_name_description", [w.session, w.pool, "OVERSIZE"], rng)
        body = head + b" " * (n - len(head))
        return Case(f"oversize {n} bytes", self.xml_path(), body, "413", chunked=rng.random() < 0.4)

    def legit_huge(self, k) -> List[Case]:
        """A 250 KiB name set, read back and set back: legal, must succeed."""
        rng, w = self.rng, self.w
        proto = "xml" if k % 2 == 0 else "json"
        target = "VM" if k < 2 else rng.choice(("VM", "pool"))  # dom0's name_label, in both protocols
        plain = "".join(rng.choice("abcdefghij klmnopqrstuvwxyz") for _ in range(1024))
        special = "\u00e9\u20ac\U0001f600<&>\"'\t\n"
        text = "".join(plain[rng.randrange(1000):][:60] + rng.choice(special) for _ in range(250 * 1024 // 40))
        text = text[:250 * 1024]
        if target == "VM":
            setter, getter, ref, old = "VM.set_name_label", "VM.get_name_label", w.dom0, w.dom0_name
        else:
            setter, getter, ref, old = ("pool.set_name_description", "pool.get_name_description", w.pool,
                                        w.pool_description)
        # keep the body under the limit whatever the escaping costs
        while len(xml_call(setter, [w.session, ref, text], rng)) > MAX_BODY - 1024 or \
                len(json_call(setter, [w.session, ref, text], 1, True)) > MAX_BODY - 1024:
            text = text[:-1024]
        assert len(text) > 200 * 1024
        return [
            self.call_case(f"legit huge {setter} ({len(text)} chars)", setter, [w.session, ref, text], "ok",
                           proto=proto, value="", check_value=True),
            self.call_case(f"legit huge {getter}", getter, [w.session, ref], "ok", proto=proto, value=text,
                           check_value=True),
            self.call_case(f"legit {setter} back", setter, [w.session, ref, old], "ok", proto=proto,
                           value="", check_value=True),
            self.call_case(f"legit {getter} back", getter, [w.session, ref], "ok", proto=proto, value=old,
                           check_value=True),
        ]

    def build(self, n: int) -> List[Case]:
        rng = self.rng
        legit = [self.legit_huge(k) for k in range(5)]
        n_legit = sum(len(x) for x in legit)
        kinds = ([(self.oversize, 12), (self.huge_failing, 12), (self.read_only, 20), (self.query_fuzz, 30)])
        fixed = [f for f, count in kinds for _ in range(count)]
        # every parameter position of every fuzzed method, in both protocols, at least once
        fixed += [functools.partial(self.wrong_types, method, kinds_, pos, proto)
                  for method, kinds_ in self.SPECS for pos in range(len(kinds_)) for proto in ("xml", "json")]
        weighted = [(self.xml_malformed, 30), (self.json_malformed, 22), (self.wrong_types, 25),
                    (self.wrong_count, 7), (self.unknown_method, 6), (self.random_refs, 10)]
        funcs, weights = zip(*weighted)
        rest = n - n_legit - len(fixed)
        makers = fixed + rng.choices(funcs, weights, k=rest)
        rng.shuffle(makers)
        cases = [make() for make in makers]
        # each sequence stays contiguous: insert from the highest position down
        for at, seq in zip(sorted(rng.sample(range(len(cases) + 1), len(legit)), reverse=True), legit):
            cases[at:at] = seq
        assert len(cases) == n
        return cases


MANDATORY = {
    "VM": ("user_version", "is_a_template", "affinity", "memory_static_max", "memory_dynamic_max",
           "memory_dynamic_min", "memory_static_min", "VCPUs_params", "VCPUs_max", "VCPUs_at_startup",
           "actions_after_shutdown", "actions_after_reboot", "actions_after_crash", "PV_bootloader",
           "PV_kernel", "PV_ramdisk", "PV_args", "PV_bootloader_args", "PV_legacy_args", "HVM_boot_policy",
           "HVM_boot_params", "platform", "PCI_bus", "other_config", "recommendations"),
    "network": ("other_config",),
}


def vm_record(name: str) -> dict:
    """A full VM.create record (every mandatory member, §3.0 of the protocol notes)."""
    gib = str(2 ** 30)
    return {
        "name_label": name, "name_description": "hostile", "user_version": "1", "is_a_template": False,
        "affinity": "OpaqueRef:NULL", "memory_static_max": gib, "memory_dynamic_max": gib,
        "memory_dynamic_min": gib, "memory_static_min": gib, "VCPUs_params": {}, "VCPUs_max": "1",
        "VCPUs_at_startup": "1", "actions_after_shutdown": "destroy", "actions_after_reboot": "restart",
        "actions_after_crash": "restart", "PV_bootloader": "", "PV_kernel": "", "PV_ramdisk": "",
        "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "", "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {"order": "cd"}, "platform": {}, "PCI_bus": "", "other_config": {},
        "recommendations": "",
    }


def short(v, n=60) -> str:
    r = repr(v)
    return r if len(r) <= n else r[:n] + f"...({len(r)} chars)"
