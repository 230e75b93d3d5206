"""Every API error over the wire, with its exact code and parameters.

A raw `xmlrpc.client.ServerProxy` (no XenAPI wrapper) shows the envelope as
the server wrote it: {"Status": "Failure", "ErrorDescription": [CODE, …]}.
The last tests look at the reply bytes themselves.
"""

import http.client
import re
import xmlrpc.client

import pytest

from hostagent.datamodel.api import build_api

# Only the API over TCP: lab/run.py runs these against the agent in the Xen lab's dom0 as well
# (lab_agent.py); the VM and network they make are removed again.
pytestmark = pytest.mark.lab

NULL = "OpaqueRef:NULL"
GHOST = "OpaqueRef:5f0c0000-0000-4000-8000-000000000000"


def call(proxy, method, *params):
    return getattr(proxy, method)(*params)


def failure(*description):
    return {"Status": "Failure", "ErrorDescription": list(description)}


def success(value):
    return {"Status": "Success", "Value": value}


def ok(proxy, method, *params):
    env = call(proxy, method, *params)
    assert env.get("Status") == "Success", env
    return env["Value"]


def raw(agent, body: bytes, path="/"):
    """(status, Content-Type, body bytes) of one POST."""
    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=30)
    try:
        conn.request("POST", path, body, {"Content-Type": "text/xml"})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read()
    finally:
        conn.close()


def raw_call(agent, method, *params):
    return raw(agent, xmlrpc.client.dumps(tuple(params), method, allow_none=True).encode())


def envelope(body: bytes):
    (env,), _ = xmlrpc.client.loads(body)
    return env


def method_call(method, *values):
    """A methodCall with hand-written <value> contents."""
    params = "".join(f"<param><value>{v}</value></param>" for v in values)
    return (f"<?xml version='1.0'?><methodCall><methodName>{method}</methodName>"
            f"<params>{params}</params></methodCall>").encode()


@pytest.fixture(scope="module")
def proxy(agent):
    return xmlrpc.client.ServerProxy(agent.url, allow_none=True)


@pytest.fixture(scope="module")
def s(agent, proxy):
    ref = ok(proxy, "session.login_with_password", "root", agent.password, "2.21", "test-errors")
    yield ref
    call(proxy, "session.logout", ref)


@pytest.fixture(scope="module")
def vm(proxy, s):
    ref = ok(proxy, "VM.create", s, {
        "name_label": "errors-vm", "name_description": "", "user_version": "1", "is_a_template": False,
        "affinity": NULL, "memory_static_max": str(1 << 30), "memory_dynamic_max": str(1 << 30),
        "memory_dynamic_min": str(1 << 30), "memory_static_min": str(1 << 30), "VCPUs_params": {},
        "VCPUs_max": "1", "VCPUs_at_startup": "1", "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart", "actions_after_crash": "restart", "PV_bootloader": "",
        "PV_kernel": "", "PV_ramdisk": "", "PV_args": "", "PV_bootloader_args": "", "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order", "HVM_boot_params": {}, "platform": {}, "PCI_bus": "",
        "other_config": {}, "recommendations": ""})
    yield ref
    call(proxy, "VM.destroy", s, ref)


@pytest.fixture(scope="module")
def net(proxy, s):
    ref = ok(proxy, "network.create", s, {"name_label": "errors-net", "other_config": {}})
    yield ref
    call(proxy, "network.destroy", s, ref)


# --------------------------------------------------------------------------- handles and uuids

def test_handle_invalid_for_unknown_null_and_foreign_refs(proxy, s):
    pool = ok(proxy, "pool.get_all", s)[0]
    host = ok(proxy, "host.get_all", s)[0]
    assert call(proxy, "VM.get_record", s, GHOST) == failure("HANDLE_INVALID", "VM", GHOST)
    assert call(proxy, "VM.get_record", s, NULL) == failure("HANDLE_INVALID", "VM", NULL)
    assert call(proxy, "VM.get_record", s, pool) == failure("HANDLE_INVALID", "VM", pool)
    assert call(proxy, "VM.get_name_label", s, host) == failure("HANDLE_INVALID", "VM", host)
    assert call(proxy, "VM.set_name_label", s, pool, "x") == failure("HANDLE_INVALID", "VM", pool)
    assert call(proxy, "VM.destroy", s, GHOST) == failure("HANDLE_INVALID", "VM", GHOST)
    assert call(proxy, "host.get_record", s, "not even a ref") == failure("HANDLE_INVALID", "host", "not even a ref")
    assert call(proxy, "host_metrics.get_live", s, host) == failure("HANDLE_INVALID", "host_metrics", host)
    # and the pool itself is still fine
    assert ok(proxy, "pool.get_master", s, pool) == host


def test_handle_invalid_for_a_dangling_ref_in_a_constructor(proxy, s, vm):
    assert call(proxy, "VIF.create", s, {
        "device": "0", "network": GHOST, "VM": vm, "MAC": "", "MTU": "1500", "other_config": {},
        "qos_algorithm_type": "", "qos_algorithm_params": {}}) == failure("HANDLE_INVALID", "network", GHOST)
    assert ok(proxy, "VM.get_VIFs", s, vm) == []


def test_uuid_invalid(proxy, s):
    uuid = "00000000-0000-4000-8000-00000000beef"
    assert call(proxy, "VM.get_by_uuid", s, uuid) == failure("UUID_INVALID", "VM", uuid)
    assert call(proxy, "network.get_by_uuid", s, "junk") == failure("UUID_INVALID", "network", "junk")
    pool = ok(proxy, "pool.get_all", s)[0]
    pool_uuid = ok(proxy, "pool.get_uuid", s, pool)
    assert call(proxy, "VM.get_by_uuid", s, pool_uuid) == failure("UUID_INVALID", "VM", pool_uuid)
    assert ok(proxy, "pool.get_by_uuid", s, pool_uuid) == pool


# --------------------------------------------------------------------------- methods and counts

def test_method_unknown_with_a_valid_session(proxy, s):
    assert call(proxy, "VM.frobnicate", s) == failure("MESSAGE_METHOD_UNKNOWN", "VM.frobnicate")
    assert call(proxy, "Nothing.at_all", s, "x") == failure("MESSAGE_METHOD_UNKNOWN", "Nothing.at_all")
    assert call(proxy, "vm.get_all", s) == failure("MESSAGE_METHOD_UNKNOWN", "vm.get_all")  # case matters
    assert call(proxy, "nonsense") == failure("MESSAGE_METHOD_UNKNOWN", "nonsense")


def test_unknown_method_checks_the_session_first(proxy):
    assert call(proxy, "VM.frobnicate", "OpaqueRef:bogus") == failure("SESSION_INVALID", "OpaqueRef:bogus")
    assert call(proxy, "VM.frobnicate", GHOST, 1, 2) == failure("SESSION_INVALID", GHOST)


def test_parameter_count_mismatch_excludes_the_session(proxy, s, vm):
    assert call(proxy, "VM.get_record", s) == failure(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_record", "1", "0")
    assert call(proxy, "VM.get_record", s, vm, vm) == failure(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_record", "1", "2")
    assert call(proxy, "VM.get_all", s, "extra") == failure(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_all", "0", "1")
    assert call(proxy, "VM.add_to_other_config", s, vm, "k") == failure(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.add_to_other_config", "3", "2")
    assert call(proxy, "VM.create", s) == failure(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.create", "1", "0")


def test_login_counts_without_a_session(agent, proxy):
    assert call(proxy, "session.login_with_password", "root") == failure(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "session.login_with_password", "2", "1")
    assert call(proxy, "session.login_with_password", "root", agent.password, "2.21", "x", "y") == failure(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "session.login_with_password", "2", "5")
    for extra in ((), ("2.21",), ("2.21", "counting")):  # 2, 3 and 4 args all log in
        ref = ok(proxy, "session.login_with_password", "root", agent.password, *extra)
        assert ref.startswith("OpaqueRef:")
        assert call(proxy, "session.logout", ref) == success("")


def test_class_underscore_method_alias(proxy, s, vm):
    assert ok(proxy, "VM_get_all", s) == ok(proxy, "VM.get_all", s)
    assert vm in ok(proxy, "VM_get_all", s)
    assert ok(proxy, "VM_get_name_label", s, vm) == "errors-vm"
    assert ok(proxy, "pool_get_all", s) == ok(proxy, "pool.get_all", s)
    assert ok(proxy, "VM_metrics_get_all", s) == ok(proxy, "VM_metrics.get_all", s)
    assert ok(proxy, "host_cpu_get_all", s) == ok(proxy, "host_cpu.get_all", s)
    # errors name the dotted method
    assert call(proxy, "VM_get_record", s) == failure(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_record", "1", "0")


# --------------------------------------------------------------------------- values

def test_field_type_error(proxy, s, vm, net):
    assert call(proxy, "network.set_MTU", s, net, "lots") == failure("FIELD_TYPE_ERROR", "value")
    assert call(proxy, "network.set_MTU", s, net, True) == failure("FIELD_TYPE_ERROR", "value")
    assert call(proxy, "network.set_MTU", s, net, 1.5) == failure("FIELD_TYPE_ERROR", "value")
    assert call(proxy, "VM.set_is_a_template", s, vm, "true") == failure("FIELD_TYPE_ERROR", "value")
    assert call(proxy, "VM.set_is_a_template", s, vm, 1) == failure("FIELD_TYPE_ERROR", "value")
    assert call(proxy, "VM.set_name_label", s, vm, {"a": "b"}) == failure("FIELD_TYPE_ERROR", "value")
    assert call(proxy, "VM.set_name_label", s, vm, ["a"]) == failure("FIELD_TYPE_ERROR", "value")
    assert call(proxy, "VM.set_other_config", s, vm, "k=v") == failure("FIELD_TYPE_ERROR", "value")
    assert call(proxy, "VM.set_tags", s, vm, {"a": "b"}) == failure("FIELD_TYPE_ERROR", "value")
    # nothing changed
    assert ok(proxy, "VM.get_name_label", s, vm) == "errors-vm"
    assert ok(proxy, "VM.get_is_a_template", s, vm) is False
    assert ok(proxy, "network.get_MTU", s, net) == "1500"


def test_field_type_error_in_a_constructor_record(proxy, s):
    assert call(proxy, "network.create", s, {"name_label": "n"}) == failure("FIELD_TYPE_ERROR", "other_config")
    assert call(proxy, "network.create", s, {"other_config": {}, "MTU": "big"}) == failure(
        "FIELD_TYPE_ERROR", "MTU")
    assert call(proxy, "network.create", s, {"other_config": {}, "managed": "yes"}) == failure(
        "FIELD_TYPE_ERROR", "managed")
    assert call(proxy, "network.create", s, "not a struct") == failure("FIELD_TYPE_ERROR", "args")
    assert ok(proxy, "network.get_by_name_label", s, "n") == []


def test_invalid_value_for_an_enum_spelling(proxy, s, vm):
    assert call(proxy, "VM.set_actions_after_shutdown", s, vm, "Destroy") == failure(
        "INVALID_VALUE", "value", "Destroy")
    assert call(proxy, "VM.set_actions_after_shutdown", s, vm, "") == failure("INVALID_VALUE", "value", "")
    assert ok(proxy, "VM.get_actions_after_shutdown", s, vm) == "destroy"
    assert call(proxy, "VM.set_actions_after_shutdown", s, vm, "restart") == success("")
    assert ok(proxy, "VM.get_actions_after_shutdown", s, vm) == "restart"


def test_invalid_value_for_a_bad_where_expression(proxy, s):
    assert call(proxy, "VM.get_all_records_where", s, "field (") == failure("INVALID_VALUE", "expr", "field (")


def test_map_duplicate_key(proxy, s, vm):
    assert call(proxy, "VM.add_to_other_config", s, vm, "dup", "1") == success("")
    assert call(proxy, "VM.add_to_other_config", s, vm, "dup", "2") == failure(
        "MAP_DUPLICATE_KEY", "VM", "other_config", vm, "dup")
    assert ok(proxy, "VM.get_other_config", s, vm)["dup"] == "1"
    assert call(proxy, "VM.add_to_platform", s, vm, "acpi", "1") == success("")
    assert call(proxy, "VM.add_to_platform", s, vm, "acpi", "0") == failure(
        "MAP_DUPLICATE_KEY", "VM", "platform", vm, "acpi")


# --------------------------------------------------------------------------- sessions

def test_session_invalid_after_logout(agent, proxy):
    ref = ok(proxy, "session.login_with_password", "root", agent.password, "2.21", "test-errors")
    assert ok(proxy, "VM.get_all", ref)
    assert call(proxy, "session.logout", ref) == success("")
    assert call(proxy, "VM.get_all", ref) == failure("SESSION_INVALID", ref)
    assert call(proxy, "session.get_record", ref, ref) == failure("SESSION_INVALID", ref)
    assert call(proxy, "session.logout", ref) == failure("SESSION_INVALID", ref)
    assert call(proxy, "VM.get_all", "") == failure("SESSION_INVALID", "")
    assert call(proxy, "VM.get_all", NULL) == failure("SESSION_INVALID", NULL)


def test_session_authentication_failed(agent, proxy):
    assert call(proxy, "session.login_with_password", "root", "wrong", "2.21", "test-errors") == failure(
        "SESSION_AUTHENTICATION_FAILED", "root", "Authentication failure")
    assert call(proxy, "session.login_with_password", "nobody", agent.password) == failure(
        "SESSION_AUTHENTICATION_FAILED", "nobody", "Authentication failure")
    assert call(proxy, "session.login_with_password", "", "") == failure(
        "SESSION_AUTHENTICATION_FAILED", "", "Authentication failure")


# --------------------------------------------------------------------------- system.listMethods

def test_list_methods_is_a_bare_array_without_a_session(agent, proxy):
    methods = call(proxy, "system.listMethods")
    assert isinstance(methods, list)  # no Status/Value wrapper
    api = build_api()
    with_get_all = [c for c, k in api.classes.items() if k.get_all]
    assert "task" in with_get_all and "VM" in with_get_all
    for c in with_get_all:
        assert f"{c}.get_all_records" in methods, c
    assert "task.get_all_records" in methods
    assert "session.get_all_records" not in methods  # session has no get_all
    assert "session.login_with_password" in methods and "VM.get_record" in methods
    assert set(methods) == set(api.entries)
    assert len(methods) == len(set(methods))
    status, ctype, body = raw_call(agent, "system.listMethods")
    assert status == 200 and ctype == "text/xml"
    assert body.startswith(b'<?xml version="1.0"?><methodResponse><params><param><value><array><data>')
    assert b"Status" not in body


# --------------------------------------------------------------------------- bytes on the wire

def test_void_result_is_the_empty_string(agent, proxy, s, vm):
    assert call(proxy, "VM.set_name_description", s, vm, "void") == success("")
    status, ctype, body = raw_call(agent, "VM.set_name_description", s, vm, "void")
    assert status == 200
    assert body == (b'<?xml version="1.0"?><methodResponse><params><param><value><struct>'
                    b"<member><name>Status</name><value>Success</value></member>"
                    b"<member><name>Value</name><value></value></member>"
                    b"</struct></value></param></params></methodResponse>")


def test_failure_bytes(agent):
    status, ctype, body = raw_call(agent, "VM.get_all", "OpaqueRef:bogus")
    assert status == 200 and ctype == "text/xml"
    assert body == (b'<?xml version="1.0"?><methodResponse><params><param><value><struct>'
                    b"<member><name>Status</name><value>Failure</value></member>"
                    b"<member><name>ErrorDescription</name><value><array><data>"
                    b"<value>SESSION_INVALID</value><value>OpaqueRef:bogus</value>"
                    b"</data></array></value></member></struct></value></param></params></methodResponse>")
    assert b"<fault>" not in body


def test_reply_has_no_whitespace_between_tags_and_untyped_ints(agent, proxy, s, vm):
    ok(proxy, "VM.set_name_description", s, vm, "multi word  text\twith\ttabs")
    for method, params in (("VM.get_all_records", (s,)), ("host.get_all_records", (s,)),
                           ("host_cpu.get_all_records", (s,)), ("VM.get_record", (s, vm)),
                           ("VM.get_record", (s, GHOST))):
        status, ctype, body = raw_call(agent, method, *params)
        assert status == 200, method
        assert ctype == "text/xml", method
        assert re.search(rb">\s+<", body) is None, method
        assert b"\n" not in body, method
        for tag in (b"<int>", b"<i4>", b"<i8>", b"<string>", b"<nil/>"):
            assert tag not in body, (method, tag)
    status, ctype, body = raw_call(agent, "VM.get_record", s, vm)
    assert b"<name>memory_static_max</name><value>1073741824</value>" in body
    assert b"<name>VCPUs_max</name><value>1</value>" in body
    assert b"<name>is_a_template</name><value><boolean>0</boolean></value>" in body
    assert b"<name>HVM_shadow_multiplier</name><value><double>1</double></value>" in body
    assert b"<name>name_description</name><value>multi word  text\twith\ttabs</value>" in body
    assert b"<name>name_label</name><value>errors-vm</value>" in body


def test_text_is_escaped(agent, proxy, s, vm):
    ok(proxy, "VM.set_name_description", s, vm, 'a<b>&"c"')
    status, ctype, body = raw_call(agent, "VM.get_name_description", s, vm)
    assert b"<value>a&lt;b&gt;&amp;&quot;c&quot;</value>" in body
    assert envelope(body) == success('a<b>&"c"')


def test_nil_is_accepted_as_a_parameter(agent, proxy, s, vm, net):
    ok(proxy, "VM.set_name_description", s, vm, "before")
    assert call(proxy, "VM.set_name_description", s, vm, None) == success("")
    assert ok(proxy, "VM.get_name_description", s, vm) == ""
    status, _, body = raw(agent, method_call("VM.set_name_description", s, vm, "<nil/>"))
    assert status == 200 and envelope(body) == success("")
    # a nil where an int belongs is a type error, not a broken request
    assert call(proxy, "network.set_MTU", s, net, None) == failure("FIELD_TYPE_ERROR", "value")


def test_int_parameter_as_int_tag_or_string(agent, proxy, s, net):
    assert call(proxy, "network.set_MTU", s, net, 9000) == success("")  # sent as <int>
    assert ok(proxy, "network.get_MTU", s, net) == "9000"
    assert call(proxy, "network.set_MTU", s, net, "9001") == success("")  # sent as <string>
    assert ok(proxy, "network.get_MTU", s, net) == "9001"
    for form, expect in (("<i4>1400</i4>", "1400"), ("<i8>1401</i8>", "1401"), ("<int>1402</int>", "1402"),
                         ("1403", "1403"), ("<string>1404</string>", "1404")):
        status, _, body = raw(agent, method_call("network.set_MTU", s, net, form))
        assert status == 200 and envelope(body) == success(""), form
        assert ok(proxy, "network.get_MTU", s, net) == expect, form
    big = 2 ** 40  # beyond <i4>: only the string form can carry it from xmlrpc.client
    ok(proxy, "network.set_MTU", s, net, str(big))
    assert ok(proxy, "network.get_MTU", s, net) == str(big)
    ok(proxy, "network.set_MTU", s, net, "1500")


def test_bool_parameter_only_as_boolean_tag(agent, proxy, s, vm):
    status, _, body = raw(agent, method_call("VM.set_is_a_template", s, vm, "<boolean>1</boolean>"))
    assert envelope(body) == success("")
    assert ok(proxy, "VM.get_is_a_template", s, vm) is True
    status, _, body = raw(agent, method_call("VM.set_is_a_template", s, vm, "<boolean>0</boolean>"))
    assert envelope(body) == success("")
    assert ok(proxy, "VM.get_is_a_template", s, vm) is False
    status, _, body = raw(agent, method_call("VM.set_is_a_template", s, vm, "1"))
    assert envelope(body) == failure("FIELD_TYPE_ERROR", "value")


def test_malformed_xml_is_http_500_not_a_fault(agent, s):
    for body in (b"<methodCall><methodName>VM.get_all</methodName><params>",  # truncated
                 b"not xml at all",
                 b"<methodCall><params></params></methodCall>",  # no methodName
                 b"<methodCall><methodName>VM.get_all</methodName><params><param><value><int>x</int>"
                 b"</value></param></params></methodCall>"):
        status, ctype, reply = raw(agent, body)
        assert status == 500, body
        assert ctype != "text/xml"
        assert b"<fault>" not in reply and b"methodResponse" not in reply
    # the agent is still fine
    status, _, reply = raw_call(agent, "pool.get_all", s)
    assert status == 200 and envelope(reply)["Status"] == "Success"


@pytest.mark.parametrize("path", ["/", "/RPC2", "/xmlrpc", "/json"])
def test_every_xmlrpc_path_answers(agent, s, path):
    status, ctype, body = raw(agent, xmlrpc.client.dumps((s,), "pool.get_all").encode(), path=path)
    assert status == 200 and ctype == "text/xml"
    env = envelope(body)
    assert env["Status"] == "Success" and len(env["Value"]) == 1


def test_float_parameter_as_double_int_or_string(agent, proxy, s):
    task = ok(proxy, "task.create", s, "float-params", "")
    try:
        for form, expect in (("<double>0.25</double>", 0.25), ("<int>1</int>", 1.0),
                             ("<string>0.5</string>", 0.5), ("<double>0</double>", 0.0)):
            status, _, body = raw(agent, method_call("task.set_progress", s, task, form))
            assert status == 200 and envelope(body) == success(""), form
            assert ok(proxy, "task.get_progress", s, task) == expect, form
        assert call(proxy, "task.set_progress", s, task, 0.75) == success("")  # xmlrpc.client's <double>
        status, _, body = raw_call(agent, "task.get_progress", s, task)
        assert b"<name>Value</name><value><double>0.75</double></value>" in body
        assert call(proxy, "task.set_progress", s, task, "most") == failure("FIELD_TYPE_ERROR", "value")
    finally:
        call(proxy, "task.destroy", s, task)
