"""get_all_records_where's expression language."""

import pytest

from hostagent.db.query import QueryError, compile_expr

REC = {"name_label": "web", "power_state": "Running", "is_a_template": False, "VCPUs_max": 2}


@pytest.mark.parametrize("expr,expected", [
    ("true", True),
    ("false", False),
    ('field "name__label"="web"', True),
    ('field "name__label" = "db"', False),
    ('field "name__label"<>"db"', True),
    ('field "is_a_template"="false"', True),
    ('field "VCPUs_max"="2"', True),
    ('(field "uuid"="x") or (field "name__label"="web")', True),
    ('field "power_state"="Running" and not (field "name__label"="web")', False),
    ('"a"="a"', True),
    ('field "name__label"="we\\"b"', False),
])
def test_expressions(expr, expected):
    assert compile_expr(expr)(REC) is expected


@pytest.mark.parametrize("bad", ["", "field", 'field "a" =', "true true", "(true", 'field "a" ~ "b"', "maybe"])
def test_bad_expressions_raise(bad):
    with pytest.raises(QueryError):
        compile_expr(bad)
