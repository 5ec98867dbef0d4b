"""The base of a record book kept beside the audit trail, in the trail's database file.

A book writes through :meth:`AuditTrail.atomic` (a change and its audit entries are one
transaction) and reads committed rows through a connection of its own, opened with the
book's versioned schema (:mod:`gmp_edge.storage.schema`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.storage.schema import Schema, open_store


class RecordBook:
    """Shared plumbing of a book: the trail for writes, an own connection for reads.

    A subclass sets ``schema``; its tables exist (migrated) once ``__init__`` returns.
    """

    schema: ClassVar[Schema]

    def __init__(self, trail: AuditTrail):
        self.trail = trail
        self._first: sqlite3.Connection = open_store(trail.path, self.schema)
        # one read connection per thread: the monitoring engine reads the active alarms
        # every step, and behind one shared connection and its lock it waited for the API's
        # request threads (issue 15: alarm latency). ``_lock`` stays for the few readers
        # that need two statements to see one state.
        self._lock = threading.Lock()
        self._local = threading.local()
        self._local.conn = self._first
        self._opened: list[sqlite3.Connection] = [self._first]
        self._opened_lock = threading.Lock()  # not _lock: a reader may hold that one
        self._closed = False

    @property
    def _conn(self) -> sqlite3.Connection:
        """This thread's read connection (the schema was migrated by the first)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise sqlite3.ProgrammingError("the book is closed")
            conn = sqlite3.connect(self.trail.path, isolation_level=None, check_same_thread=False)
            conn.execute("pragma busy_timeout=5000")
            self._local.conn = conn
            with self._opened_lock:
                self._opened.append(conn)
        return conn

    def close(self) -> None:
        """Close every read connection (the trail stays open)."""
        with self._opened_lock:
            self._closed = True
            for conn in self._opened:
                conn.close()
            self._opened.clear()

    def _all(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, tuple(args)).fetchall()

    def _one(self, sql: str, args: Sequence[object] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._conn.execute(sql, tuple(args)).fetchone()
        return row


R = TypeVar("R")


class SignableBook(RecordBook, Generic[R]):
    """A book whose records can be signed: the signature register asks for a record's
    content and its author by the record id (``SignableRecords``).

    A subclass names its ``record_type``, the exception for an unknown record, and how to
    find a record, what a signature covers and who wrote it.
    """

    record_type: ClassVar[str]
    not_found: ClassVar[type[Exception]]

    def signable(self, record_id: str, /) -> R | None:
        """The record ``record_id`` names, or None."""
        raise NotImplementedError

    def signed_content(self, record: R) -> object:
        """What a signature on ``record`` covers."""
        raise NotImplementedError

    def author_of(self, record: R) -> str:
        """Who created or proposed ``record`` (separation of duties)."""
        raise NotImplementedError

    def content(self, record_id: str) -> object | None:
        """The record's signable content (None if unknown)."""
        r = self.signable(record_id)
        return None if r is None else self.signed_content(r)

    def author(self, record_id: str) -> str:
        """Who created the record; an unknown one raises ``not_found``."""
        r = self.signable(record_id)
        if r is None:
            raise self.not_found(f"no {self.record_type.replace('_', ' ')} {record_id!r}")
        return self.author_of(r)
