"""SQLite (WAL) local store: the durable original record on the edge box.

One writer connection, used from one thread, commits batches; readers open their
own connections (WAL lets them read while the writer writes). ``readings`` is
append-only and its rowid is the outbox sequence that forwarders drain from, so
forwarding adds no second copy of each row (docs/decisions/0003).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from gmp_edge.clock import now_us
from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.errors import GmpEdgeError
from gmp_edge.historian import segments as seg
from gmp_edge.historian.gaps import GapClosed, GapEvent, GapOpened
from gmp_edge.historian.tail import TailIndex
from gmp_edge.integrity.ledger import Sealer
from gmp_edge.storage.schema import Schema, SchemaError, migrate

_SCHEMA = """
create table if not exists meta(key text primary key, value text not null);
create table if not exists tags(
    id integer primary key,
    path text not null unique,
    unit text not null default '',
    kind text not null default '',
    device text not null default ''
);
create table if not exists readings(
    tag_id integer not null references tags(id),
    ts_us integer not null,          -- source timestamp if the device gave one, else edge
    ts_edge_us integer not null,
    ts_source_us integer,
    value real,
    text text,
    quality integer not null,        -- 0 Good, 1 Uncertain, 2 Bad
    message text,
    cause text
);
create table if not exists gaps(
    id integer primary key,
    tag_id integer not null references tags(id),
    start_us integer not null,
    end_us integer,                  -- null while open
    cause text not null,
    message text not null
);
create index if not exists gaps_tag_start on gaps(tag_id, start_us);
create index if not exists gaps_open on gaps(end_us) where end_us is null;
create table if not exists service_runs(
    id integer primary key,
    started_us integer not null,
    stopped_us integer,
    config_sha256 text not null,
    note text not null default ''
);
-- derived from readings, never the record: per tag and UTC minute, the readings packed
-- in time order for the batch review (historian/segments.py, ADR 0018)
create table if not exists segments(
    tag_id integer not null,
    minute_us integer not null,
    n integer not null,
    data blob not null,
    primary key(tag_id, minute_us)
);
create table if not exists outbox_cursors(
    destination text not null,
    stream text not null,
    last_id integer not null,
    primary key(destination, stream)
);
"""


def _meta_version(conn: sqlite3.Connection) -> int | None:
    # the version as the previous release kept it: meta.schema_version
    has_meta = conn.execute(
        "select 1 from sqlite_master where type='table' and name='meta'"
    ).fetchone()
    if has_meta is None:
        return None
    row = conn.execute("select value from meta where key='schema_version'").fetchone()
    return None if row is None else int(row[0])


# version 2: a device's own sample interval per tag, as the device reported it (a particle
# counter's hold + sample time), from when; the review's expected samples come from it
_SAMPLE_INTERVALS = """
create table if not exists sample_intervals(
    tag_id integer not null references tags(id),
    from_us integer not null,
    interval_s real not null,
    primary key(tag_id, from_us)
);
"""

# version 3 (ADR 0029): no per-tag index on readings (at 20,000 tags it dirtied a page per
# tag per commit: 45 MB of WAL a commit after 3 minutes); per-tag reads go through the
# segments, whose records now carry each reading's id, so the old ones are derived anew
_NO_TAG_INDEX = """
drop index if exists readings_tag_ts;
delete from segments;
delete from meta where key = 'segments_last_id';
"""

SCHEMA = Schema(
    "historian", (_SCHEMA, _SAMPLE_INTERVALS, _NO_TAG_INDEX), legacy_version=_meta_version
)
SCHEMA_VERSION = SCHEMA.version


_INSERT = (
    "insert into readings(tag_id, ts_us, ts_edge_us, ts_source_us, value, text, quality,"
    " message, cause) values"
)
_COLUMNS = 9
# Rows per insert statement, largest first: a run of n rows with the same NULL columns
# takes n // 64 statements of 64 rows and at most one of each smaller size.
_CHUNKS = (64, 32, 16, 8, 4, 2, 1)
# NULL columns of the commonest row, a Good number without a source timestamp:
# ts_source_us, text, message, cause
_GOOD_NUMBER = 1 << 3 | 1 << 5 | 1 << 7 | 1 << 8


@lru_cache(maxsize=256)
def _insert_sql(nulls: int, rows: int) -> str:
    """An insert of ``rows`` rows; columns whose bit is set in ``nulls`` are literal NULL."""
    row = "(" + ",".join("NULL" if nulls >> c & 1 else "?" for c in range(_COLUMNS)) + ")"
    return _INSERT + ",".join([row] * rows)


# stored quality code -> Quality: a dict lookup, not an enum construction per row (6 % of a
# 10,000-tag service's CPU was EnumType.__call__); a code outside 0..2 raises KeyError
QUALITY_OF: dict[int, Quality] = {int(q): q for q in Quality}


#: readings a fold slice takes (about): the tags of a pass are split into slices of this
#: many of its readings, so a pass's memory is a slice's, not 1.2 M readings' at once
_FOLD_SLICE_ROWS = 200_000
_ALL_IDS = (-(2**63), 2**63 - 1)


def _tag_slices(tids: Sequence[int], rows: int, per_slice: int) -> list[tuple[int, int]]:
    """``[lo, hi]`` tag id ranges splitting ``tids`` (sorted, distinct) into slices of
    about ``per_slice`` of ``rows`` readings (the tags read at about one rate); the first
    and the last are open-ended, so a reading of any tag id is in exactly one."""
    k = max(1, min(len(tids), -(-rows // per_slice)))
    cuts = [tids[len(tids) * i // k] for i in range(1, k)]
    lows = [_ALL_IDS[0], *cuts]
    highs = [c - 1 for c in cuts] + [_ALL_IDS[1]]
    return list(zip(lows, highs, strict=True))


#: Time a per-tag reader of a long range holds in memory at once (a day: 2 MB at 1 s).
READ_SPAN_US = 86_400_000_000
#: A reading's row as :meth:`Store.stored_reading` takes it.
_ROW_COLUMNS = (
    "rowid, tag_id, ts_us, ts_edge_us, ts_source_us, value, text, quality, message, cause"
)
#: reading ids per statement when reading rows by id (a JSON list, one variable)
_IDS_PER_FETCH = 20_000
#: (tag id, minute) pairs per segment lookup: 2 variables each, SQLite allows 32,766
_KEYS_PER_LOOKUP = 4_000


#: Commits kept in memory for readings_of_after (the engine steps after each one).
_RECENT = 8


def stored_as(r: Reading) -> StoredReading:
    """``r`` as the store gives it back: NaN is stored as NULL, an int as a REAL, text in its
    own column, the cause as its code (a test compares this with reading it back)."""
    v = r.value
    if isinstance(v, float):
        v = None if v != v else float(v)
    elif isinstance(v, int):
        v = float(v)
    return StoredReading(
        r.tag,
        r.ts_us,
        r.ts_edge_us,
        r.ts_source_us,
        v,
        QUALITY_OF[int(r.quality)],
        r.message,
        None if r.cause is None else r.cause.value,
    )


class StoreError(GmpEdgeError, RuntimeError):
    """The store could not do what was asked (disk full, locked, corrupt)."""


@dataclass(frozen=True, slots=True)
class StoredReading:
    """A reading as read back from the store."""

    tag: str
    ts_us: int
    ts_edge_us: int
    ts_source_us: int | None
    value: float | str | None
    quality: Quality
    message: str | None
    cause: str | None


@dataclass(frozen=True, slots=True)
class Gap:
    """A period with no values for a tag, with its cause."""

    id: int
    tag: str
    start_us: int
    end_us: int | None
    cause: str
    message: str


@dataclass(frozen=True, slots=True)
class Bucket:
    """Downsampled window: min/max/mean over the values in it, with counts by quality."""

    start_us: int
    min: float | None
    max: float | None
    mean: float | None
    count: int
    good: int
    uncertain: int
    bad: int


@dataclass(frozen=True, slots=True)
class StartupReport:
    """What ``open`` found about the previous run."""

    previous_heartbeat_us: int | None
    downtime_gaps: int
    closed_open_gaps: int


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        uri = f"file:{path}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("pragma busy_timeout=5000")
    return conn


#: Unfolded readings read per statement of a tail scan: bounds a reader's memory when a
#: store has much not folded yet (a store just migrated, an indexer that was stopped).
_TAIL_CHUNK = 500_000
#: Up to this many tags, a tail scan filters in SQL; more, in numpy (one literal list less).
_TAIL_IDS_IN_SQL = 64


@contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction on ``conn`` for the block (one snapshot of the store), or the
    caller's, when ``conn`` is already in one."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("begin")
    try:
        yield conn
    finally:
        conn.execute("rollback")


def _minutes_of(conn: sqlite3.Connection, tid: int, start_us: int, end_us: int) -> np.ndarray:
    """One tag's folded records in ``[start_us, end_us)``, by time, from its segments."""
    # one row per tag: SQLite joins the minutes in C (a third faster than a row per minute
    # through Python); assemble re-sorts if the join order ever differs
    (blob,) = conn.execute(
        "select cast(group_concat(data, '') as blob) from (select data from segments"
        " where tag_id=? and minute_us>=? and minute_us<? order by minute_us)",
        (tid, int(seg.minute_of(start_us)), end_us),
    ).fetchone()
    return seg.assemble(() if blob is None else (blob,), start_us, end_us)


def _folded_and_newest(conn: sqlite3.Connection) -> tuple[int, int]:
    """(the last reading id folded into the segments, the newest reading id), 0 for none."""
    row = conn.execute("select value from meta where key='segments_last_id'").fetchone()
    newest = conn.execute("select coalesce(max(rowid), 0) from readings").fetchone()[0]
    return (0 if row is None else int(row[0])), int(newest)


def _tail_rows(
    conn: sqlite3.Connection,
    ids: Collection[int],
    after: int,
    newest: int,
    start_us: int,
    end_us: int,
    index: TailIndex | None = None,
) -> dict[int, np.ndarray]:
    """The readings of ``ids`` with ids in ``(after, newest]`` and ``start_us <= ts < end_us``,
    per tag id as :data:`historian.segments.SOURCE` rows in commit order.

    The part ``index`` (the writer's :class:`~historian.tail.TailIndex`) covers is read by
    id; the rest by one scan of its rowid range for all the tags, never one per tag (the
    table has no per-tag index, ADR 0029): ~33 ns a row here, 50 ms for the 1.5 M readings
    20,000 tags commit in the 75 s before their minute is folded.
    """
    want = np.array(sorted(ids), dtype=np.int64)
    if want.size == 0 or newest <= after:
        return {}
    found = index.find(want.tolist(), after, newest) if index is not None else None
    if found is None:
        parts = _scan_tail(conn, want, after, newest, start_us, end_us)
    else:
        by_id, lo, hi = found
        parts = _scan_tail(conn, want, after, lo - 1, start_us, end_us)
        parts += _rows_by_id(conn, by_id, start_us, end_us)
        parts += _scan_tail(conn, want, hi, newest, start_us, end_us)
    parts = [p for p in parts if p.size]
    if not parts:
        return {}
    rows = np.concatenate(parts) if len(parts) > 1 else parts[0]
    rows = rows[np.lexsort((rows["rid"], rows["tid"]))]  # per tag, in commit order
    tids = rows["tid"]
    cut = np.flatnonzero(tids[1:] != tids[:-1]) + 1
    starts = np.concatenate([[0], cut]).tolist()
    ends = np.concatenate([cut, [tids.size]]).tolist()
    return {int(tids[a]): rows[a:b] for a, b in zip(starts, ends, strict=True)}


def _scan_tail(
    conn: sqlite3.Connection, want: np.ndarray, after: int, newest: int, start_us: int, end_us: int
) -> list[np.ndarray]:
    """The readings of tag ids ``want`` in ``(after, newest]`` and the time range, by
    scanning that rowid range (in chunks: bounded memory however much is not folded)."""
    sql = (
        f"select {seg.SOURCE_COLUMNS} from readings"
        " where rowid > ? and rowid <= ? and ts_us >= ? and ts_us < ?"
    )
    in_sql = want.size <= _TAIL_IDS_IN_SQL
    if in_sql:  # integers from the tags table: a literal list is safe
        sql += f" and tag_id in ({','.join(map(str, want.tolist()))})"
    out = []
    lo = after
    while lo < newest:
        hi = min(lo + _TAIL_CHUNK, newest)
        rows = np.fromiter(conn.execute(sql, (lo, hi, start_us, end_us)), dtype=seg.SOURCE)
        lo = hi
        out.append(rows if in_sql else rows[np.isin(rows["tid"], want)])
    return out


def _rows_by_id(
    conn: sqlite3.Connection, ids: np.ndarray, start_us: int, end_us: int
) -> list[np.ndarray]:
    """The readings with these ids in the time range, read by primary key."""
    sql = (
        f"select {seg.SOURCE_COLUMNS} from readings where rowid in"
        " (select value from json_each(?)) and ts_us >= ? and ts_us < ?"
    )
    out = []
    for i in range(0, int(ids.size), _IDS_PER_FETCH):
        part = json.dumps(ids[i : i + _IDS_PER_FETCH].tolist())
        out.append(np.fromiter(conn.execute(sql, (part, start_us, end_us)), dtype=seg.SOURCE))
    return out


def iter_records(
    conn: sqlite3.Connection,
    tag_ids: Sequence[int | None],
    start_us: int,
    end_us: int,
    index: TailIndex | None = None,
) -> Iterator[np.ndarray]:
    """Each tag's readings with ``start_us <= ts < end_us`` as
    :data:`historian.segments.STORED` records by time (equal times in commit order), one
    tag at a time: its segments up to the indexer's cursor plus its readings committed
    after it (one scan for all the tags, first). The caller holds the snapshot (a read
    transaction on ``conn``); ``None`` ids give empty arrays. ``index``: the writer's
    :class:`~historian.tail.TailIndex`, when the caller shares its process. ADR 0018, 0029.
    """
    last, newest = _folded_and_newest(conn)
    wanted = {t for t in tag_ids if t is not None}
    tails = _tail_rows(conn, wanted, last, newest, start_us, end_us, index)
    for tid in tag_ids:
        if tid is None:
            yield seg.EMPTY
            continue
        records = _minutes_of(conn, tid, start_us, end_us)
        mine = tails.pop(tid, None)
        yield records if mine is None else seg.with_tail(records, seg.records_of(mine))


def iter_spans(
    conn: sqlite3.Connection,
    tid: int,
    start_us: int,
    end_us: int,
    span_us: int,
    index: TailIndex | None = None,
) -> Iterator[np.ndarray]:
    """One tag's readings in ``[start_us, end_us)`` as :data:`historian.segments.STORED`
    records, ``span_us`` of time at a time (``[start, start + span)``, then the next), each
    by time: a reader of a long range holds a span in memory, not a year of readings (a
    year at 1 s is 0.8 GB of records). The caller holds the snapshot; the unfolded tail is
    read once."""
    if span_us <= 0:
        raise ValueError("span must be positive")
    last, newest = _folded_and_newest(conn)
    tail = _tail_rows(conn, (tid,), last, newest, start_us, end_us, index).get(tid)
    late = seg.EMPTY if tail is None else seg.in_time_order(seg.records_of(tail))
    at = start_us
    while at < end_us:
        # skip the spans holding nothing (a range of decades costs a lookup, not a loop)
        (seg_at,) = conn.execute(
            "select min(minute_us) from segments where tag_id=? and minute_us>=?",
            (tid, int(seg.minute_of(at))),
        ).fetchone()
        k = int(np.searchsorted(late["ts"], at, side="left"))
        nxt = min(
            [int(v) for v in (seg_at, late["ts"][k] if k < late.size else None) if v is not None],
            default=None,
        )
        if nxt is None or nxt >= end_us:
            return
        at = max(at, start_us + (nxt - start_us) // span_us * span_us)  # on the span grid
        upto = min(at + span_us, end_us)
        records = _minutes_of(conn, tid, at, upto)
        a, b = np.searchsorted(late["ts"], [at, upto], side="left")
        yield seg.with_tail(records, late[int(a) : int(b)])
        at = upto


def read_records(
    conn: sqlite3.Connection,
    tag_ids: Sequence[int | None],
    start_us: int,
    end_us: int,
    with_ids: bool = False,
    index: TailIndex | None = None,
) -> list[np.ndarray]:
    """Every reading of each tag with ``start_us <= ts < end_us`` (:func:`iter_records`),
    in one snapshot (the caller's read transaction on ``conn``, else one of its own), so
    nothing committed is missed.

    Returns :data:`historian.segments.RECORD` arrays (the review's), or with ``with_ids``
    :data:`historian.segments.STORED` ones (reading ids, NaN for no value, the stored
    quality).
    """
    with _snapshot(conn):
        found = iter_records(conn, tag_ids, start_us, end_us, index)
        return list(found) if with_ids else [seg.for_review(a) for a in found]


def record_spans(
    conn: sqlite3.Connection,
    tag_ids: Sequence[int],
    start_us: int,
    end_us: int,
    index: TailIndex | None = None,
) -> dict[int, tuple[int, int, int]]:
    """(count, lowest id, highest id) of each tag's readings with ``start_us <= ts <
    end_us`` that has any, in the caller's snapshot: what an export of them streams by
    rowid, found without a per-tag index and a tag's records at a time."""
    out: dict[int, tuple[int, int, int]] = {}
    with _snapshot(conn):
        found = iter_records(conn, tag_ids, start_us, end_us, index)
        for tid, rec in zip(tag_ids, found, strict=True):
            if rec.size:
                rid = rec["rid"]
                out[tid] = (int(rid.size), int(rid.min()), int(rid.max()))
    return out


class Store:
    """The local store. Writes go through one connection guarded by a lock."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._w = _connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            # a store that cannot be opened is one clear line for the operator
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from exc
        try:
            self._w.execute("pragma journal_mode=wal")
            # FULL: a commit survives power loss, not only a process crash; at one
            # commit per second the fsync costs nothing that matters.
            self._w.execute("pragma synchronous=full")
            version = migrate(self._w, SCHEMA, self.path)
            # every transaction of this connection seals what it wrote (ADR 0027)
            self._sealer = Sealer(self._w, str(self.path))
        except SchemaError as exc:
            self._w.close()
            raise StoreError(str(exc)) from exc
        except sqlite3.Error as exc:
            self._w.close()
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from exc
        self._lock = threading.Lock()
        self._tag_ids: dict[str, int] = {}
        self._tag_paths: dict[int, str] = {}
        self._local = threading.local()
        self._run_id: int | None = None
        # the last commits' readings with their rowids, for readings_of_after: the monitoring
        # engine evaluates what was just committed without reading it back row by row
        self._recent: deque[tuple[int, int, tuple[Reading, ...]]] = deque(maxlen=_RECENT)
        #: tag id of each reading of the commits not folded yet, for this process's readers
        self.tail = TailIndex()
        # kept in step for a release that reads only meta (it refuses a newer store)
        if self._meta("schema_version") != str(version):
            self._set_meta("schema_version", str(version))
        self._load_tags()

    # -- housekeeping --------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._w.execute("select value from meta where key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._w.execute("insert or replace into meta(key, value) values(?, ?)", (key, value))

    def _load_tags(self) -> None:
        for tid, path in self._w.execute("select id, path from tags"):
            self._tag_ids[path] = tid
            self._tag_paths[tid] = path

    def register_tags(self, tags: Iterable[tuple[str, str, str, str]]) -> None:
        """Make sure every (path, unit, kind, device) has a row; existing ones are updated."""
        with self._lock, self._tx():
            for path, unit, kind, device in tags:
                self._w.execute(
                    "insert into tags(path, unit, kind, device) values(?,?,?,?) "
                    "on conflict(path) do update set unit=excluded.unit, kind=excluded.kind, "
                    "device=excluded.device",
                    (path, unit, kind, device),
                )
        self._load_tags()

    @contextmanager
    def _tx(self) -> Iterator[None]:
        self._w.execute("begin immediate")
        try:
            self._sealer.begin()
            yield
            self._sealer.seal()
        except BaseException:
            self._w.execute("rollback")
            raise
        self._w.execute("commit")

    def last_heartbeat_us(self) -> int | None:
        """When the last run was last known alive (its newest heartbeat); None: never ran."""
        raw = self._meta("heartbeat_us")
        return None if raw is None else int(raw)

    def start_run(
        self, config_sha256: str, tags: Sequence[str], at_us: int | None = None
    ) -> StartupReport:
        """Record a service start; the time since the last heartbeat becomes a gap per tag.

        Gaps left open by the previous run are closed at its last heartbeat (the
        service-down gap takes over from there).
        """
        now = at_us if at_us is not None else now_us()
        hb_raw = self._meta("heartbeat_us")
        heartbeat = int(hb_raw) if hb_raw is not None else None
        downtime = closed = 0
        with self._lock, self._tx():
            if heartbeat is not None:
                closed = self._w.execute(
                    "update gaps set end_us=? where end_us is null", (heartbeat,)
                ).rowcount
                self._w.execute(
                    "update service_runs set stopped_us=coalesce(stopped_us, ?) "
                    "where stopped_us is null",
                    (heartbeat,),
                )
                for path in tags:
                    tid = self._tag_ids.get(path)
                    if tid is None:
                        continue
                    self._w.execute(
                        "insert into gaps(tag_id, start_us, end_us, cause, message) "
                        "values(?,?,?,?,?)",
                        (
                            tid,
                            heartbeat,
                            now,
                            Cause.SERVICE_DOWN.value,
                            "gmp-edge was not running (last heartbeat to restart)",
                        ),
                    )
                    downtime += 1
            cur = self._w.execute(
                "insert into service_runs(started_us, config_sha256) values(?, ?)",
                (now, config_sha256),
            )
            self._run_id = cur.lastrowid
            self._set_meta("heartbeat_us", str(now))
        return StartupReport(heartbeat, downtime, closed)

    def stop_run(self, at_us: int | None = None) -> None:
        """Record a clean stop; open gaps stay open until the next start closes them."""
        now = at_us if at_us is not None else now_us()
        with self._lock, self._tx():
            if self._run_id is not None:
                self._w.execute(
                    "update service_runs set stopped_us=?, note='clean stop' where id=?",
                    (now, self._run_id),
                )
            self._set_meta("heartbeat_us", str(now))

    def close(self) -> None:
        """Close the writer connection."""
        with self._lock:
            self._w.close()

    # -- writing -----------------------------------------------------------------

    def commit(
        self,
        readings: Sequence[Reading],
        gap_events: Sequence[GapEvent] = (),
        heartbeat_us: int | None = None,
        closed_gaps: Sequence[tuple[str, int, int, Cause, str]] = (),
        sample_intervals: Sequence[tuple[str, int, float]] = (),
    ) -> int:
        """Write one batch of readings, gap transitions, gaps known as a whole
        (``closed_gaps``: tag, start, end, cause, message), device sample intervals
        (``sample_intervals``: tag, from, seconds) and the heartbeat in one transaction.

        Raises :class:`StoreError` (nothing written) when the database refuses,
        e.g. on a full disk; the caller keeps the batch and tries again.
        """
        ids = self._tag_ids
        # NULLs are written as literals, never bound: the sqlite3 module binds None
        # through its adapter lookup, about 0.7 us a value (a number: 0.15 us), and a
        # Good reading has four. Rows with the same NULL columns share a statement.
        values: list[object] = []  # every row's non-NULL values, back to back
        runs: list[tuple[int, int]] = []  # (NULL columns, rows) of consecutive rows
        nulls, rows = -1, 0
        tids: list[int] = []  # each row's tag id, for the tail index
        try:
            for r in readings:
                value, src, message, cause = r.value, r.ts_source_us, r.message, r.cause
                edge = r.ts_edge_us
                tid = ids[r.tag]
                tids.append(tid)
                if src is None and message is None and cause is None and type(value) is float:
                    mask = _GOOD_NUMBER
                    row: tuple[object, ...] = (tid, edge, edge, value, int(r.quality))
                else:
                    text = value if isinstance(value, str) else None
                    full = (
                        tid,
                        edge if src is None else src,  # Reading.ts_us
                        edge,
                        src,
                        None if text is not None else value,
                        text,
                        int(r.quality),
                        message,
                        None if cause is None else cause.value,
                    )
                    mask = 0
                    for c, v in enumerate(full):
                        if v is None:
                            mask |= 1 << c
                    row = tuple(v for v in full if v is not None)
                if mask != nulls:
                    if rows:
                        runs.append((nulls, rows))
                    nulls, rows = mask, 0
                rows += 1
                values += row
            if rows:
                runs.append((nulls, rows))
        except KeyError as exc:
            raise StoreError(f"reading for unregistered tag {exc.args[0]!r}") from None
        n = sum(rows for _, rows in runs)
        try:
            with self._lock, self._tx():
                # multi-row statements, not one per row: SQLite runs each with the GIL
                # released, so the GIL changes threads per statement instead of per row
                # and the event loop's Modbus round trips are not kept waiting
                i = 0
                lo: int | None = None  # rowids of this commit's readings, if consecutive
                hi = 0
                for mask, rows in runs:
                    width = _COLUMNS - mask.bit_count()
                    for size in _CHUNKS:
                        k, rows = divmod(rows, size)
                        for _ in range(k):
                            cur = self._w.execute(
                                _insert_sql(mask, size), values[i : i + size * width]
                            )
                            i += size * width
                            first = int(cur.lastrowid or 0) - size + 1
                            if lo is None:
                                lo = first
                            elif first != hi + 1:
                                lo = -1  # not consecutive: not kept in memory
                            hi = int(cur.lastrowid or 0)
                for ev in gap_events:
                    if isinstance(ev, GapOpened):
                        self._w.execute(
                            "insert into gaps(tag_id, start_us, cause, message) values(?,?,?,?)",
                            (ids[ev.tag], ev.start_us, ev.cause.value, ev.message),
                        )
                    elif isinstance(ev, GapClosed):
                        self._w.execute(
                            "update gaps set end_us=? where tag_id=? and end_us is null",
                            (ev.end_us, ids[ev.tag]),
                        )
                for tag, start, end, cause, message in closed_gaps:
                    self._w.execute(
                        "insert into gaps(tag_id, start_us, end_us, cause, message)"
                        " values(?,?,?,?,?)",
                        (ids[tag], start, end, cause.value, message),
                    )
                for tag, from_us, interval_s in sample_intervals:
                    self._w.execute(
                        "insert or replace into sample_intervals(tag_id, from_us, interval_s)"
                        " values(?,?,?)",
                        (ids[tag], from_us, interval_s),
                    )
                self._set_meta("heartbeat_us", str(heartbeat_us or now_us()))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: commit of {n} readings failed: {exc}") from exc
        except KeyError as exc:
            raise StoreError(f"gap for unregistered tag {exc.args[0]!r}") from None
        if n and lo is not None and lo > 0 and hi - lo + 1 == n:
            self._recent.append((lo, hi, tuple(readings)))
            self.tail.add(lo, tids)
        return n

    def sample_intervals(self, tag: str, start_us: int, end_us: int) -> list[tuple[int, float]]:
        """The device's own sample interval of ``tag`` over ``[start_us, end_us)``: the one
        in force at ``start_us`` (if any) and each change after, as (from, seconds)."""
        tid = self._tag_ids.get(tag)
        if tid is None:
            return []
        with self._lock:
            before = self._w.execute(
                "select from_us, interval_s from sample_intervals where tag_id=? and from_us<=?"
                " order by from_us desc limit 1",
                (tid, start_us),
            ).fetchall()
            after = self._w.execute(
                "select from_us, interval_s from sample_intervals where tag_id=? and from_us>?"
                " and from_us<? order by from_us",
                (tid, start_us, end_us),
            ).fetchall()
        return [(int(f), float(s)) for f, s in before + after]

    def record_gap(
        self, tag: str, start_us: int, end_us: int | None, cause: Cause, message: str
    ) -> None:
        """Write a gap known as a whole (e.g. missed polls), outside the reading stream;
        :class:`StoreError` when the database refuses."""
        if tag not in self._tag_ids:
            raise StoreError(f"gap for unregistered tag {tag!r}")
        try:
            with self._lock, self._tx():
                self._w.execute(
                    "insert into gaps(tag_id, start_us, end_us, cause, message) values(?,?,?,?,?)",
                    (self._tag_ids[tag], start_us, end_us, cause.value, message),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: recording a gap of {tag} failed: {exc}") from exc

    def apply_retention(self, older_than_us: int) -> int:
        """Delete readings and closed gaps older than the cut-off; returns readings deleted.

        Readings go as whole sealed blocks, oldest first (ADR 0027): up to the last block
        that ends before the first reading at or after the cut-off, so the seals of what
        stays still hold; a reading backfilled late with an old time stays until its block
        is wholly old. Readings a destination has not confirmed yet are kept, however old:
        retention never makes the forwarding backlog lose a point (ADR 0003). The newest
        reading's block is kept, however old: in an empty table SQLite would number the next
        reading 1 again, behind every cursor (the forwarders', the segment indexer's), and
        what the box recorded next would never be forwarded, folded or read.
        """
        with self._lock, self._tx():
            row = self._w.execute(
                "select min(last_id) from outbox_cursors where stream = 'readings'"
            ).fetchone()
            keep_from = row[0] if row and row[0] is not None else None
            (first_young,) = self._w.execute(
                "select min(rowid) from readings where ts_us >= ?", (older_than_us,)
            ).fetchone()
            limit = int(first_young) - 1 if first_young is not None else 2**62
            if keep_from is not None:
                limit = min(limit, int(keep_from))
            (newest,) = self._w.execute("select max(rowid) from readings").fetchone()
            if newest is not None:  # the rowid sequence's high-water mark stays
                limit = min(limit, int(newest) - 1)
            (through,) = self._w.execute(
                "select max(readings_hi) from seal_blocks where readings_lo is not null"
                " and readings_hi <= ?",
                (limit,),
            ).fetchone()
            n = 0
            if through is not None:
                n = self._w.execute("delete from readings where rowid <= ?", (through,)).rowcount
                if n:
                    self._sealer.retention(int(through))
                    self._recent.clear()  # what was deleted is not read from memory either
                    self.tail.clear()
            self._w.execute(
                "delete from gaps where end_us is not null and end_us < ?", (older_than_us,)
            )
            # segments wholly before the cut-off; a period older than the retention is not
            # reviewable, whatever forwarding still holds back of it
            self._w.execute(
                "delete from segments where minute_us + ? <= ?", (seg.SEGMENT_US, older_than_us)
            )
        return n

    # -- segments (derived; ADR 0018) ----------------------------------------------

    def segments_cursor(self) -> int:
        """The last reading id folded into the segments (0: none yet)."""
        row = (
            self._reader().execute("select value from meta where key='segments_last_id'").fetchone()
        )
        return 0 if row is None else int(row[0])

    def reset_segments(self) -> None:
        """Delete every segment and the cursor: the next passes derive them all anew."""
        with self._lock, self._tx():
            self._w.execute("delete from segments")
            self._w.execute("delete from meta where key='segments_last_id'")

    def index_segments(self, max_rows: int = 50_000, closed_before_us: int | None = None) -> int:
        """Fold up to ``max_rows`` readings committed after the cursor into their segments.

        Returns how many were folded (0: caught up). Reading and merging happen outside
        the writer lock; only the upserts and the cursor move hold it, in one transaction,
        so a crash leaves segments and cursor consistent and commits wait milliseconds.
        Meant for one indexer at a time: a pass that finds the cursor moved writes nothing.

        ``closed_before_us`` (the start of the running minute): the pass stops at the first
        reading the box acquired in that minute, so the running service writes each segment
        once, when its minute has closed, instead of rewriting a growing blob every pass (a
        third of a 20,000-tag box's samples). A reading acquired more than a minute ahead
        of it (the box's clock stepped back) does not hold the pass up. None: fold all.
        """
        r = self._reader()
        last = self.segments_cursor()
        r.execute("begin")  # the slices below read one snapshot
        try:
            stop: int | None = None
            if closed_before_us is not None:
                row = r.execute(
                    "select rowid from readings where rowid > ? and ts_edge_us >= ?"
                    " and ts_edge_us < ? order by rowid limit 1",
                    (last, closed_before_us, closed_before_us + 2 * seg.SEGMENT_US),
                ).fetchone()
                stop = None if row is None else int(row[0])
            hi, n = r.execute(
                "select max(rowid), count(*) from (select rowid from readings"
                " where rowid > ? and rowid < ? order by rowid limit ?)",
                (last, 2**62 if stop is None else stop, max_rows),
            ).fetchone()
            if not n:
                return 0
            writes = self._fold_writes(r, last, int(hi), int(n))
        finally:
            r.execute("rollback")
        try:
            with self._lock, self._tx():
                if (self._meta("segments_last_id") or "0") != str(last):
                    return 0
                self._w.executemany(
                    "insert into segments(tag_id, minute_us, n, data) values(?,?,?,?)"
                    " on conflict(tag_id, minute_us) do update set n=excluded.n,"
                    " data=excluded.data",
                    writes,
                )
                self._set_meta("segments_last_id", str(hi))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: segment index pass failed: {exc}") from exc
        self.tail.folded_through(int(hi))
        return int(n)

    def _fold_writes(
        self, r: sqlite3.Connection, last: int, hi: int, n: int
    ) -> list[tuple[int, int, int, bytes | memoryview]]:
        """The segment upserts folding readings ``(last, hi]`` (``n`` of them) in, a slice
        of the tags at a time: each slice's sort and copies are a fraction of the pass's
        (one pass at 20,000 tags is 1.2 M readings: ~130 MB at once, and the heap kept much
        of it), and only its records stay, viewed by the upserts."""
        sql = (
            f"select {seg.SOURCE_COLUMNS} from readings"
            " where rowid > ? and rowid <= ? and tag_id between ? and ?"
        )
        writes: list[tuple[int, int, int, bytes | memoryview]] = []
        for lo_tid, hi_tid in _tag_slices(sorted(self._tag_ids.values()), n, _FOLD_SLICE_ROWS):
            rows = np.fromiter(r.execute(sql, (last, hi, lo_tid, hi_tid)), dtype=seg.SOURCE)
            if rows.size == 0:
                continue
            fold = seg.Fold.of(rows)
            del rows
            groups = list(fold.groups())
            old = self._segments_of(r, [(tid, minute) for tid, minute, _, _ in groups])
            for tid, minute, a, b in groups:
                before = old.get((tid, minute))
                if before is None:
                    writes.append((tid, minute, b - a, fold.packed(a, b)))
                else:
                    merged = seg.merge(seg.unpack(before), fold.records[a:b])
                    writes.append((tid, minute, int(merged.size), seg.pack(merged)))
        return writes

    @staticmethod
    def _segments_of(
        r: sqlite3.Connection, keys: list[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """The stored blobs of those (tag id, minute) segments that exist, looked up by
        primary key a few thousand at a time (one statement each, not one per key)."""
        found: dict[tuple[int, int], bytes] = {}
        for i in range(0, len(keys), _KEYS_PER_LOOKUP):
            part = keys[i : i + _KEYS_PER_LOOKUP]
            pairs = ",".join(["(?,?)"] * len(part))
            args = [x for key in part for x in key]
            for tid, minute, data in r.execute(
                "select s.tag_id, s.minute_us, s.data from (values "
                + pairs
                + ") as k cross join segments s on s.tag_id = k.column1"
                " and s.minute_us = k.column2",
                args,
            ):
                found[(int(tid), int(minute))] = data
        return found

    # -- reading -----------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
        return conn

    def tag_paths(self) -> list[str]:
        """Every tag the store knows."""
        return sorted(self._tag_ids)

    def open_gap_tags(self) -> list[str]:
        """Tags whose gap is still open."""
        rows = self._reader().execute("select tag_id from gaps where end_us is null").fetchall()
        return [self._tag_paths[r[0]] for r in rows]

    def _tid(self, tag: str) -> int:
        try:
            return self._tag_ids[tag]
        except KeyError:
            raise KeyError(f"unknown tag {tag!r}") from None

    def records(self, tag: str, start_us: int, end_us: int) -> np.ndarray:
        """One tag's readings with ``start_us <= ts < end_us`` as
        :data:`historian.segments.STORED` records (ts, value NaN when none, quality, id),
        by time: for work on many readings (what-if, counts) without an object each."""
        conn, tid = self._reader(), self._tid(tag)
        (found,) = read_records(conn, [tid], start_us, end_us, with_ids=True, index=self.tail)
        return found

    def readings(
        self, tag: str, start_us: int, end_us: int, limit: int = 100_000
    ) -> list[StoredReading]:
        """Raw readings of one tag with ``start_us <= ts < end_us``, oldest first (equal
        times in commit order): found in the segments and the unfolded tail, then read
        by id, in one snapshot."""
        tid = self._tid(tag)
        with _snapshot(self._reader()) as conn:
            ids: list[int] = []
            for part in iter_spans(conn, tid, start_us, end_us, READ_SPAN_US, self.tail):
                ids += part["rid"][: limit - len(ids)].tolist()
                if len(ids) >= limit:
                    break
            return self._by_ids(conn, tag, ids)

    def _by_ids(self, conn: sqlite3.Connection, tag: str, ids: list[int]) -> list[StoredReading]:
        """The readings with these ids, in the order given (the caller holds the snapshot
        they were found in; one that is not there is an inconsistent store)."""
        out: list[StoredReading] = []
        for i in range(0, len(ids), _IDS_PER_FETCH):
            part = ids[i : i + _IDS_PER_FETCH]
            rows = {
                row[0]: row
                for row in conn.execute(
                    f"select {_ROW_COLUMNS} from readings where rowid in"
                    " (select value from json_each(?))",
                    (json.dumps(part),),
                )
            }
            for rid in part:
                row = rows.get(rid)
                if row is None:
                    raise StoreError(
                        f"{self.path}: reading {rid} of {tag} is in the segments but not in"
                        " the readings table ('gmp-edge segments check' names what differs)"
                    )
                out.append(self.stored_reading(row))
        return out

    def latest(self, tag: str) -> StoredReading | None:
        """The newest reading of a tag (latest time; of equal times the last committed),
        or None: the unfolded tail and the tag's newest segment, one snapshot."""
        tid = self._tid(tag)
        with _snapshot(self._reader()) as conn:
            last, newest = _folded_and_newest(conn)
            best: tuple[int, int] | None = None  # (ts, id)
            tail = _tail_rows(conn, (tid,), last, newest, -(2**63), 2**63 - 1, self.tail).get(tid)
            if tail is not None:
                k = int(np.lexsort((tail["rid"], tail["ts"]))[-1])
                best = (int(tail["ts"][k]), int(tail["rid"][k]))
            blob = conn.execute(
                "select data from segments where tag_id=? order by minute_us desc limit 1", (tid,)
            ).fetchone()
            if blob is not None and len(blob[0]):
                top = seg.unpack(blob[0])[-1]  # time order, equal times by id
                best = max(best or (-(2**63), 0), (int(top["ts"]), int(top["rid"])))
            if best is None:
                return None
            return self._by_ids(conn, tag, [best[1]])[0]

    def downsample(self, tag: str, start_us: int, end_us: int, window_us: int) -> list[Bucket]:
        """Min/max/mean per window over ``[start_us, end_us)``; empty windows are absent.

        Min, max and mean are of the numeric values; ``n`` and the quality counts are of
        every reading (a failed read without a value counts as Bad)."""
        if window_us <= 0:
            raise ValueError("window must be positive")
        tid = self._tid(tag)
        span = max(1, READ_SPAN_US // window_us) * window_us  # no window across two spans
        out: list[Bucket] = []
        with _snapshot(self._reader()) as conn:
            for part in iter_spans(conn, tid, start_us, end_us, span, self.tail):
                out += [Bucket(*w) for w in seg.buckets(part, start_us, window_us)]
        return out

    def gaps(
        self, tag: str | None = None, start_us: int = 0, end_us: int = 2**62, limit: int = 10_000
    ) -> list[Gap]:
        """Gaps overlapping ``[start_us, end_us)``, optionally for one tag, oldest first."""
        sql = (
            "select id, tag_id, start_us, end_us, cause, message from gaps "
            "where start_us < ? and coalesce(end_us, 9223372036854775807) > ?"
        )
        args: list[object] = [end_us, start_us]
        if tag is not None:
            sql += " and tag_id=?"
            args.append(self._tid(tag))
        sql += " order by start_us, id limit ?"
        args.append(limit)
        return [
            Gap(i, self._tag_paths[t], s, e, c, m)
            for i, t, s, e, c, m in self._reader().execute(sql, args)
        ]

    def count_readings(self, tag: str | None = None) -> int:
        """How many readings are stored (for one tag, or all)."""
        if tag is None:
            return int(self._reader().execute("select count(*) from readings").fetchone()[0])
        tid = self._tid(tag)
        with _snapshot(self._reader()) as conn:  # the folded count and the tail of one
            last, newest = _folded_and_newest(conn)
            (folded,) = conn.execute(
                "select coalesce(sum(n), 0) from segments where tag_id=?", (tid,)
            ).fetchone()
            tail = _tail_rows(conn, (tid,), last, newest, -(2**63), 2**63 - 1, self.tail).get(tid)
            return int(folded) + (0 if tail is None else int(tail.size))

    # -- outbox ------------------------------------------------------------------

    def outbox_cursor(self, destination: str, stream: str = "readings") -> int:
        """The last row id a destination has confirmed."""
        row = (
            self._reader()
            .execute(
                "select last_id from outbox_cursors where destination=? and stream=?",
                (destination, stream),
            )
            .fetchone()
        )
        return 0 if row is None else int(row[0])

    def outbox_pending(
        self, destination: str, limit: int = 5000
    ) -> list[tuple[int, StoredReading]]:
        """Readings not yet confirmed by ``destination``, in commit order, with their ids."""
        return self.readings_after(self.outbox_cursor(destination), limit)

    def last_reading_id(self) -> int:
        """The newest committed reading's id (its outbox sequence), 0 when empty."""
        row = self._reader().execute("select max(rowid) from readings").fetchone()
        return int(row[0] or 0)

    def first_edge_time_after(self, after: int) -> int | None:
        """When the box received the first reading committed after id ``after`` (None: none
        yet): how far a consumer at that cursor is behind."""
        row = (
            self._reader()
            .execute(
                "select ts_edge_us from readings where rowid > ? order by rowid limit 1", (after,)
            )
            .fetchone()
        )
        return None if row is None else int(row[0])

    def readings_of_after(
        self, after: int, span: int, tags: Collection[str]
    ) -> tuple[list[tuple[int, StoredReading]], int]:
        """The readings of ``tags`` among those with ids in ``(after, after + span]`` (and at
        most the newest), in commit order with their ids, and the id scanned through.

        For a consumer that needs a few tags of many (limit evaluation: 1 tag in 10 has
        limits): the others are never turned into Python objects. The scan still walks the
        rowid range; the filter is a literal id list, so any number of tags fits.
        """
        hi = min(after + span, self.last_reading_id())
        if hi <= after:
            return [], after
        held = self._recent_of(after, hi, tags)
        if held is not None:
            return held, hi
        ids = sorted({self._tag_ids[t] for t in tags if t in self._tag_ids})
        if not ids:
            return [], hi
        rows = self._reader().execute(
            "select rowid, tag_id, ts_us, ts_edge_us, ts_source_us, value, text, quality,"
            " message, cause from readings where rowid > ? and rowid <= ?"
            f" and tag_id in ({','.join(map(str, ids))}) order by rowid",
            (after, hi),
        )
        return self._with_ids(rows), hi

    def _recent_of(
        self, after: int, hi: int, tags: Collection[str]
    ) -> list[tuple[int, StoredReading]] | None:
        """:meth:`readings_of_after` from the last commits kept in memory, when they hold
        every id of ``(after, hi]``; None otherwise (the caller reads the table)."""
        want = tags if isinstance(tags, set | frozenset) else set(tags)
        out: list[tuple[int, StoredReading]] = []
        nxt = after + 1
        for lo, top, readings in list(self._recent):  # a copy: the committer appends
            if top < nxt:
                continue
            if lo > nxt or top > hi:
                return None
            start = nxt - lo
            out += [
                (lo + i, stored_as(r))
                for i, r in enumerate(readings[start:], start)
                if r.tag in want
            ]
            nxt = top + 1
        return out if nxt == hi + 1 else None

    def readings_after(self, after: int, limit: int = 5000) -> list[tuple[int, StoredReading]]:
        """Readings committed after id ``after``, in commit order, with their ids."""
        return self._with_ids(self.rows_after(after, limit))

    def rows_after(self, after: int, limit: int = 5000) -> list[tuple[Any, ...]]:
        """:meth:`readings_after` as the table's rows ``(rowid, tag_id, ts_us, ts_edge_us,
        ts_source_us, value, text, quality, message, cause)``, for a consumer that turns
        the commonest into its output without an object each (:meth:`stored_reading`,
        :meth:`tag_path` for the others)."""
        return (
            self._reader()
            .execute(
                f"select {_ROW_COLUMNS} from readings where rowid > ? order by rowid limit ?",
                (after, limit),
            )
            .fetchall()
        )

    def tag_path(self, tag_id: int) -> str:
        """The path of a tag id of the store."""
        return self._tag_paths[tag_id]

    def stored_reading(self, row: Sequence[Any]) -> StoredReading:
        """The reading of a :meth:`rows_after` row."""
        _, tid, a, b, c, v, t, q, m, cause = row
        return StoredReading(
            self._tag_paths[tid], a, b, c, v if t is None else t, QUALITY_OF[q], m, cause
        )

    def _with_ids(self, rows: Iterable[tuple[Any, ...]]) -> list[tuple[int, StoredReading]]:
        """(id, reading) of ``select rowid, tag_id, ts_us, ts_edge_us, ts_source_us, value,
        text, quality, message, cause`` rows."""
        paths = self._tag_paths
        return [
            (
                rid,
                StoredReading(paths[tid], a, b, c, v if t is None else t, QUALITY_OF[q], m, cause),
            )
            for rid, tid, a, b, c, v, t, q, m, cause in rows
        ]

    def outbox_ack(self, destination: str, last_id: int, stream: str = "readings") -> None:
        """A destination confirmed everything up to ``last_id``; it never moves backwards."""
        with self._lock, self._tx():
            self._w.execute(
                "insert into outbox_cursors(destination, stream, last_id) values(?,?,?) "
                "on conflict(destination, stream) do update set "
                "last_id=max(last_id, excluded.last_id)",
                (destination, stream, last_id),
            )

    def service_runs(self) -> list[tuple[int, int, int | None, str, str]]:
        """(id, started_us, stopped_us, config_sha256, note) of every run, oldest first."""
        return list(
            self._reader().execute(
                "select id, started_us, stopped_us, config_sha256, note"
                " from service_runs order by id"
            )
        )
