"""A member's memory figures reach the master in its heartbeats (actions/pool._memory): its
own hypervisor's, as its agent samples them; placement then counts on them."""

from hostagent.actions.host_facts import MEMORY_STEP
from hostagent.actions.pool import _memory

GiB = 1 << 30


def test_a_moved_figure_is_taken():
    current = {"memory_total": 8 * GiB, "memory_free": 6 * GiB}
    assert _memory(current, [8 * GiB, 2 * GiB]) == {"memory_total": 8 * GiB, "memory_free": 2 * GiB}
    assert _memory(current, [16 * GiB, 6 * GiB]) == {"memory_total": 16 * GiB, "memory_free": 6 * GiB}


def test_a_small_move_makes_no_write():
    current = {"memory_total": 8 * GiB, "memory_free": 6 * GiB}
    assert _memory(current, [8 * GiB, 6 * GiB + MEMORY_STEP - 1]) == {}


def test_what_is_not_two_counts_is_ignored_and_free_never_exceeds_total():
    current = {"memory_total": 8 * GiB, "memory_free": 6 * GiB}
    for told in (None, [1], ["8", "6"], [8 * GiB, -1], [True, 5], {"total": 1}):
        assert _memory(current, told) == {}
    assert _memory(current, [4 * GiB, 5 * GiB]) == {"memory_total": 4 * GiB, "memory_free": 4 * GiB}
