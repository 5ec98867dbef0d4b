"""A database made by the previous release (no schema versions) opens without loss.

The fixture is the release's DDL exactly as it was (tests/fixtures/previous_release); the
rows are written with plain SQL as that release wrote them, the audit entries through
the unchanged chain code. Then every store opens it with the new code.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gmp_edge.alarms.model import Alarm, ConditionKind, Priority
from gmp_edge.audit.review import AuditReviews
from gmp_edge.audit.trail import AuditTrail, AuditTransaction
from gmp_edge.collector.reading import Quality
from gmp_edge.deviations.batch import Batch
from gmp_edge.historian.forwarder import Forwarder, SendResult
from gmp_edge.historian.store import SCHEMA_VERSION, Store, StoredReading, StoreError
from gmp_edge.identity.roles import Role
from gmp_edge.identity.users import Directory
from gmp_edge.integrity.check import check_ledger
from gmp_edge.limits.model import LimitSet, TagLimits, Threshold
from gmp_edge.monitoring.records import (
    AlarmBook,
    BatchBook,
    DeviationBook,
    EngineState,
    LimitSetBook,
)
from gmp_edge.release.decisions import DecisionBook
from gmp_edge.signatures.register import SignatureRegister

FIXTURE = Path(__file__).parent.parent / "fixtures" / "previous_release" / "gmp-edge-db.sql"
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z, fixed
TAG = "site/a/R101/temp"
STORES = {
    "historian",
    "forwarder_quarantine",
    "audit",
    "audit_reviews",
    "batch_decisions",
    "signatures",
    "identity",
    "alarms",
    "deviations",
    "batches",
    "limit_sets",
    "engine_state",
}


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


ALARM = Alarm(id=f"{TAG}:alert_high", tag=TAG, kind=ConditionKind.ALERT_HIGH, priority=Priority.LOW)
BATCH = Batch("B-2026-001", "tablets", ("R101",), ("room-1",), T0, None)
LIMITS = LimitSet(
    id="LS-R101",
    version=1,
    effective_from_us=T0,
    reason="validated plant configuration",
    proposed_by="config",
    limits=(TagLimits(TAG, alert_high=Threshold(23.0), action_high=Threshold(25.0)),),
)


def _previous_release_db(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(FIXTURE.read_text())
    x = conn.execute
    x("insert into meta values('schema_version', '1')")
    x(
        "insert into tags(id, path, unit, kind, device) values(1, ?, 'degC', 'float', 'plc1')",
        (TAG,),
    )
    for i in range(3):
        x(
            "insert into readings(tag_id, ts_us, ts_edge_us, ts_source_us, value, quality)"
            " values(1, ?, ?, null, ?, 0)",
            (T0 + i, T0 + i, 20.0 + i),
        )
    x("insert into outbox_cursors values('influxdb', 'readings', 2)")
    x(
        "insert into quarantine values('influxdb', 3, ?, ?, 'line', 'field type conflict', ?)",
        (TAG, T0 + 2, T0 + 5),
    )
    x(
        "insert into alarms(id, tag, state, last_transition_us, json) values(?,?,?,?,?)",
        (ALARM.id, TAG, ALARM.state.value, None, _dumps(ALARM.to_dict())),
    )
    x(
        "insert into batches(id, product, start_us, end_us, json) values(?,?,?,?,?)",
        (BATCH.id, BATCH.product, BATCH.start_us, None, _dumps(BATCH.to_dict())),
    )
    x(
        "insert into limit_sets(id, version, status, origin, proposed_by, approved_by,"
        " effective_from_us, created_us, decided_by, decided_us, json)"
        " values(?,?,?,?,?,?,?,?,?,?,?)",
        (
            "LS-R101",
            1,
            "proposed",
            "proposal",
            "config",
            None,
            T0,
            T0,
            None,
            None,
            _dumps(LIMITS.to_dict()),
        ),
    )
    x("insert into engine_state values('evaluator', '{\"last_us\":5}', ?)", (T0,))
    x(
        "insert into users values('qa.anna', 'Anna QA', 'qa_approver', 'argon2-hash', 1, ?,"
        " 'admin', ?, 0, null)",
        (T0, T0),
    )
    x(
        "insert into signatures(record_type, record_id, content_sha256, signer, printed_name,"
        " meaning, ts_us, reason) values('batch', ?, 'c0ffee', 'qa.anna', 'Anna QA',"
        " 'approval', ?, 'fine')",
        (BATCH.id, T0 + 10),
    )
    x(
        "insert into batch_decisions values(?, ?, 1, 'release', 'ok', 'abc', 0, 'qa.anna', ?)",
        (f"{BATCH.id}#1", BATCH.id, T0 + 20),
    )
    x(
        "insert into audit_reviews values('AR-1', ?, ?, 1, 2, 'h', 2, 'looked at it',"
        " 'qa.anna', ?, ?)",
        (T0, T0 + 100, T0 + 200, T0 + 200),
    )
    x("begin")
    tx = AuditTransaction(conn)
    tx.append("admin", "user.created", "user", "qa.anna", "", None, {"role": "qa_approver"}, T0)
    tx.append("op.otto", "batch.started", "batch", BATCH.id, "", None, BATCH.to_dict(), T0 + 1)
    x("commit")
    conn.close()


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "var" / "gmp-edge.db"
    path.parent.mkdir()
    _previous_release_db(path)
    return path


class _NoSink:
    name = "none"

    async def send(self, lines: list[str]) -> SendResult:
        raise AssertionError("nothing is sent in this test")


def test_previous_release_store_opens_without_loss(old_db: Path) -> None:
    store = Store(old_db)
    trail = AuditTrail(old_db)
    alarms, batches, limit_sets = AlarmBook(trail), BatchBook(trail), LimitSetBook(trail)
    deviations = DeviationBook(trail)
    state = EngineState(old_db)
    users = Directory(old_db, trail)
    register = SignatureRegister(trail)
    decisions = DecisionBook(trail)
    reviews = AuditReviews(trail)
    forwarder = Forwarder(store, _NoSink(), lambda r: None, "influxdb")
    try:
        assert store.readings(TAG, T0, T0 + 10) == [
            StoredReading(
                TAG,
                T0 + i,
                T0 + i,
                None,
                20.0 + i,
                Quality.GOOD,
                None,
                None,
            )
            for i in range(3)
        ]
        assert store.outbox_cursor("influxdb") == 2
        assert [q.reading_id for q in forwarder.quarantined()] == [3]
        assert alarms.get(ALARM.id) == ALARM
        assert batches.get(BATCH.id) == BATCH
        assert limit_sets.get("LS-R101", 1) == LIMITS
        assert deviations.for_batch(BATCH.id) == []
        assert state.load("evaluator") == {"last_us": 5}
        assert [(u.id, u.role) for u in users.users()] == [("qa.anna", Role.QA_APPROVER)]
        assert [s.signer for s in register.signatures("batch", BATCH.id)] == ["qa.anna"]
        decision = decisions.get(f"{BATCH.id}#1")
        assert decision is not None and decision.decided_by == "qa.anna"
        review = reviews.get("AR-1")
        assert review is not None and review.comment == "looked at it"
        assert trail.verify() == (2, trail.head()[1], None)

        # the stores are at their versions now, and the books write as before
        batches.end("op.otto", BATCH.id, T0 + 50)
        assert trail.verify()[0] == 3 and trail.verify()[2] is None
    finally:
        for closable in (
            forwarder,
            reviews,
            decisions,
            register,
            users,
            deviations,
            state,
            limit_sets,
            batches,
            alarms,
            trail,
        ):
            closable.close()
        store.close()
    conn = sqlite3.connect(old_db)
    versions = dict(conn.execute("select store, version from schema_versions").fetchall())
    meta = conn.execute("select value from meta where key='schema_version'").fetchone()
    intervals = conn.execute("select count(*) from sample_intervals").fetchone()
    indexes = [
        name for (name,) in conn.execute("select name from sqlite_master where tbl_name='readings'")
    ]
    # every record row the previous release wrote is adopted into the seal ledger as it
    # was found, and what was written since is sealed: the whole store checks out
    conn.execute("begin")
    sealed = check_ledger(conn)
    conn.close()
    assert not sealed.findings, sealed.findings.lines()
    assert sealed.readings == 3 and sealed.rows >= 8
    # the historian's version 2 adds the devices' own sample intervals (migrated in); the
    # identity's version 2 the password history; the seal ledger (ADR 0027) is new in this
    # release; the historian's version 3 drops the per-tag index on readings (ADR 0029)
    assert versions == dict.fromkeys(STORES, 1) | {"historian": 3, "identity": 2, "ledger": 1}
    assert intervals == (0,)
    assert indexes == ["readings"]
    assert meta == ("3",)  # kept for the previous release, which then refuses a newer store


def test_a_store_newer_than_this_release_is_refused_untouched(old_db: Path) -> None:
    Store(old_db).close()
    conn = sqlite3.connect(old_db, isolation_level=None)
    newer = SCHEMA_VERSION + 1
    conn.execute(f"update schema_versions set version={newer} where store='historian'")
    before = list(conn.iterdump())
    with pytest.raises(
        StoreError, match=f"'historian' is at schema version {newer}, newer than {SCHEMA_VERSION}"
    ):
        Store(old_db)
    assert list(conn.iterdump()) == before
    conn.close()
