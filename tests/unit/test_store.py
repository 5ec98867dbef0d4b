"""The local store: commits, gaps, service-down gaps, queries, outbox, a full disk."""

import sqlite3

import pytest

from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.historian.gaps import GapClosed, GapOpened
from gmp_edge.historian.store import Store, StoreError
from gmp_edge.integrity.check import check_ledger

S = 1_000_000
T0 = 1_790_000_000 * S
TAGS = [("s/a/r/e/t1", "degC", "temperature", "dev"), ("s/a/r/e/t2", "%RH", "rh", "dev")]


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "x.db")
    s.register_tags(TAGS)
    yield s
    s.close()


def good(tag, ts, v):
    return Reading(tag, v, Quality.GOOD, ts)


def test_commit_and_read_back(store):
    store.commit([good("s/a/r/e/t1", T0 + i * S, float(i)) for i in range(10)])
    rows = store.readings("s/a/r/e/t1", T0, T0 + 100 * S)
    assert [r.value for r in rows] == [float(i) for i in range(10)]
    assert store.latest("s/a/r/e/t1").value == 9.0
    assert store.count_readings() == 10


def test_text_values_and_bad_readings_keep_messages(store):
    store.commit(
        [
            Reading("s/a/r/e/t2", "B-1", Quality.GOOD, T0),
            Reading.bad("s/a/r/e/t2", T0 + S, "FC03 0+2: no answer within 1 s", Cause.NETWORK),
        ]
    )
    a, b = store.readings("s/a/r/e/t2", T0, T0 + 10 * S)
    assert a.value == "B-1"
    assert b.value is None and b.quality is Quality.BAD
    assert b.message == "FC03 0+2: no answer within 1 s" and b.cause == "network"


def test_source_timestamp_orders_readings(store):
    store.commit([Reading("s/a/r/e/t1", 1.0, Quality.GOOD, T0 + 100 * S, T0 + 5 * S)])
    (r,) = store.readings("s/a/r/e/t1", T0, T0 + 10 * S)
    assert r.ts_us == T0 + 5 * S and r.ts_edge_us == T0 + 100 * S


def test_unregistered_tag_is_refused(store):
    with pytest.raises(StoreError, match="unregistered"):
        store.commit([good("nope", T0, 1.0)])
    assert store.count_readings() == 0


def test_gap_open_close(store):
    store.commit([], [GapOpened("s/a/r/e/t1", T0, Cause.NETWORK, "refused")])
    assert store.open_gap_tags() == ["s/a/r/e/t1"]
    store.commit([], [GapClosed("s/a/r/e/t1", T0 + 5 * S)])
    (g,) = store.gaps("s/a/r/e/t1", T0 - S, T0 + 10 * S)
    assert (g.start_us, g.end_us, g.cause, g.message) == (T0, T0 + 5 * S, "network", "refused")


def test_restart_records_downtime_as_gap(tmp_path):
    s = Store(tmp_path / "y.db")
    s.register_tags(TAGS)
    first = s.start_run("sha", [t[0] for t in TAGS], at_us=T0)
    assert first.previous_heartbeat_us is None
    s.commit(
        [good("s/a/r/e/t1", T0 + S, 1.0)],
        [GapOpened("s/a/r/e/t2", T0 + S, Cause.DEVICE, "x")],
        heartbeat_us=T0 + S,
    )
    s.close()  # as after SIGKILL: no stop_run
    s = Store(tmp_path / "y.db")
    rep = s.start_run("sha", [t[0] for t in TAGS], at_us=T0 + 60 * S)
    assert rep.previous_heartbeat_us == T0 + S
    assert rep.downtime_gaps == 2 and rep.closed_open_gaps == 1
    gaps = s.gaps(None, T0, T0 + 100 * S)
    down = [g for g in gaps if g.cause == "service_down"]
    assert {(g.tag, g.start_us, g.end_us) for g in down} == {
        ("s/a/r/e/t1", T0 + S, T0 + 60 * S),
        ("s/a/r/e/t2", T0 + S, T0 + 60 * S),
    }
    (dev,) = [g for g in gaps if g.cause == "device"]
    assert dev.end_us == T0 + S  # closed at the last heartbeat, downtime takes over
    runs = s.service_runs()
    assert runs[0][2] == T0 + S  # the killed run ends at its last heartbeat
    s.close()


def test_downsample_windows(store):
    rows = [good("s/a/r/e/t1", T0 + i * S, float(i % 60)) for i in range(180)]
    rows.append(Reading.bad("s/a/r/e/t1", T0 + 30 * S + 1, "x", Cause.DEVICE))
    store.commit(rows)
    b = store.downsample("s/a/r/e/t1", T0, T0 + 180 * S, 60 * S)
    assert [x.start_us for x in b] == [T0, T0 + 60 * S, T0 + 120 * S]
    assert (b[0].min, b[0].max, b[0].mean) == (0.0, 59.0, pytest.approx(29.5))
    assert (b[0].count, b[0].good, b[0].bad) == (61, 60, 1)


def test_outbox_cursor_never_moves_back(store):
    store.commit([good("s/a/r/e/t1", T0 + i, 1.0) for i in range(5)])
    pending = store.outbox_pending("influx", limit=3)
    assert len(pending) == 3
    store.outbox_ack("influx", pending[-1][0])
    assert len(store.outbox_pending("influx")) == 2
    store.outbox_ack("influx", 1)
    assert len(store.outbox_pending("influx")) == 2


def test_full_disk_keeps_nothing_half_written(tmp_path):
    s = Store(tmp_path / "z.db")
    s.register_tags(TAGS)
    s._w.execute("pragma max_page_count=1")  # stand-in for a full disk: SQLITE_FULL
    with pytest.raises(StoreError, match="full"):
        s.commit([good("s/a/r/e/t1", T0 + i, 1.0) for i in range(5000)])
    s._w.execute("pragma max_page_count=1073741823")
    assert s.count_readings() == 0
    s.commit([good("s/a/r/e/t1", T0 + i, 1.0) for i in range(5000)])
    assert s.count_readings() == 5000
    s.close()


def test_committed_data_survives_without_close(tmp_path):
    p = tmp_path / "k.db"
    s = Store(p)
    s.register_tags(TAGS)
    s.commit([good("s/a/r/e/t1", T0, 1.0)])
    # another connection sees it immediately: it is in the WAL, durable
    assert sqlite3.connect(p).execute("select count(*) from readings").fetchone()[0] == 1
    s.close()


def _sealed_ok(store) -> None:
    conn = sqlite3.connect(store.path)
    conn.execute("begin")
    try:
        report = check_ledger(conn)
    finally:
        conn.close()
    assert not report.findings, report.findings.lines()


def test_retention(store):
    for i in range(10):  # one commit (one sealed block) a reading
        store.commit([good("s/a/r/e/t1", T0 + i * S, 1.0)])
    assert store.apply_retention(T0 + 5 * S) == 5
    assert store.count_readings() == 5
    _sealed_ok(store)  # what stays still matches its seals; the deletion is itself sealed


def test_retention_deletes_whole_sealed_blocks_only(store):
    # one block with an old and a young reading stays whole until it is wholly old
    store.commit([good("s/a/r/e/t1", T0, 1.0), good("s/a/r/e/t1", T0 + 9 * S, 1.0)])
    store.commit([good("s/a/r/e/t1", T0 + 10 * S, 1.0)])
    assert store.apply_retention(T0 + 5 * S) == 0
    assert store.apply_retention(T0 + 10 * S) == 2
    assert store.count_readings() == 1
    _sealed_ok(store)


def test_retention_never_deletes_what_a_destination_has_not_confirmed(store):
    for i in range(10):
        store.commit([good("s/a/r/e/t1", T0 + i * S, 1.0)])
    store.outbox_ack("influxdb", 3)  # rows 1..3 confirmed, 4..10 still to send
    assert store.apply_retention(T0 + 8 * S) == 3
    assert [rid for rid, _ in store.outbox_pending("influxdb")] == list(range(4, 11))
    _sealed_ok(store)


def test_mixed_batch_keeps_order_values_and_nulls(store):
    """Multi-row inserts group rows by NULL pattern; order and content must not change."""
    import random

    rng = random.Random(7)
    batch = []
    for i in range(997):  # not a multiple of any chunk size
        ts = T0 + i * 1000
        kind = rng.choice(["good", "good", "good", "src", "text", "bad", "uncertain"])
        if kind == "good":
            batch.append(good("s/a/r/e/t1", ts, rng.uniform(-5, 5)))
        elif kind == "src":
            batch.append(Reading("s/a/r/e/t1", float(i), Quality.GOOD, ts, ts - 7))
        elif kind == "text":
            batch.append(Reading("s/a/r/e/t2", f"lot-{i}", Quality.GOOD, ts))
        elif kind == "bad":
            batch.append(Reading.bad("s/a/r/e/t2", ts, f"timeout {i}", Cause.NETWORK))
        else:
            batch.append(
                Reading("s/a/r/e/t1", 1.5, Quality.UNCERTAIN, ts, None, f"u{i}", Cause.DEVICE)
            )
    assert store.commit(batch) == len(batch)
    rows = store._w.execute(
        "select t.path, r.ts_us, r.ts_edge_us, r.ts_source_us, r.value, r.text, r.quality,"
        " r.message, r.cause from readings r join tags t on t.id = r.tag_id order by r.rowid"
    ).fetchall()
    expected = [
        (
            r.tag,
            r.ts_us,
            r.ts_edge_us,
            r.ts_source_us,
            None if isinstance(r.value, str) else r.value,
            r.value if isinstance(r.value, str) else None,
            int(r.quality),
            r.message,
            None if r.cause is None else r.cause.value,
        )
        for r in batch
    ]
    assert rows == expected


def test_readings_gaps_and_heartbeat_are_one_transaction(store):
    """Found: gaps were written in transactions of their own after the readings."""
    gap = ("s/a/r/e/t2", T0, T0 + 5 * S, Cause.NETWORK, "3 missed polls")
    store.commit([good("s/a/r/e/t1", T0, 1.0)], closed_gaps=[gap], heartbeat_us=T0 + 6 * S)
    assert [(g.tag, g.start_us, g.end_us, g.message) for g in store.gaps(None, T0, T0 + 9 * S)] == [
        ("s/a/r/e/t2", T0, T0 + 5 * S, "3 missed polls")
    ]
    # a gap the store cannot write: nothing of the commit is written, a StoreError says why
    bad = ("nope", T0, T0 + S, Cause.NETWORK, "x")
    with pytest.raises(StoreError, match="unregistered tag 'nope'"):
        store.commit([good("s/a/r/e/t1", T0 + 7 * S, 2.0)], closed_gaps=[bad])
    assert [r.value for r in store.readings("s/a/r/e/t1", T0, T0 + 9 * S)] == [1.0]


def test_record_gap_failures_are_store_errors(store, tmp_path):
    with pytest.raises(StoreError, match="unregistered tag"):
        store.record_gap("nope", T0, T0 + S, Cause.NETWORK, "x")
    store.close()
    with pytest.raises(StoreError, match="recording a gap"):
        store.record_gap("s/a/r/e/t1", T0, T0 + S, Cause.NETWORK, "x")


def test_readings_of_some_tags_after_a_cursor(store):
    """Limit evaluation reads only the tags it evaluates, and learns how far it scanned."""
    store.commit([good("s/a/r/e/t1", T0 + i * S, float(i)) for i in range(3)])
    store.commit([good("s/a/r/e/t2", T0 + i * S, float(i)) for i in range(3)])
    rows, upto = store.readings_of_after(0, 100, {"s/a/r/e/t2"})
    assert [r.tag for _, r in rows] == ["s/a/r/e/t2"] * 3 and upto == 6
    assert [rid for rid, _ in rows] == [4, 5, 6]
    rows, upto = store.readings_of_after(0, 4, {"s/a/r/e/t2"})  # a span ends the scan
    assert [rid for rid, _ in rows] == [4] and upto == 4
    assert store.readings_of_after(6, 100, {"s/a/r/e/t2"}) == ([], 6)  # caught up
    assert store.readings_of_after(0, 100, {"unknown/tag"}) == ([], 6)  # nothing to read


ODD_READINGS = [
    Reading("s/a/r/e/t1", 21.5, Quality.GOOD, T0),
    Reading("s/a/r/e/t1", float("nan"), Quality.UNCERTAIN, T0 + 1, message="NaN"),
    Reading("s/a/r/e/t1", float("inf"), Quality.BAD, T0 + 2, message="overflow"),
    Reading("s/a/r/e/t1", 7, Quality.GOOD, T0 + 3),  # an int: stored as a REAL
    Reading("s/a/r/e/t1", 2**60 + 1, Quality.GOOD, T0 + 4),  # rounded as a REAL rounds it
    Reading("s/a/r/e/t2", "B-1 \u2713", Quality.GOOD, T0 + 5, ts_source_us=T0 - 9),
    Reading.bad("s/a/r/e/t2", T0 + 6, "no answer", Cause.NETWORK),
    Reading("s/a/r/e/t2", 1.0, Quality.GOOD, T0 + 7, ts_source_us=T0 + 6, cause=Cause.DEVICE),
]


def test_the_last_commits_are_read_from_memory_as_the_table_gives_them(store):
    # the engine evaluates what was just committed from the commit's own readings
    # (Store._recent); they must be what reading the table back gives, odd values included
    store.commit(ODD_READINGS[:3])
    store.commit(ODD_READINGS[3:])
    both = {"s/a/r/e/t1", "s/a/r/e/t2"}
    for after, span, tags in [
        (0, 100, both),
        (2, 100, both),
        (0, 3, both),
        (1, 100, {"s/a/r/e/t2"}),
    ]:
        fast = store.readings_of_after(after, span, tags)
        assert store._recent, "the commits were not kept"
        kept, store._recent = store._recent, type(store._recent)(maxlen=8)
        slow = store.readings_of_after(after, span, tags)
        store._recent = kept
        assert fast == slow
        assert [rid for rid, _ in fast[0]] == [rid for rid, _ in slow[0]]  # ids too


def test_memory_gives_way_to_the_table_when_it_does_not_hold_the_range(store):
    for i in range(12):  # more commits than are kept
        store.commit([good("s/a/r/e/t1", T0 + i * S, float(i))])
    rows, upto = store.readings_of_after(0, 100, {"s/a/r/e/t1"})
    assert [r.value for _, r in rows] == [float(i) for i in range(12)] and upto == 12
    store._recent.clear()
    store.commit([good("s/a/r/e/t1", T0 + 20 * S, 20.0)])
    rows, upto = store.readings_of_after(11, 100, {"s/a/r/e/t1"})  # id 12 only in the table
    assert [r.value for _, r in rows] == [11.0, 20.0] and upto == 13


def test_retention_empties_the_readings_kept_in_memory(store):
    store.commit([good("s/a/r/e/t1", T0 + i * S, float(i)) for i in range(5)])
    store.commit([good("s/a/r/e/t1", T0 + 200 * S, 9.0)])
    assert store.apply_retention(T0 + 100 * S) == 5
    rows, upto = store.readings_of_after(0, 100, {"s/a/r/e/t1"})
    assert [(rid, r.value) for rid, r in rows] == [(6, 9.0)] and upto == 6


def test_retention_never_empties_the_table_so_reading_ids_never_restart(store):
    # a box that recorded nothing for longer than its retention: every reading is old and
    # confirmed. An emptied table numbers the next reading 1 again, behind the forwarder's
    # cursor (3) and the indexer's: it would never be forwarded, folded or read.
    for i in range(3):
        store.commit([good("s/a/r/e/t1", T0 + i * S, float(i))])
    store.outbox_ack("influxdb", 3)
    store.index_segments()
    assert store.apply_retention(T0 + 10**9 * S) == 2  # the newest reading's block stays
    store.commit([good("s/a/r/e/t1", T0 + 10**9 * S, 42.0)])
    assert [(rid, r.value) for rid, r in store.outbox_pending("influxdb")] == [(4, 42.0)]
    assert [r.value for r in store.readings("s/a/r/e/t1", T0 + 10**9 * S, 2**62)] == [42.0]
    store.index_segments()
    assert store.segments_cursor() == 4
