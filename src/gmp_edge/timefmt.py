"""The one way times are written and read: integer microseconds (UTC) to text and back.

* :func:`iso` — ISO 8601 UTC with six fractional digits and ``Z``
  (``2026-03-01T10:00:00.000000Z``): API JSON, MQTT payloads, exports, evidence files.
* :func:`display` — for people (pages, PDFs): ``2026-03-01 10:00:00 UTC``.
* :func:`parse_iso` — ISO 8601 text that states its zone back to microseconds.
* :func:`signed_content_iso` — the format frozen into signed content by earlier releases.

Conversions are exact integer arithmetic (no float seconds). This module imports nothing
else of gmp_edge (a leaf, enforced by import-linter).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import overload

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

# ``YYYY-MM-DDTHH:MM:`` per minute since the epoch: the readings CSV formats millions of
# times, and the date part is what costs; bounded so a long export cannot grow it forever
_minutes: dict[int, str] = {}
_MINUTES_KEPT = 200_000


def utc_datetime(us: int) -> datetime:
    """``us`` microseconds since the epoch as an aware ``datetime`` in UTC (exact)."""
    return _EPOCH + timedelta(microseconds=us)


def datetime_us(dt: datetime) -> int:
    """An aware ``datetime`` to integer microseconds since the epoch (exact).

    Raises ``ValueError`` for a naive one: its zone would be a guess.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{dt.isoformat()!r} has no time zone; add Z or +00:00")
    return (dt - _EPOCH) // _US


@overload
def iso(us: int) -> str: ...
@overload
def iso(us: None) -> None: ...
def iso(us: int | None) -> str | None:
    """``2026-03-01T10:00:00.123456Z``: UTC, microseconds, ``Z`` (None stays None)."""
    if us is None:
        return None
    minute, rest = divmod(us, 60_000_000)
    head = _minutes.get(minute)
    if head is None:
        if len(_minutes) > _MINUTES_KEPT:
            _minutes.clear()
        d = utc_datetime(minute * 60_000_000)  # not strftime: "%Y" drops zeros before 1000
        head = f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:"
        _minutes[minute] = head
    s, f = divmod(rest, 1_000_000)
    return f"{head}{s:02d}.{f:06d}Z"


def display(us: int) -> str:
    """``2026-03-01 10:00:00 UTC``: for people, to the second, the zone named."""
    d = utc_datetime(us)
    return f"{d.date().isoformat()} {d.time().isoformat(timespec='seconds')} UTC"


def parse_iso(text: str) -> int:
    """ISO 8601 text with ``Z`` or an offset to microseconds since the epoch.

    Raises ``ValueError`` for text that is not ISO 8601 and for a time without a zone.
    """
    try:
        dt = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    if dt.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add Z or +00:00")
    return datetime_us(dt)


def signed_content_iso(us: int) -> str:
    """``2026-03-01T10:00:00.123456+00:00``: the time format inside signed content.

    Batch decisions and audit-trail reviews put their times into the content a signature
    covers in this form (earlier releases wrote it so). A signature stays valid only while
    the record's content hashes the same, so this must never change, float rounding of
    ``us / 1e6`` included; use :func:`iso` for everything else.
    """
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat(timespec="microseconds")
