"""Query filters: a condition per given value; zero is a value, None is not."""

from __future__ import annotations

import pytest

from gmp_edge.storage.query import where_clause


@pytest.mark.parametrize(
    ("conditions", "sql", "args"),
    [
        ((), "", []),
        ((("a=?", None),), "", []),
        ((("a=?", 0),), " where a=?", [0]),
        ((("a=?", "x"), ("b<?", None), ("c>=?", 5)), " where a=? and c>=?", ["x", 5]),
        ((("a=?", ""),), " where a=?", [""]),
    ],
)
def test_where_clause(conditions, sql, args) -> None:
    assert where_clause(*conditions) == (sql, args)
