"""Per-minute columnar segments of the readings: every per-tag read's path (ADR 0018, 0029).

The ``readings`` table is the original record, one SQLite row per reading, in commit
order and with no per-tag index (ADR 0029: at 20,000 tags such an index dirtied a page per
tag per commit). The ``segments`` table holds the same readings once more, per tag and
UTC minute, as one packed blob of (ts_us, value, quality, reading id) records in time
order, so a batch review reads about 480 blobs per tag instead of 28,800 rows, and a
trend, a raw query or a tag's newest reading finds its rows by id.

Segments are derived data, never the record: an indexer with its own cursor
(``meta.segments_last_id``) folds every committed reading into its minute after the
fact, and a reader takes the segments up to that cursor plus the raw readings after it
in one snapshot, so a read always sees every committed reading, indexed or not. The
functions here are pure (numpy in, numpy out); ``historian.store.Store`` does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

#: One segment covers this many microseconds (a UTC minute).
SEGMENT_US = 60_000_000
#: Packed record of one reading as a segment stores it: (ts_us, value, quality, reading
#: id); 25 bytes, little-endian. A reading without a numeric value (NULL: a failed read, a
#: text, a NaN the store kept as NULL) has value NaN; quality is the stored one.
STORED = np.dtype([("ts", "<i8"), ("v", "<f8"), ("q", "i1"), ("rid", "<i8")])
#: A reading as the batch review takes it: (ts_us, value, quality); a reading without a
#: numeric value is value 0.0 with quality 3 (neither Good nor usable). See :func:`for_review`.
RECORD = np.dtype([("ts", "<i8"), ("v", "<f8"), ("q", "i1")])
#: Row read from ``readings`` by the indexer and the readers' tail: commit id, tag id and
#: the record (value NULL reads as NaN).
SOURCE = np.dtype([("rid", "<i8"), ("tid", "<i8"), ("ts", "<i8"), ("v", "<f8"), ("q", "i1")])
#: SQL columns giving a :data:`SOURCE` row (shared by the indexer and the readers' tail);
#: anything but a number in the value column (a foreign writer's text) reads as no value.
SOURCE_COLUMNS = (
    "rowid, tag_id, ts_us, case when typeof(value) in ('real', 'integer') then value end, quality"
)

EMPTY = np.zeros(0, dtype=STORED)


def minute_of(ts_us: np.ndarray | int) -> np.ndarray | int:
    """Start of the segment (UTC minute) holding ``ts_us`` (floor, also before 1970)."""
    return (ts_us // SEGMENT_US) * SEGMENT_US


def pack(records: np.ndarray) -> bytes:
    """The blob stored for ``records`` (a :data:`STORED` array in time order)."""
    return np.ascontiguousarray(records, dtype=STORED).tobytes()


def unpack(blob: bytes) -> np.ndarray:
    """The records in a blob (read-only view, no copy)."""
    if len(blob) % STORED.itemsize:
        raise ValueError(f"segment blob of {len(blob)} bytes is not whole records")
    return np.frombuffer(blob, dtype=STORED)


def for_review(records: np.ndarray) -> np.ndarray:
    """:data:`STORED` records as the review takes them (:data:`RECORD`): without ids, a
    reading without a numeric value as value 0.0, quality 3."""
    out = np.empty(records.size, dtype=RECORD)
    v = records["v"]
    none = np.isnan(v)
    out["ts"] = records["ts"]
    out["v"] = np.where(none, 0.0, v)
    out["q"] = np.where(none, 3, records["q"])
    return out


def in_time_order(records: np.ndarray) -> np.ndarray:
    """``records`` sorted by time; equal times keep their order (commit order)."""
    ts = records["ts"]
    if ts.size < 2 or bool((ts[1:] >= ts[:-1]).all()):
        return records
    return records[np.argsort(ts, kind="stable")]


def merge(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """A segment's records with later-committed ``new`` ones folded in, in time order."""
    if old.size == 0:
        return in_time_order(new)
    return in_time_order(np.concatenate([old, new]))


def group(rows: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """Split :data:`SOURCE` rows (commit order) into records per (tag id, minute), each
    group in time order (equal times in commit order)."""
    fold = Fold.of(rows)
    return {(t, m): fold.records[a:b] for t, m, a, b in fold.groups()}


class Fold:
    """:data:`SOURCE` rows arranged for the indexer: sorted by (tag id, minute, time),
    stable (equal times keep commit order), with where each (tag id, minute) group starts.

    Vectorised: one sort for the whole pass, and a group that has no segment yet costs
    a view of :attr:`records` (no copy: SQLite reads the buffer), not a sort, a copy and a
    pack of its own. One pass at 20,000 tags folds 1.2 M readings: every copy not made is
    30 MB of the box's resident memory not taken.
    """

    __slots__ = ("ends", "minutes", "records", "starts", "tids")

    def __init__(
        self,
        records: np.ndarray,
        tids: np.ndarray,
        minutes: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
    ) -> None:
        self.records, self.tids, self.minutes = records, tids, minutes
        self.starts, self.ends = starts, ends

    @classmethod
    def of(cls, rows: np.ndarray) -> Fold:
        """The fold of ``rows`` (commit order)."""
        if rows.size == 0:
            z = np.zeros(0, dtype=np.int64)
            return cls(EMPTY, z, z, z, z)
        minute = (rows["ts"] // SEGMENT_US) * SEGMENT_US
        order = np.lexsort((rows["ts"], minute, rows["tid"]))  # stable
        tid, minute, rec = rows["tid"][order], minute[order], records_of(rows, order)
        cut = np.flatnonzero((tid[1:] != tid[:-1]) | (minute[1:] != minute[:-1])) + 1
        starts = np.concatenate([[0], cut])
        ends = np.concatenate([cut, [tid.size]])
        return cls(rec, tid[starts], minute[starts], starts, ends)

    def groups(self) -> Iterator[tuple[int, int, int, int]]:
        """(tag id, minute, start, end) of every group, ``records[start:end]`` its records."""
        return zip(
            self.tids.tolist(),
            self.minutes.tolist(),
            self.starts.tolist(),
            self.ends.tolist(),
            strict=True,
        )

    def packed(self, start: int, end: int) -> memoryview:
        """The blob of ``records[start:end]`` (a group with no segment before), as a view
        of the fold's records: equal to ``pack(records[start:end])``, without the copy."""
        return self.records[start:end].view(np.uint8).data


def records_of(rows: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """The :data:`STORED` records of :data:`SOURCE` rows, in their order or in ``order``
    (indices into ``rows``; one copy of each column, not of the rows first)."""
    n = rows.size if order is None else order.size
    out = np.empty(n, dtype=STORED)
    for name in ("ts", "v", "q", "rid"):
        col = rows[name]
        out[name] = col if order is None else col[order]
    return out


def assemble(blobs: Iterable[bytes], start_us: int, end_us: int) -> np.ndarray:
    """One tag's records in ``[start_us, end_us)`` from its segment blobs in minute order.

    Minutes given out of order are put right (a stable sort by time keeps the commit
    order of equal times, which always share a minute).
    """
    data = b"".join(blobs)
    if not data:
        return EMPTY
    rec = in_time_order(unpack(data))
    ts = rec["ts"]
    a, b = np.searchsorted(ts, [start_us, end_us], side="left")
    return rec[int(a) : int(b)]


def with_tail(records: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """Indexed records plus not-yet-indexed ``tail`` records (commit order), by time."""
    if tail.size == 0:
        return records
    return in_time_order(np.concatenate([records, tail]))


Window = tuple[int, float | None, float | None, float | None, int, int, int, int]


def buckets(records: np.ndarray, start_us: int, window_us: int) -> list[Window]:
    """(start, min, max, mean, n, good, uncertain, bad) per window of ``window_us`` from
    ``start_us`` holding readings, of :data:`STORED` records in time order at or after
    ``start_us``: min, max and mean of the numeric values (None: none in the window), the
    counts of every reading (a failed read without a value is still a Bad reading)."""
    if records.size == 0:
        return []
    b = (records["ts"] - start_us) // window_us
    cut = np.flatnonzero(b[1:] != b[:-1]) + 1
    at = np.concatenate([[0], cut])
    n = np.diff(np.concatenate([at, [b.size]]))
    v, q = records["v"], records["q"]
    has = ~np.isnan(v)
    numeric = np.add.reduceat(has.astype(np.int64), at)
    sums = np.add.reduceat(np.where(has, v, 0.0), at)
    lows = np.minimum.reduceat(np.where(has, v, np.inf), at)
    highs = np.maximum.reduceat(np.where(has, v, -np.inf), at)
    counts = [np.add.reduceat((q == k).astype(np.int64), at).tolist() for k in (0, 1, 2)]
    out: list[Window] = []
    for i, (w, k, s, lo, hi, m) in enumerate(
        zip(
            b[at].tolist(),
            numeric.tolist(),
            sums.tolist(),
            lows.tolist(),
            highs.tolist(),
            n.tolist(),
            strict=True,
        )
    ):
        out.append(
            (
                start_us + w * window_us,
                lo if k else None,
                hi if k else None,
                s / k if k else None,
                m,
                counts[0][i],
                counts[1][i],
                counts[2][i],
            )
        )
    return out
