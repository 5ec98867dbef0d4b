"""Record times in API answers: timestamps as UTC ISO text, durations as seconds (never a date).

Found: a deviation's ``evidence.duration`` read "1970-01-01T00:00:44.000Z".
"""

from __future__ import annotations

from gmp_edge.api.monitoring_routes import _iso_fields


def test_a_duration_is_seconds_and_a_timestamp_is_iso_text() -> None:
    out = _iso_fields(
        {
            "discovered_us": 1_796_000_000_000_000,
            "evidence": {"start_us": 1_796_000_000_000_000, "duration_us": 44_000_000},
            "min_duration_us": 1_500_000,
        }
    )
    assert out["discovered"] == "2026-11-30T00:53:20.000000Z"
    assert out["evidence"]["start"] == "2026-11-30T00:53:20.000000Z"
    assert out["evidence"]["duration_s"] == 44.0
    assert "duration" not in out["evidence"]
    assert out["min_duration_s"] == 1.5
    assert out["evidence"]["duration_us"] == 44_000_000  # the raw value stays
