"""The etcd journal's pure parts: how an object's value is written and read back, the key
range of a prefix, and the command line an etcd member gets."""

import json
import zlib

import pytest

from hostagent.backends.etcd import prefix_end
from hostagent.backends.etcd_member import (
    MAX_REQUEST_BYTES,
    MAX_TXN_OPS,
    EtcdMember,
    MemberSpec,
)
from hostagent.db.etcd_values import COMPRESS_FROM, object_from, object_value


def test_a_short_object_is_kept_as_text_a_long_one_compressed():
    short = json.dumps({"r": {"uuid": "u"}, "p": {}})
    value = object_value(short, 3, 7)
    assert value == b"3 7\n" + short.encode()
    assert object_from(value) == (short, 3, 7)
    long = json.dumps({"r": {"name_description": "d" * COMPRESS_FROM}, "p": {"x": "é"}})
    value = object_value(long, 0, 0)
    head, _, body = value.partition(b"\n")
    assert head == b"0 0 z" and zlib.decompress(body) == long.encode() and len(value) < len(long)
    assert object_from(value) == (long, 0, 0)


@pytest.mark.parametrize("prefix, end", [(b"/hostagent/p/", b"/hostagent/p0"), (b"a\xff", b"b"),
                                         (b"\xff\xff", b"\0")])
def test_the_end_of_a_prefix_range(prefix, end):
    assert prefix_end(prefix) == end


def test_a_member_gets_its_urls_cluster_and_our_limits(tmp_path):
    spec = MemberSpec("h1", str(tmp_path / "h1"), "http://127.0.0.1:2379", "http://127.0.0.1:2380",
                      {"h2": "http://127.0.0.2:2380", "h1": "http://127.0.0.1:2380"}, "existing", "pool-uuid")
    argv = EtcdMember(spec).argv()
    assert argv[0] == "etcd"
    for flag in ("--name=h1", f"--data-dir={tmp_path / 'h1' / 'data'}", "--listen-client-urls=http://127.0.0.1:2379",
                 "--initial-cluster=h1=http://127.0.0.1:2380,h2=http://127.0.0.2:2380",
                 "--initial-cluster-state=existing", "--initial-cluster-token=pool-uuid",
                 f"--max-txn-ops={MAX_TXN_OPS}", f"--max-request-bytes={MAX_REQUEST_BYTES}",
                 "--auto-compaction-mode=revision"):
        assert flag in argv
    with pytest.raises(ValueError):
        EtcdMember(spec._replace(cluster_state="later"))
