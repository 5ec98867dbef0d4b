"""The seal ledger: every write transaction seals what it changed, before it commits.

A :class:`Sealer` belongs to one writer connection. :meth:`Sealer.begin` runs right after
``begin immediate``, :meth:`Sealer.seal` right before ``commit``; together they append one
block to ``seal_blocks`` (chained by SHA-256, ``integrity.digest``) naming the readings the
transaction appended (a rowid range and the digest of its rows, read back as stored) and,
in ``seal_changes``, the digest of every row of the other record tables it inserted,
changed or deleted.

Which rows a transaction touched is known from TEMP triggers: they live only in this
connection, never in the database file, so a change made with any other tool (the
``sqlite3`` shell, a script, a restored backup) is noted nowhere and its rows no longer
match their last seal. Nothing outside the product's own transactions is ever sealed:
the ledger does not launder a change by sealing it afterwards.

A record table the ledger has not seen before (a store made before sealing existed) is
*adopted*: one block ``adopt:<table>`` seals every row it holds at that moment.
"""

from __future__ import annotations

import sqlite3

from gmp_edge.clock import now_us
from gmp_edge.integrity import covered
from gmp_edge.integrity.digest import (
    GENESIS,
    Change,
    block_hash,
    changes_digest,
    readings_digest,
    row_digest,
)
from gmp_edge.integrity.groups import TagGroups
from gmp_edge.storage.schema import Schema, migrate

_SCHEMA = """
create table if not exists seal_blocks(
    seq integer primary key,
    ts_us integer not null,
    kind text not null,              -- commit | adopt:<table> | retention
    readings_lo integer,             -- rowid range of readings sealed (null: none)
    readings_hi integer,             -- retention: readings up to here deleted
    readings_n integer not null,
    readings_sha256 blob,
    changes integer not null,
    changes_sha256 blob not null,
    hash blob not null
);
create table if not exists seal_changes(
    block integer not null,
    tbl text not null,
    rid integer not null,
    digest blob                      -- null: the row was deleted
);
create index if not exists seal_changes_block on seal_changes(block);
create table if not exists seal_tables(tbl text primary key, adopted_block integer not null);
create trigger if not exists seal_blocks_no_update before update on seal_blocks
begin select raise(abort, 'seal blocks are append-only'); end;
create trigger if not exists seal_blocks_no_delete before delete on seal_blocks
begin select raise(abort, 'seal blocks are append-only'); end;
create trigger if not exists seal_changes_no_update before update on seal_changes
begin select raise(abort, 'seal changes are append-only'); end;
create trigger if not exists seal_changes_no_delete before delete on seal_changes
begin select raise(abort, 'seal changes are append-only'); end;
"""
SCHEMA = Schema("ledger", (_SCHEMA,))

_TOUCHED = "temp.seal_touched"


def head(conn: sqlite3.Connection) -> tuple[int, bytes]:
    """(seq, hash) of the newest block; (0, GENESIS) when there is none."""
    row = conn.execute("select seq, hash from seal_blocks order by seq desc limit 1").fetchone()
    return (0, GENESIS) if row is None else (int(row[0]), bytes(row[1]))


def _existing(conn: sqlite3.Connection, names: set[str]) -> set[str]:
    marks = ",".join("?" * len(names))
    rows = conn.execute(
        f"select name from main.sqlite_master where type='table' and name in ({marks})",
        tuple(names),
    )
    return {str(r[0]) for r in rows}


class Sealer:
    """Seals the transactions of one writer connection (autocommit mode, like the stores)."""

    def __init__(self, conn: sqlite3.Connection, where: str = ""):
        self.conn = conn
        migrate(conn, SCHEMA, where)
        # REPLACE deletes the old row; only with recursive triggers does that fire the
        # delete trigger that notes it
        conn.execute("pragma recursive_triggers=on")
        conn.execute(
            "create temp table if not exists seal_touched(tbl text not null, rid integer not null)"
        )
        conn.execute("create index if not exists temp.seal_touched_row on seal_touched(tbl, rid)")
        self._armed: set[str] = set()
        self._adopted: set[str] = set()
        self._groups = TagGroups(self.conn)
        self._readings_from: int | None = None
        self._retention_hi: int | None = None

    # -- inside a transaction ----------------------------------------------------------

    def _arm(self) -> None:
        missing = set(covered.SEALED_TABLES) - self._armed
        if not missing:
            return
        for table in sorted(_existing(self.conn, missing)):
            if table != covered.READINGS:  # readings: a range per transaction, no trigger
                for op, refs in (
                    ("insert", ("new",)),
                    ("update", ("new", "old")),
                    ("delete", ("old",)),
                ):
                    # not "insert or ignore": an outer upsert or REPLACE overrides a trigger's
                    # conflict clause; an update of the rowid itself touches both rows
                    notes = " ".join(
                        f"insert into seal_touched select '{table}', {ref}.rowid where not exists"
                        f" (select 1 from seal_touched where tbl='{table}' and rid={ref}.rowid);"
                        for ref in refs
                    )
                    self.conn.execute(
                        f"create temp trigger if not exists seal_{table}_{op} after {op} on"
                        f" main.{table} begin {notes} end"
                    )
            self._armed.add(table)

    def begin(self) -> None:
        """Call right after ``begin immediate``: arms the triggers, notes where readings end."""
        self._arm()
        self._retention_hi = None
        self._readings_from = self._max_reading() if covered.READINGS in self._armed else None

    def _max_reading(self) -> int:
        return int(self.conn.execute("select coalesce(max(rowid), 0) from readings").fetchone()[0])

    def retention(self, through_rowid: int) -> None:
        """Readings up to ``through_rowid`` are deleted in this transaction (retention)."""
        self._retention_hi = through_rowid

    def _adopt_new_tables(self, ts: int) -> None:
        unknown = self._armed - self._adopted
        if not unknown:
            return
        known = {str(r[0]) for r in self.conn.execute("select tbl from seal_tables")}
        for table in sorted(unknown - known):
            if table == covered.READINGS:
                lo, hi = self.conn.execute("select min(rowid), max(rowid) from readings").fetchone()
                digest, n = readings_digest(
                    self.conn.execute(covered.select_rows(table) + " order by rowid"),
                    self._groups,
                )
                seq = self._append(ts, f"adopt:{table}", lo, hi, n, digest if n else None, [])
                if self._readings_from is not None:
                    self._readings_from = max(self._readings_from, int(hi or 0))
            else:
                changes = [
                    Change(table, int(r[0]), row_digest(r))
                    for r in self.conn.execute(covered.select_rows(table) + " order by rowid")
                ]
                seq = self._append(ts, f"adopt:{table}", None, None, 0, None, changes)
                self.conn.execute(f"delete from {_TOUCHED} where tbl=?", (table,))
            self.conn.execute(
                "insert into seal_tables(tbl, adopted_block) values(?, ?)", (table, seq)
            )
        self._adopted |= unknown

    def _append(
        self,
        ts: int,
        kind: str,
        lo: int | None,
        hi: int | None,
        n: int,
        readings_sha: bytes | None,
        changes: list[Change],
    ) -> int:
        prev_seq, prev = head(self.conn)
        seq = prev_seq + 1
        csha = changes_digest(changes)
        digest = block_hash(prev, seq, ts, kind, lo, hi, n, readings_sha, len(changes), csha)
        self.conn.executemany(
            "insert into seal_changes(block, tbl, rid, digest) values(?,?,?,?)",
            [(seq, c.table, c.rowid, c.digest) for c in changes],
        )
        self.conn.execute(
            "insert into seal_blocks(seq, ts_us, kind, readings_lo, readings_hi, readings_n,"
            " readings_sha256, changes, changes_sha256, hash) values(?,?,?,?,?,?,?,?,?,?)",
            (seq, ts, kind, lo, hi, n, readings_sha, len(changes), csha, digest),
        )
        return seq

    def seal(self, ts_us: int | None = None) -> int | None:
        """Call right before ``commit``: append the block of this transaction (None: nothing
        changed). Raises what SQLite raises; the caller rolls back then."""
        self._arm()  # a table created inside this transaction (a migration)
        ts = ts_us if ts_us is not None else now_us()
        self._adopt_new_tables(ts)
        changes: list[Change] = []
        for table, rid in self.conn.execute(f"select tbl, rid from {_TOUCHED} order by tbl, rid"):
            row = self.conn.execute(
                covered.select_rows(table) + " where rowid=?", (rid,)
            ).fetchone()
            changes.append(Change(table, int(rid), None if row is None else row_digest(row)))
        lo = hi = None
        n = 0
        sha: bytes | None = None
        if self._readings_from is not None:
            top = self._max_reading()
            if top > self._readings_from:
                lo, hi = self._readings_from + 1, top
                sha, n = readings_digest(
                    self.conn.execute(
                        covered.select_rows(covered.READINGS)
                        + " where rowid between ? and ? order by rowid",
                        (lo, hi),
                    ),
                    self._groups,
                )
        sealed: int | None = None
        if self._retention_hi is not None:
            sealed = self._append(ts, "retention", None, self._retention_hi, 0, None, [])
            self._retention_hi = None
        if changes or n:
            sealed = self._append(ts, "commit", lo, hi, n, sha, changes)
        if changes:
            self.conn.execute(f"delete from {_TOUCHED}")
        self._readings_from = None
        return sealed
