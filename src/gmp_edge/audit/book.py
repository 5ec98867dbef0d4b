"""The base of a record book kept beside the audit trail, in the trail's database file.

A book writes through :meth:`AuditTrail.atomic` (a change and its audit entries are one
transaction) and reads committed rows through a connection of its own, opened with the
book's versioned schema (:mod:`gmp_edge.storage.schema`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.storage.schema import Schema, open_store


class RecordBook:
    """Shared plumbing of a book: the trail for writes, an own connection for reads.

    A subclass sets ``schema``; its tables exist (migrated) once ``__init__`` returns.
    """

    schema: ClassVar[Schema]

    def __init__(self, trail: AuditTrail):
        self.trail = trail
        self._conn: sqlite3.Connection = open_store(trail.path, self.schema)
        # the read connection is shared by threads: one statement at a time
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the read connection (the trail stays open)."""
        with self._lock:
            self._conn.close()

    def _all(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, tuple(args)).fetchall()

    def _one(self, sql: str, args: Sequence[object] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._conn.execute(sql, tuple(args)).fetchone()
            return row
