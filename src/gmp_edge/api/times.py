"""Times in API requests: query and body datetimes to microseconds, naive ones refused."""

from __future__ import annotations

from datetime import datetime
from typing import overload

from fastapi import HTTPException

from gmp_edge.timefmt import datetime_us


@overload
def request_us(dt: datetime, name: str = "") -> int: ...
@overload
def request_us(dt: None, name: str = "") -> None: ...
def request_us(dt: datetime | None, name: str = "") -> int | None:
    """``dt`` in microseconds since the epoch (None stays None); 400 without a zone.

    ``name`` (the parameter) starts the error message when given.
    """
    if dt is None:
        return None
    try:
        return datetime_us(dt)
    except ValueError as exc:
        raise HTTPException(400, f"{name} {exc}" if name else str(exc)) from None
