"""Filters of the record queries: each given value is one condition, all must hold."""

from __future__ import annotations


def where_clause(*conditions: tuple[str, object | None]) -> tuple[str, list[object]]:
    """``(" where a=? and b<?", [va, vb])`` for the ``(sql, value)`` pairs whose value is
    not None (each ``sql`` has one ``?``); ``("", [])`` when none is given."""
    given = [(sql, value) for sql, value in conditions if value is not None]
    if not given:
        return "", []
    return " where " + " and ".join(sql for sql, _ in given), [v for _, v in given]
