"""Times in API requests: query and body datetimes to microseconds, naive ones refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

from fastapi import HTTPException

from gmp_edge.timefmt import datetime_us

# the store counts µs since the epoch, and beyond year 9999 no time can be shown: a request
# time outside [1970-01-01, 9999-01-01) is refused before it reaches a query
EARLIEST_US = datetime_us(datetime(1970, 1, 1, tzinfo=UTC))
LATEST_US = datetime_us(datetime(9999, 1, 1, tzinfo=UTC))


@overload
def request_us(dt: datetime, name: str = "") -> int: ...
@overload
def request_us(dt: None, name: str = "") -> None: ...
def request_us(dt: datetime | None, name: str = "") -> int | None:
    """``dt`` in microseconds since the epoch (None stays None); 400 without a zone or
    outside 1970-01-01 to 9999-01-01.

    ``name`` (the parameter) starts the error message when given.
    """
    if dt is None:
        return None
    try:
        us = datetime_us(dt)
    except ValueError as exc:
        raise HTTPException(400, _named(name, str(exc))) from None
    if not EARLIEST_US <= us < LATEST_US:
        why = f"{dt.isoformat()!r} is outside 1970-01-01 to 9999-01-01"
        raise HTTPException(400, _named(name, why))
    return us


def _named(name: str, why: str) -> str:
    return f"{name} {why}" if name else why
