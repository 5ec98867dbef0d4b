"""Per-minute review segments: the pure functions, and equality with the readings table.

The segments are derived data; what matters is that a review reads from them exactly the
readings the table holds (same values, same order), whatever the indexer has done so far:
never indexed, part indexed, late and out-of-order readings, several passes over one
minute, retention. ``read_raw_arrays`` (row by row) is the reference.
"""

import math
import random
import sqlite3

import numpy as np
import pytest

from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.historian import segments as seg
from gmp_edge.historian.store import Store, read_records
from gmp_edge.review.gather import read_raw_arrays, read_tag_arrays

S = 1_000_000
M = seg.SEGMENT_US
T0 = 1_790_000_000 * S  # a whole minute: 1_790_000_000 = 29_833_333 min + 20 s
TAGS = [(f"s/a/r/e/t{i}", "u", "temperature", "dev") for i in range(4)]
PATHS = [t[0] for t in TAGS]


def rec(*rows):
    """STORED records; a row without an id gets its position + 1."""
    return np.array(
        [r if len(r) == 4 else (*r, i + 1) for i, r in enumerate(rows)], dtype=seg.STORED
    )


def src(*rows):
    return np.array(list(rows), dtype=seg.SOURCE)


@pytest.mark.parametrize(
    ("ts", "minute"),
    [(0, 0), (M - 1, 0), (M, M), (-1, -M), (-M, -M), (-M - 1, -2 * M), (T0 + 5, (T0 // M) * M)],
)
def test_minute_of_floors_also_before_1970(ts, minute):
    assert seg.minute_of(ts) == minute


def test_pack_unpack_round_trip_is_exact():
    r = rec(
        (1, 0.1, 0), (2, -0.0, 1), (3, 1e-300, 2), (4, math.nan, 2), (5, 123456789.123456789, 0)
    )
    back = seg.unpack(seg.pack(r))
    assert back.tobytes() == r.tobytes()
    assert np.signbit(back["v"][1])
    assert back["rid"].tolist() == [1, 2, 3, 4, 5]


def test_the_review_takes_a_reading_without_a_value_as_quality_3():
    r = seg.for_review(rec((1, 2.5, 1), (2, math.nan, 2), (3, math.nan, 0)))
    assert r.dtype == seg.RECORD
    assert r.tolist() == [(1, 2.5, 1), (2, 0.0, 3), (3, 0.0, 3)]


@pytest.mark.parametrize(
    ("rows", "start", "window", "want"),
    [
        ([], 0, 10, []),
        # a failed read has no value but is a Bad reading of its window; empty windows absent
        (
            [(0, 1.0, 0), (5, math.nan, 2), (9, 3.0, 1), (25, 7.0, 0)],
            0,
            10,
            [(0, 1.0, 3.0, 2.0, 3, 1, 1, 1), (20, 7.0, 7.0, 7.0, 1, 1, 0, 0)],
        ),
        ([(12, math.nan, 2)], 2, 10, [(12, None, None, None, 1, 0, 0, 1)]),
        (
            [(3, -1.0, 0), (4, -2.0, 0)],
            3,
            1,
            [(3, -1.0, -1.0, -1.0, 1, 1, 0, 0), (4, -2.0, -2.0, -2.0, 1, 1, 0, 0)],
        ),
    ],
)
def test_buckets_table(rows, start, window, want):
    assert seg.buckets(rec(*rows) if rows else seg.EMPTY, start, window) == want


def test_unpack_refuses_a_torn_blob():
    with pytest.raises(ValueError, match="not whole records"):
        seg.unpack(b"\0" * 18)


@pytest.mark.parametrize(
    ("old", "new", "want_ts", "want_v"),
    [
        ([], [(5, 1.0, 0)], [5], [1.0]),
        ([(1, 1.0, 0), (3, 3.0, 0)], [(4, 4.0, 0)], [1, 3, 4], [1.0, 3.0, 4.0]),
        # late reading goes in its place
        ([(1, 1.0, 0), (3, 3.0, 0)], [(2, 2.0, 0)], [1, 2, 3], [1.0, 2.0, 3.0]),
        # equal times keep commit order: the older segment's first
        ([(2, 1.0, 0)], [(2, 9.0, 0)], [2, 2], [1.0, 9.0]),
        # new readings out of order among themselves
        ([], [(3, 3.0, 0), (1, 1.0, 0), (2, 2.0, 0)], [1, 2, 3], [1.0, 2.0, 3.0]),
    ],
)
def test_merge_table(old, new, want_ts, want_v):
    out = seg.merge(rec(*old) if old else seg.EMPTY, rec(*new))
    assert out["ts"].tolist() == want_ts
    assert out["v"].tolist() == want_v


def test_group_splits_by_tag_and_minute_in_time_order():
    rows = src(
        (1, 7, M + 5, 1.0, 0),
        (2, 3, M + 6, 2.0, 0),
        (3, 7, 2 * M, 3.0, 1),
        (4, 7, M + 1, 4.0, 2),  # later commit, earlier time: time order within the group
        (5, 3, M - 1, 5.0, 3),
        (6, 7, M + 5, 6.0, 1),  # same time as row 1: after it (commit order)
    )
    g = seg.group(rows)
    assert sorted(g) == [(3, 0), (3, M), (7, M), (7, 2 * M)]
    assert g[(7, M)]["ts"].tolist() == [M + 1, M + 5, M + 5]
    assert g[(7, M)]["v"].tolist() == [4.0, 1.0, 6.0]
    assert g[(7, M)]["q"].tolist() == [2, 0, 1]
    assert g[(7, 2 * M)]["v"].tolist() == [3.0]
    assert g[(3, 0)]["q"].tolist() == [3]
    assert seg.group(src()) == {}


def test_fold_slices_each_group_as_its_own_pack():
    rows = src((1, 7, M + 5, 1.0, 0), (2, 3, M + 6, 2.0, 0), (3, 7, M + 1, 4.0, 2))
    fold = seg.Fold.of(rows)
    got = {(t, m): fold.packed(a, b) for t, m, a, b in fold.groups()}
    assert got == {k: seg.pack(v) for k, v in seg.group(rows).items()}
    assert list(seg.Fold.of(src()).groups()) == []


@pytest.mark.parametrize(
    ("start", "end", "want"),
    [(0, 10 * M, [1, 2, M, M + 5]), (2, M + 5, [2, M]), (M + 6, 2 * M, []), (0, 1, [])],
)
def test_assemble_cuts_to_the_window(start, end, want):
    blobs = [seg.pack(rec((1, 0.0, 0), (2, 0.0, 0))), seg.pack(rec((M, 0.0, 0), (M + 5, 0.0, 0)))]
    assert seg.assemble(blobs, start, end)["ts"].tolist() == want


def test_with_tail_puts_late_readings_in_time_order():
    out = seg.with_tail(rec((1, 1.0, 0), (3, 3.0, 0)), rec((2, 2.0, 0), (3, 4.0, 0)))
    assert out["ts"].tolist() == [1, 2, 3, 3]
    assert out["v"].tolist() == [1.0, 2.0, 3.0, 4.0]


# ------------------------------------------------------------------ against a real store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "seg.db")
    s.register_tags(TAGS)
    yield s
    s.close()


def _random_batch(rng: random.Random, t: int) -> list[Reading]:
    out = []
    for _ in range(rng.randint(1, 40)):
        tag = rng.choice(PATHS)
        ts = t + rng.randint(-200 * S, 200 * S)  # late and early, across minutes
        kind = rng.random()
        if kind < 0.7:
            out.append(Reading(tag, rng.uniform(-50, 50), Quality.GOOD, ts))
        elif kind < 0.8:
            out.append(Reading(tag, rng.uniform(-50, 50), Quality.UNCERTAIN, ts, ts - S, "odd"))
        elif kind < 0.9:
            out.append(Reading.bad(tag, ts, "no answer", Cause.NETWORK))
        elif kind < 0.95:
            out.append(Reading(tag, "text", Quality.GOOD, ts))
        else:  # a duplicate timestamp of the first reading of this batch
            first = out[0] if out else Reading(tag, 1.0, Quality.GOOD, ts)
            out.append(Reading(first.tag, 42.0, Quality.GOOD, first.ts_us))
    return out


def _same(store: Store, start: int, end: int) -> None:
    fast = read_tag_arrays(store.path, PATHS, start, end)
    raw = read_raw_arrays(store.path, PATHS, start, end)
    for p in PATHS:
        assert fast[p]["ts"].tolist() == raw[p]["ts"].tolist(), p
        assert fast[p]["v"].tobytes() == raw[p]["v"].tobytes(), p
        assert fast[p]["q"].tolist() == raw[p]["q"].tolist(), p


@pytest.mark.parametrize("seed", range(6))
def test_segments_plus_tail_equal_the_readings_table(store, seed):
    rng = random.Random(seed)
    t = T0
    for step in range(30):
        store.commit(_random_batch(rng, t))
        t += rng.randint(1, 40) * S
        if rng.random() < 0.4:
            closed = rng.choice([None, (t // M) * M, (t // M) * M - M])
            store.index_segments(max_rows=rng.choice([1, 7, 50, 10_000]), closed_before_us=closed)
        if step % 5 == 0:
            a = T0 + rng.randint(-300, 600) * S + rng.randint(0, S)
            _same(store, a, a + rng.randint(1, 900) * S)
    _same(store, 0, 2**62)
    while store.index_segments(max_rows=13):
        pass
    assert store.segments_cursor() == store.last_reading_id()
    _same(store, 0, 2**62)
    _same(store, T0 + 17 * S + 3, T0 + 123 * S)


def test_the_tail_read_in_chunks_or_filtered_in_numpy_is_the_same(store, monkeypatch):
    from gmp_edge.historian import store as store_mod

    rng = random.Random(99)
    for i in range(20):
        store.commit(_random_batch(rng, T0 + i * 10 * S))
    store.index_segments(max_rows=100)
    conn = store._reader()
    tids = [store._tag_ids[p] for p in PATHS] + [None]
    whole = read_records(conn, tids, T0 - M, T0 + 10 * M, with_ids=True)
    monkeypatch.setattr(store_mod, "_TAIL_CHUNK", 7)
    monkeypatch.setattr(store_mod, "_TAIL_IDS_IN_SQL", 0)
    chunked = read_records(conn, tids, T0 - M, T0 + 10 * M, with_ids=True)
    for a, b in zip(whole, chunked, strict=True):
        assert a.tobytes() == b.tobytes()
    assert chunked[-1].size == 0 and sum(a.size for a in whole) > 0


# --------------------------------------- per-tag reads without a per-tag index (ADR 0029)

_DETAIL = "ts_us, ts_edge_us, ts_source_us, value, text, quality, message, cause"


def _table(store: Store, tag: str, start: int, end: int) -> list[tuple]:
    """The reference: one tag's rows straight from the table, by (time, id)."""
    conn = sqlite3.connect(store.path)
    try:
        return conn.execute(
            f"select {_DETAIL} from readings where tag_id=? and ts_us>=? and ts_us<?"
            " order by ts_us, rowid",
            (store._tag_ids[tag], start, end),
        ).fetchall()
    finally:
        conn.close()


def _as_row(r) -> tuple:
    text = r.value if isinstance(r.value, str) else None
    value = None if text is not None else r.value
    return (r.ts_us, r.ts_edge_us, r.ts_source_us, value, text, int(r.quality), r.message, r.cause)


def _reference_buckets(rows: list[tuple], start: int, window: int) -> list[tuple]:
    """(start, min, max, n, good, uncertain, bad, mean) per window that has rows."""
    out: dict[int, list[tuple]] = {}
    for row in rows:
        out.setdefault((row[0] - start) // window, []).append(row)
    got = []
    for b, rs in sorted(out.items()):
        vals = [r[3] for r in rs if r[3] is not None]
        got.append(
            (
                start + b * window,
                min(vals) if vals else None,
                max(vals) if vals else None,
                len(rs),
                *(sum(r[5] == k for r in rs) for k in (0, 1, 2)),
                sum(vals) / len(vals) if vals else None,
            )
        )
    return got


@pytest.mark.parametrize("seed", range(5))
def test_per_tag_reads_equal_the_table_however_far_folded(store, seed):
    rng = random.Random(seed)
    t = T0
    scanning = Store(store.path)  # reads only: its tail index stays empty
    assert scanning.tail.find([1], 0, 2**62) is None
    for _ in range(25):
        store.commit(_random_batch(rng, t))
        t += rng.randint(1, 40) * S
        if rng.random() < 0.5:
            closed = rng.choice([None, (t // M) * M])
            store.index_segments(max_rows=rng.choice([1, 9, 10_000]), closed_before_us=closed)
        a = T0 + rng.randint(-300, 600) * S + rng.randint(0, S)
        b = a + rng.randint(1, 900) * S
        for tag in PATHS:
            want = _table(store, tag, a, b)
            assert [_as_row(r) for r in store.readings(tag, a, b)] == want
            assert [_as_row(r) for r in store.readings(tag, a, b, limit=3)] == want[:3]
            window = rng.choice([S, 7 * S, 60 * S])
            got = [
                (x.start_us, x.min, x.max, x.count, x.good, x.uncertain, x.bad, x.mean)
                for x in store.downsample(tag, a, b, window)
            ]
            assert [g[:-1] for g in got] == [r[:-1] for r in _reference_buckets(want, a, window)]
            assert [g[-1] for g in got] == pytest.approx(
                [r[-1] for r in _reference_buckets(want, a, window)]
            )
            # the same from a store without this writer's tail index (the scan path)
            assert [_as_row(r) for r in scanning.readings(tag, a, b)] == want
            everything = _table(store, tag, -(2**62), 2**62)
            assert store.count_readings(tag) == len(everything)
            assert scanning.count_readings(tag) == len(everything)
            newest = store.latest(tag)
            if not everything:
                assert newest is None
            else:  # latest time; of equal times the last committed (the table's order)
                assert _as_row(newest) == everything[-1]
    scanning.close()


@pytest.mark.parametrize("span_s", [1, 7, 3600])
def test_long_ranges_are_read_a_span_at_a_time_with_the_same_answers(store, monkeypatch, span_s):
    # a year of one tag at 1 s is 0.8 GB of records: readers hold a span at a time, skip
    # the empty ones (a request for 146,000 years must not loop over them) and give the
    # same readings and windows as the table
    from gmp_edge.historian import store as store_mod

    monkeypatch.setattr(store_mod, "READ_SPAN_US", span_s * S)
    rng = random.Random(span_s)
    for i in range(12):
        store.commit(_random_batch(rng, T0 + i * 37 * S))
        if i == 6:
            store.index_segments(closed_before_us=T0 + 120 * S)
    for tag in PATHS:
        for a, b in ((-(2**62), 2**62), (T0 - 100 * S + 3, T0 + 333 * S)):
            want = _table(store, tag, a, b)
            assert [_as_row(r) for r in store.readings(tag, a, b)] == want
            assert [_as_row(r) for r in store.readings(tag, a, b, limit=5)] == want[:5]
            window = rng.choice([S, 13 * S, 10**6 * S])
            got = [
                (x.start_us, x.min, x.max, x.count, x.good, x.uncertain, x.bad)
                for x in store.downsample(tag, a, b, window)
            ]
            assert got == [r[:-1] for r in _reference_buckets(want, a, window)]


def test_a_commit_writes_pages_for_its_rows_not_one_per_tag(tmp_path):
    # ADR 0029: with the per-tag index on readings, each commit of every tag dirtied one
    # index leaf per tag once the index outgrew the tags (at 20,000 tags: 45 MB of WAL a
    # commit after 3 minutes); without it a commit appends about its rows' worth of pages
    tags = [(f"s/a/r/e/t{i}", "u", "temperature", "dev") for i in range(2_000)]
    s = Store(tmp_path / "wal.db")
    try:
        s.register_tags(tags)
        s._w.execute("pragma wal_autocheckpoint=0")  # the WAL holds every frame of a commit
        frames = []
        for k in range(60):  # a minute of 2,000 tags at 1 s
            s._w.execute("pragma wal_checkpoint(truncate)")
            s.commit(
                [Reading(p, k + i / 7, Quality.GOOD, T0 + k * S) for i, (p, *_) in enumerate(tags)]
            )
            (_, log, _) = s._w.execute("pragma wal_checkpoint(passive)").fetchone()
            frames.append(log)
    finally:
        s.close()
    # 2,000 rows of ~40 bytes are ~20 pages of 4 KB; an index leaf per tag would be 2,000
    assert max(frames[30:]) < 200, frames


@pytest.mark.parametrize(
    ("tids", "rows", "per_slice", "want"),
    [
        ([1, 2, 3], 10, 100, [(-(2**63), 2**63 - 1)]),
        ([], 10, 1, [(-(2**63), 2**63 - 1)]),
        ([1, 2, 3, 4], 400, 200, [(-(2**63), 2), (3, 2**63 - 1)]),
        ([5, 9], 1_000, 1, [(-(2**63), 8), (9, 2**63 - 1)]),  # no more slices than tags
        ([1, 2, 3, 4, 5, 6], 300, 100, [(-(2**63), 2), (3, 4), (5, 2**63 - 1)]),
    ],
)
def test_tag_slices_cover_every_id_once(tids, rows, per_slice, want):
    from gmp_edge.historian.store import _tag_slices

    assert _tag_slices(tids, rows, per_slice) == want


def test_a_pass_in_tag_slices_folds_the_same(store, monkeypatch):
    from gmp_edge.historian import store as store_mod

    rng = random.Random(5)
    for i in range(30):
        store.commit(_random_batch(rng, T0 + i * 10 * S))
    monkeypatch.setattr(store_mod, "_FOLD_SLICE_ROWS", 3)  # a slice per tag
    while store.index_segments(max_rows=50):
        pass
    assert store.segments_cursor() == store.last_reading_id()
    sliced = store._reader().execute("select * from segments order by 1, 2").fetchall()
    store.reset_segments()
    monkeypatch.setattr(store_mod, "_FOLD_SLICE_ROWS", 10**9)
    while store.index_segments(max_rows=50):
        pass
    assert store._reader().execute("select * from segments order by 1, 2").fetchall() == sliced
    _same(store, 0, 2**62)


def test_index_pass_counts_and_catches_up(store):
    store.commit([Reading(PATHS[0], float(i), Quality.GOOD, T0 + i * S) for i in range(150)])
    assert store.index_segments(max_rows=100) == 100
    assert store.index_segments(max_rows=100) == 50
    assert store.index_segments() == 0
    rows = (
        store._reader().execute("select minute_us, n from segments order by minute_us").fetchall()
    )
    first = (T0 // M) * M
    assert rows == [(first, 40), (first + M, 60), (first + 2 * M, 50)]


def test_closed_minutes_only_writes_each_segment_once(store):
    # the running service folds closed minutes only: a pass during a minute leaves that
    # minute's readings in the raw tail instead of writing a blob it rewrites next pass
    first = (T0 // M) * M
    t = first
    for i in range(150):  # 2.5 minutes of one tag at 1 s
        store.commit([Reading(PATHS[0], float(i), Quality.GOOD, t + i * S)])
    assert store.index_segments(closed_before_us=first + 2 * M) == 120
    assert store.index_segments(closed_before_us=first + 2 * M) == 0  # the running minute
    writes = store._reader().execute("select minute_us, n from segments order by 1").fetchall()
    assert writes == [(first, 60), (first + M, 60)]
    _same(store, 0, 2**62)  # the running minute is read from the tail


def test_a_reading_from_a_clock_ahead_does_not_hold_the_fold(store):
    first = (T0 // M) * M
    ahead = first + 30 * M  # acquired before the box's clock was stepped back half an hour
    store.commit([Reading(PATHS[0], 1.0, Quality.GOOD, ahead)])
    store.commit([Reading(PATHS[0], 2.0, Quality.GOOD, first + 5 * S)])
    store.commit([Reading(PATHS[0], 3.0, Quality.GOOD, first + M + 5 * S)])  # running minute
    assert store.index_segments(closed_before_us=first + M) == 2
    assert store.segments_cursor() == 2
    _same(store, 0, 2**62)


def test_a_pass_that_finds_the_cursor_moved_writes_nothing(store, monkeypatch):
    store.commit([Reading(PATHS[0], 1.0, Quality.GOOD, T0)])
    real = store.segments_cursor
    calls = iter([0])  # the pass sees 0, but another indexer has moved it meanwhile
    monkeypatch.setattr(store, "segments_cursor", lambda: next(calls, real()))
    store._set_meta("segments_last_id", "1")
    assert store.index_segments() == 0
    assert store._reader().execute("select count(*) from segments").fetchone()[0] == 0


def test_retention_deletes_old_segments_only(store):
    store.commit([Reading(PATHS[0], float(i), Quality.GOOD, T0 + i * 30 * S) for i in range(8)])
    store.index_segments()
    first = (T0 // M) * M
    store.apply_retention(first + 2 * M)
    minutes = [m for (m,) in store._reader().execute("select minute_us from segments order by 1")]
    assert minutes == [first + 2 * M, first + 3 * M]
    _same(store, first + 2 * M, 2**62)


def test_the_check_reads_one_snapshot_on_a_running_box(store, monkeypatch):
    # issue 13 item 10: on a running box the check said "21 of 27 tags differ": readings
    # committed between reading the segments and reading the table were in one, not the other
    from gmp_edge.review import gather

    store.commit([Reading(p, 20.0, Quality.GOOD, T0 + i * S) for i in range(120) for p in PATHS])
    store.index_segments()
    store.commit([Reading(p, 21.0, Quality.GOOD, T0 + 200 * S) for p in PATHS])  # not folded
    real = gather.read_records
    later = iter(range(10_000))

    def committed_meanwhile(*args, **kwargs):
        out = real(*args, **kwargs)
        t = T0 + (300 + next(later)) * S  # the running service commits meanwhile
        store.commit([Reading(p, 22.0, Quality.GOOD, t) for p in PATHS])
        return out

    monkeypatch.setattr(gather, "read_records", committed_meanwhile)
    checked, differ = gather.segments_differ(store.path, PATHS, 0, 2**62)
    assert differ == [] and checked == 4 * 121
