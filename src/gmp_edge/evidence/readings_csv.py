"""``readings.csv`` of an evidence package: every reading in scope, streamed fast.

The file is nearly all of a package: millions of rows, all columns of the original record,
in commit order. ``snapshot`` opens read transactions on one snapshot of the store;
``write_readings`` streams the CSV through a callback (the ZIP member, or an HTTP
response) and returns the count per tag, checked against the index. ADR 0016 has the
format and the measurements.
"""

from __future__ import annotations

import functools
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydantic_core

from gmp_edge.errors import GmpEdgeError
from gmp_edge.evidence.verify import READINGS_COLUMNS
from gmp_edge.historian.store import record_spans
from gmp_edge.timefmt import iso

QUALITY_NAMES = ("good", "uncertain", "bad")
_ALL = 2**62


class ExportError(GmpEdgeError, ValueError):
    """The readings could not be exported consistently; what was written is incomplete."""


# text, message and cause as CSV fields, quoted by SQLite (NULL: the three are empty)
_TAIL_SQL = (
    "case when text is null and message is null and cause is null then null else"
    " coalesce('\"' || replace(text, '\"', '\"\"') || '\"', '') || ','"
    " || coalesce('\"' || replace(message, '\"', '\"\"') || '\"', '') || ','"
    " || coalesce('\"' || replace(cause, '\"', '\"\"') || '\"', '') end"
)


def snapshot(path: Path, readers: int) -> list[sqlite3.Connection]:
    """``readers`` read-only connections in read transactions on one snapshot of a store.

    A read transaction sees the database as of its first read. So that several see the
    same data, no commit may fall between their first reads: a read-write connection
    holds the write lock (BEGIN IMMEDIATE) meanwhile, and a commit waits those few
    milliseconds (busy timeout). Without write access to the file: one connection.
    """
    lock: sqlite3.Connection | None = None
    if readers > 1:
        try:
            lock = sqlite3.connect(
                f"file:{path}?mode=rw", uri=True, isolation_level=None, timeout=1
            )  # busy: one reader will do
            lock.execute("begin immediate")
        except sqlite3.Error:  # read-only file or directory, or the lock not granted
            if lock is not None:
                lock.close()
            lock, readers = None, 1
    conns: list[sqlite3.Connection] = []
    try:
        for _ in range(readers):
            conns.append(readonly(path))
            conns[-1].execute("begin")
            conns[-1].execute("select count(*) from tags").fetchone()  # the snapshot, now
    except BaseException:
        for c in conns:
            c.close()
        raise
    finally:
        if lock is not None:
            lock.execute("rollback")
            lock.close()
    return conns


def readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection to the store (usable from a worker thread)."""
    # readings are read by a worker thread (_pipeline), one statement at a time
    conn = sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
    )
    conn.execute("pragma busy_timeout=5000")
    return conn


# ----------------------------------------------------------------------------- readings
#
# readings.csv is nearly all of a package: millions of rows. Formatted row by row in Python
# the export ran at ~0.2 M rows/s. Here SQLite hands over each chunk of the table as four
# comma-separated integer lists (one aggregate query, one result row), numpy turns those
# into the fixed-width middle of every row (µs and ISO times, quality) and bytes.join puts
# the tag paths and the values around it. Worker threads, each with its own connection on
# one snapshot, do that for alternate chunks; SQLite, numpy and hashlib release the GIL, so
# they share the cores. The bytes are those of the row-by-row formatter, which stays for
# any row or chunk the fast path does not cover (ADR 0016 has the measurements).

_CHUNK_ROWS = 8192  # rowids per query: a few MB in flight, whatever the export's size
_MAX_TAG_ID = 2**20  # tag ids index arrays; a store's ids count up from 1
_JOIN_ROWS = 768  # rows per output buffer (~110 kB, see _format_lists)
_WORKERS = 2  # threads and connections reading chunks in parallel (one snapshot)
_QUEUE = 1  # formatted chunks a worker may hold ready (memory: see the unit tests)

# Exact value codes computed by SQLite. A finite double with 2**lo <= |v| < 2**(lo + 7),
# times 2**(56 - lo), is an integer m * 16 with 2**52 <= |m| < 2**59 (a double has 53
# significant bits), so the product by a power of two and the cast to integer are exact;
# the code adds the bucket b (3..15) and numpy multiplies m back by 2**(lo - 52), exact
# again. Every constant is a power of two written as an integer literal (no decimal
# parsing by SQLite is relied on). Codes 0: value 0.0, 1: NULL; rowid * 16 + 2: the row is
# read again by its rowid and formatted in Python from its columns (text, message or cause
# present, a quality other than 0, 1, 2, or a value outside the buckets: infinite, text,
# below 2.9e-11 or from 7.2e16).
_V_ZERO, _V_NULL, _V_ROW = 0, 1, 2
_V_ROW_SQL = f"rowid * 16 + {_V_ROW}"
_BUCKETS = range(3, 16)


def _bucket_lo(b: int) -> int:
    return -35 + 7 * (b - 3)  # 2**-35 .. 2**56


_BUCKET_SCALE = np.zeros(16)
for _b in _BUCKETS:
    _BUCKET_SCALE[_b] = 2.0 ** (_bucket_lo(_b) - 52)


def _times_pow2(expr: str, k: int) -> str:
    """``expr * 2**k`` (0 <= k <= 124) as exact integer-literal multiplications."""
    while k > 62:
        expr, k = f"{expr} * {2**62}", k - 62
    return f"{expr} * {2**k}"


def _value_code_sql() -> str:
    def arm(b: int) -> str:
        return f"cast({_times_pow2('value', 56 - _bucket_lo(b))} as integer) + {b}"

    big = [b for b in _BUCKETS if _bucket_lo(b) >= 0]  # 1 <= |v|: most readings, tested first
    small = [b for b in reversed(_BUCKETS) if _bucket_lo(b) < 0]
    pos_big = " ".join(f"when value < {2 ** (_bucket_lo(b) + 7)} then {arm(b)}" for b in big)
    neg_big = " ".join(f"when value > -{2 ** (_bucket_lo(b) + 7)} then {arm(b)}" for b in big)
    pos_small = " ".join(
        f"when {_times_pow2('value', -_bucket_lo(b))} >= 1 then {arm(b)}" for b in small
    )
    neg_small = " ".join(
        f"when {_times_pow2('value', -_bucket_lo(b))} <= -1 then {arm(b)}" for b in small
    )
    return (
        "case when text is not null or message is not null or cause is not null"
        f" or (quality & 3) <> quality then {_V_ROW_SQL}"
        f" when value >= 1 then case {pos_big} else {_V_ROW_SQL} end"
        f" when value > 0 then case {pos_small} else {_V_ROW_SQL} end"
        f" when value = 0 then {_V_ZERO} when value is null then {_V_NULL}"
        f" when value <= -1 then case {neg_big} else {_V_ROW_SQL} end"
        f" when value < 0 then case {neg_small} else {_V_ROW_SQL} end"
        f" else {_V_ROW_SQL} end"
    )


_VALUE_CODE_SQL = _value_code_sql()
# time, tag, quality and a flag in one integer: (ts_us - base) * shift + tag * 8 + quality
# * 2 + (source given); the edge time follows as a delta, the source times (where given)
# too. Only tag ids 0..max of the scope are read, so a tag never carries into the time; an
# overflow makes SQLite return a real, which _Readings.chunk turns away.
_ROW_CODE_SQL = "(ts_us - ?) * ? + tag_id * 8 + (quality & 3) * 2 + (ts_source_us is not null)"
_ROW_COLUMNS_SQL = f"tag_id, ts_us, ts_edge_us, ts_source_us, value, quality, {_TAIL_SQL}"
_INT_LIST_BYTES = b"0123456789-,"

# Values whose shortest repr is positional (no exponent): pydantic_core.to_json writes
# those digit for digit as repr() does (shortest round trip), several times faster; checked
# here once and by the unit tests over millions of values. Others go through repr().
_JSON_MIN, _JSON_MAX = 1e-4, 1e16


def _json_floats_match_repr() -> bool:
    probes = [
        0.0,
        1e-4,
        0.1,
        0.30000000000000004,
        21.0,
        1500.5,
        123456789.12345679,
        9999999999999998.0,
        2.0**52 + 1,
        4.35e-4,
        -7.25,
        1 / 3,
    ]
    try:
        return all(pydantic_core.to_json(v) == repr(v).encode() for v in probes)
    except Exception:  # an API change: fall back to repr
        return False


_JSON_FLOATS = _json_floats_match_repr()

# Stamps: "<16 digits of µs>,YYYY-MM-DDTHH:MM:SS.ffffffZ", 44 bytes, for 10**15 <= us <
# 10**16 (2001-09-09 to 2286-11-20; other times go through the row-by-row formatter).
_STAMP_LEN = 44
_STAMP_TEMPLATE = np.frombuffer(b"0000000000000000,0000-00-00T00:00:00.000000Z", np.uint8)
_US_MIN, _US_MAX = 10**15, 10**16


def _put_digits(out: np.ndarray, col: int, v: np.ndarray, width: int) -> None:
    """Write ``v`` as ``width`` zero-padded decimal digits into columns col.. of ``out``."""
    for k in range(width - 1, -1, -1):
        q = v // 10
        out[:, col + k] = v - q * 10 + 48
        v = q


def _stamps_direct(us: np.ndarray) -> np.ndarray:
    """The stamps of ``us``, every field computed."""
    out = np.empty((len(us), _STAMP_LEN), np.uint8)
    out[:] = _STAMP_TEMPLATE
    hi, lo = np.divmod(us, 100_000_000)
    _put_digits(out, 0, hi.astype(np.int32), 8)
    _put_digits(out, 8, lo.astype(np.int32), 8)
    out[:, 37:43] = out[:, 10:16]
    days, sod = np.divmod(us // 1_000_000, 86_400)
    # civil date from days since 1970-01-01 (H. Hinnant's algorithm, proleptic Gregorian)
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = np.where(mp < 10, mp + 3, mp - 9)
    _put_digits(out, 17, (yoe + era * 400 + (month <= 2)).astype(np.int32), 4)
    _put_digits(out, 22, month.astype(np.int32), 2)
    _put_digits(out, 25, (doy - (153 * mp + 2) // 5 + 1).astype(np.int32), 2)
    sod = sod.astype(np.int32)
    _put_digits(out, 28, sod // 3600, 2)
    _put_digits(out, 31, sod // 60 % 60, 2)
    _put_digits(out, 34, sod % 60, 2)
    return out


# Structured views that copy whole fields (a stamp is one 44-byte item, not 44 columns).
_STAMP_ITEM = np.dtype(
    {
        "names": ["stamp", "frac1", "frac2"],
        "formats": ["S44", "S6", "S6"],
        "offsets": [0, 10, 37],
        "itemsize": _STAMP_LEN,
    }
)
_DIGITS3 = np.array([b"%03d" % i for i in range(1000)], dtype="S3")
_QUALITY_FIELDS = [f"{q},".encode() for q in QUALITY_NAMES]
_QUALITY_ITEMS = np.array(_QUALITY_FIELDS, dtype="S10")


def _middle_dtype(with_source: bool) -> np.dtype:
    """A row's middle: ts stamp, edge stamp, then ",," (no source: fields nosrc, q) or the
    source stamp (fields src, c3, qs); both sets when a chunk has both kinds of rows."""
    names = ["ts", "c1", "edge", "c2", "nosrc", "q"]
    formats = ["S44", "S1", "S44", "S1", "S2", "S10"]
    offsets = [0, 44, 45, 89, 90, 92]
    if with_source:
        names += ["pad", "src", "c3", "qs"]
        formats += ["S43", "S44", "S1", "S10"]
        offsets += [102, 90, 134, 135]
    size = max(o + int(f[1:]) for o, f in zip(offsets, formats, strict=True))
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": size})


_MIDDLE = (_middle_dtype(False), _middle_dtype(True))


class _Scratch:
    """A worker's reusable state: a table of consecutive seconds' stamps (readings come
    in time order, more or less, so it is rarely rebuilt) and the rows' middle buffer
    (kept: fresh pages for every chunk cost more than the formatting)."""

    def __init__(self) -> None:
        self.first = 0
        self.table = np.empty(0, f"S{_STAMP_LEN}")
        self.mid = np.empty(0, np.uint8)

    def stamps(self, us: np.ndarray) -> np.ndarray:
        """The stamps of ``us`` as 44-byte items."""
        sec = us // 1_000_000
        lo, hi = int(sec.min()), int(sec.max())
        if hi - lo >= max(4096, 2 * len(us)):  # scattered: no table
            return _stamps_direct(us).view(f"S{_STAMP_LEN}").ravel()
        if lo < self.first or hi >= self.first + len(self.table):
            span = max(hi - lo + 1, 3600)
            self.first = lo
            us0 = np.arange(lo, lo + span, dtype=np.int64) * 1_000_000
            self.table = _stamps_direct(us0).view(f"S{_STAMP_LEN}").ravel()
        out = self.table[sec - self.first]  # the fraction still zero
        frac = us - sec * 1_000_000
        ms = frac // 1000
        pair = np.empty((len(us), 2), "S3")
        pair[:, 0] = _DIGITS3[ms]
        pair[:, 1] = _DIGITS3[frac - ms * 1000]
        fields = out.view(_STAMP_ITEM)
        fields["frac1"] = fields["frac2"] = pair.view("S6").ravel()
        return out

    def middle(self, n: int, dtype: np.dtype) -> np.ndarray:
        """n records of ``dtype`` in the reused buffer (the caller writes every byte)."""
        size = n * dtype.itemsize
        if len(self.mid) < size:
            self.mid = np.empty(size, np.uint8)
        return self.mid[:size].view(dtype)


def _int_list(data: bytes | None, n: int) -> np.ndarray | None:
    """``n`` integers from SQLite's comma-separated list (of digits, signs and commas
    only: see _Readings.chunk); None if there are not exactly ``n``."""
    if not data:
        return np.zeros(0, np.int64) if n == 0 else None
    if len(data) == 2 * n - 1 and data.count(b"0") == n:  # all zero: edge times mostly
        return np.zeros(n, np.int64)
    out = np.fromstring(data, dtype=np.int64, sep=",")  # text mode: not deprecated
    return out if len(out) == n else None


def _csv_field(text: str) -> bytes:
    quote = any(ch in text for ch in ',"\r\n')
    return (f'"{text.replace(chr(34), chr(34) * 2)}"' if quote else text).encode()


def _quality(q: object) -> bytes:
    if type(q) is not int or not 0 <= q < len(QUALITY_NAMES):
        raise ExportError(f"readings: unknown quality {q!r} in the store")
    return _QUALITY_FIELDS[q]


def _value_text(value: object) -> bytes:
    """A value as the CSV has always written it: ``repr`` (the shortest round trip)."""
    if value is None:
        return b""
    text = repr(value)
    if isinstance(value, float):
        return text.encode()
    return _csv_field(text)  # not a float (only a foreign writer can store one): keep it CSV


def _row_bytes(
    path: bytes, ts: int, edge: int, src: int | None, q: object, value: bytes, tail: bytes | None
) -> bytes:
    """One row by the reference formatter (``tail``: text,message,cause as SQL quotes them)."""
    t = iso(ts).encode()
    return b"%s,%d,%s,%d,%s,%s,%s,%s%s,%s\n" % (
        path,
        ts,
        t,
        edge,
        t if edge == ts else iso(edge).encode(),
        b"" if src is None else b"%d" % src,
        b"" if src is None else iso(src).encode(),
        _quality(q),
        value,
        tail or b",,",
    )


class _Readings:
    """The statements and the row formatting of one export's readings (shared by the
    workers, never changed once built)."""

    def __init__(self, tag_ids: Mapping[int, str], start_us: int, end_us: int, sql_filter: bool):
        self.start_us, self.end_us = start_us, end_us
        self.paths = {tid: _csv_field(p) for tid, p in tag_ids.items()}
        ids = sorted(tag_ids)
        self.max_tid = max(ids, default=0)
        self.sql_filter = sql_filter  # scope in SQL, or the rows of the range and numpy
        where = "rowid between ? and ?"
        if sql_filter:
            where += f" and +tag_id in ({','.join('?' * len(ids))}) and +ts_us >= ? and +ts_us < ?"
            self.params: tuple[int, ...] = (*ids, start_us, end_us)
        else:  # cheap, and keeps the codes' tag part in its bits
            where += " and +tag_id between 0 and ?"
            self.params = (self.max_tid,)
        self.rows_sql = f"select {_ROW_COLUMNS_SQL} from readings where {where} order by rowid"
        self.ids = frozenset(ids)
        if self.max_tid >= _MAX_TAG_ID or min(ids, default=0) < 0:
            return  # only the row-by-row formatter (see write_readings)
        self.shift = 1 << (self.max_tid.bit_length() + 3)  # room for tag * 8 + 2 + 1
        self.chunk_sql = (
            f"select group_concat({_ROW_CODE_SQL}), group_concat({_VALUE_CODE_SQL}),"
            " group_concat(ts_edge_us - ts_us), group_concat(ts_source_us - ts_us)"
            f" from readings where {where}"
        )
        self.code_params = (start_us, self.shift)
        self.odd_rows_sql = (
            f"select rowid, {_ROW_COLUMNS_SQL} from readings"
            " where rowid in (select value from json_each(?)) order by rowid"
        )
        self.in_scope = np.zeros(self.max_tid + 1, bool)
        self.in_scope[ids] = True
        self.first: list[bytes] = [b""] * (self.max_tid + 1)  # "path," opening a chunk
        after: list[bytes] = [b""] * (self.max_tid + 1)  # ",,,\npath," after a row
        for tid, p in self.paths.items():
            self.first[tid] = p + b","
            after[tid] = b",,,\n" + p + b","
        self.after = np.array(after, dtype=object)  # indexed by numpy, all rows at once

    def plan_walks_rowids(self, conn: sqlite3.Connection) -> bool:
        """group_concat keeps rows in loop order: the loop must walk the rowids in order."""
        plan = conn.execute(
            f"explain query plan {self.chunk_sql}", (*self.code_params, 0, 1, *self.params)
        ).fetchall()
        steps = [str(r[-1]) for r in plan]
        return len(steps) == 1 and "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in steps[0]

    def chunk(
        self, conn: sqlite3.Connection, scratch: _Scratch, a: int, b: int
    ) -> tuple[list[bytes], int]:
        """Rowids a..b read and formatted (a worker's job): CSV buffers and their rows."""
        p = (a, b, *self.params)
        codes, values, edges, sources = conn.execute(
            self.chunk_sql, (*self.code_params, *p)
        ).fetchone()
        if codes is None:  # no rows
            return [], 0
        n = codes.count(b",") + 1
        if any(d and d.translate(None, _INT_LIST_BYTES) for d in (codes, edges, sources)):
            # an integer overflowed into a real (the value codes cannot): row by row
            data, n = self._format_rows(conn.execute(self.rows_sql, p).fetchall())
            return [data], n

        def rows_by_id(ids: list[int]) -> list[tuple[Any, ...]]:
            return conn.execute(self.odd_rows_sql, (json.dumps(ids),)).fetchall()

        out = self._format_lists(scratch, n, codes, values, edges, sources, rows_by_id)
        if out is None:
            raise ExportError(f"readings: the lists of rowids {a}..{b} do not add up")
        return out

    def _keep(self, tid: int, ts: int) -> bool:
        return tid in self.ids and self.start_us <= ts < self.end_us

    def _format_rows(self, rows: list[tuple[Any, ...]]) -> tuple[bytes, int]:
        """The reference formatter, row by row."""
        out = [
            _row_bytes(self.paths[tid], ts, edge, src, q, _value_text(value), tail)
            for tid, ts, edge, src, value, q, tail in rows
            if self.sql_filter or self._keep(tid, ts)
        ]
        return b"".join(out), len(out)

    def _format_lists(
        self,
        scratch: _Scratch,
        n: int,
        codes_b: bytes,
        values_b: bytes,
        edges_b: bytes,
        sources_b: bytes | None,
        rows_by_id: Callable[[list[int]], list[tuple[Any, ...]]],
    ) -> tuple[list[bytes], int] | None:
        codes = _int_list(codes_b, n)
        vcodes = _int_list(values_b, n)
        edge_d = _int_list(edges_b, n)
        if codes is None or vcodes is None or edge_d is None:
            return None
        low = codes & (self.shift - 1)
        has_src = (low & 1) != 0
        src_d = _int_list(sources_b, int(has_src.sum()))
        if src_d is None:
            return None
        ts = (codes >> (self.shift.bit_length() - 1)) + self.start_us
        tag = low >> 3
        quality = (low >> 1) & 3
        edge = ts + edge_d
        src = ts.copy()
        src[has_src] += src_d
        if not self.sql_filter:  # the scope and the window, here rather than in SQL
            keep = tag <= self.max_tid
            keep[keep] = self.in_scope[tag[keep]]
            keep &= (ts >= self.start_us) & (ts < self.end_us)
            if not keep.all():
                idx = np.flatnonzero(keep)
                ts, tag, quality, edge, src, has_src, vcodes = (
                    a[idx] for a in (ts, tag, quality, edge, src, has_src, vcodes)
                )
                n = len(ts)
                if not n:
                    return [], 0
        odd_at = np.flatnonzero((vcodes & 15) == _V_ROW)
        odd_rows: list[tuple[Any, ...]] = []
        if len(odd_at):
            ids = (vcodes[odd_at] >> 4).tolist()
            fetched = rows_by_id(ids)
            if [r[0] for r in fetched] != ids:
                return None
            odd_rows = [r[1:] for r in fetched]
            for row in odd_rows:
                _quality(row[5])  # the code's quality bits are (quality & 3)
        if (quality == 3).any():
            raise ExportError("readings: unknown quality 3 in the store")
        srcs = src[has_src]
        if (
            min(ts.min(), edge.min(), srcs.min(initial=_US_MIN)) < _US_MIN
            or max(ts.max(), edge.max(), srcs.max(initial=0)) >= _US_MAX
        ):
            data, n = self._format_arrays(
                ts, tag, quality, edge, src, has_src, vcodes, odd_at, odd_rows
            )
            return [data], n
        values = self._values(vcodes)
        heads = self.after[tag].tolist()  # ",,,\n" ends the row before
        heads[0] = self.first[int(tag[0])]
        end = b",,,\n"
        for i, row in zip(odd_at.tolist(), odd_rows, strict=True):
            values[i] = _value_text(row[4])
            tail = b"," + (row[6] or b",,") + b"\n"
            if i + 1 < n:
                heads[i + 1] = tail + self.first[int(tag[i + 1])]
            else:
                end = tail
        # the middle of every row: "<ts stamp>,<edge stamp>,<source stamp or empty>,<quality>,"
        # NUL-padded to one width; numpy's bytes items drop the padding in tolist()
        any_src, all_src = bool(has_src.any()), bool(has_src.all())
        dtype = _MIDDLE[any_src]
        mid = scratch.middle(n, dtype)
        stamps = scratch.stamps(ts)
        mid["ts"] = stamps
        mid["c1"] = mid["c2"] = b","
        mid["edge"] = stamps
        moved = np.flatnonzero(edge != ts)
        if len(moved):
            mid["edge"][moved] = scratch.stamps(edge[moved])
        one_q = bool((quality == quality[0]).all())
        names = _QUALITY_ITEMS[quality[0]] if one_q else _QUALITY_ITEMS[quality]
        if not all_src:  # every row as one without a source first (NUL-padded after q)
            mid["nosrc"] = b",,"
            mid["q"] = names
            if any_src:
                mid["pad"] = b""
        if any_src:  # then the rows with one (their fields cover the others' bytes)
            at = np.flatnonzero(has_src) if not all_src else slice(None)
            mid["src"][at] = scratch.stamps(srcs)
            mid["c3"][at] = b","
            mid["qs"][at] = names if one_q else names[at]
        width = dtype.itemsize
        mids = mid.view(f"S{width}").tolist()
        pieces: list[bytes] = [b""] * (3 * n)
        pieces[0::3] = heads
        pieces[1::3] = mids
        pieces[2::3] = values
        pieces.append(end)
        # joined a slice at a time: buffers under malloc's mmap threshold are reused, one of
        # a chunk's size would be fresh pages each time (page faults cost more than joins)
        step = 3 * _JOIN_ROWS
        return [b"".join(pieces[i : i + step]) for i in range(0, len(pieces), step)], n

    def _values(self, vcodes: np.ndarray) -> list[bytes]:
        """The value field of every row (NULL: empty; odd rows are filled in by the caller)."""
        bucket = vcodes & 15
        exact = bucket >= _BUCKETS[0]
        floats = (vcodes >> 4).astype(np.float64) * _BUCKET_SCALE[bucket]  # exact, see above
        floats[~exact] = 0.0  # zero, NULL and odd rows
        numeric = exact | (vcodes == _V_ZERO)
        mag = np.abs(floats)
        fast = (mag >= _JSON_MIN) & (mag < _JSON_MAX) | (vcodes == _V_ZERO)
        if _JSON_FLOATS and fast.mean() > 0.5:  # all at once, the few others patched
            out: list[bytes] = pydantic_core.to_json(floats.tolist())[1:-1].split(b",")
            others = np.flatnonzero(~fast)
        else:
            out, others = [b""] * len(vcodes), np.arange(len(vcodes))
        for i, is_number, v in zip(
            others.tolist(), numeric[others].tolist(), floats[others].tolist(), strict=True
        ):
            out[i] = repr(v).encode() if is_number else b""
        return out

    def _format_arrays(
        self,
        ts: np.ndarray,
        tag: np.ndarray,
        quality: np.ndarray,
        edge: np.ndarray,
        src: np.ndarray,
        has_src: np.ndarray,
        vcodes: np.ndarray,
        odd_at: np.ndarray,
        odd_rows: list[tuple[Any, ...]],
    ) -> tuple[bytes, int]:
        """Rows with times outside 2001..2286, by the reference formatter from the lists."""
        values = self._values(vcodes)
        tails: list[bytes | None] = [None] * len(ts)
        for i, row in zip(odd_at.tolist(), odd_rows, strict=True):
            values[i], tails[i] = _value_text(row[4]), row[6]
        out = [
            _row_bytes(self.paths[t], a, e, s if f else None, q, v, tail)
            for t, a, e, s, f, q, v, tail in zip(
                tag.tolist(),
                ts.tolist(),
                edge.tolist(),
                src.tolist(),
                has_src.tolist(),
                quality.tolist(),
                values,
                tails,
                strict=True,
            )
        ]
        return b"".join(out), len(out)


def write_readings(
    conns: Sequence[sqlite3.Connection],
    tag_ids: Mapping[int, str],
    start_us: int,
    end_us: int,
    write: Callable[[bytes], None],
    *,
    chunk_rows: int = _CHUNK_ROWS,
    sql_filter: bool | None = None,
    fast: bool = True,
) -> dict[str, int]:
    """Stream the scope's readings as CSV, in commit (rowid) order; returns counts per tag.

    One snapshot: the counts taken from the segments (``historian.store.record_spans``)
    and the rows streamed from the table are the same data even while the collector keeps
    committing (``conns``: read transactions on one snapshot, see :func:`snapshot`; each is
    a worker's). The table is read sequentially over the rowid range the segments give.
    ``sql_filter`` (default: when under 70 % of that range is in scope) filters
    the scope in SQL rather than in numpy; ``fast=False`` formats every row in Python
    (the reference the tests compare against).
    """
    conn = conns[0]
    write((",".join(READINGS_COLUMNS) + "\n").encode())
    counts: dict[str, int] = {}
    lo, hi = _ALL, -1
    spans = record_spans(conn, sorted(tag_ids), start_us, end_us)
    for tid, path in sorted(tag_ids.items(), key=lambda kv: kv[1]):
        n, a, b = spans.get(tid, (0, _ALL, -1))
        counts[path] = n
        if n:
            lo, hi = min(lo, a), max(hi, b)
    if hi < 0:
        return counts
    expected = sum(counts.values())
    fast = fast and min(tag_ids) >= 0 and max(tag_ids) < _MAX_TAG_ID
    if sql_filter is None or not fast:
        sql_filter = not fast or expected < 0.7 * (hi - lo + 1)
    plan = _Readings(tag_ids, start_us, end_us, sql_filter)
    fast = fast and plan.plan_walks_rowids(conn)  # else (another SQLite?) row by row
    saved_factories = [c.text_factory for c in conns]
    for c in conns:
        c.text_factory = bytes  # the lists are ASCII; bytes skip a decode and an encode
    try:
        ranges = [(a, min(a + chunk_rows - 1, hi)) for a in range(lo, hi + 1, chunk_rows)]
        if fast:
            workers = [functools.partial(plan.chunk, c, _Scratch()) for c in conns]
            total = _pipeline(ranges, workers, write)
        else:
            total = 0
            for a, b in ranges:
                data, n = plan._format_rows(
                    conn.execute(plan.rows_sql, (a, b, *plan.params)).fetchall()
                )
                total += n
                write(data)
    finally:
        for c, factory in zip(conns, saved_factories, strict=True):
            c.text_factory = factory
    if total != expected:  # cannot happen on one snapshot
        raise ExportError(f"readings changed during export ({total} != {expected})")
    return counts


def _pipeline(
    jobs: list[tuple[int, int]],
    workers: Sequence[Callable[[int, int], tuple[list[bytes], int]]],
    write: Callable[[bytes], None],
) -> int:
    """Run the jobs on the workers (a thread each: worker k takes jobs k, k + K, ...) and
    write their buffers here in job order; returns the rows. Bounded queues keep a few
    chunks in flight. The first exception anywhere stops every thread and is raised
    here; all threads have ended when this returns or raises.
    """
    k = len(workers)
    done: list[queue.Queue[Any]] = [queue.Queue(_QUEUE) for _ in range(k)]
    stop = threading.Event()
    failures: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for a, b in jobs[i::k]:
                item = workers[i](a, b)
                while not stop.is_set():
                    try:
                        done[i].put(item, timeout=0.05)
                        break
                    except queue.Full:
                        pass
                else:
                    return
        except BaseException as exc:
            failures.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=work, args=(i,), name=f"evidence-readings-{i}", daemon=True)
        for i in range(k)
    ]
    for t in threads:
        t.start()
    total = 0
    try:
        for j in range(len(jobs)):
            while True:
                try:
                    buffers, n = done[j % k].get(timeout=0.05)
                    break
                except queue.Empty:
                    if stop.is_set():
                        raise failures[0] from None
            total += n
            for data in buffers:
                write(data)
    except BaseException:
        stop.set()
        raise
    finally:
        for t in threads:
            t.join()
    return total
