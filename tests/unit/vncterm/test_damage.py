"""Per-client damage: merging, coalescing into rectangles, forgetting what was sent."""

from hostagent.vncterm.damage import forget, merge, rectangles

CELL = (8, 16)
SCREEN = (0, 0, 640, 400)


def test_merge_unites_spans_per_row():
    d = {1: (3, 5)}
    merge(d, {1: (0, 2), 4: (7, 9)})
    assert d == {1: (0, 5), 4: (7, 9)}


def test_consecutive_rows_become_one_rectangle():
    d = {2: (4, 6), 3: (1, 2), 4: (5, 80), 10: (0, 1)}
    assert rectangles(d, SCREEN, CELL) == [(8, 32, 632, 48), (0, 160, 8, 16)]


def test_rectangles_are_clipped_to_the_request():
    d = {0: (0, 80)}
    assert rectangles(d, (100, 4, 200, 400), CELL) == [(100, 4, 100, 12)]
    assert rectangles(d, (0, 16, 640, 400), CELL) == []


def test_forget_only_what_was_wholly_sent():
    d = {0: (0, 80), 1: (0, 2), 5: (0, 1)}
    forget(d, (0, 0, 320, 400), CELL)
    assert d == {0: (0, 80)}
    forget(d, SCREEN, CELL)
    assert d == {}


def test_no_damage_no_rectangles():
    assert rectangles({}, SCREEN, CELL) == []


def test_shift_up_moves_damage_with_the_picture():
    from hostagent.vncterm.damage import shift_up
    assert shift_up({0: (0, 5), 3: (1, 2), 24: (0, 80)}, 2) == {1: (1, 2), 22: (0, 80)}
