"""Batch review compilation (pure, inputs built by hand) and one gather from a real store."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import numpy as np
import pytest

from gmp_edge.alarms.model import AlarmEvent, AlarmState, Priority
from gmp_edge.alarms.model import Transition as AlarmTr
from gmp_edge.audit.chain import Break
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.collector.reading import Quality, Reading
from gmp_edge.deviations import lifecycle as lc
from gmp_edge.deviations.batch import Batch
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Gap, Store
from gmp_edge.limits.model import LimitSet, TagLimits, Threshold
from gmp_edge.monitoring.engine import Books, MonitoringEngine
from gmp_edge.review.compile import (
    EquipmentInfo,
    ReviewInputs,
    TagInput,
    capability,
    compile_review,
    config_versions_in_force,
    equipment_status,
    limit_versions_in_force,
)
from gmp_edge.review.gather import reported_interval_s, review_batch

from .conftest import COMPRESSION, PRESS, TEMP, recording, small_plant

S = 1_000_000
T0 = 1_790_000_000 * S  # 2026-09-21T...Z
H = 3600 * S
TAG = "s/a/r1/e1/temp"


def batch(end: int | None = T0 + H) -> Batch:
    return Batch("B-1", "Paracetamol 500 mg", ("e1",), ("r1",), T0, end)


def series(n: int, value=20.0, quality=0, start=T0, step=S):
    ts = start + step * np.arange(n, dtype=np.int64)
    v = np.full(n, value, dtype=np.float64) if np.isscalar(value) else np.asarray(value, float)
    q = np.full(n, quality, dtype=np.int8) if np.isscalar(quality) else np.asarray(quality)
    return ts, v, q


def tag_input(n=3600, value=20.0, quality=0, interval=1.0, **kw) -> TagInput:
    ts, v, q = series(n, value, quality)
    base = {
        "tag": TAG,
        "room": "r1",
        "equipment": "e1",
        "unit": "degC",
        "kind": "temperature",
        "interval_s": interval,
        "ts_us": ts,
        "value": v,
        "quality": q,
    }
    base.update(kw)
    return TagInput(**base)


def lset(version=1, eff=0, cm=False, kind=None, tag=TAG, **lim) -> LimitSet:
    th: dict[str, Any] = {k: Threshold(v) for k, v in lim.items()}  # thresholds by field name
    tl = TagLimits(tag, continuous_monitoring_required=cm, **th)
    return LimitSet("site", version, eff, "r", "eng", "qa", (tl,))


def tr(alarm, event, at, actor="system", **detail) -> AlarmTr:
    return AlarmTr(
        alarm,
        TAG,
        Priority.HIGH,
        event,
        AlarmState.NORMAL,
        AlarmState.NORMAL,
        actor,
        at,
        detail.pop("reason", ""),
        detail,
    )


def review(tags=(), **kw):
    return compile_review(
        ReviewInputs(batch=kw.pop("b", batch()), now_us=T0 + 2 * H, tags=list(tags), **kw)
    )


# --------------------------------------------------------------------- completeness


@pytest.mark.parametrize(
    ("n", "quality", "interval", "expected", "pct"),
    [
        (3600, 0, 1.0, 3600, 100.0),  # every second
        (1800, 0, 1.0, 3600, 50.0),  # half missing
        (3600, 2, 1.0, 3600, 0.0),  # all Bad: nothing counts
        (1800, 0, 2.0, 1800, 100.0),  # 2 s poll interval
        (3600, 0, None, None, None),  # unknown interval: no completeness
    ],
)
def test_completeness(n, quality, interval, expected, pct):
    t = review([tag_input(n, quality=quality, interval=interval)]).tags[0]
    assert t.expected == expected
    assert t.completeness_pct == pct


def test_quality_counts_and_uncertain_not_good():
    q = np.array([0] * 10 + [1] * 5 + [2] * 3 + [3] * 2, dtype=np.int8)
    t = review([tag_input(20, quality=q)]).tags[0]
    assert (t.good, t.uncertain, t.bad) == (10, 5, 5)
    assert t.stats.n == 10


def test_readings_outside_the_period_are_ignored():
    ts, v, q = series(10, start=T0 - 5 * S)
    t = review([tag_input(ts_us=ts, value=v, quality=q)]).tags[0]
    assert t.good == 5


# ---------------------------------------------------------------------------- stats


def test_stats_over_good_values_only():
    values = np.arange(100, dtype=float)
    q = np.zeros(100, dtype=np.int8)
    q[-1] = 2  # 99 is Bad: out of the statistics
    s = review([tag_input(100, value=values, quality=q)]).tags[0].stats
    assert (s.n, s.min, s.max, s.mean) == (99, 0.0, 98.0, 49.0)
    assert s.p50 == pytest.approx(49.0)
    assert s.p5 == pytest.approx(np.percentile(values[:-1], 5))
    assert s.p95 == pytest.approx(np.percentile(values[:-1], 95))


def test_no_good_values_gives_empty_stats():
    s = review([tag_input(10, quality=2)]).tags[0].stats
    assert s.n == 0 and s.min is None and s.p50 is None


# ----------------------------------------------------------------------------- gaps


@pytest.mark.parametrize(
    ("start", "end", "duration_s"),
    [
        (T0 + 10 * S, T0 + 70 * S, 60),  # inside
        (T0 - 30 * S, T0 + 30 * S, 30),  # clipped at the batch start
        (T0 + H - 10 * S, T0 + H + 99 * S, 10),  # clipped at the batch end
        (T0 + H - 10 * S, None, 10),  # still open: to the period end
    ],
)
def test_gaps_clipped_to_the_period(start, end, duration_s):
    g = Gap(7, TAG, start, end, "network", "timed out")
    t = review([tag_input(gaps=[g])]).tags[0]
    assert len(t.gaps) == 1
    assert t.gaps[0].duration_us == duration_s * S
    assert t.gaps[0].cause == "network" and t.gaps[0].gap_id == 7
    d = t.to_dict()["gaps"][0]
    assert d["start"].endswith("Z") and d["duration_s"] == duration_s


# ----------------------------------------------------------------------- excursions


def test_excursion_from_transitions_with_peak_and_acknowledgement():
    values = np.full(3600, 20.0)
    values[100:160] = 25.0
    values[130] = 26.5
    aid = f"{TAG}#action_high"
    trs = [
        tr(
            aid,
            AlarmEvent.CONDITION_ACTIVE,
            T0 + 100 * S,
            value_at_trip=25.0,
            limit_at_trip=24.0,
            limit_set_id="site",
            limit_set_version=1,
        ),
        tr(aid, AlarmEvent.ACKNOWLEDGE, T0 + 120 * S, actor="op1", comment="door open"),
        tr(aid, AlarmEvent.CONDITION_CLEARED, T0 + 160 * S),
        tr(aid, AlarmEvent.ACKNOWLEDGE, T0 + 2 * H, actor="op2", comment="later, other"),
    ]
    t = review([tag_input(value=values, transitions=trs)]).tags[0]
    assert len(t.excursions) == 1
    e = t.excursions[0]
    assert (e.level, e.side, e.start_us, e.end_us) == ("action", "high", T0 + 100 * S, T0 + 160 * S)
    assert e.duration_us == 60 * S and e.peak == 26.5 and e.limit == 24.0
    assert e.limit_set_version == 1
    assert [(a.by, a.comment) for a in e.acknowledgements] == [
        ("op1", "door open"),
        ("op2", "later, other"),
    ]
    d = e.to_dict()
    assert d["alarm_ids"] == [aid] and d["acknowledgements"][0]["at"].endswith("Z")


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # still active at the end of the batch: end None, duration to the end
        ([("condition_active", 3000)], [(3000, None, 600)]),
        # already active when the batch began (only the clear is seen)
        ([("condition_cleared", 50)], [(0, 50, 50)]),
        # two episodes
        (
            [
                ("condition_active", 10),
                ("condition_cleared", 20),
                ("condition_active", 30),
                ("condition_cleared", 45),
            ],
            [(10, 20, 10), (30, 45, 15)],
        ),
    ],
)
def test_excursion_episodes(events, expected):
    aid = f"{TAG}#alert_low"
    trs = [tr(aid, AlarmEvent(e), T0 + s * S) for e, s in events]
    t = review([tag_input(transitions=trs)]).tags[0]
    got = [
        (
            (e.start_us - T0) // S,
            None if e.end_us is None else (e.end_us - T0) // S,
            e.duration_us // S,
        )
        for e in t.excursions
    ]
    assert got == expected
    assert all(e.level == "alert" and e.side == "low" for e in t.excursions)


def test_oot_findings():
    aid = f"{TAG}#oot"
    trs = [
        tr(
            aid,
            AlarmEvent.CONDITION_ACTIVE,
            T0 + 5 * S,
            value_at_trip=21.0,
            reason="ewma out of trend",
        )
    ]
    t = review([tag_input(transitions=trs)]).tags[0]
    assert t.excursions == () and len(t.oot) == 1
    assert t.oot[0].rule == "ewma out of trend" and t.oot[0].value == 21.0


# ----------------------------------------------------------------------- capability


def test_capability_formulas():
    rng = np.random.default_rng(3)
    v = 15 + 0.5 * rng.standard_normal(5000)
    c = capability(v, 12.0, 18.0)
    mr = np.abs(np.diff(v)).mean() / 1.128
    s = v.std(ddof=1)
    mu = v.mean()
    assert c.cp == pytest.approx(6 / (6 * mr))
    assert c.cpk == pytest.approx(min(18 - mu, mu - 12) / (3 * mr))
    assert c.pp == pytest.approx(6 / (6 * s))
    assert c.ppk == pytest.approx(min(18 - mu, mu - 12) / (3 * s))
    assert c.cp == pytest.approx(2.0, rel=0.05)  # sigma 0.5, range 6: Cp 2


def test_capability_one_sided_and_degenerate():
    v = np.array([1.0, 2.0, 3.0, 2.0])
    c = capability(v, None, 5.0)
    assert c.cp is None and c.cpk == pytest.approx((5 - 2) / (3 * (1 / 1.128)))
    assert capability(np.array([1.0]), 0.0, 2.0).cpk is None
    assert capability(np.full(10, 1.0), 0.0, 2.0).cpk is None  # sigma 0


def test_press_capability_uses_action_limits_in_force():
    rng = np.random.default_rng(1)
    v = 15 + 0.5 * rng.standard_normal(3600)
    ti = tag_input(value=v, kind="press_parameter")
    ls = lset(action_low=12.0, action_high=18.0, alert_high=17.0)
    t = review([ti], limit_sets=[(ls, "approved")]).tags[0]
    assert t.capability is not None and t.capability.lsl == 12.0 and t.capability.usl == 18.0
    assert t.capability.n == 3600
    # not a press tag: no capability
    t2 = review([tag_input(value=v)], limit_sets=[(ls, "approved")]).tags[0]
    assert t2.capability is None


# ---------------------------------------------------------------- versions in force


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ([(1, 0, "approved")], [(1, None)]),
        ([(1, 0, "superseded"), (2, T0 + 600 * S, "approved")], [(1, T0 + 600 * S), (2, None)]),
        ([(1, 0, "superseded"), (2, T0 + 2 * H, "approved")], [(1, None)]),  # after the batch
        ([(1, 0, "superseded"), (2, T0 - S, "approved")], [(2, None)]),  # before the batch
        ([(1, 0, "approved"), (2, 0, "proposed"), (3, 0, "rejected")], [(1, None)]),
    ],
)
def test_limit_versions_in_force(sets, expected):
    got = limit_versions_in_force([(lset(v, eff), st) for v, eff, st in sets], T0, T0 + H)
    assert [(v.version, v.in_force_to_us) for v in got] == expected


def test_tag_limits_and_criticality_from_versions_in_force():
    sets = [
        (lset(1, 0, alert_high=23.0, action_high=24.0), "superseded"),
        (lset(2, T0 + 60 * S, cm=True, alert_high=22.0, action_high=24.0), "approved"),
    ]
    t = review([tag_input()], limit_sets=sets).tags[0]
    assert [(lim.version, lim.alert_high) for lim in t.limits] == [(1, 23.0), (2, 22.0)]
    assert t.critical and t.continuous_monitoring
    assert not review([tag_input()]).tags[0].critical  # no limits at all


def test_config_versions_in_force():
    runs = [
        (1, T0 - 2 * H, T0 - H, "a", ""),
        (2, T0 - S, T0 + 60 * S, "b", "clean stop"),
        (3, T0 + 120 * S, None, "c", ""),
        (4, T0 + 2 * H, None, "d", ""),
    ]
    got = config_versions_in_force(runs, T0, T0 + H)
    assert [c.config_sha256 for c in got] == ["b", "c"]


# ------------------------------------------------------------------------ equipment


@pytest.mark.parametrize(
    ("qual", "cal", "q_status", "c_status", "flagged"),
    [
        (date(2030, 1, 1), date(2030, 1, 1), "qualified", "in_date", False),
        (date(2020, 1, 1), date(2030, 1, 1), "expired", "in_date", True),
        (date(2030, 1, 1), date(2020, 1, 1), "qualified", "overdue", True),
        (None, None, "not_recorded", "not_recorded", False),
    ],
)
def test_equipment_status(qual, cal, q_status, c_status, flagged):
    s = equipment_status(EquipmentInfo("e1", "press", "r1", "", qual, cal), T0, T0 + H)
    assert (s.qualification_status, s.calibration_status, s.flagged) == (
        q_status,
        c_status,
        flagged,
    )


def test_equipment_expiring_during_the_batch():
    # T0 is 2026-09-21 (UTC); qualification valid through 2026-09-21, batch runs two days
    b_end = T0 + 48 * H
    s = equipment_status(EquipmentInfo("e1", qualified_until=date(2026, 9, 21)), T0, b_end)
    assert s.qualification_status == "expired_during_batch" and s.flagged


# ---------------------------------------------------------------------------- whole


def test_review_to_dict_is_json_and_has_both_time_forms():
    r = review(
        [tag_input()],
        runs=[(1, T0 - H, None, "abc", "")],
        audit_verdict=(3, "f" * 64, Break(2, "hash mismatch")),
        quarantined=2,
    )
    d = json.loads(json.dumps(r.to_dict(traces=True)))
    assert d["batch"]["start_us"] == T0 and d["batch"]["start"].endswith("Z")
    assert d["period"]["end_us"] == T0 + H
    assert d["config_versions"][0]["config_sha256"] == "abc"
    assert d["audit"] == {
        "intact": False,
        "entries": 3,
        "head": "f" * 64,
        "break_seq": 2,
        "break_reason": "hash mismatch",
    }
    assert d["quarantined"] == 2
    assert d["tags"][0]["trace"]["window_s"] == 6.0  # 1 h / 600 windows
    assert d["readiness"]["recommendation"] == "hold"


def test_unended_batch_reviews_up_to_now():
    r = review([tag_input(7200)], b=batch(end=None))
    assert r.period_end_us == T0 + 2 * H and not r.ended
    assert r.tags[0].expected == 7200


def test_compile_is_fast_enough_for_500_tags_8h():
    n = 8 * 3600
    rng = np.random.default_rng(0)
    ts = T0 + S * np.arange(n, dtype=np.int64)
    q = np.zeros(n, dtype=np.int8)
    tags = [
        TagInput(
            f"s/a/r{i % 20}/e/t{i}",
            f"r{i % 20}",
            "e",
            "",
            "dp",
            1.0,
            ts,
            20 + rng.standard_normal(n),
            q,
        )
        for i in range(500)
    ]
    b = Batch("B", "P", ("e",), tuple(f"r{i}" for i in range(20)), T0, T0 + 8 * H)
    # correct at full size; how fast is measured in bench/review_bench.py, never asserted here
    r = compile_review(ReviewInputs(batch=b, now_us=T0 + 9 * H, tags=tags))
    assert len(r.tags) == 500 and {t.good for t in r.tags} == {n}


# ------------------------------------------------------------------ gather (store)


def test_review_batch_gathers_from_a_real_store_and_books(tmp_path):
    plant = small_plant()  # TEMP: action high 24, on-delay 30 s
    plant.room("granulation").modbus("trh-02", "granulation", "trh_transmitter")
    outside = plant.tag("trh-02", "temperature", "temperature", "degC")  # not in the batch
    cfg, sha = plant.load(tmp_path)
    db = cfg.store.path
    store = Store(db)
    EdgeService(cfg, sha, store)  # registers the tags
    store.start_run(sha, [t.path for t in cfg.tags])
    trail = AuditTrail(db)
    books = Books.open(trail)
    try:
        engine = MonitoringEngine(cfg, sha, store, books)
        engine.start()
        t0 = now_us() + 5 * S
        books.batches.start("qa1", Batch("B-7", "Ibuprofen", (PRESS,), (COMPRESSION,), t0))
        store.commit([Reading(TEMP, 21.0, Quality.GOOD, t0 + i * S) for i in range(30)])
        store.commit([Reading(TEMP, 25.5, Quality.GOOD, t0 + i * S) for i in range(30, 90)])
        store.commit([Reading(TEMP, 21.0, Quality.GOOD, t0 + i * S) for i in range(90, 200)])
        store.commit([Reading(outside, 21.0, Quality.GOOD, t0 + i * S) for i in range(200)])
        engine.step()
        books.batches.end("qa1", "B-7", t0 + 200 * S)
        r = review_batch(store, books, trail, cfg, "B-7", t0 + 300 * S)
        # handing out the report reads the record: the review (and its hash) stay the same
        trail.append("qa1", "batch.report_exported", "batch", "B-7", "", None, {"sha256": "x"})
        again = review_batch(store, books, trail, cfg, "B-7", t0 + 300 * S)
        assert again.audit_entries == r.audit_entries
    finally:
        books.close()
        trail.close()
        store.close()
    temp = next(t for t in r.tags if t.tag == TEMP)
    assert temp.good == 200 and temp.stats.max == 25.5
    levels = {(e.level, e.side) for e in temp.excursions}
    assert ("action", "high") in levels
    act = next(e for e in temp.excursions if e.level == "action")
    assert act.peak == 25.5 and act.limit_set_id is not None
    assert [c.config_sha256 for c in r.config_versions] == [sha]
    assert r.limit_sets and r.limit_sets[0].status == "approved"
    assert r.audit.intact and r.audit.entries > 0
    assert any(a.record_type == "batch" and a.record_id == "B-7" for a in r.audit_entries)
    assert any(a.record_type == "alarm" for a in r.audit_entries)
    # an action excursion of the temperature raises a deviation naming the batch
    assert r.deviations and r.deviations[0].status == "open"
    assert r.readiness is not None
    assert "deviation_open" in {b.code for b in r.readiness.blockers}
    assert outside not in {t.tag for t in r.tags}
    assert all(t.room == COMPRESSION or t.equipment == PRESS for t in r.tags)
    json.dumps(r.to_dict())


# the excursion: TEMP above its action limit (24) from t0 + 30 s to t0 + 90 s
ORDERINGS = [
    # (batch start, batch end, registered before the excursion was evaluated)
    pytest.param(0, 200, True, id="batch-running-when-raised"),
    pytest.param(0, 200, False, id="registered-after-the-fact-back-dated"),
    pytest.param(60, 200, True, id="excursion-spans-the-batch-start"),
    pytest.param(60, 200, False, id="spans-the-start-and-registered-after"),
    pytest.param(0, 60, True, id="batch-ended-early-mid-excursion"),
    pytest.param(0, 60, False, id="ended-early-and-registered-after"),
]


@pytest.mark.parametrize(("start_s", "end_s", "before"), ORDERINGS)
def test_every_ordering_of_batch_and_excursion_reaches_the_checklist(
    tmp_path, start_s, end_s, before
):
    # issue 13 item 6: a batch that did not exist when the deviation was raised was not
    # linked, and the action excursion disappeared from the release checklist
    cfg, sha = small_plant().load(tmp_path)  # TEMP: action high 24, on-delay 30 s
    with recording(cfg, sha) as box:
        store, trail, books, engine = box.store, box.trail, box.books, box.engine
        t0 = now_us() + 5 * S
        batch = Batch("B-9", "Ibuprofen", (PRESS,), (COMPRESSION,), t0 + start_s * S)

        def register() -> None:
            books.batches.start("qa1", batch)
            books.batches.end("qa1", "B-9", t0 + end_s * S)

        if before:
            register()
        store.commit([Reading(TEMP, 21.0, Quality.GOOD, t0 + i * S) for i in range(30)])
        store.commit([Reading(TEMP, 25.5, Quality.GOOD, t0 + i * S) for i in range(30, 90)])
        store.commit([Reading(TEMP, 21.0, Quality.GOOD, t0 + i * S) for i in range(90, 200)])
        engine.step()
        (raised,) = books.deviations.list()
        if not before:
            assert raised.affected_batch_ids == ()  # no batch existed to link
            register()
        r = review_batch(store, books, trail, cfg, "B-9", t0 + 300 * S)
        assert [d.id for d in r.deviations] == [raised.id]
        assert r.deviations[0].alarm_ids and r.deviations[0].excursion_start_us is not None
        assert r.readiness is not None
        codes = {b.code for b in r.readiness.blockers}
        assert "deviation_open" in codes and "action_excursion_without_deviation" not in codes

        # cancelled as raised in error: the excursion itself blocks the release
        dev, t = lc.cancel(raised, raised.version, actor="qa1", at_us=t0 + 250 * S, reason="test")
        books.deviations.update(dev, t, raised.version)
        r = review_batch(store, books, trail, cfg, "B-9", t0 + 300 * S)
        assert r.readiness is not None
        codes = {b.code for b in r.readiness.blockers}
        assert "action_excursion_without_deviation" in codes and "deviation_open" not in codes
        assert r.readiness.recommendation == "hold"


REPORTED = [
    # (reported (from s, interval s), period [start s, end s), effective interval s)
    ([], (0, 600), None),  # never reported: unknown, not the poll interval
    ([(0, 6.0)], (0, 600), 6.0),
    ([(-100, 6.0)], (0, 600), 6.0),  # reported before the period: in force at its start
    ([(300, 6.0)], (0, 600), 6.0),  # first read mid-period: the counter's setting before too
    ([(0, 6.0), (300, 60.0)], (0, 600), 600 / 55),  # 50 + 5 samples expected
    ([(0, 0.0)], (0, 600), None),  # a cycle of 0 says nothing
]


@pytest.mark.parametrize(("reported", "period", "want"), REPORTED)
def test_reported_interval(reported, period, want):
    got = reported_interval_s([(f * S, s) for f, s in reported], period[0] * S, period[1] * S)
    assert got == (None if want is None else pytest.approx(want))


def test_record_tags_expect_one_sample_per_counter_cycle_not_per_poll(tmp_path):
    # issue 13 item 2: a counter sampling every 6 s, polled every 2 s, showed 33.5 %
    # completeness and blocked every batch
    cfg, sha = small_plant().load(tmp_path)
    counter_tag = next(t for t in cfg.tags if t.record is not None)
    assert cfg.device(counter_tag.device).poll_interval_s != 6.0
    with recording(cfg, sha) as box:
        store, trail, books = box.store, box.trail, box.books
        t0 = now_us() + 5 * S
        store.commit([], sample_intervals=[(counter_tag.path, t0 - 60 * S, 6.0)])
        store.commit(
            [Reading(counter_tag.path, 100.0, Quality.GOOD, t0 + i * 6 * S) for i in range(100)]
        )
        room = counter_tag.segments[2]
        books.batches.start("qa1", Batch("B-5", "Ibuprofen", (), (room,), t0))
        books.batches.end("qa1", "B-5", t0 + 600 * S)
        r = review_batch(store, books, trail, cfg, "B-5", t0 + 700 * S)
    t = next(t for t in r.tags if t.tag == counter_tag.path)
    assert (t.interval_s, t.expected, t.good, t.completeness_pct) == (6.0, 100, 100, 100.0)


def test_an_action_excursion_under_a_limit_set_replaced_mid_batch_still_blocks():
    # issue 13 item 6, another ordering: v1 in force when the excursion happened, v2 approved
    # half-way through the batch (the alarm retired with v1); the excursion stays in the record
    values = np.full(3600, 20.0)
    values[100:160] = 25.0
    aid = f"{TAG}#action_high"
    trs = [
        tr(
            aid,
            AlarmEvent.CONDITION_ACTIVE,
            T0 + 100 * S,
            value_at_trip=25.0,
            limit_at_trip=24.0,
            limit_set_id="site",
            limit_set_version=1,
        ),
        tr(aid, AlarmEvent.CONDITION_CLEARED, T0 + 160 * S, reason="retired"),
    ]
    v1, v2 = lset(1, 0, action_high=24.0), lset(2, T0 + 1800 * S, action_high=26.0)
    r = review(
        [tag_input(value=values, transitions=trs)],
        limit_sets=[(v1, "superseded"), (v2, "approved")],
    )
    t = r.tags[0]
    assert [(e.level, e.limit_set_version) for e in t.excursions] == [("action", 1)]
    assert [(lim.version, lim.action_high) for lim in t.limits] == [(1, 24.0), (2, 26.0)]
    assert r.readiness is not None
    codes = [b.code for b in r.readiness.blockers]
    assert "action_excursion_without_deviation" in codes
    assert "limit_set_changed" in [w.code for w in r.readiness.warnings]
