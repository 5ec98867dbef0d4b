"""Per-minute columnar segments of the readings: the batch review's fast path (ADR 0018).

The ``readings`` table is the original record, one SQLite row per reading. A review of
8 h x 500 tags reads 14.4 M of them, and stepping that many rows through Python takes
tens of seconds. The ``segments`` table holds the same readings once more, per tag and
UTC minute, as one packed blob of (ts_us, value, quality) records in time order, so the
review reads about 480 blobs per tag instead of 28,800 rows.

Segments are derived data, never the record: an indexer with its own cursor
(``meta.segments_last_id``) folds every committed reading into its minute after the
fact, and a reader takes the segments up to that cursor plus the raw readings after it
in one snapshot, so a review always sees every committed reading, indexed or not. The
functions here are pure (numpy in, numpy out); ``historian.store.Store`` does the I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

#: One segment covers this many microseconds (a UTC minute).
SEGMENT_US = 60_000_000
#: Packed record of one reading: (ts_us, value, quality); 17 bytes, little-endian.
#: A reading without a numeric value (NULL, text) is value 0.0 with quality 3, as in the
#: review's arrays: it counts as neither Good nor usable.
RECORD = np.dtype([("ts", "<i8"), ("v", "<f8"), ("q", "i1")])
#: Row read from ``readings`` by the indexer: commit id, tag id and the record.
SOURCE = np.dtype([("rid", "<i8"), ("tid", "<i8"), ("ts", "<i8"), ("v", "<f8"), ("q", "i1")])
#: SQL columns giving a :data:`SOURCE` row (shared by the indexer and the readers' tail).
SOURCE_COLUMNS = (
    "rowid, tag_id, ts_us, coalesce(value, 0.0), case when value is null then 3 else quality end"
)

EMPTY = np.zeros(0, dtype=RECORD)


def minute_of(ts_us: np.ndarray | int) -> np.ndarray | int:
    """Start of the segment (UTC minute) holding ``ts_us`` (floor, also before 1970)."""
    return (ts_us // SEGMENT_US) * SEGMENT_US


def pack(records: np.ndarray) -> bytes:
    """The blob stored for ``records`` (a :data:`RECORD` array in time order)."""
    return np.ascontiguousarray(records, dtype=RECORD).tobytes()


def unpack(blob: bytes) -> np.ndarray:
    """The records in a blob (read-only view, no copy)."""
    if len(blob) % RECORD.itemsize:
        raise ValueError(f"segment blob of {len(blob)} bytes is not whole records")
    return np.frombuffer(blob, dtype=RECORD)


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

    Vectorised: one sort and one ``tobytes`` for the whole pass, so a group that has no
    segment yet costs a slice of :attr:`blob`, not a sort, a copy and a pack of its own.
    """

    __slots__ = ("blob", "ends", "minutes", "records", "starts", "tids")

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
        self.blob = records.tobytes()

    @classmethod
    def of(cls, rows: np.ndarray) -> Fold:
        """The fold of ``rows`` (commit order)."""
        if rows.size == 0:
            z = np.zeros(0, dtype=np.int64)
            return cls(EMPTY, z, z, z, z)
        minute = (rows["ts"] // SEGMENT_US) * SEGMENT_US
        order = np.lexsort((rows["ts"], minute, rows["tid"]))  # stable
        tid, minute, rec = rows["tid"][order], minute[order], records_of(rows[order])
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

    def packed(self, start: int, end: int) -> bytes:
        """The blob of ``records[start:end]`` (a group with no segment before)."""
        size = RECORD.itemsize
        return self.blob[start * size : end * size]


def records_of(rows: np.ndarray) -> np.ndarray:
    """The :data:`RECORD` part of :data:`SOURCE` rows, in the same order."""
    out = np.empty(rows.size, dtype=RECORD)
    out["ts"], out["v"], out["q"] = rows["ts"], rows["v"], rows["q"]
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
