"""UTC timestamps in and out of the API: ISO 8601 with the zone always shown."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(us: int | None) -> str | None:
    """Microseconds since the epoch to ISO 8601 UTC with a ``Z``."""
    if us is None:
        return None
    dt = datetime.fromtimestamp(us / 1_000_000, tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(text: str) -> int:
    """ISO 8601 with a zone to microseconds; a timestamp without a zone is refused."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 timestamp") from None
    if dt.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add Z or +00:00")
    return int(dt.timestamp() * 1_000_000)
