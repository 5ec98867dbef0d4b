"""The seal ledger's core: digests, what a transaction seals, and the table list (ADR 0027)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gmp_edge.audit.review import AuditReviews
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.historian.store import Store
from gmp_edge.identity.users import Directory
from gmp_edge.integrity import covered
from gmp_edge.integrity.check import check_ledger
from gmp_edge.integrity.digest import Change, changes_digest, row_digest, rows_digest
from gmp_edge.monitoring.engine import Books
from gmp_edge.release.decisions import DecisionBook
from gmp_edge.signatures.register import SignatureRegister

T0 = 1_790_000_000 * 1_000_000
TAG = "s/a/r/e/t1"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((1, 2.0, None), (1, 2, None)),  # a REAL read back as int would be another row
        ((1, "x"), (2, "x")),  # the same content at another rowid
        ((1, "a\nb"), (1, "a", "b")),
        ((1, None), (1, "None")),
        ((1, b"\x00"), (1, "\x00")),
    ],
)
def test_rows_that_differ_have_different_digests(a, b) -> None:
    assert row_digest(a) != row_digest(b)
    assert rows_digest([a])[0] != rows_digest([b])[0]


def test_a_range_digest_depends_on_order_and_count() -> None:
    r1, r2 = (1, "a"), (2, "b")
    assert rows_digest([r1, r2]) != rows_digest([r2, r1])
    assert rows_digest([r1])[1] == 1 and rows_digest([])[1] == 0
    assert changes_digest([Change("t", 1, None)]) != changes_digest([Change("t", 1, b"x")])


def test_the_readings_digest_is_the_same_fed_at_once_or_a_row_at_a_time() -> None:
    # the commit path hashes each group's rows in one update: the bytes of one a row
    import hashlib

    from gmp_edge.integrity.digest import ReadingsHasher, equipment_of

    paths = {1: "s/a/r1/e1/x", 2: "s/a/r1/e2/y", 3: "s/a/r1/e1/z"}
    rows = [
        (10, 1, 5, 5, None, 1.5, None, 0, None, None),
        (11, 2, 5, 5, 4, None, "a\nb 'q'", 2, "no answer\n", "network"),
        [12, 3, 6, 6, None, -0.0, None, 1, None, None],  # a list, as a caller may pass
        (13, 1, 7, 7, None, 1e-300, None, 0, None, None),
    ]
    whole = ReadingsHasher(lambda t: equipment_of(paths[t]))
    whole.feed(iter(rows))
    single = ReadingsHasher(lambda t: equipment_of(paths[t]))
    for r in rows:
        single.add(r)
    assert whole.groups() == single.groups() and whole.n == single.n == 4
    e1 = hashlib.sha256()
    for r in (rows[0], rows[2], rows[3]):
        e1.update(repr(tuple(r)).encode() + b"\n")
    assert whole.groups()["s/a/r1/e1"] == (3, e1.digest())


def _open_everything(db: Path):
    store = Store(db)
    trail = AuditTrail(db)
    parts = [
        Books.open(trail),
        Directory(db, trail),
        SignatureRegister(trail),
        DecisionBook(trail),
        AuditReviews(trail),
    ]
    return store, trail, parts


def _close(store, trail, parts) -> None:
    for p in parts:
        p.close()
    trail.close()
    store.close()


def _ledger(db: Path):
    conn = sqlite3.connect(db)
    conn.execute("begin")
    try:
        return check_ledger(conn)
    finally:
        conn.close()


def test_the_sealed_columns_are_every_column_of_a_migrated_store(tmp_path: Path) -> None:
    db = tmp_path / "all.db"
    _close(*_open_everything(db))
    conn = sqlite3.connect(db)
    try:
        for table in covered.SEALED_TABLES:
            columns = tuple(r[1] for r in conn.execute(f"pragma table_info({table})"))
            expected = covered.READINGS_COLUMNS if table == covered.READINGS else None
            assert columns == (expected or covered.ROW_TABLES[table]), table
    finally:
        conn.close()


_REVIEW = "insert into audit_reviews values(?,0,1,null,null,null,0,'',?,0,0)"


def test_a_rolled_back_transaction_seals_nothing_and_a_savepoint_only_what_stays(
    tmp_path: Path,
) -> None:
    db = tmp_path / "s.db"
    trail = AuditTrail(db)
    AuditReviews(trail).close()  # its table
    trail.append("a", "x", "t", "1")
    before = _ledger(db).blocks
    with pytest.raises(RuntimeError), trail.atomic() as tx:
        tx.conn.execute(_REVIEW, ("AR-0", "a"))
        raise RuntimeError("refused")
    assert _ledger(db).blocks == before
    with trail.atomic() as outer:
        outer.conn.execute(_REVIEW, ("AR-1", "a"))
        with pytest.raises(RuntimeError), trail.atomic() as inner:
            inner.conn.execute(_REVIEW, ("AR-2", "a"))
            raise RuntimeError("inner refused")
    trail.close()
    report = _ledger(db)
    assert not report.findings, report.findings.lines()
    assert report.blocks == before + 1 and report.rows == 1  # AR-1 alone


def test_upserts_replaces_updates_and_deletes_of_the_product_all_verify(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    store, trail, parts = _open_everything(db)
    store.register_tags([(TAG, "degC", "temperature", "d1")])
    store.register_tags([(TAG, "°C", "temperature", "d1")])  # upsert: an update
    store.commit([Reading(TAG, 1.0, Quality.GOOD, T0)], sample_intervals=[(TAG, T0, 6.0)])
    store.commit(
        [Reading(TAG, 2.0, Quality.GOOD, T0 + 1)], sample_intervals=[(TAG, T0, 60.0)]
    )  # INSERT OR REPLACE: the old row deleted, a new one inserted
    store.record_gap(TAG, T0, T0 + 5, Cause.NETWORK, "missed polls")
    store.apply_retention(T0 + 10**12)  # everything old and unforwarded: all deleted
    directory = parts[1]
    directory.create_first_administrator("admin.ada", "Ada", "correct horse battery 42")
    assert not directory.authenticate("admin.ada", "wrong").ok  # failed_attempts updated
    _close(store, trail, parts)
    report = _ledger(db)
    assert not report.findings, report.findings.lines()
    assert report.rows >= 3


def test_a_transaction_that_changes_nothing_adds_no_block(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    store = Store(db)
    store.register_tags([(TAG, "", "", "")])
    blocks = _ledger(db).blocks
    store.reset_segments()  # writes only derived tables
    store.commit([])
    store.close()
    assert _ledger(db).blocks == blocks


# -- the running store's scrub: readings recomputed window by window ----------------------


def _blocks_of_readings(db: Path, blocks: int, per_block: int) -> Store:
    store = Store(db)
    store.register_tags([(TAG, "degC", "temperature", "d")])
    for b in range(blocks):
        store.commit(
            [
                Reading(TAG, float(i), Quality.GOOD, T0 + (b * per_block + i) * 1000)
                for i in range(per_block)
            ]
        )
    return store


def _scrubbed(db: Path, scrub) -> tuple[list[tuple[int, int]], int, int, list[str]]:
    from gmp_edge.integrity.check import check_ledger

    conn = sqlite3.connect(db)
    conn.execute("begin")
    try:
        windows, head, nxt = scrub.plan(conn)
        rep = check_ledger(conn, None, windows)
        return windows, head, nxt, rep.findings.lines()
    finally:
        conn.close()


def test_the_scrub_covers_all_history_check_after_check(tmp_path: Path) -> None:
    from gmp_edge.integrity.check import Scrub

    db = tmp_path / "s.db"
    _blocks_of_readings(db, 10, 100).close()
    conn = sqlite3.connect(db, isolation_level=None)
    head = conn.execute("select max(seq) from seal_blocks").fetchone()[0]
    # the probe's change to an early reading, made behind the running service's back
    conn.execute("update readings set value = value + 100 where rowid = 150")
    conn.close()
    # the first check of a run: the tail and the first ~300 readings' blocks
    windows, got_head, nxt, found = _scrubbed(db, Scrub(None, 1, 300))
    assert got_head == head and windows[-1] == (head + 1, head + 1)
    assert "readings 101..200" in " ".join(found) and "rows changed outside" in " ".join(found)
    # a scrub that starts after the changed block does not see it ...
    windows, _, nxt, found = _scrubbed(db, Scrub(head, nxt, 300))
    assert found == [] and windows[0][0] > 1
    # ... and comes round to it: the scrub wraps to the oldest block
    seen = []
    for _ in range(5):
        windows, _, nxt, found = _scrubbed(db, Scrub(head, nxt, 300))
        seen.append(bool(found))
        if nxt == 1:
            break
    windows, _, nxt, found = _scrubbed(db, Scrub(head, nxt, 300))
    assert nxt != 1 and found, (seen, windows)


def test_each_check_takes_what_was_sealed_since_and_rows_slipped_in_after(
    tmp_path: Path,
) -> None:
    from gmp_edge.integrity.check import Scrub

    db = tmp_path / "s.db"
    store = _blocks_of_readings(db, 4, 50)
    conn = sqlite3.connect(db, isolation_level=None)
    through = conn.execute("select max(seq) from seal_blocks").fetchone()[0]
    store.commit([Reading(TAG, 1.0, Quality.GOOD, T0 + 10**9)])  # sealed after the last check
    store.close()
    conn.execute("update readings set value = -1 where rowid = (select max(rowid) from readings)")
    # a scrub budget that stays in old blocks: the new block is still recomputed
    _, head, _, found = _scrubbed(db, Scrub(through, 1, 50))
    assert head == through + 1 and "rows changed outside" in " ".join(found)
    # a reading written with the sqlite3 shell, no block since: found at the tail
    conn.execute(
        "insert into readings(tag_id, ts_us, ts_edge_us, value, quality) values(1, 5, 5, 1.0, 0)"
    )
    conn.close()
    _, _, _, found = _scrubbed(db, Scrub(head, 1, 50))
    assert "never sealed" in " ".join(found)


def test_a_scrub_after_retention_deleted_all_but_the_newest_block_finds_nothing_wrong(
    tmp_path: Path,
) -> None:
    """Retention deletes every wholly old block but the newest (the rowid sequence never
    restarts): a window's bounds come from the live blocks before it."""
    from gmp_edge.integrity.check import Scrub

    db = tmp_path / "s.db"
    store = _blocks_of_readings(db, 3, 40)
    assert store.apply_retention(T0 + 10**12) == 80
    for b in range(3):
        store.commit(
            [Reading(TAG, 1.0, Quality.GOOD, T0 + 10**12 + b * 1000 + i) for i in range(40)]
        )
    conn = sqlite3.connect(db)
    first_new = conn.execute("select max(seq) from seal_blocks").fetchone()[0] - 2
    assert conn.execute("select min(rowid) from readings").fetchone()[0] == 81
    conn.close()
    store.close()
    for scrub in (Scrub(None, first_new, 40), Scrub(first_new, 1, 40), Scrub(None, 1, 10**6)):
        _, _, _, found = _scrubbed(db, scrub)
        assert found == [], (scrub, found)


def test_the_offline_verifier_groups_and_combines_as_the_seal_does() -> None:
    """evidence/verify.py runs alone (no import of ours): its copy of the readings digest
    must be the ledger's."""
    from gmp_edge.evidence import verify as ev
    from gmp_edge.integrity.digest import ReadingsHasher, combine_groups, equipment_of

    paths = {1: "s/a/r1/press-01/force", 2: "s/a/r2/trh-01/temperature", 3: "s/a/r1/press-01/x"}
    rows = [(10, 1, 5, 5, None, 1.5, None, 0, None, None), (11, 2, 5, 5, None, 20.0, None, 0,
            None, None), (12, 3, 6, 6, None, None, "B-1", 0, None, None)]  # fmt: skip
    h = ReadingsHasher(lambda t: equipment_of(paths[t]))
    for r in rows:
        h.add(r)
    for tag, path in paths.items():
        assert ev.group_of(path) == equipment_of(path), tag
    groups = h.groups()
    by_hand = {k: (n, d.hex()) for k, (n, d) in groups.items()}
    assert ev.combine_groups(by_hand) == combine_groups(groups).hex() == h.digest().hex()
    assert set(groups) == {"s/a/r1/press-01", "s/a/r2/trh-01"} and groups["s/a/r1/press-01"][0] == 2


def test_the_export_check_leaves_sqlites_whole_file_read_to_the_periodic_check(
    tmp_path: Path, monkeypatch
) -> None:
    import gmp_edge.services.integrity as si

    db = tmp_path / "s.db"
    _blocks_of_readings(db, 2, 10).close()

    def whole_file_read(path: Path) -> list[str]:
        raise AssertionError("an export must not read the whole file")

    monkeypatch.setattr(si, "sqlite_integrity", whole_file_read)
    v = si.verify_for_export(db)
    assert v.ledger is not None and not v.ledger.findings
    # and it does not say of SQLite's check what it did not check
    assert "  SQLite integrity: not checked here" in v.summary()
    with pytest.raises(AssertionError, match="whole file"):
        si.verify_store(db)
