"""hostagent.xva.ovaxml: ova.xml as xapi lays it out, written and read back."""

import pytest

from hostagent.xva import XvaError, ovaxml

VERSION = ovaxml.version("host1", "20260101T00:00:00Z", "0.1.0", "hostagent", "0", (1, 1))


def test_layout_is_one_value_holding_version_and_objects():
    snap = ovaxml.encode({"name_label": "a <b> & c", "VCPUs_max": 2, "HVM": True, "ratio": 0.5,
                          "VBDs": ["Ref:1"], "other_config": {}})
    text = ovaxml.write(VERSION, [("VM", "Ref:0", snap)]).decode()
    assert text.startswith("<value><struct><member><name>version</name>")
    assert "<member><name>export_vsn</name><value>2</value></member>" in text  # untyped, as xapi
    assert "<member><name>class</name><value>VM</value></member>" in text
    assert "a &lt;b&gt; &amp; c" in text
    assert "<?xml" not in text


def test_round_trip_gives_plain_values():
    snap = ovaxml.encode({"s": "x", "n": 7, "b": False, "f": 1.25, "l": ["Ref:2"], "m": {"k": "v"}, "e": ""})
    version, [obj] = ovaxml.read(ovaxml.write(VERSION, [("VBD", "Ref:1", snap)]))
    assert version["export_vsn"] == "2" and version["hostname"] == "host1"
    assert obj.cls == "VBD" and obj.id == "Ref:1"
    assert obj.snapshot == {"s": "x", "n": "7", "b": False, "f": 1.25, "l": ["Ref:2"], "m": {"k": "v"}, "e": ""}


def test_typed_ints_and_dates_as_other_writers_send_them():
    raw = (b"<value><struct><member><name>version</name><value><struct><member><name>export_vsn</name>"
           b"<value><i4>2</i4></value></member></struct></value></member><member><name>objects</name>"
           b"<value><array><data><value><struct><member><name>class</name><value>VM</value></member>"
           b"<member><name>id</name><value>Ref:0</value></member><member><name>snapshot</name><value>"
           b"<struct><member><name>t</name><value><dateTime.iso8601>20200101T00:00:00Z</dateTime.iso8601>"
           b"</value></member><member><name>i</name><value><int>5</int></value></member></struct>"
           b"</value></member></struct></value></data></array></value></member></struct></value>")
    _, [obj] = ovaxml.read(raw)
    assert obj.snapshot == {"t": "20200101T00:00:00Z", "i": 5}


@pytest.mark.parametrize("raw, message", [
    (b"not xml", "not XML"),
    (b'<appliance version="0.1"/>', "legacy"),
    (b"<value><struct></struct></value>", "lacks"),
    ((b"<value><struct><member><name>version</name><value><struct><member><name>export_vsn</name>"
     b"<value>1</value></member></struct></value></member><member><name>objects</name><value><array>"
     b"<data></data></array></value></member></struct></value>"), "export format version 1"),
])
def test_what_is_not_an_ova_xml_is_import_error(raw, message):
    with pytest.raises(XvaError) as e:
        ovaxml.read(raw)
    assert e.value.code == "IMPORT_ERROR" and message in e.value.params[0]
