"""Audit trail: chaining, append-only, and `verify` naming the first broken entry after
tampering with the database file behind the product's back."""

import json
import sqlite3

import pytest

from gmp_edge.audit.chain import GENESIS, AuditEntry, canonical, entry_hash, verify
from gmp_edge.audit.trail import AuditTrail


@pytest.fixture
def trail(tmp_path):
    t = AuditTrail(tmp_path / "a.db")
    for i in range(1, 6):
        t.append(
            "alice",
            "config.loaded",
            "config",
            "plant.toml",
            f"start {i}",
            old=None,
            new={"sha256": f"{i:064x}"},
            ts_us=1_790_000_000_000_000 + i,
        )
    yield t
    t.close()


def raw(trail):
    conn = sqlite3.connect(trail.path, isolation_level=None)
    conn.execute("drop trigger audit_no_update")
    conn.execute("drop trigger audit_no_delete")
    return conn


def test_chain_links_and_verifies(trail):
    n, head, brk = trail.verify()
    assert (n, brk) == (5, None)
    assert trail.head() == (5, head)
    first = trail.entries()[0]
    assert first.prev_hash == GENESIS
    assert first.hash == entry_hash(
        GENESIS,
        canonical(
            1,
            first.ts_us,
            "alice",
            "config.loaded",
            "config",
            "plant.toml",
            "start 1",
            None,
            {"sha256": f"{1:064x}"},
        ),
    )


def test_product_cannot_edit_or_delete(trail):
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        trail._conn.execute("update audit set actor='mallory' where seq=2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        trail._conn.execute("delete from audit where seq=2")
    assert trail.verify()[2] is None


@pytest.mark.parametrize(
    ("tamper", "seq", "why"),
    [
        ("update audit set actor='mallory' where seq=3", 3, "altered"),
        ('update audit set new=\'{"sha256":"0"}\' where seq=4', 4, "altered"),
        ("update audit set ts_us=ts_us+1 where seq=2", 2, "altered"),
        ("delete from audit where seq=3", 4, "entry 3 missing"),
        ("delete from audit where seq=5", None, None),  # deleting the head: see anchoring test
    ],
)
def test_tampering_is_named(trail, tamper, seq, why):
    conn = raw(trail)
    conn.execute(tamper)
    n, _, brk = trail.verify()
    if seq is None:
        assert brk is None
        return
    assert brk is not None and brk.seq == seq and why in brk.reason


def test_reordered_rows_are_named(trail):
    conn = raw(trail)
    rows = conn.execute("select * from audit where seq in (2, 3) order by seq").fetchall()
    conn.execute("delete from audit where seq in (2, 3)")
    # put entry 3's content in slot 2 and vice versa
    for slot, row in ((2, rows[1]), (3, rows[0])):
        conn.execute("insert into audit values(?,?,?,?,?,?,?,?,?,?,?)", (slot, *row[1:]))
    brk = trail.verify()[2]
    assert brk is not None and brk.seq == 2


def test_deleting_the_newest_entries_is_caught_by_the_anchor(trail):
    seq, head = trail.head()  # the anchor: logged and exported at every service start/stop
    raw(trail).execute("delete from audit where seq=5")
    assert trail.head() != (seq, head)


def test_rewriting_the_whole_tail_consistently_still_breaks_the_anchor(trail):
    seq, head = trail.head()
    conn = raw(trail)
    e = trail.entries()[3]  # entry 4: rewrite it and re-hash everything after
    body = canonical(
        4, e.ts_us, "mallory", e.action, e.record_type, e.record_id, e.reason, e.old, e.new
    )
    h4 = entry_hash(e.prev_hash, body)
    conn.execute("update audit set actor='mallory', hash=? where seq=4", (h4,))
    e5 = trail.entries()[4]
    h5 = entry_hash(
        h4,
        canonical(
            5,
            e5.ts_us,
            e5.actor,
            e5.action,
            e5.record_type,
            e5.record_id,
            e5.reason,
            e5.old,
            e5.new,
        ),
    )
    conn.execute("update audit set prev_hash=?, hash=? where seq=5", (h4, h5))
    assert trail.verify()[2] is None  # internally consistent again...
    assert trail.head() != (seq, head)  # ...but no longer the anchored head


def test_pure_verify_on_empty_and_out_of_order():
    assert verify([]) == (0, GENESIS, None)
    e = AuditEntry(2, 0, "a", "b", "c", "d", "", None, None, GENESIS, "x")
    brk = verify([e])[2]
    assert brk is not None and "entry 1 missing" in brk.reason


def test_filters_and_export(trail):
    trail.append("bob", "user.created", "user", "carol", "new operator", None, {"role": "operator"})
    assert [e.actor for e in trail.entries(record_type="user")] == ["bob"]
    assert len(trail.entries(actor="alice")) == 5
    assert len(trail.entries(record_id="plant.toml", limit=2)) == 2
    data = json.loads(trail.export("json"))
    assert data[-1]["new"] == {"role": "operator"} and data[0]["ts"].endswith("Z")
    csv_text = trail.export("csv")
    assert csv_text.splitlines()[0].startswith("ts,seq,ts_us,actor")
    assert len(csv_text.splitlines()) == 7
    with pytest.raises(ValueError, match="unknown export format"):
        trail.export("xml")


def test_unicode_and_values_round_trip(trail):
    e = trail.append(
        "Zoë", "limit.changed", "limit_set", "LS-7", "Änderung", {"hi": 25.0}, {"hi": 24.5}
    )
    back = trail.entries(record_id="LS-7")[0]
    assert back == e
    assert trail.verify()[2] is None
