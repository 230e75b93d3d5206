"""pool/replica.py: when the master sends its database copies, and the member's stored copy."""

import json
import os
import stat

import pytest

from hostagent.pool import replica


def test_a_first_copy_is_due_then_only_after_a_change_and_the_interval():
    d = replica.Debounce(min_interval=2.0)
    assert d.due(5, 100.0)
    d.sent(5, 100.0)
    assert not d.due(5, 110.0)  # nothing changed
    assert not d.due(6, 101.0)  # changed, but too soon
    assert d.due(6, 102.0)


def test_a_member_without_the_current_copy_makes_it_due():
    d = replica.Debounce(min_interval=2.0)
    d.sent(5, 100.0)
    assert not d.due(5, 103.0, frozenset({"b", "c"}), frozenset({"b", "c"}))
    assert d.due(5, 103.0, frozenset({"b", "c"}), frozenset({"b"}))
    assert not d.due(5, 101.0, frozenset({"b", "c"}), frozenset({"b"}))  # still within the interval


def test_no_copy_while_one_is_being_sent():
    d = replica.Debounce()
    d.busy = True
    assert not d.due(1, 1000.0)


def test_the_copy_is_stored_whole_and_private(tmp_path):
    assert replica.load_copy(str(tmp_path)) is None
    rows = [["pool", "OpaqueRef:p", json.dumps({"r": {"uuid": "u"}, "p": {}})]]
    replica.save_copy(str(tmp_path), "master-uuid", 42, rows)
    path = os.path.join(str(tmp_path), replica.COPY_FILE)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert replica.load_copy(str(tmp_path)) == {"master": "master-uuid", "generation": 42, "rows": rows}
    replica.drop_copy(str(tmp_path))
    replica.drop_copy(str(tmp_path))  # twice: nothing to drop
    assert replica.load_copy(str(tmp_path)) is None


@pytest.mark.parametrize("content", ["{not json", json.dumps({"rows": "x", "generation": 1, "master": "m"}),
                                     json.dumps({"rows": [], "master": "m"}), json.dumps([])])
def test_a_damaged_copy_is_an_error(tmp_path, content):
    with open(os.path.join(str(tmp_path), replica.COPY_FILE), "w") as f:
        f.write(content)
    with pytest.raises(replica.CopyError):
        replica.load_copy(str(tmp_path))
