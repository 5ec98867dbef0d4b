"""The audit trail in the edge box's SQLite database: append, query, verify, export.

Append-only inside the product: triggers refuse UPDATE and DELETE, and there is no
code path that edits an entry. Someone with the database file can still change it;
the hash chain (``gmp_edge.audit.chain``) makes that visible.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec

from gmp_edge.audit.chain import GENESIS, AuditEntry, Break, canonical, entry_hash, verify
from gmp_edge.clock import now_us
from gmp_edge.csvcell import neutralise_row
from gmp_edge.integrity.ledger import Sealer
from gmp_edge.storage.query import where_clause
from gmp_edge.storage.schema import Schema, migrate
from gmp_edge.timefmt import iso

_SCHEMA = """
create table if not exists audit(
    seq integer primary key,
    ts_us integer not null,
    actor text not null,
    action text not null,
    record_type text not null,
    record_id text not null,
    reason text not null,
    old text,                 -- JSON
    new text,                 -- JSON
    prev_hash text not null,
    hash text not null
);
create index if not exists audit_record on audit(record_type, record_id);
create index if not exists audit_actor on audit(actor, ts_us);
create trigger if not exists audit_no_update before update on audit
begin select raise(abort, 'the audit trail is append-only'); end;
create trigger if not exists audit_no_delete before delete on audit
begin select raise(abort, 'the audit trail is append-only'); end;
"""
SCHEMA = Schema("audit", (_SCHEMA,))

COLUMNS = (
    "seq",
    "ts_us",
    "actor",
    "action",
    "record_type",
    "record_id",
    "reason",
    "old",
    "new",
    "prev_hash",
    "hash",
)


def entries_of(rows: Iterable[Sequence[Any]]) -> Iterator[AuditEntry]:
    """Audit entries from rows of ``select <COLUMNS> from audit``."""
    for r in rows:
        yield AuditEntry(
            int(r[0]),
            int(r[1]),
            str(r[2]),
            str(r[3]),
            str(r[4]),
            str(r[5]),
            str(r[6]),
            json.loads(str(r[7])),
            json.loads(str(r[8])),
            str(r[9]),
            str(r[10]),
        )


def verify_chain(conn: sqlite3.Connection) -> tuple[int, str, Break | None]:
    """Walk the audit chain of the database ``conn`` is open on, in storage order (rowid);
    read-only, so it also serves a check of a store the service is running on."""
    try:
        rows = conn.execute(f"select {', '.join(COLUMNS)} from audit order by rowid")
        return verify(entries_of(rows))
    except (json.JSONDecodeError, sqlite3.Error) as exc:
        return 0, GENESIS, Break(0, f"unreadable audit table: {exc}")


class AuditTransaction:
    """An open transaction on the audit database (see :meth:`AuditTrail.atomic`)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def append(
        self,
        actor: str,
        action: str,
        record_type: str,
        record_id: str,
        reason: str = "",
        old: object = None,
        new: object = None,
        ts_us: int | None = None,
    ) -> AuditEntry:
        """Add one entry chained to the last, inside this transaction."""
        ts = ts_us if ts_us is not None else now_us()
        row = self.conn.execute("select seq, hash from audit order by seq desc limit 1").fetchone()
        seq, prev = (1, GENESIS) if row is None else (row[0] + 1, row[1])
        body = canonical(seq, ts, actor, action, record_type, record_id, reason, old, new)
        digest = entry_hash(prev, body)
        self.conn.execute(
            f"insert into audit({', '.join(COLUMNS)}) values({', '.join('?' * 11)})",
            (
                seq,
                ts,
                actor,
                action,
                record_type,
                record_id,
                reason,
                json.dumps(old),
                json.dumps(new),
                prev,
                digest,
            ),
        )
        return AuditEntry(
            seq, ts, actor, action, record_type, record_id, reason, old, new, prev, digest
        )


P = ParamSpec("P")


def _committed(
    append: Callable[Concatenate[AuditTransaction, P], AuditEntry],
) -> Callable[Concatenate[AuditTrail, P], AuditEntry]:
    """``append`` in a transaction of its own: the entry is committed before it returns."""

    def committed(trail: AuditTrail, /, *args: P.args, **kwargs: P.kwargs) -> AuditEntry:
        """Add one entry, chained to the last; committed before it returns."""
        with trail.atomic() as tx:
            return append(tx, *args, **kwargs)

    return committed


class AuditTrail:
    """Append-only, hash-chained audit entries in ``path`` (shared with the store)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("pragma busy_timeout=5000")
        self._conn.execute("pragma journal_mode=wal")
        self._conn.execute("pragma synchronous=full")
        try:
            migrate(self._conn, SCHEMA, self.path)
            # every outermost transaction seals the record rows it wrote (ADR 0027)
            self._sealer = Sealer(self._conn, str(self.path))
        except BaseException:
            self._conn.close()
            raise
        # re-entrant: a workflow (record + signature) opens one transaction and the books
        # it calls join it instead of committing on their own
        self._lock = threading.RLock()
        self._depth = 0

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def atomic(self) -> Iterator[AuditTransaction]:
        """One transaction for a change and its audit entries: both land, or neither.

        Use ``tx.conn`` for the change (same database file) and ``tx.append`` for the
        entries. An exception inside the block rolls everything back. Nested calls (in the
        same thread) join the outer transaction through a savepoint: an exception that
        leaves a nested block undoes that block, and nothing is committed before the
        outermost block ends, so a record and the signature that completes it are one
        transaction.
        """
        with self._lock:
            depth = self._depth
            savepoint = f"nested_{depth}"
            self._conn.execute(f"savepoint {savepoint}" if depth else "begin immediate")
            self._depth = depth + 1
            try:
                if not depth:
                    self._sealer.begin()
                yield AuditTransaction(self._conn)
                if not depth:
                    self._sealer.seal()
            except BaseException:
                self._depth = depth
                if depth:
                    self._conn.execute(f"rollback to {savepoint}")
                    self._conn.execute(f"release {savepoint}")
                else:
                    self._conn.execute("rollback")
                raise
            self._depth = depth
            self._conn.execute(f"release {savepoint}" if depth else "commit")

    # the same parameters as AuditTransaction.append, in a transaction of its own
    append = _committed(AuditTransaction.append)

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> Iterator[AuditEntry]:
        return entries_of(self._conn.execute(sql, args))

    def entries(
        self,
        record_type: str | None = None,
        record_id: str | None = None,
        actor: str | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
        limit: int = 10_000,
    ) -> list[AuditEntry]:
        """Entries matching every given filter, oldest first."""
        where, args = where_clause(
            ("record_type=?", record_type),
            ("record_id=?", record_id),
            ("actor=?", actor),
            ("ts_us>=?", start_us),
            ("ts_us<?", end_us),
        )
        sql = f"select {', '.join(COLUMNS)} from audit{where} order by seq limit ?"
        args.append(limit)
        return list(self._rows(sql, tuple(args)))

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest entry; (0, GENESIS) when empty. Anchor it elsewhere."""
        row = self._conn.execute("select seq, hash from audit order by seq desc limit 1").fetchone()
        return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))

    def verify(self) -> tuple[int, str, Break | None]:
        """Walk the whole chain in storage order (by rowid, as the file holds it)."""
        return verify_chain(self._conn)

    def export(self, fmt: str) -> str:
        """The whole trail as CSV or JSON (UTC ISO timestamps added for people).

        In the CSV, text that a spreadsheet would run as a formula is quoted
        (:mod:`gmp_edge.csvcell`); the JSON carries every value as recorded.
        """
        entries = self.entries(limit=2**62)
        if fmt == "json":
            return json.dumps(
                [{**{c: getattr(e, c) for c in COLUMNS}, "ts": iso(e.ts_us)} for e in entries],
                indent=1,
            )
        if fmt != "csv":
            raise ValueError(f"unknown export format {fmt!r} (csv or json)")

        def json_cell(value: object) -> object:
            # a JSON number is written as the number (the same digits json.dumps gives), so
            # a changed limit of -5.3 stays a number; other JSON text goes to the neutraliser
            finite = isinstance(value, int | float) and math.isfinite(value)
            if finite and not isinstance(value, bool):
                return value
            return json.dumps(value)

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["ts", *COLUMNS])
        for e in entries:
            # reasons, actors and record ids are free text: made inert for spreadsheets
            # (gmp_edge.csvcell); seq and ts_us stay numbers
            w.writerow(
                neutralise_row(
                    [
                        iso(e.ts_us),
                        *(
                            json_cell(getattr(e, c)) if c in ("old", "new") else getattr(e, c)
                            for c in COLUMNS
                        ),
                    ]
                )
            )
        return buf.getvalue()
