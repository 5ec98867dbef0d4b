"""Numbers and durations formatted for people (issue 13 item 13)."""

from __future__ import annotations

import pytest

from gmp_edge.numfmt import duration, number

NUMBERS = [
    (3057190.698079267, "3,057,191"),  # a particle count keeps its integer digits
    (14.923456, "14.92"),
    (15.0, "15"),
    (0.2, "0.2"),
    (0.000123456, "0.0001235"),
    (-12.3456, "-12.35"),
    (999.96, "1,000"),
    (9.99996, "10"),
    (1234.5, "1,235"),
    (0, "0"),
    (7, "7"),
    (1e-12, "1.000e-12"),
    (float("nan"), "NaN"),
    (float("inf"), "inf"),
    (float("-inf"), "-inf"),
    (None, "n/a"),
]


@pytest.mark.parametrize(("x", "text"), NUMBERS)
def test_number(x: float | None, text: str) -> None:
    assert number(x) == text


def test_number_digits() -> None:
    assert number(14.923456, 2) == "15"
    assert number(14.923456, 6) == "14.9235"


S = 1_000_000
DURATIONS = [
    (46.0007 * S, "46 s"),
    (44 * S, "44 s"),
    (1.5 * S, "1.5 s"),
    (0.42 * S, "420 ms"),
    (250, "250 µs"),
    (0, "0 ms"),
    (125 * S, "2 min 5 s"),
    (120 * S, "2 min"),
    (3725 * S, "1 h 2 min"),
    (3600 * S, "1 h"),
    (90061 * S, "1 d 1 h"),
    (-5 * S, "-5 s"),
    (None, "n/a"),
]


@pytest.mark.parametrize(("us", "text"), DURATIONS)
def test_duration(us: float | None, text: str) -> None:
    assert duration(us) == text
