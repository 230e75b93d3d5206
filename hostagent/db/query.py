"""The expression language of get_all_where / get_all_records_where.

    expr   := term ("or" term)*
    term   := factor ("and" factor)*
    factor := "not" factor | "(" expr ")" | "true" | "false" | value ("=" | "<>") value
    value  := 'field' STRING | STRING

Field names are database column names: namespaced fields use a double
underscore (`name__label`). Values compare as the database's text form
(bools "true"/"false", ints in decimal).
"""

import re
from typing import Callable, List

Predicate = Callable[[dict], bool]


class QueryError(Exception):
    """The expression does not parse."""


_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op><>|=|\(|\))|(?P<word>[A-Za-z_]+))')


def _tokens(text: str) -> List[tuple]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise QueryError(f"unexpected input at {pos}: {text[pos:pos + 20]!r}")
        pos = m.end()
        if m.group("str") is not None:
            out.append(("str", re.sub(r"\\(.)", r"\1", m.group("str")[1:-1])))
        elif m.group("op"):
            out.append(("op", m.group("op")))
        else:
            out.append(("word", m.group("word")))
    return out


def _text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def column(name: str) -> str:
    """Our field name for a database column name."""
    return name.replace("__", "_")


def compile_expr(text: str) -> Predicate:
    toks = _tokens(text)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else (None, None)

    def take(kind=None, value=None):
        nonlocal pos
        tok = peek()
        if tok[0] is None or (kind and tok[0] != kind) or (value and tok[1] != value):
            raise QueryError(f"expected {value or kind} at token {pos}")
        pos += 1
        return tok

    def value():
        tok = peek()
        if tok == ("word", "field"):
            take()
            name = column(take("str")[1])
            return lambda rec: _text(rec.get(name, ""))
        s = take("str")[1]
        return lambda rec: s

    def factor():
        tok = peek()
        if tok == ("word", "not"):
            take()
            inner = factor()
            return lambda rec: not inner(rec)
        if tok == ("op", "("):
            take()
            inner = expr()
            take("op", ")")
            return inner
        if tok == ("word", "true"):
            take()
            return lambda rec: True
        if tok == ("word", "false"):
            take()
            return lambda rec: False
        left = value()
        op = take("op")[1]
        right = value()
        if op == "=":
            return lambda rec: left(rec) == right(rec)
        if op == "<>":
            return lambda rec: left(rec) != right(rec)
        raise QueryError(f"unknown operator {op}")

    def term():
        node = factor()
        while peek() == ("word", "and"):
            take()
            a, b = node, factor()
            node = (lambda x, y: lambda rec: x(rec) and y(rec))(a, b)
        return node

    def expr():
        node = term()
        while peek() == ("word", "or"):
            take()
            a, b = node, term()
            node = (lambda x, y: lambda rec: x(rec) or y(rec))(a, b)
        return node

    if not toks:
        raise QueryError("empty expression")
    result = expr()
    if pos != len(toks):
        raise QueryError(f"trailing input at token {pos}")
    return result
