"""What an alarm notification says (issue 13 item 13): for people, never "value None beyond
None" for a loss of monitoring, nor a float's every digit."""

from __future__ import annotations

import pytest

from gmp_edge.limits.engine import EventReason, LimitEvent, activation_text
from gmp_edge.limits.model import Condition

T0 = 1_790_000_000_000_000  # 2026-09-21 14:13:20 UTC


def event(condition: Condition, value: float | None, limit: float | None) -> LimitEvent:
    return LimitEvent(
        "s/a/r/e/particles_0_5",
        condition,
        True,
        T0 + 30_000_000,
        value,
        limit,
        "site-limits",
        3,
        T0,
        value,
        EventReason.NO_GOOD_DATA if value is None else EventReason.BEYOND_LIMIT,
    )


TEXTS = [
    (
        Condition.ACTION_HIGH,
        3057190.698079267,
        2930000.0,
        "particles/m3",
        "value 3,057,191 particles/m3 above the limit 2,930,000 particles/m3 "
        "(limit set site-limits v3)",
    ),
    (
        Condition.ALERT_LOW,
        12.3456,
        13.0,
        "Pa",
        "value 12.35 Pa below the limit 13 Pa (limit set site-limits v3)",
    ),
    (
        Condition.MONITORING_UNAVAILABLE,
        None,
        None,
        "Pa",
        "no Good readings since 2026-09-21 14:13:20 UTC (monitoring unavailable; "
        "limit set site-limits v3)",
    ),
]


@pytest.mark.parametrize(("condition", "value", "limit", "unit", "want"), TEXTS)
def test_activation_text(condition, value, limit, unit, want):
    assert activation_text(event(condition, value, limit), unit) == want
