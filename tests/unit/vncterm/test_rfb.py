"""The RFB protocol state machine, bytes in and bytes out."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostagent.vncterm import rfb
from hostagent.vncterm.pixelformat import DEFAULT, PixelFormat

INIT = rfb.server_init(640, 400, DEFAULT, b"name")


def session():
    return rfb.Session(640, 400, DEFAULT, b"name")


def ready_session():
    s = session()
    s.feed(b"RFB 003.008\n\x01\x01")
    assert s.ready
    return s


def test_handshake_38():
    s = session()
    assert s.feed(b"RFB 003.008\n") == ([], b"\x01\x01")
    assert s.feed(b"\x01") == ([], b"\0\0\0\0")
    assert s.feed(b"\x01") == ([("ready",)], INIT)
    assert s.version == 8


def test_handshake_37_has_no_security_result():
    s = session()
    assert s.feed(b"RFB 003.007\n") == ([], b"\x01\x01")
    assert s.feed(b"\x01\x00") == ([("ready",)], INIT)


def test_handshake_33_server_picks_none():
    s = session()
    assert s.feed(b"RFB 003.003\n") == ([], struct.pack(">I", 1))
    assert s.feed(b"\x00") == ([("ready",)], INIT)
    assert s.version == 3


def test_server_init_layout():
    assert INIT[:4] == struct.pack(">HH", 640, 400)
    assert INIT[4:20] == DEFAULT.pack()
    assert INIT[20:] == struct.pack(">I", 4) + b"name"


@pytest.mark.parametrize("greeting", [b"RFB 004.000\n", b"RFB 003.002\n", b"XYZ 003.008\n",
                                      b"GET /", b"RFB 003.008\r", b"RFB\n"])
def test_bad_versions_fail_with_a_33_reason(greeting):
    s = session()
    with pytest.raises(rfb.RfbError, match="version"):
        s.feed(greeting)
    assert s.farewell.startswith(b"\0\0\0\0")
    assert s.feed(b"\x01" * 20) == ([], b"")          # closed: nothing more is parsed


def test_security_refusal_38_carries_a_reason():
    s = session()
    s.feed(b"RFB 003.008\n")
    with pytest.raises(rfb.RfbError):
        s.feed(b"\x02")
    assert s.farewell[:4] == b"\0\0\0\x01" and b"None" in s.farewell


def test_messages_split_anywhere_are_reassembled():
    s = ready_session()
    stream = (b"\x00\0\0\0" + PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0).pack()
              + b"\x02\x00\x00\x02" + struct.pack(">ii", 0, -239)
              + struct.pack(">BBHHHH", 3, 1, 1, 2, 3, 4)
              + struct.pack(">BB2xI", 4, 1, 0xff0d)
              + b"\x05\x00\x00\x10\x00\x20"
              + b"\x06\0\0\0" + struct.pack(">I", 5) + b"hello")
    events = []
    for i in range(len(stream)):
        got, reply = s.feed(stream[i:i + 1])
        assert reply == b""
        events += got
    assert events == [
        ("pixel_format", PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)),
        ("encodings", (0, -239)), ("update", True, 1, 2, 3, 4), ("key", True, 0xff0d),
        ("pointer",), ("cut", b"hello")]


def test_huge_cut_text_is_capped_and_discarded_as_it_arrives():
    s = ready_session()
    s.feed(b"\x06\0\0\0" + struct.pack(">I", 0xFFFFFFFF))
    chunk = b"x" * (1 << 20)
    for _ in range(8):
        events, _reply = s.feed(chunk)
        assert events == []
        assert len(s._buf) == 0 and len(s._cut) == rfb.CUT_TEXT_LIMIT
    # A cut text that ends is delivered, capped, and the session goes on.
    s = ready_session()
    events, _ = s.feed(b"\x06\0\0\0" + struct.pack(">I", 100000) + b"y" * 100000 + b"\x05" + b"\0" * 5)
    assert events == [("cut", b"y" * rfb.CUT_TEXT_LIMIT), ("pointer",)]


def test_unknown_message_type_ends_the_session():
    s = ready_session()
    with pytest.raises(rfb.RfbError, match="unknown message type 200"):
        s.feed(b"\xc8")
    assert s.farewell == b""


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 64))
def test_any_bytes_give_events_or_a_protocol_error_never_anything_else(data, step):
    s = ready_session()
    try:
        for i in range(0, len(data), step):
            s.feed(data[i:i + step])
    except rfb.RfbError:
        return
    assert len(s._buf) < 4 + 4 * 65536         # at most one incomplete message is held


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_any_greeting_is_accepted_or_refused_cleanly(data):
    s = session()
    try:
        s.feed(data)
    except rfb.RfbError:
        assert s.farewell.startswith(b"\0\0\0\0") or s.version is not None
