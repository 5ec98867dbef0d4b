"""Recompute the seal ledger and the anchors from a store and name what differs.

Read-only: every check runs over one read snapshot of the store. The audit chain itself is
walked by ``gmp_edge.audit``; here only its entries named by anchors are looked up.
"""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gmp_edge.integrity import covered
from gmp_edge.integrity.anchors import CLOSING_KINDS, Anchor, signature_problem
from gmp_edge.integrity.digest import (
    GENESIS,
    Block,
    Change,
    ReadingsHasher,
    changes_digest,
    expected_hash,
    row_digest,
)
from gmp_edge.integrity.groups import TagGroups
from gmp_edge.timefmt import iso

Progress = Callable[[str], None]
_SHOWN = 5  # problems of one kind named one by one; the rest counted


@dataclass
class Findings:
    """Problems by kind: the first few named, all counted."""

    named: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, sentence: str) -> None:
        """Note one problem of ``kind``."""
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        if n <= _SHOWN:
            self.named.append(sentence)

    def lines(self) -> list[str]:
        """Every named problem, then one line per kind with more than were named."""
        more = [
            f"... and {n - _SHOWN} more: {kind}" for kind, n in self.counts.items() if n > _SHOWN
        ]
        return [*self.named, *more]

    def __bool__(self) -> bool:
        return bool(self.counts)


@dataclass
class LedgerReport:
    """What the ledger check read and found."""

    blocks: int = 0
    head_seq: int = 0
    head_sha256: str = GENESIS.hex()
    readings: int = 0
    rows: int = 0
    findings: Findings = field(default_factory=Findings)


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """Whether the store has table ``name`` (a store of an earlier release may not)."""
    row = conn.execute(
        "select 1 from sqlite_master where type='table' and name=?", (name,)
    ).fetchone()
    return row is not None


def _blocks(
    conn: sqlite3.Connection, where: str = "", args: tuple[object, ...] = ()
) -> Iterator[Block]:
    for r in conn.execute(
        "select seq, ts_us, kind, readings_lo, readings_hi, readings_n, readings_sha256,"
        f" changes, changes_sha256, hash from seal_blocks{where} order by seq",
        args,
    ):
        yield Block(
            int(r[0]),
            int(r[1]),
            str(r[2]),
            r[3],
            r[4],
            int(r[5]),
            None if r[6] is None else bytes(r[6]),
            int(r[7]),
            bytes(r[8]),
            bytes(r[9]),
        )


class Retentions:
    """The ledger's retention blocks, and which readings blocks they deleted: a readings
    block is dead once a later retention deleted through its end (its rowids may be
    reused since). One rule for the check and the evidence package."""

    def __init__(self, blocks: Iterable[tuple[int, int]] = ()):
        pairs = sorted((int(seq), int(hi)) for seq, hi in blocks)
        self._seqs = [seq for seq, _ in pairs]
        self._reach = [hi for _, hi in pairs]
        for i in range(len(self._reach) - 2, -1, -1):  # the furthest any later one deleted
            self._reach[i] = max(self._reach[i], self._reach[i + 1])

    @classmethod
    def of(cls, conn: sqlite3.Connection) -> Retentions:
        """The retention blocks of the store behind ``conn``."""
        return cls(
            conn.execute(
                "select seq, readings_hi from seal_blocks where kind='retention'"
                " and readings_hi is not null"
            )
        )

    def dead(self, seq: int, readings_hi: int | None) -> bool:
        """Whether the readings of block ``seq`` (through ``readings_hi``) were deleted by a
        later retention."""
        if readings_hi is None:
            return False
        i = bisect.bisect_right(self._seqs, seq)
        return i < len(self._reach) and self._reach[i] >= readings_hi


@dataclass
class _Sealed:
    """What the chain says the store holds: every sealed row (table, rowid) -> digest
    (None: deleted), the retention blocks (seq, readings deleted through), adopted tables."""

    state: dict[tuple[str, int], bytes | None]
    retentions: Retentions
    adopted: set[str]


def _chain(conn: sqlite3.Connection, rep: LedgerReport) -> _Sealed:
    """Walk the blocks: hashes, sequence, change digests."""
    f = rep.findings
    state: dict[tuple[str, int], bytes | None] = {}
    retentions: list[tuple[int, int]] = []
    adopted: set[str] = set()
    changes = groupby(
        conn.execute("select block, tbl, rid, digest from seal_changes order by rowid"),
        key=lambda r: int(r[0]),
    )
    pending = next(changes, None)
    prev, prev_seq = GENESIS, 0
    for b in _blocks(conn):
        rep.blocks += 1
        if b.seq != prev_seq + 1:
            f.add("chain", f"seal block {prev_seq + 1} is missing (the next is {b.seq})")
        mine: list[Change] = []
        while pending is not None and pending[0] <= b.seq:
            if pending[0] == b.seq:
                mine = [
                    Change(str(r[1]), int(r[2]), None if r[3] is None else bytes(r[3]))
                    for r in pending[1]
                ]
            else:
                f.add("chain", f"seal changes of block {pending[0]}, which does not exist")
                list(pending[1])
            pending = next(changes, None)
        if len(mine) != b.changes or changes_digest(mine) != b.changes_sha256:
            f.add(
                "chain",
                f"seal block {b.seq} ({iso(b.ts_us)}): its list of sealed rows was changed"
                f" ({len(mine)} rows listed, {b.changes} sealed)",
            )
        if expected_hash(prev, b) != b.hash:
            f.add(
                "chain",
                f"seal block {b.seq} ({iso(b.ts_us)}): its hash does not follow from the block"
                " before (rewritten)",
            )
        if b.kind.startswith("adopt:"):
            table = b.kind.split(":", 1)[1]
            if table in adopted:
                f.add(
                    "chain",
                    f"seal block {b.seq}: table {table} adopted a second time (its seal record"
                    " was removed)",
                )
            adopted.add(table)
        if b.kind == "retention" and b.readings_hi is not None:
            retentions.append((b.seq, int(b.readings_hi)))
        for c in mine:
            state[(c.table, c.rowid)] = c.digest
        prev, prev_seq = b.hash, b.seq
    rep.head_seq, rep.head_sha256 = prev_seq, prev.hex()
    return _Sealed(state, Retentions(retentions), adopted)


def _readings(
    conn: sqlite3.Connection,
    rep: LedgerReport,
    retentions: Retentions,
    progress: Progress | None,
    window: tuple[int, int] | None = None,
) -> None:
    f = rep.findings
    where, rows_where = " where readings_lo is not null", ""
    args: tuple[int, ...] = ()
    if window is not None:
        lo, hi = _window_rows(conn, window[0], window[1], retentions)
        where += f" and seq between {int(window[0])} and {int(window[1])}"
        rows_where = f" where rowid >= {lo}" + ("" if hi is None else f" and rowid <= {hi}")

    live = (b for b in _blocks(conn, where, args) if not retentions.dead(b.seq, b.readings_hi))
    rows = conn.execute(covered.select_rows(covered.READINGS) + rows_where + " order by rowid")
    block = next(live, None)
    unsealed = 0
    first_unsealed: int | None = None
    prev_hi = 0
    groups = TagGroups(conn)
    h = ReadingsHasher(groups)

    def finish(b: Block) -> None:
        n = h.n
        digest = h.digest() if n else None
        if n != b.readings_n or digest != b.readings_sha256:
            what = (
                "rows deleted"
                if n < b.readings_n
                else "rows changed"
                if n == b.readings_n
                else "rows added"
            )
            f.add(
                "readings",
                f"readings {b.readings_lo}..{b.readings_hi} (sealed in block {b.seq},"
                f" {iso(b.ts_us)}): {b.readings_n} sealed, {n} there now, {what} outside gmp-edge",
            )

    for row in rows:
        rid = int(row[0])
        rep.readings += 1
        if progress is not None and rep.readings % 1_000_000 == 0:
            progress(f"readings: {rep.readings:,} checked")
        while block is not None and rid > int(block.readings_hi or 0):
            finish(block)
            prev_hi = int(block.readings_hi or 0)
            block = next(live, None)
            h = ReadingsHasher(groups)
            while block is not None and int(block.readings_lo or 0) <= prev_hi:
                f.add("readings", f"seal block {block.seq}: its readings overlap the block before")
                block = next(live, None)
        if block is None or rid < int(block.readings_lo or 0):
            unsealed += 1
            first_unsealed = rid if first_unsealed is None else first_unsealed
            continue
        h.add(row)
    while block is not None:
        finish(block)
        block = next(live, None)
        h = ReadingsHasher(groups)
    if unsealed:
        f.add(
            "readings",
            f"{unsealed:,} readings were never sealed (the first: rowid {first_unsealed}):"
            " written outside gmp-edge",
        )


def _row_tables(conn: sqlite3.Connection, rep: LedgerReport, sealed: _Sealed) -> None:
    f = rep.findings
    state = sealed.state
    sealed_tables = {t for t, _ in state} | sealed.adopted
    for table in covered.ROW_TABLES:
        if not has_table(conn, table):
            if table in sealed_tables:
                f.add("rows", f"table {table} is gone (it was sealed)")
            continue
        for row in conn.execute(covered.select_rows(table) + " order by rowid"):
            rep.rows += 1
            rid = int(row[0])
            key = (table, rid)
            name = f"{table} row {row[1]!r}" if row[1] is not None else f"{table} rowid {rid}"
            if key not in state or state[key] is None:
                f.add("rows", f"{name} was never sealed: written outside gmp-edge")
            elif state[key] != row_digest(row):
                f.add("rows", f"{name} differs from its seal: changed outside gmp-edge")
            state.pop(key, None)
    for (table, rid), digest in state.items():
        if digest is not None and table in covered.ROW_TABLES:
            f.add("rows", f"{table} rowid {rid} was deleted outside gmp-edge (it was sealed)")


def check_ledger(
    conn: sqlite3.Connection,
    progress: Progress | None = None,
    readings_windows: Sequence[tuple[int, int]] | None = None,
) -> LedgerReport:
    """Walk the seal chain and recompute every sealed row and reading; ``conn`` must be
    inside a read transaction (one snapshot).

    ``readings_windows`` (block seq ranges, inclusive) limits the recomputation of readings
    to the blocks in them, with the rows after the block before each window (so rows
    slipped in between blocks are found too); a window reaching the head also takes every
    row after it. None: every reading. The chain and the other tables are always whole:
    the running store's periodic check scrubs readings window by window (ADR 0027)."""
    rep = LedgerReport()
    if not has_table(conn, "seal_blocks"):
        rep.findings.add(
            "chain", "the store has no seal ledger (made before sealing, never opened since)"
        )
        return rep
    sealed = _chain(conn, rep)
    if progress is not None:
        progress(f"seal chain: {rep.blocks:,} blocks walked")
    if has_table(conn, covered.READINGS):
        if readings_windows is None:
            _readings(conn, rep, sealed.retentions, progress)
        for first, last in readings_windows or ():
            _readings(conn, rep, sealed.retentions, progress, (first, last))
    _row_tables(conn, rep, sealed)
    return rep


@dataclass(frozen=True, slots=True)
class Scrub:
    """Which readings a periodic check recomputes: every block after ``through`` (what is
    new since the last check; None on a run's first check: from the head on) and, from
    ``scrub_from``, older blocks holding about ``budget`` readings, so the whole history is
    recomputed check by check, round and round."""

    through: int | None
    scrub_from: int
    budget: int

    def plan(self, conn: sqlite3.Connection) -> tuple[list[tuple[int, int]], int, int]:
        """(windows, head seq, where the next scrub starts) for the snapshot ``conn``."""
        row = conn.execute("select max(seq) from seal_blocks").fetchone()
        head = int(row[0]) if row and row[0] is not None else 0
        through = head if self.through is None else min(self.through, head)
        # always the tail: blocks since the last check, and rows after the newest block
        # (readings written outside gmp-edge since) even when no block was sealed since
        windows = [(through + 1, max(head, through + 1))]
        start = self.scrub_from if 1 <= self.scrub_from <= through else 1
        if through < 1:
            return windows, head, 1
        row = conn.execute(
            "select seq from (select seq, sum(readings_n) over (order by seq) as n"
            " from seal_blocks where seq between ? and ? and readings_lo is not null)"
            " where n >= ? limit 1",
            (start, through, max(1, self.budget)),
        ).fetchone()
        last = int(row[0]) if row is not None else through
        windows.insert(0, (start, last))
        return windows, head, 1 if last >= through else last + 1


def _window_rows(
    conn: sqlite3.Connection, first: int, last: int, retentions: Retentions
) -> tuple[int, int | None]:
    """The readings rowids a window of blocks answers for: after the readings of the live
    block before it, through its own last live block's (None: no end, when no readings block
    follows). Live: not deleted by a later retention; rowids start again at 1 once
    retention has emptied the table, so the bounds come from the blocks by sequence, never
    from the largest rowid ever sealed."""

    def last_live(where: str, bound: int) -> int | None:
        for seq, hi in conn.execute(
            "select seq, readings_hi from seal_blocks where readings_lo is not null and"
            f" kind != 'retention' and seq {where} ? order by seq desc",
            (bound,),
        ):
            if not retentions.dead(int(seq), int(hi)):
                return int(hi)
        return None

    before = last_live("<", first)
    lo = before + 1 if before is not None else 1
    row = conn.execute(
        "select 1 from seal_blocks where seq > ? and readings_lo is not null"
        " and kind != 'retention' limit 1",
        (last,),
    ).fetchone()
    if row is None:
        return lo, None
    through = last_live("<=", last)
    return lo, through if through is not None and through >= lo else lo - 1


# ------------------------------------------------------------------------------- anchors


@dataclass(frozen=True, slots=True)
class Heads:
    """The newest audit entry and seal block of a store: (seq, SHA-256 hex)."""

    audit: tuple[int, str]
    seal: tuple[int, str]


def store_heads(conn: sqlite3.Connection) -> Heads:
    """The store's two heads; (0, zeros) for a chain that has no entry."""
    audit = (0, "0" * 64)
    if has_table(conn, "audit"):
        row = conn.execute("select seq, hash from audit order by seq desc limit 1").fetchone()
        if row is not None:
            audit = (int(row[0]), str(row[1]))
    seal = (0, GENESIS.hex())
    if has_table(conn, "seal_blocks"):
        row = conn.execute("select seq, hash from seal_blocks order by seq desc limit 1").fetchone()
        if row is not None:
            seal = (int(row[0]), bytes(row[1]).hex())
    return Heads(audit, seal)


def _audit_hash(conn: sqlite3.Connection, seq: int) -> str | None:
    if not has_table(conn, "audit"):
        return None
    row = conn.execute("select hash from audit where seq=?", (seq,)).fetchone()
    return None if row is None else str(row[0])


def _seal_hash(conn: sqlite3.Connection, seq: int) -> str | None:
    if not has_table(conn, "seal_blocks"):
        return None
    row = conn.execute("select hash from seal_blocks where seq=?", (seq,)).fetchone()
    return None if row is None else bytes(row[0]).hex()


def anchor_mismatch(conn: sqlite3.Connection, a: Anchor, heads: Heads) -> str | None:
    """Why the store does not contain what anchor ``a`` covers (None: it does)."""
    if a.audit_seq > heads.audit[0]:
        return (
            f"the store ends at audit entry {heads.audit[0]}, but {a.describe()} covers entry"
            f" {a.audit_seq}: entries were removed, or the store was emptied or replaced"
        )
    if a.audit_seq and _audit_hash(conn, a.audit_seq) != a.audit_sha256:
        return (
            f"audit entry {a.audit_seq} differs from {a.describe()}: the trail was rewritten"
            " or the store replaced"
        )
    if a.seal_seq is None or a.seal_sha256 is None:
        return None
    if a.seal_seq > heads.seal[0]:
        return (
            f"the store ends at seal block {heads.seal[0]}, but {a.describe()} covers block"
            f" {a.seal_seq}: records were removed, or the store was emptied or replaced"
        )
    if a.seal_seq and _seal_hash(conn, a.seal_seq) != a.seal_sha256:
        return (
            f"seal block {a.seal_seq} differs from {a.describe()}: the ledger was rewritten or"
            " the store replaced"
        )
    return None


@dataclass
class AnchorReport:
    """What the anchors check read and found."""

    anchors: int = 0
    newest: Anchor | None = None
    unanchored_audit: int = 0
    unanchored_blocks: int = 0
    findings: Findings = field(default_factory=Findings)


def check_anchors(
    conn: sqlite3.Connection,
    anchors: list[Anchor],
    unreadable: list[str],
    public: Ed25519PublicKey | None,
    service_running: bool,
) -> AnchorReport:
    """Every anchor against the store (and its signature against the box key); what the
    store holds after the newest one. After a clean stop nothing may follow the stop
    anchor while the service is not running."""
    rep = AnchorReport(anchors=len(anchors))
    f = rep.findings
    for line in unreadable:
        f.add("anchors", f"anchors file {line}")
    heads = store_heads(conn)
    last_at = None
    for a in anchors:
        if public is not None and (bad := signature_problem(a, public)) is not None:
            f.add("anchors", bad)
        if last_at is not None and a.at_us < last_at:
            f.add("anchors", f"{a.describe()} is older than the line before it")
        last_at = a.at_us
        if (m := anchor_mismatch(conn, a, heads)) is not None:
            f.add("anchors", m)
    if anchors:
        newest = anchors[-1]
        rep.newest = newest
        rep.unanchored_audit = max(0, heads.audit[0] - newest.audit_seq)
        if newest.seal_seq is not None:
            rep.unanchored_blocks = max(0, heads.seal[0] - newest.seal_seq)
        if (
            newest.kind in CLOSING_KINDS
            and not service_running
            and (rep.unanchored_audit or rep.unanchored_blocks)
        ):
            f.add(
                "anchors",
                f"{rep.unanchored_audit} audit entries and {rep.unanchored_blocks} seal blocks"
                f" follow {newest.describe()}, written while gmp-edge was stopped: appended"
                " outside gmp-edge",
            )
    return rep


def sqlite_integrity(path: Path) -> list[str]:
    """SQLite's own ``quick_check`` of the file ([] when it is sound); a file SQLite cannot
    read at all is one sentence."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return [f"{path}: cannot be opened: {exc}"]
    try:
        rows = [str(r[0]) for r in conn.execute("pragma quick_check")]
    except sqlite3.DatabaseError as exc:
        return [f"{path}: not a readable SQLite database ({exc})"]
    finally:
        conn.close()
    # SQLite's messages may hold newlines ("*** in database main ***\nPage 38: ..."):
    # one problem is one line
    return (
        []
        if rows == ["ok"]
        else [f"{path}: SQLite integrity: {' '.join(r.split())}" for r in rows[:_SHOWN]]
    )
