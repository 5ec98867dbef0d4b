"""Persistence of alarms, deviations, batches, limit sets and engine state in the edge
box's database: every change lands with its audit entries in one transaction or not at
all, optimistic concurrency, separation of duties, idempotent baseline install, and the
audit chain still verifies afterwards."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from gmp_edge.alarms import machine as am
from gmp_edge.alarms.model import AlarmState, ConditionKind, Priority
from gmp_edge.audit.trail import AuditTrail, AuditTransaction
from gmp_edge.deviations import lifecycle as lc
from gmp_edge.deviations.batch import Batch
from gmp_edge.deviations.model import (
    Classification,
    Deviation,
    Evidence,
    ExcursionKind,
    ProductionState,
    Source,
    StaleVersion,
    Status,
)
from gmp_edge.deviations.model import Transition as DevTransition
from gmp_edge.limits.model import LimitSet, TagLimits, Threshold
from gmp_edge.monitoring.records import (
    AlarmBook,
    BatchBook,
    DeviationBook,
    EngineState,
    LimitSetBook,
    RecordError,
    RecordNotFound,
)
from gmp_edge.signatures.manifest import content_hash

T0 = 1_790_000_000_000_000  # 2026-09-21 UTC
YEAR_US = 366 * 24 * 3600 * 1_000_000
TABLES = (
    "audit",
    "alarms",
    "alarm_transitions",
    "deviations",
    "deviation_batches",
    "batches",
    "limit_sets",
)


@pytest.fixture
def trail(tmp_path):
    t = AuditTrail(tmp_path / "x.db")
    yield t
    t.close()
    again = AuditTrail(tmp_path / "x.db")
    n, _, brk = again.verify()
    again.close()
    assert brk is None, brk


def books(trail):
    return AlarmBook(trail), DeviationBook(trail), BatchBook(trail), LimitSetBook(trail)


@pytest.fixture
def alarm_book(trail):
    b = AlarmBook(trail)
    yield b
    b.close()


@pytest.fixture
def dev_book(trail):
    b = DeviationBook(trail)
    yield b
    b.close()


@pytest.fixture
def batch_book(trail):
    b = BatchBook(trail)
    yield b
    b.close()


@pytest.fixture
def limit_book(trail):
    b = LimitSetBook(trail)
    yield b
    b.close()


def snapshot(trail) -> dict[str, list[tuple] | None]:
    """Every row of every table this module writes (plus the audit trail); None: no table."""
    conn = sqlite3.connect(trail.path)
    try:
        out: dict[str, list[tuple] | None] = {}
        for t in TABLES:
            try:
                out[t] = conn.execute(f"select * from {t} order by rowid").fetchall()
            except sqlite3.OperationalError:
                out[t] = None
        return out
    finally:
        conn.close()


def fail_audit_after(monkeypatch, n: int) -> None:
    """Make the (n+1)-th audit append inside a transaction raise."""
    real = AuditTransaction.append
    calls = {"n": 0}

    def append(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n:
            raise RuntimeError("disk full while writing the audit entry")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(AuditTransaction, "append", append)


# ---------------------------------------------------------------------------- alarms


def point(alarm_id: str = "AL-1", tag: str = "site/a/R101/dp"):
    return am.new_alarm(alarm_id, tag, ConditionKind.ACTION_LOW, Priority.HIGH)


def test_alarm_save_get_and_audit(trail, alarm_book):
    a0 = point()
    alarm_book.save(a0, [])
    assert alarm_book.get("AL-1") == a0
    assert alarm_book.active() == []
    a1, t1 = am.activate(a0, T0, value=2.1, limit=5.0, limit_set_id="LS", limit_set_version=2)
    a2, t2 = am.acknowledge(a1, T0 + 10, user="op.olga", comment="seen, checking doors")
    alarm_book.save(a2, [t1, t2])
    assert alarm_book.get("AL-1") == a2
    assert alarm_book.get("nope") is None
    assert alarm_book.active() == [a2]
    assert alarm_book.history() == [t1, t2]
    entries = trail.entries(record_type="alarm", record_id="AL-1")
    assert [(e.actor, e.action, e.ts_us) for e in entries] == [
        ("system", "alarm.condition_active", T0),
        ("op.olga", "alarm.acknowledge", T0 + 10),
    ]
    assert entries[1].reason == "seen, checking doors"
    assert entries[1].old == {"state": "unacknowledged"}
    assert entries[1].new["state"] == "acknowledged"
    # a fresh book on the same file (restart) sees the same
    again = AlarmBook(trail)
    assert again.get("AL-1") == a2
    assert again.history(tag="site/a/R101/dp") == [t1, t2]
    again.close()


def test_alarm_all_active_order_and_history_filters(alarm_book):
    a, b, c = point("AL-1", "t/1"), point("AL-2", "t/2"), point("AL-3", "t/3")
    a1, ta = am.activate(a, T0 + 5)
    b1, tb = am.activate(b, T0 + 9)
    alarm_book.save(c, [])
    alarm_book.save(b1, [tb])
    alarm_book.save(a1, [ta])
    a2, ta2 = am.clear(a1, T0 + 20)
    alarm_book.save(a2, [ta2])  # rtn_unacknowledged: still active (not normal)
    assert [x.id for x in alarm_book.all()] == ["AL-1", "AL-2", "AL-3"]
    assert [x.id for x in alarm_book.active()] == ["AL-1", "AL-2"]  # newest transition first
    assert alarm_book.get("AL-1").state is AlarmState.RTN_UNACKNOWLEDGED
    assert alarm_book.history() == [ta, tb, ta2]  # oldest first, by time
    assert alarm_book.history(tag="t/1") == [ta, ta2]
    assert alarm_book.history(start_us=T0 + 6) == [tb, ta2]
    assert alarm_book.history(end_us=T0 + 20) == [ta, tb]  # half-open
    assert alarm_book.history(limit=2) == [ta, tb]
    assert alarm_book.history(tag="t/3") == []


def test_alarm_save_is_atomic(trail, alarm_book, monkeypatch):
    a1, t1 = am.activate(point(), T0)
    a2, t2 = am.acknowledge(a1, T0 + 1, user="op.olga", comment="ok")
    alarm_book.save(point(), [])
    before = snapshot(trail)
    fail_audit_after(monkeypatch, 1)  # the second transition's audit entry fails
    with pytest.raises(RuntimeError):
        alarm_book.save(a2, [t1, t2])
    assert snapshot(trail) == before
    assert alarm_book.get("AL-1") == point()
    assert alarm_book.history() == []


def test_alarm_save_refuses_foreign_transition(trail, alarm_book):
    _, t = am.activate(point("AL-9"), T0)
    before = snapshot(trail)
    with pytest.raises(RecordError, match="AL-9"):
        alarm_book.save(point("AL-1"), [t])
    assert snapshot(trail) == before


# ------------------------------------------------------------------------ deviations

EVIDENCE = Evidence(
    tag="site/granulation/R101/dp",
    room="R101",
    kind=ExcursionKind.ACTION,
    production_state=ProductionState.IN_OPERATION,
    start_us=T0 - 600_000_000,
    duration_us=600_000_000,
    end_us=T0,
    peak=2.1,
)


def raised(dev_id: str, at_us: int = T0, batches=("B-7",)) -> tuple[Deviation, DevTransition]:
    return lc.raise_deviation(
        deviation_id=dev_id,
        title="DP below action limit in R101",
        source=Source.EXCURSION,
        proposed_classification=Classification.MAJOR,
        discovered_us=at_us,
        actor="system",
        evidence=EVIDENCE,
        affected_batch_ids=batches,
    )


def test_deviation_ids_per_year(dev_book):
    assert dev_book.next_id(T0) == "DEV-2026-0001"
    dev_book.create(*raised("DEV-2026-0001"))
    dev_book.create(*raised("DEV-2026-0002"))
    assert dev_book.next_id(T0) == "DEV-2026-0003"
    assert dev_book.next_id(T0 + YEAR_US) == "DEV-2027-0001"


def test_deviation_create_get_and_audit(trail, dev_book):
    dev, t = raised("DEV-2026-0001")
    assert dev_book.create(dev, t) == dev
    assert dev_book.get(dev.id) == dev
    assert dev_book.get("DEV-0") is None
    (e,) = trail.entries(record_type="deviation", record_id=dev.id)
    assert (e.actor, e.action, e.ts_us, e.old) == ("system", "deviation.raise", T0, None)
    assert e.new["title"] == dev.title
    assert e.new["affected_batch_ids"] == ["B-7"]


def test_deviation_duplicate_create_writes_nothing(trail, dev_book):
    dev, t = raised("DEV-2026-0001")
    dev_book.create(dev, t)
    before = snapshot(trail)
    with pytest.raises(RecordError, match="exists already"):
        dev_book.create(replace(dev, title="another"), t)
    assert snapshot(trail) == before
    assert dev_book.get(dev.id) == dev


def test_deviation_update_and_stale_version(trail, dev_book):
    dev, t = raised("DEV-2026-0001")
    dev_book.create(dev, t)
    d2, t2 = lc.start_investigation(
        dev, 1, actor="qa.anna", at_us=T0 + 1, investigator="qc.bert", note="assigned"
    )
    assert dev_book.update(d2, t2, expected_version=1) == d2
    assert dev_book.get(dev.id) == d2
    (_, e) = trail.entries(record_type="deviation", record_id=dev.id)
    assert (e.actor, e.action) == ("qa.anna", "deviation.start_investigation")
    assert e.old["status"] == "open"
    assert e.new["status"] == "under_investigation"

    # somebody else edited version 1 concurrently: refused, nothing written
    other, t_other = lc.cancel(dev, 1, actor="qa.carl", at_us=T0 + 2, reason="duplicate")
    before = snapshot(trail)
    with pytest.raises(StaleVersion) as exc:
        dev_book.update(other, t_other, expected_version=1)
    assert (exc.value.expected, exc.value.actual) == (1, 2)
    assert snapshot(trail) == before
    assert dev_book.get(dev.id) == d2


def test_deviation_update_refuses_bad_input(trail, dev_book):
    dev, t = raised("DEV-2026-0001")
    d2, t2 = lc.cancel(dev, 1, actor="qa.anna", at_us=T0 + 1, reason="duplicate")
    with pytest.raises(RecordNotFound):
        dev_book.update(d2, t2, expected_version=1)
    dev_book.create(dev, t)
    with pytest.raises(RecordError, match="version"):
        dev_book.update(d2, t2, expected_version=2)
    _, t_foreign = raised("DEV-2026-0099")
    with pytest.raises(RecordError, match="DEV-2026-0099"):
        dev_book.update(d2, t_foreign, expected_version=1)
    assert dev_book.get(dev.id) == dev


def test_deviation_update_is_atomic(trail, dev_book, monkeypatch):
    dev, t = raised("DEV-2026-0001")
    dev_book.create(dev, t)
    d2, t2 = lc.cancel(dev, 1, actor="qa.anna", at_us=T0 + 1, reason="duplicate")
    before = snapshot(trail)
    fail_audit_after(monkeypatch, 0)
    with pytest.raises(RuntimeError):
        dev_book.update(d2, t2, expected_version=1)
    assert snapshot(trail) == before
    assert dev_book.get(dev.id) == dev


def test_deviation_list_and_for_batch(dev_book):
    d1, t1 = raised("DEV-2026-0001", T0, batches=("B-7",))
    d2, t2 = raised("DEV-2026-0002", T0 + 100, batches=("B-7", "B-8"))
    d3, t3 = raised("DEV-2026-0003", T0 + 200, batches=())
    for d, t in ((d1, t1), (d2, t2), (d3, t3)):
        dev_book.create(d, t)
    d1b, t1b = lc.cancel(d1, 1, actor="qa.anna", at_us=T0 + 300, reason="duplicate")
    dev_book.update(d1b, t1b, 1)
    assert [d.id for d in dev_book.list()] == ["DEV-2026-0003", "DEV-2026-0002", "DEV-2026-0001"]
    assert [d.id for d in dev_book.list(limit=1)] == ["DEV-2026-0003"]
    assert [d.id for d in dev_book.list(status=Status.OPEN)] == ["DEV-2026-0003", "DEV-2026-0002"]
    assert dev_book.list(status="cancelled") == [d1b]
    assert [d.id for d in dev_book.for_batch("B-7")] == ["DEV-2026-0002", "DEV-2026-0001"]
    assert [d.id for d in dev_book.for_batch("B-8")] == ["DEV-2026-0002"]
    # an amendment that changes the affected batches moves the deviation
    d2b, t2b = lc.amend(
        d2,
        1,
        actor="qa.anna",
        at_us=T0 + 400,
        reason="B-7 was not in R101",
        changes={"affected_batch_ids": ["B-8"]},
    )
    dev_book.update(d2b, t2b, 1)
    assert [d.id for d in dev_book.for_batch("B-7")] == ["DEV-2026-0001"]
    assert dev_book.for_batch("B-9") == []


def test_deviation_is_signable(trail, dev_book):
    dev, t = raised("DEV-2026-0001")
    dev_book.create(dev, t)
    c1 = dev_book.content(dev.id)
    assert c1 == dev.to_dict()
    assert dev_book.content(dev.id) == c1
    h1 = content_hash("deviation", dev.id, c1)
    assert content_hash("deviation", dev.id, DeviationBook(trail).content(dev.id)) == h1
    assert dev_book.author(dev.id) == "system"
    assert dev_book.content("DEV-0") is None
    with pytest.raises(RecordNotFound):
        dev_book.author("DEV-0")
    d2, t2 = lc.cancel(dev, 1, actor="qa.anna", at_us=T0 + 1, reason="duplicate")
    dev_book.update(d2, t2, 1)
    assert content_hash("deviation", dev.id, dev_book.content(dev.id)) != h1


# --------------------------------------------------------------------------- batches


def batch(batch_id: str = "B-7", start: int = T0, end: int | None = None) -> Batch:
    return Batch(batch_id, "Paracetamol 500 mg", ("GRAN-1",), ("R101",), start, end)


def test_batch_start_end_and_audit(trail, batch_book):
    b = batch()
    assert batch_book.start("op.olga", b, "line clearance done") == b
    assert batch_book.get("B-7") == b
    assert batch_book.in_progress() == [b]
    ended = batch_book.end("op.olga", "B-7", T0 + 3600_000_000, "batch complete")
    assert ended == replace(b, end_us=T0 + 3600_000_000)
    assert batch_book.get("B-7") == ended
    assert batch_book.in_progress() == []
    e1, e2 = trail.entries(record_type="batch", record_id="B-7")
    assert (e1.actor, e1.action, e1.reason, e1.old, e1.new) == (
        "op.olga",
        "batch.started",
        "line clearance done",
        None,
        b.to_dict(),
    )
    assert (e2.action, e2.old, e2.new) == (
        "batch.ended",
        {"end_us": None},
        {"end_us": T0 + 3600_000_000},
    )


def test_batch_refusals_write_nothing(trail, batch_book):
    batch_book.start("op.olga", batch())
    before = snapshot(trail)
    with pytest.raises(RecordError, match="B-7 exists already"):
        batch_book.start("op.olga", batch(start=T0 + 5))
    with pytest.raises(RecordNotFound, match="B-9"):
        batch_book.end("op.olga", "B-9", T0 + 10)
    with pytest.raises(RecordError, match="before it started"):
        batch_book.end("op.olga", "B-7", T0 - 1)
    assert snapshot(trail) == before
    batch_book.end("op.olga", "B-7", T0 + 10)
    with pytest.raises(RecordError, match="ended already"):
        batch_book.end("op.olga", "B-7", T0 + 20)
    assert batch_book.get("B-7").end_us == T0 + 10


def test_batch_start_is_atomic(trail, batch_book, monkeypatch):
    before = snapshot(trail)
    fail_audit_after(monkeypatch, 0)
    with pytest.raises(RuntimeError):
        batch_book.start("op.olga", batch())
    assert snapshot(trail) == before
    assert batch_book.get("B-7") is None


def test_batch_list_overlapping(batch_book):
    h = 3600_000_000
    a = batch("B-1", T0, T0 + h)
    b = batch("B-2", T0 + 2 * h, T0 + 3 * h)
    c = batch("B-3", T0 + 4 * h)  # in progress
    for x in (a, b, c):
        batch_book.start("op.olga", x)
    assert batch_book.list() == [c, b, a]
    assert batch_book.list(T0 + h, T0 + 2 * h) == []  # half-open on both batches
    assert batch_book.list(T0 + h - 1, T0 + 2 * h + 1) == [b, a]
    assert batch_book.list(start_us=T0 + 5 * h) == [c]
    assert batch_book.list(end_us=T0 + 2 * h + 1) == [b, a]
    assert batch_book.list(T0 + 2 * h, T0 + 2 * h) == [b]  # an instant
    assert batch_book.in_progress() == [c]


# ------------------------------------------------------------------------ limit sets


def limits(high: float = 25.0, version: int = 1, by: str = "config") -> LimitSet:
    return LimitSet(
        id="LS-R101",
        version=version,
        effective_from_us=T0,
        reason="limits of the validated plant configuration",
        proposed_by=by,
        limits=(
            TagLimits(
                "site/a/R101/temp", alert_high=Threshold(high - 2), action_high=Threshold(high)
            ),
        ),
    )


def test_propose_numbers_versions_and_audits(trail, limit_book):
    p1 = limit_book.propose("eng.erik", limits(version=7, by="someone"), "tighter after PQ")
    assert (p1.version, p1.proposed_by, p1.approved_by) == (1, "eng.erik", None)
    p2 = limit_book.propose("eng.erik", limits(24.0), "even tighter")
    assert p2.version == 2
    assert limit_book.get("LS-R101", 1) == p1
    assert limit_book.status("LS-R101", 1) == "proposed"
    assert limit_book.status("LS-R101", 9) is None
    assert limit_book.get("LS-R101", 9) is None
    assert limit_book.current("LS-R101") is None
    (e,) = trail.entries(record_type="limit_set", record_id="LS-R101@v1")
    assert (e.actor, e.action, e.reason, e.old, e.new) == (
        "eng.erik",
        "limit_set.proposed",
        "tighter after PQ",
        None,
        p1.content(),
    )
    with pytest.raises(RecordError, match="why"):
        limit_book.propose("eng.erik", limits(), " ")


def test_approve_separation_of_duties_and_supersede(trail, limit_book):
    p1 = limit_book.propose("eng.erik", limits(), "first")
    before = snapshot(trail)
    with pytest.raises(RecordError, match="somebody else"):
        limit_book.approve("eng.erik", "LS-R101", 1, T0 + 10)
    with pytest.raises(RecordNotFound):
        limit_book.approve("qa.anna", "LS-R101", 5, T0 + 10)
    assert snapshot(trail) == before
    a1 = limit_book.approve("qa.anna", "LS-R101", 1, T0 + 10)
    assert a1 == replace(p1, approved_by="qa.anna", effective_from_us=T0 + 10)
    assert limit_book.current("LS-R101") == a1
    assert limit_book.status("LS-R101", 1) == "approved"
    with pytest.raises(RecordError, match="only a proposal"):
        limit_book.approve("qa.bob", "LS-R101", 1, T0 + 10)

    limit_book.propose("eng.erik", limits(24.0), "second")
    a2 = limit_book.approve("qa.anna", "LS-R101", 2, T0 + 20)
    assert limit_book.current("LS-R101") == a2
    assert limit_book.status("LS-R101", 1) == "superseded"
    assert [(s.version, st) for s, st in limit_book.history("LS-R101")] == [
        (2, "approved"),
        (1, "superseded"),
    ]
    e = trail.entries(record_type="limit_set", record_id="LS-R101@v2")[-1]
    assert (e.actor, e.action, e.old["status"], e.new["status"], e.new["supersedes"]) == (
        "qa.anna",
        "limit_set.approved",
        "proposed",
        "approved",
        1,
    )
    s = trail.entries(record_type="limit_set", record_id="LS-R101@v1")[-1]
    assert (s.action, s.old, s.new) == (
        "limit_set.superseded",
        {"status": "approved"},
        {"status": "superseded", "superseded_by": 2},
    )


def test_approve_is_atomic(trail, limit_book, monkeypatch):
    limit_book.propose("eng.erik", limits(), "first")
    a1 = limit_book.approve("qa.anna", "LS-R101", 1, T0)
    limit_book.propose("eng.erik", limits(24.0), "second")
    before = snapshot(trail)
    fail_audit_after(monkeypatch, 1)  # superseded entry lands, approval entry fails
    with pytest.raises(RuntimeError):
        limit_book.approve("qa.anna", "LS-R101", 2, T0 + 5)
    assert snapshot(trail) == before
    assert limit_book.current("LS-R101") == a1
    assert limit_book.status("LS-R101", 2) == "proposed"


def test_reject(trail, limit_book):
    p = limit_book.propose("eng.erik", limits(), "first")
    with pytest.raises(RecordError, match="why"):
        limit_book.reject("qa.anna", "LS-R101", 1, "")
    assert limit_book.reject("qa.anna", "LS-R101", 1, "not justified") == p
    assert limit_book.status("LS-R101", 1) == "rejected"
    with pytest.raises(RecordError, match="rejected"):
        limit_book.approve("qa.anna", "LS-R101", 1, T0)
    with pytest.raises(RecordError, match="rejected"):
        limit_book.reject("qa.anna", "LS-R101", 1, "again")
    e = trail.entries(record_type="limit_set", record_id="LS-R101@v1")[-1]
    assert (e.actor, e.action, e.reason, e.new) == (
        "qa.anna",
        "limit_set.rejected",
        "not justified",
        {"status": "rejected"},
    )


def test_install_baseline_idempotent_and_supersedes(trail, limit_book):
    cfg = limits()
    b1, installed = limit_book.install_baseline(cfg, "config:aaa")
    assert installed
    assert (b1.version, b1.approved_by) == (1, "config:aaa")
    assert limit_book.current("LS-R101") == b1
    (e,) = trail.entries(record_type="limit_set", record_id="LS-R101@v1")
    assert (e.actor, e.action, e.old, e.new) == (
        "config:aaa",
        "limit_set.installed",
        None,
        b1.content(),
    )

    # same limits again (restart, other effective time, other config hash): nothing new
    n = len(trail.entries())
    again, installed = limit_book.install_baseline(replace(cfg, effective_from_us=T0 + 9), "x")
    assert (again, installed) == (b1, False)
    assert len(trail.entries()) == n
    assert len(limit_book.history("LS-R101")) == 1

    # the configuration changed: next version, previous superseded, old content audited
    b2, installed = limit_book.install_baseline(limits(30.0), "config:bbb")
    assert installed
    assert b2.version == 2
    assert limit_book.current("LS-R101") == b2
    assert limit_book.status("LS-R101", 1) == "superseded"
    e = trail.entries(record_type="limit_set", record_id="LS-R101@v2")[-1]
    assert (e.action, e.old, e.new) == ("limit_set.installed", b1.content(), b2.content())


def test_install_baseline_keeps_an_approved_change(limit_book):
    b1, _ = limit_book.install_baseline(limits(), "config:aaa")
    limit_book.propose("eng.erik", limits(24.0), "tighter after PQ")
    a2 = limit_book.approve("qa.anna", "LS-R101", 2, T0 + 10)
    # a restart with the unchanged configuration does not revert the approved change
    assert limit_book.install_baseline(limits(), "config:aaa") == (a2, False)
    assert limit_book.current("LS-R101") == a2
    # a changed configuration does
    b3, installed = limit_book.install_baseline(limits(28.0), "config:ccc")
    assert installed and b3.version == 3
    assert [(s.version, st) for s, st in limit_book.history()] == [
        (3, "approved"),
        (2, "superseded"),
        (1, "superseded"),
    ]


def test_install_baseline_is_atomic(trail, limit_book, monkeypatch):
    b1, _ = limit_book.install_baseline(limits(), "config:aaa")
    before = snapshot(trail)
    fail_audit_after(monkeypatch, 1)
    with pytest.raises(RuntimeError):
        limit_book.install_baseline(limits(30.0), "config:bbb")
    assert snapshot(trail) == before
    assert limit_book.current("LS-R101") == b1


def test_limit_set_is_signable(trail, limit_book):
    p = limit_book.propose("eng.erik", limits(), "first")
    rid = "LS-R101@v1"
    c = limit_book.content(rid)
    assert c == p.content()
    assert LimitSetBook(trail).content(rid) == c
    assert content_hash("limit_set", rid, limit_book.content(rid)) == content_hash(
        "limit_set", rid, c
    )
    assert limit_book.author(rid) == "eng.erik"
    # approval with the proposed effective time leaves the signed content unchanged
    limit_book.approve("qa.anna", "LS-R101", 1, p.effective_from_us)
    assert limit_book.content(rid) == c
    for bad in ("LS-R101@v9", "LS-R101", "LS-R101@vx", "@v1"):
        assert limit_book.content(bad) is None
        with pytest.raises(RecordNotFound):
            limit_book.author(bad)


def test_limit_set_ids_with_at_sign(limit_book):
    ls = replace(limits(), id="LS@R101")
    limit_book.propose("eng.erik", ls, "odd id")
    assert limit_book.content("LS@R101@v1") == replace(ls, proposed_by="eng.erik").content()


# ---------------------------------------------------------------------- engine state


def test_engine_state(trail, tmp_path):
    st = EngineState(trail.path)
    assert st.load("limits") is None
    st.save("limits", {"open": {"t/1": [1, 2]}, "n": 1})
    st.save("limits", {"open": {}, "n": 2})
    st.save("alarms", {"x": None})
    assert st.load("limits") == {"open": {}, "n": 2}
    st.close()
    again = EngineState(tmp_path / "x.db")
    assert again.load("limits") == {"open": {}, "n": 2}
    assert again.load("alarms") == {"x": None}
    again.close()


def test_everything_on_one_file_verifies(trail):
    alarm_book, dev_book, batch_book, limit_book = books(trail)
    a1, t1 = am.activate(point(), T0)
    alarm_book.save(a1, [t1])
    dev_book.create(*raised(dev_book.next_id(T0)))
    batch_book.start("op.olga", batch())
    limit_book.install_baseline(limits(), "config:aaa")
    n, _, brk = trail.verify()
    assert (n, brk) == (4, None)
    for b in (alarm_book, dev_book, batch_book, limit_book):
        b.close()
