"""When the store cannot write or read (full disk, busy, damaged): 503 with the reason.

Such a failure is the box's condition, not the caller's mistake and not a bug: the request
changed nothing (SQLite rolled the transaction back), so the answer says what is wrong and
when to try again, instead of a 500 and a traceback per request. The log gets one line per
distinct reason per minute, so a flood of requests against a full disk cannot fill the
disk's last bytes with tracebacks.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from gmp_edge.historian.store import StoreError

log = logging.getLogger("gmp_edge.api")

RETRY_AFTER_S = 30
_LOG_EVERY_S = 60.0
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def reason_of(exc: BaseException) -> str:
    """What the operator must know, from the exception chain (SQLite's error code first)."""
    for e in _chain(exc):
        name = getattr(e, "sqlite_errorname", "") or ""
        if name.startswith("SQLITE_FULL") or (isinstance(e, OSError) and e.errno in _DISK_FULL):
            return "the edge box's disk is full: nothing was written; free space on it"
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return "the store is busy: nothing was written; try again"
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return "the store is damaged: nothing was written; run 'gmp-edge verify'"
        if name.startswith("SQLITE_IOERR") or isinstance(e, OSError):
            return "the edge box could not read or write its disk: nothing was written"
    return "the store could not answer: nothing was written"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


class _Throttle:
    """Which reasons were logged when, so each is logged at most once a minute."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}

    def log(self, reason: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self.last.get(reason, -_LOG_EVERY_S) < _LOG_EVERY_S:
            self.suppressed[reason] = self.suppressed.get(reason, 0) + 1
            return
        more = self.suppressed.pop(reason, 0)
        self.last[reason] = now
        tail = f" ({more} more since the last line)" if more else ""
        log.error("503: %s: %s: %s%s", reason, type(exc).__name__, exc, tail)


def add_store_unavailable(app: FastAPI) -> None:
    """Answer store and disk failures with 503, a reason and Retry-After."""
    throttle = _Throttle()

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        reason = reason_of(exc)
        throttle.log(reason, exc)
        return JSONResponse(
            {"detail": reason}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
        )

    for kind in (sqlite3.Error, StoreError, OSError):
        app.add_exception_handler(kind, unavailable)
