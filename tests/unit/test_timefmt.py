"""gmp_edge.timefmt: one ISO format (µs, Z), the display form, parsing, and the signed form
that records of earlier releases were signed with."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gmp_edge.audit.review import AuditReview, AuditReviews
from gmp_edge.release.decisions import RECORD_TYPE, BatchDecision, Decision
from gmp_edge.signatures.manifest import content_hash
from gmp_edge.timefmt import (
    datetime_us,
    display,
    iso,
    parse_iso,
    signed_content_iso,
    utc_datetime,
)

T = 1_788_000_000_123_456  # 2026-08-29T10:40:00.123456Z


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        (1, "1970-01-01T00:00:00.000001Z"),  # six digits: a microsecond is never lost
        (-1, "1969-12-31T23:59:59.999999Z"),
        (999_999, "1970-01-01T00:00:00.999999Z"),
        (59_999_999, "1970-01-01T00:00:59.999999Z"),  # the minute cache's edge
        (60_000_000, "1970-01-01T00:01:00.000000Z"),
        (T, "2026-08-29T10:40:00.123456Z"),
        (-62_135_596_800_000_000, "0001-01-01T00:00:00.000000Z"),  # the year keeps 4 digits
        (253_402_300_799_999_999, "9999-12-31T23:59:59.999999Z"),
    ],
)
def test_iso_is_utc_with_microseconds_and_z(us: int, text: str) -> None:
    assert iso(us) == text
    assert parse_iso(text) == us  # round trip, exact


def test_iso_of_none_is_none() -> None:
    assert iso(None) is None


@pytest.mark.parametrize(
    ("text", "us"),
    [
        ("2026-08-29T10:40:00.123456Z", T),
        ("2026-08-29T10:40:00.123456+00:00", T),
        ("2026-08-29T12:40:00.123456+02:00", T),
        ("2026-08-29T05:10:00.123456-05:30", T),
        ("2026-08-29T10:40:00Z", T - 123_456),
        ("2026-08-29T10:40:00.123Z", T - 456),  # fewer digits are fine on input
        ("2026-08-29T10:40Z", T - 123_456),
    ],
)
def test_parse_iso_accepts_z_and_offsets(text: str, us: int) -> None:
    assert parse_iso(text) == us


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-08-29T10:40:00", "has no time zone; add Z or +00:00"),
        ("2026-08-29", "has no time zone"),
        ("yesterday", "is not an ISO 8601 time"),
        ("", "is not an ISO 8601 time"),
        ("2026-13-01T00:00:00Z", "is not an ISO 8601 time"),
    ],
)
def test_parse_iso_refuses_naive_and_malformed_times(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as exc:
        parse_iso(text)
    assert repr(text) in str(exc.value)  # the message quotes what was given


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "1970-01-01 00:00:00 UTC"),
        (T, "2026-08-29 10:40:00 UTC"),  # to the second, the zone named
        (T + 876_544, "2026-08-29 10:40:01 UTC"),  # truncated, not rounded
    ],
)
def test_display_names_the_zone(us: int, text: str) -> None:
    assert display(us) == text


def test_utc_datetime_and_datetime_us_are_exact_inverses() -> None:
    dt = utc_datetime(T)
    assert dt == datetime(2026, 8, 29, 10, 40, 0, 123_456, tzinfo=UTC)
    assert dt.tzinfo is UTC
    assert datetime_us(dt) == T
    plus2 = timezone(timedelta(hours=2))
    assert datetime_us(dt.astimezone(plus2)) == T
    with pytest.raises(ValueError, match="no time zone"):
        datetime_us(datetime(2026, 8, 29, 10, 40))


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "1970-01-01T00:00:00.000000+00:00"),
        (T, "2026-08-29T10:40:00.123456+00:00"),
        (1_787_900_000_000_000, "2026-08-28T06:53:20.000000+00:00"),
    ],
)
def test_signed_content_iso_is_the_frozen_form(us: int, text: str) -> None:
    assert signed_content_iso(us) == text


# Content hashes of records as the previous release signed them (computed with that
# release's code): a signature stays valid only while the content hashes the same.
_DECISION_SIGNED_SHA256 = "13f703c95d4e2a5f37ea6dade9fc28c2815541a9fe5d678f668666647054c5ea"
_AUDIT_REVIEW_SIGNED_SHA256 = "83e24e0a2a24edd084eeee43e11a624b8964b0559080fb1d0d1ae809dd4a3825"


def test_a_batch_decision_signed_by_the_previous_release_still_verifies() -> None:
    d = BatchDecision(
        "BD-00001", "B-1001", 1, Decision.RELEASE, "all in limits", "a" * 64, 0, "qa1", T
    )
    assert d.content()["decided"] == "2026-08-29T10:40:00.123456+00:00"
    assert content_hash(RECORD_TYPE, d.id, d.content()) == _DECISION_SIGNED_SHA256


def test_an_audit_review_signed_by_the_previous_release_still_verifies() -> None:
    r = AuditReview(
        "AR-00001",
        1_787_900_000_000_000,
        1_788_000_000_000_001,
        1,
        42,
        "b" * 64,
        42,
        "reviewed",
        "qa1",
        1_788_000_100_000_000,
        1_788_000_100_000_000,
    )
    assert content_hash(AuditReviews.record_type, r.id, r.content()) == (
        _AUDIT_REVIEW_SIGNED_SHA256
    )


def test_evidence_readings_times_keep_the_previous_release_form() -> None:
    # readings.csv members are re-derived by the verifier (ISO column against the µs
    # column): the form written by the previous release is the one iso() writes
    assert iso(T) == "2026-08-29T10:40:00.123456Z"
    assert iso(-1) == "1969-12-31T23:59:59.999999Z"
