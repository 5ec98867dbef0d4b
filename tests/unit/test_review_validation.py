"""Process validation summary and equipment overview (pure; inputs built by hand, figures
computed by hand: every expectation below is arithmetic on the values given)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from gmp_edge.alarms.model import AlarmEvent, AlarmState, Priority
from gmp_edge.alarms.model import Transition as AlarmTr
from gmp_edge.clock import ManualClock
from gmp_edge.deviations.batch import Batch
from gmp_edge.deviations.model import (
    Classification,
    Deviation,
    Evidence,
    ExcursionKind,
    ProductionState,
    Source,
    Status,
)
from gmp_edge.limits.model import LimitSet, TagLimits, Threshold
from gmp_edge.review.compile import (
    EquipmentInfo,
    ReviewInputs,
    TagInput,
    capability,
    compile_review,
)
from gmp_edge.review.validation import (
    CAPABLE,
    DISCLAIMER,
    INSUFFICIENT,
    MARGINAL,
    NOT_CAPABLE,
    BatchData,
    Policy,
    ValidationInputs,
    equipment_overview,
    pooled_capability,
    summarise,
    trend,
)

from .conftest import COMPRESSION, COUNTER, FORCE, PRESS, PRODUCT, SPEED, STATE, small_plant

S = 1_000_000
H = 3600 * S
DAY = 24 * H
T0 = 1_790_000_000 * S  # 2026-09-21T14:13:20Z
TAG = "site/area/compression/press-01/main_compression_force"
OTHER = "site/area/compression/press-01/turret_speed"
W = 2 / 1.128  # within sigma of a series alternating +-1 (every moving range is 2)


def batch(i: int, product: str = "P", ended: bool = True, start: int | None = None) -> Batch:
    """Batch B-<i>: starts i days after T0 and lasts one hour."""
    s = T0 + i * DAY if start is None else start
    return Batch(f"B-{i}", product, ("press-01",), ("compression",), s, s + H if ended else None)


def tag_input(b: Batch, values, tag=TAG, kind="press_parameter", quality=0, transitions=()):
    v = np.asarray(values, dtype=np.float64)
    ts = b.start_us + S * np.arange(v.size, dtype=np.int64)
    q = np.full(v.size, quality, dtype=np.int8) if np.isscalar(quality) else np.asarray(quality)
    return TagInput(
        tag=tag,
        room="compression",
        equipment="press-01",
        unit="kN",
        kind=kind,
        interval_s=1.0,
        ts_us=ts,
        value=v,
        quality=q,
        transitions=tuple(transitions),
    )


def data(i: int, values, product="P", deviations=(), **kw) -> BatchData:
    b = batch(i, product)
    return BatchData(b, (tag_input(b, values, **kw),), tuple(deviations))


def lset(version=1, eff=0, tag=TAG, **lim) -> LimitSet:
    th: dict[str, Any] = {k: Threshold(v) for k, v in lim.items()}  # thresholds by field name
    return LimitSet("press", version, eff, "r", "eng", "qa", (TagLimits(tag, **th),))


RANGE = [(lset(action_low=0.0, action_high=30.0), "approved")]


def alternating(mean: float, d: float, n: int = 10) -> list[float]:
    """mean-d, mean+d, ...: mean ``mean`` (n even), every moving range 2d."""
    return [mean + (d if i % 2 else -d) for i in range(n)]


def d_for_cpk(cpk: float, mean: float = 15.0, lsl: float = 0.0, usl: float = 30.0) -> float:
    """Half-step of an alternating series whose Cpk against [lsl, usl] is ``cpk``."""
    return min(usl - mean, mean - lsl) * 1.128 / (6 * cpk)


def run(batches, sets=RANGE, **policy):
    inputs = ValidationInputs(
        now_us=T0 + 400 * DAY, batches=list(batches), limit_sets=sets, policy=Policy(**policy)
    )
    return summarise(inputs)


def only(summary):
    (c,) = summary.cpps
    return c


# ------------------------------------------------------------------ pooled capability


@pytest.mark.parametrize(
    "values, lsl, usl",
    [
        ([14.0, 15.0, 16.0, 15.0], 12.0, 18.0),
        ([1.0, 2.0, 3.0, 2.0], None, 5.0),
        ([1.0, 2.0, 3.0, 2.0], 0.0, None),
        ([1.0], 0.0, 2.0),
        ([1.0, 1.0, 1.0], 0.0, 2.0),
        ([1.0, 2.0], None, None),
    ],
)
def test_pooled_capability_of_one_batch_is_the_batch_capability(values, lsl, usl):
    v = np.asarray(values)
    assert pooled_capability([v], lsl, usl) == capability(v, lsl, usl)


def test_pooled_capability_two_batches_by_hand():
    # B1 14,16,14,16 (mean 15); B2 15,17,15,17 (mean 16); all moving ranges inside a batch
    # are 2; the 16 -> 15 step between batches is not a moving range
    c = pooled_capability([np.array([14.0, 16, 14, 16]), np.array([15.0, 17, 15, 17])], 12, 18)
    s_overall = math.sqrt(10 / 7)  # squares of -1.5,.5,-1.5,.5,-.5,1.5,-.5,1.5 sum to 10
    assert (c.n, c.mean) == (8, 15.5)
    assert c.sigma_within == pytest.approx(2 / 1.128)
    assert c.sigma_overall == pytest.approx(s_overall)
    assert c.cp == pytest.approx(6 / (6 * 2 / 1.128))
    assert c.cpk == pytest.approx(2.5 / (3 * 2 / 1.128))  # nearer limit: 18 - 15.5
    assert c.pp == pytest.approx(6 / (6 * s_overall))
    assert c.ppk == pytest.approx(2.5 / (3 * s_overall))


@pytest.mark.parametrize(
    "segments, lsl, usl, expect",
    [
        # (n, mean, sigma_within, cp, cpk, pp, ppk)
        ([], 0.0, 1.0, (0, None, None, None, None, None, None)),
        ([[], []], 0.0, 1.0, (0, None, None, None, None, None, None)),
        # one value per batch: no moving range, overall sigma only
        (
            [[15.0], [16.0]],
            12.0,
            18.0,
            (2, 15.5, None, None, None, 6 / (6 * math.sqrt(0.5)), 2.5 / (3 * math.sqrt(0.5))),
        ),
        # an empty batch does not change the others
        (
            [[], [14.0, 16.0]],
            12.0,
            18.0,
            (
                2,
                15.0,
                2 / 1.128,
                1.128 / 2,
                1.128 / 2,
                6 / (6 * math.sqrt(2)),
                3 / (3 * math.sqrt(2)),
            ),
        ),
        # upper limit only: no Cp/Pp
        (
            [[14.0, 16.0], [14.0, 16.0]],
            None,
            18.0,
            (4, 15.0, 2 / 1.128, None, 3 / (3 * 2 / 1.128), None, 3 / (3 * math.sqrt(4 / 3))),
        ),
        # lower limit only
        (
            [[14.0, 16.0]],
            12.0,
            None,
            (2, 15.0, 2 / 1.128, None, 3 / (3 * 2 / 1.128), None, 3 / (3 * math.sqrt(2))),
        ),
        # no spread at all: sigma 0, no index
        ([[15.0, 15.0], [15.0]], 12.0, 18.0, (3, 15.0, 0.0, None, None, None, None)),
        # no range: no index
        ([[14.0, 16.0]], None, None, (2, 15.0, None, None, None, None, None)),
    ],
)
def test_pooled_capability_table(segments, lsl, usl, expect):
    c = pooled_capability([np.asarray(s, dtype=float) for s in segments], lsl, usl)
    got = (c.n, c.mean, c.sigma_within, c.cp, c.cpk, c.pp, c.ppk)
    assert got == pytest.approx(expect)
    assert (c.lsl, c.usl) == (lsl, usl)


# ---------------------------------------------------------------------------- trend


@pytest.mark.parametrize(
    "means, lsl, usl, run_len, expect",
    [
        # (points, slope, pct of range, run, direction, drift, batches to limit, side)
        ([], 0, 30, 6, (0, None, None, 0, None, False, None, None)),
        ([10.0], 0, 30, 6, (1, None, None, 1, None, False, None, None)),
        ([10.0, 11.0], 0, 30, 6, (2, None, None, 2, "rising", False, None, None)),
        # slope 1 per batch; fitted last 12; (30 - 12) / 1 = 18 batches to the USL
        ([10.0, 11.0, 12.0], 0, 30, 6, (3, 1.0, 100 / 30, 3, "rising", False, 18.0, "usl")),
        # falling to the LSL: fitted last 10, 10 / 1 = 10 batches
        ([12.0, 11.0, 10.0], 0, 30, 6, (3, -1.0, -100 / 30, 3, "falling", False, 10.0, "lsl")),
        # slope (1*1 + 0*1 + 1*0) / 2 = 0.5; fitted last 11.5; (30 - 11.5) / 0.5 = 37
        ([10.0, 12.0, 11.0], 0, 30, 6, (3, 0.5, 50 / 30, 2, "falling", False, 37.0, "usl")),
        # an equal mean breaks the run
        # mean 32/3, fitted last 32/3 + 0.5 = 67/6; (30 - 67/6) / 0.5 = 113/3 batches
        ([10.0, 11.0, 11.0], 0, 30, 6, (3, 0.5, 50 / 30, 1, None, False, 113 / 3, "usl")),
        # six rising means: Nelson rule 3 -> drift; fitted last 6, (30 - 6) / 1 = 24
        ([1.0, 2, 3, 4, 5, 6], 0, 30, 6, (6, 1.0, 100 / 30, 6, "rising", True, 24.0, "usl")),
        ([1.0, 2, 3, 4, 5, 6], 0, 30, 7, (6, 1.0, 100 / 30, 6, "rising", False, 24.0, "usl")),
        # a high first mean, then five rises: run of five, yet the line falls.
        # dx -2.5..2.5 (sum of squares 17.5), mean 4, dy 5,-3,-2,-1,0,1: slope -5/17.5;
        # fitted last 4 + 2.5 * slope = 23/7; to the LSL: (23/7) / (5/17.5) = 11.5 batches
        (
            [9.0, 1, 2, 3, 4, 5],
            0,
            30,
            5,
            (6, -5 / 17.5, -500 / 17.5 / 30, 5, "rising", True, 11.5, "lsl"),
        ),
        # flat: no direction, no limit ahead
        ([5.0, 5.0, 5.0], 0, 30, 6, (3, 0.0, 0.0, 1, None, False, None, None)),
        # heading up with no upper limit: nothing to reach; one-sided: no % of range
        ([10.0, 11.0, 12.0], 0, None, 6, (3, 1.0, None, 3, "rising", False, None, None)),
        # already beyond the limit: 0 batches left
        ([28.0, 30.0, 32.0], 0, 30, 6, (3, 2.0, 200 / 30, 3, "rising", False, 0.0, "usl")),
    ],
)
def test_trend_table(means, lsl, usl, run_len, expect):
    t = trend(means, lsl, usl, run_len, "kN")
    got = (
        t.points,
        t.slope_per_batch,
        t.slope_pct_of_range,
        t.run,
        t.direction,
        t.drift,
        t.batches_to_limit,
        t.limit_side,
    )
    assert got == pytest.approx(expect)
    assert t.text.endswith(".")


def test_trend_texts():
    assert "at least 3" in trend([10.0, 11.0], 0, 30).text
    t = trend([1.0, 2, 3, 4, 5, 6], 0, 30, 6, "kN")
    assert t.text.startswith("Batch means change by +1 kN per batch (+3.3 % of the validated")
    assert "the last 6 batch means each rose" in t.text and "24.0 batches" in t.text
    assert "no run of 6" in trend([10.0, 12.0, 11.0], 0, 30).text


# ------------------------------------------------------------- per-batch figures


def test_batch_figures_by_hand():
    # 14, 15, 16, 15: mean 15, moving ranges 1,1,1 -> sigma_within 1/1.128,
    # squares 1,0,1,0 -> std sqrt(2/3); range 12..18, 3 to either limit
    c = only(
        run(
            [data(1, [14.0, 15.0, 16.0, 15.0])],
            [(lset(action_low=12.0, action_high=18.0), "approved")],
        )
    )
    (f,) = c.batches
    assert (f.batch_id, f.n, f.mean, f.min, f.max) == ("B-1", 4, 15.0, 14.0, 16.0)
    assert f.std == pytest.approx(math.sqrt(2 / 3))
    assert f.completeness_pct == pytest.approx(100 * 4 / 3600)  # 1 s interval, one hour
    cap = f.capability
    assert cap is not None and (cap.lsl, cap.usl) == (12.0, 18.0)
    assert cap.cp == pytest.approx(1.128) and cap.cpk == pytest.approx(1.128)
    assert cap.pp == pytest.approx(1 / math.sqrt(2 / 3))
    assert cap.ppk == pytest.approx(1 / math.sqrt(2 / 3))
    assert f.limit_set == "press v1"
    assert (f.below_target, f.below_minimum) == (True, False)  # 1.128: between 1.0 and 1.33
    assert (f.excursions, f.action_excursions, f.deviations, f.note) == (0, 0, (), "")
    assert (c.lsl, c.usl, c.limit_set, c.signal, c.unit) == (
        12.0,
        18.0,
        "press v1",
        "main_compression_force",
        "kN",
    )


def test_batch_figures_are_the_batch_reviews():
    rng = np.random.default_rng(7)
    values = 15 + 0.4 * rng.standard_normal(500)
    sets = [(lset(action_low=12.0, action_high=18.0, alert_high=17.0), "approved")]
    d = data(1, values)
    (f,) = only(run([d], sets)).batches
    review = compile_review(
        ReviewInputs(batch=d.batch, now_us=T0 + 400 * DAY, tags=list(d.tags), limit_sets=sets)
    )
    assert f.capability == review.tags[0].capability
    assert (f.n, f.mean, f.std) == (
        review.tags[0].stats.n,
        review.tags[0].stats.mean,
        review.tags[0].stats.std,
    )


def test_only_good_values_inside_the_batch_period_count():
    b = batch(1)
    v = np.array([14.0, 16.0, 99.0, 14.0, 16.0, -50.0, np.nan])
    q = np.array([0, 0, 1, 0, 0, 2, 0], dtype=np.int8)  # Uncertain 99, Bad -50, NaN
    ti = tag_input(b, v, quality=q)
    assert b.end_us is not None
    ti = replace(ti, ts_us=np.append(ti.ts_us[:-1], b.end_us))  # the NaN at the end: outside
    (f,) = only(run([BatchData(b, (ti,))])).batches
    assert (f.n, f.mean, f.min, f.max) == (4, 15.0, 14.0, 16.0)


# ------------------------------------------------------------------------ edge cases


def test_no_batches():
    s = run([])
    assert (s.cpps, s.batches, s.excluded) == ((), (), ())
    assert s.text.startswith("No ended batch of all products") and DISCLAIMER in s.text


def test_one_batch_is_insufficient_by_default_and_capable_when_policy_allows():
    d = data(1, alternating(15.0, d_for_cpk(2.0)))
    c = only(run([d]))
    assert c.batches[0].cpk == pytest.approx(2.0)
    assert c.verdict == INSUFFICIENT and "1 batch(es) with a capability index, at least 3" in c.text
    assert only(run([d], min_batches=1)).verdict == CAPABLE


def test_a_batch_without_good_data():
    ok = [data(i, alternating(15.0, d_for_cpk(2.0))) for i in (1, 2, 3)]
    bad = data(4, [15.0] * 10, quality=2)
    c = only(run([*ok, bad]))
    f = c.batches[-1]
    assert (f.batch_id, f.n, f.mean, f.cpk) == ("B-4", 0, None, None)
    assert f.note == "no Good data in the batch period"
    assert f.capability is not None and f.capability.n == 0
    assert (c.batches_with_index, c.trend.points, c.overall.n) == (3, 3, 30)
    assert c.verdict == CAPABLE  # three batches with an index: enough


def test_batch_with_one_good_value_or_no_spread():
    c = only(run([data(1, [15.0]), data(2, [15.0] * 4)]))
    assert [f.note for f in c.batches] == ["one Good value only", "no spread in the Good values"]
    assert c.batches_with_index == 0 and c.verdict == INSUFFICIENT


def test_only_one_limit_side():
    sets = [(lset(action_high=18.0, alert_high=17.0), "approved")]
    c = only(run([data(1, [14.0, 16.0, 14.0, 16.0]), data(2, [14.0, 16.0])], sets))
    for f in c.batches:
        assert f.capability is not None and f.capability.cp is None and f.capability.pp is None
        assert f.capability.cpk == pytest.approx(3 / (3 * W))
    assert (c.lsl, c.usl) == (None, 18.0)
    assert c.overall.cp is None and c.overall.cpk == pytest.approx(3 / (3 * W))
    # six values 14,16,14,16,14,16: std sqrt(6/5)
    assert c.overall.ppk == pytest.approx(3 / (3 * math.sqrt(6 / 5)))


def test_no_validated_range():
    sets = [(lset(alert_low=13.0, alert_high=17.0), "approved")]  # alert limits only
    c = only(run([data(i, alternating(15.0, 0.1)) for i in (1, 2, 3)], sets))
    assert all(f.capability is None for f in c.batches)
    assert {f.note for f in c.batches} == {
        "no validated range (action limits) in force at the batch end"
    }
    assert c.verdict == INSUFFICIENT and "no validated range" in c.text
    assert (c.lsl, c.usl, c.overall.cpk) == (None, None, None)
    assert c.overall.mean == pytest.approx(15.0)


def test_limit_set_changing_between_batches():
    v1 = lset(1, 0, action_low=12.0, action_high=18.0)
    v2 = lset(2, T0 + 2 * DAY - H, action_low=13.0, action_high=17.0)  # before B-2 starts
    sets = [(v1, "superseded"), (v2, "approved")]
    c = only(run([data(1, [14.0, 16.0, 14.0, 16.0]), data(2, [14.0, 16.0, 14.0, 16.0])], sets))
    b1, b2 = c.batches
    assert (b1.capability.lsl, b1.capability.usl, b1.limit_set) == (12.0, 18.0, "press v1")
    assert (b2.capability.lsl, b2.capability.usl, b2.limit_set) == (13.0, 17.0, "press v2")
    assert b1.cpk == pytest.approx(3 / (3 * W)) and b2.cpk == pytest.approx(2 / (3 * W))
    assert (c.lsl, c.usl, c.limit_set) == (13.0, 17.0, "press v2")  # the latest range
    assert c.overall.cpk == pytest.approx(2 / (3 * W))
    assert any("judged against another range: B-1 (12.00 to 18.00, press v1)" in n for n in c.notes)


def test_limit_set_changing_during_a_batch_uses_the_version_at_its_end():
    v1 = lset(1, 0, action_low=12.0, action_high=18.0)
    v2 = lset(2, T0 + DAY + H // 2, action_low=13.0, action_high=17.0)  # mid B-1
    c = only(run([data(1, [14.0, 16.0])], [(v1, "superseded"), (v2, "approved")]))
    assert c.batches[0].limit_set == "press v2" and c.batches[0].capability.usl == 17.0


def test_proposed_or_rejected_versions_never_count():
    sets = [
        (lset(1, 0, action_low=12.0, action_high=18.0), "approved"),
        (lset(2, 0, action_low=14.5, action_high=15.5), "proposed"),
        (lset(3, 0, action_low=14.5, action_high=15.5), "rejected"),
    ]
    assert only(run([data(1, [14.0, 16.0])], sets)).limit_set == "press v1"


def test_running_other_product_no_press_and_non_press_tags():
    b_run = batch(5, ended=False)
    no_press = BatchData(batch(6), ())
    temp = data(7, [20.0, 21.0], kind="temperature", tag="site/area/compression/trh/temperature")
    mixed = BatchData(
        batch(8),
        (
            tag_input(batch(8), [14.0, 16.0]),
            tag_input(batch(8), [40.0, 41.0], tag=OTHER, kind="press"),
            tag_input(
                batch(8), [20.0, 21.0], tag="site/area/compression/trh/t", kind="temperature"
            ),
        ),
    )
    s = summarise(
        ValidationInputs(
            now_us=T0 + 400 * DAY,
            limit_sets=RANGE,
            product="P",
            batches=[
                BatchData(b_run, (tag_input(b_run, [1.0, 2.0]),)),
                no_press,
                temp,
                mixed,
                data(9, [14.0, 16.0], product="Q"),
            ],
        )
    )
    assert [b.id for b in s.batches] == ["B-8"]
    assert [(e.batch_id, e.reason) for e in s.excluded] == [
        ("B-5", "still running: only ended batches count"),
        ("B-6", "no press CPP tags on its equipment"),
        ("B-7", "no press CPP tags on its equipment"),
    ]
    assert [c.tag for c in s.cpps] == [TAG, OTHER]  # temperature is not a CPP
    assert s.cpps[1].verdict == INSUFFICIENT  # no range for the turret speed
    # all products: Q's batch counts too
    s_all = summarise(
        ValidationInputs(
            now_us=T0 + 400 * DAY,
            limit_sets=RANGE,
            batches=[mixed, data(9, [14.0, 16.0], product="Q")],
        )
    )
    assert [b.id for b in s_all.batches] == ["B-8", "B-9"] and s_all.product is None


def test_cpps_with_a_validated_range_come_first():
    b = batch(1)
    early = "site/area/compression/press-01/a_ejection_force"  # sorts before TAG, no range
    d = BatchData(b, (tag_input(b, [1.0, 2.0], tag=early), tag_input(b, [14.0, 16.0])))
    assert [c.tag for c in run([d]).cpps] == [TAG, early]


def test_batches_are_taken_in_start_order():
    later, earlier = data(2, [20.0, 21.0]), data(1, [10.0, 11.0])
    c = only(run([later, earlier]))
    assert [f.batch_id for f in c.batches] == ["B-1", "B-2"]


# ------------------------------------------------------------------- excursions


def tr(alarm, event, at, **detail) -> AlarmTr:
    return AlarmTr(
        f"{TAG}#{alarm}",
        TAG,
        Priority.HIGH,
        event,
        AlarmState.NORMAL,
        AlarmState.NORMAL,
        "system",
        at,
        "",
        detail,
    )


def test_excursions_from_alarm_transitions():
    b = batch(1)
    assert b.end_us is not None
    a, c = AlarmEvent.CONDITION_ACTIVE, AlarmEvent.CONDITION_CLEARED
    trs = [
        tr("action_high", a, b.start_us - 600 * S),  # before the batch: not this batch's
        tr("action_high", c, b.start_us - 500 * S),
        tr("action_high", a, b.start_us + 10 * S, limit_at_trip=18.0),
        tr("action_high", c, b.start_us + 20 * S),
        tr("alert_high", a, b.start_us + 5 * S),
        tr("alert_high", c, b.start_us + 25 * S),
        tr("alert_high", a, b.start_us + 30 * S),  # still active at the end
        tr("action_low", a, b.end_us + 10 * S),  # after the batch
        tr("oot", a, b.start_us + 40 * S),  # a trend signal is not an excursion
    ]
    d = BatchData(b, (tag_input(b, [14.0, 16.0], transitions=trs),))
    (f,) = only(run([d])).batches
    assert (f.excursions, f.action_excursions) == (3, 1)


def test_excursion_already_active_when_the_batch_started_counts_once():
    b = batch(1)
    trs = [
        tr("action_low", AlarmEvent.CONDITION_ACTIVE, b.start_us - 60 * S),
        tr("action_low", AlarmEvent.CONDITION_CLEARED, b.start_us + 60 * S),
    ]
    (f,) = only(run([BatchData(b, (tag_input(b, [14.0, 16.0], transitions=trs),))])).batches
    assert (f.excursions, f.action_excursions) == (1, 1)


# -------------------------------------------------------------------- deviations


def dev(i: int, tag: str, batches: tuple[str, ...], status=Status.OPEN, final=None) -> Deviation:
    ev = Evidence(
        tag, "compression", ExcursionKind.ACTION, ProductionState.IN_OPERATION, T0, 10 * S
    )
    return Deviation(
        f"DEV-2026-{i:04d}",
        f"excursion {i}",
        Source.EXCURSION,
        status,
        Classification.MAJOR,
        T0 + i,
        "system",
        T0 + DAY,
        T0 + 30 * DAY,
        evidence=ev,
        affected_batch_ids=batches,
        final_classification=final,
    )


def test_deviations_linked_per_batch_and_tag():
    devs = (
        dev(2, TAG, ("B-1",), Status.CLOSED, Classification.MINOR),
        dev(1, TAG, ("B-1",)),
        dev(3, OTHER, ("B-1",)),  # another CPP
    )
    (f,) = only(run([data(1, [14.0, 16.0], deviations=devs)])).batches
    assert [(d.id, d.status, d.classification) for d in f.deviations] == [
        ("DEV-2026-0001", "open", "major"),  # proposed class until a final one is set
        ("DEV-2026-0002", "closed", "minor"),
    ]


# ----------------------------------------------------------------------- verdicts


def cpk_batches(*cpks: float, means=None) -> list[BatchData]:
    means = means or [15.0] * len(cpks)
    return [
        data(i + 1, alternating(m, d_for_cpk(c, m)))
        for i, (c, m) in enumerate(zip(cpks, means, strict=True))
    ]


@pytest.mark.parametrize(
    "cpks, policy, verdict, phrase",
    [
        ((2.0, 2.0, 2.0), {}, CAPABLE, "all 3 batches have Cpk of at least 1.33 (lowest 2.00)"),
        ((2.0, 1.2, 2.0), {}, MARGINAL, "Cpk below 1.33 in 1 of 3 batches (B-2 1.20)"),
        ((2.0, 0.9, 2.0), {}, NOT_CAPABLE, "Cpk below 1.00 in 1 of 3 batches (B-2 0.90)"),
        ((0.9, 0.8, 2.0), {}, NOT_CAPABLE, "in 2 of 3 batches (B-1 0.90, B-2 0.80)"),
        ((2.0, 2.0), {}, INSUFFICIENT, "2 batch(es) with a capability index, at least 3"),
        ((0.5,), {}, NOT_CAPABLE, "Cpk below 1.00 in 1 of 1 batches"),  # bad news needs no more
        ((1.2,), {}, INSUFFICIENT, "1 batch(es)"),  # marginal needs enough batches to say so
        ((2.0, 2.0), {"min_batches": 2}, CAPABLE, "all 2 batches"),
        ((1.5, 1.5, 1.5), {"cpk_target": 1.67}, MARGINAL, "below 1.67 in 3 of 3"),
        ((1.5, 1.5, 1.5), {"cpk_minimum": 1.6, "cpk_target": 1.67}, NOT_CAPABLE, "below 1.60"),
    ],
)
def test_verdict_table(cpks, policy, verdict, phrase):
    c = only(run(cpk_batches(*cpks), **policy))
    assert [f.cpk for f in c.batches] == pytest.approx(list(cpks))
    assert c.verdict == verdict, c.text
    assert phrase in c.text
    assert c.text.endswith(DISCLAIMER)
    target = policy.get("cpk_target", 1.33)
    minimum = policy.get("cpk_minimum", 1.0)
    assert c.below_target == sum(1 for x in cpks if x < target - 1e-9)
    assert c.below_minimum == sum(1 for x in cpks if x < minimum - 1e-9)


def test_a_cpk_exactly_at_the_target_is_capable():
    batches = cpk_batches(1.5, 1.6, 1.7)
    lowest = only(run(batches)).batches[0].cpk
    c = only(run(batches, cpk_target=lowest))
    assert c.verdict == CAPABLE and c.below_target == 0
    assert only(run(batches, cpk_target=lowest + 1e-9)).verdict == MARGINAL


def test_pooled_ppk_catches_batches_far_apart():
    # each batch is tight (Cpk ~ 9) but the means sit at 5 and 25 of a 0..30 range:
    # together the spread is wide. Pooled: mean 15; values 4.9,5.1,... and 24.9,25.1,...
    batches = [
        data(1, alternating(5.0, 0.1)),
        data(2, alternating(25.0, 0.1)),
        data(3, alternating(5.0, 0.1)),
        data(4, alternating(25.0, 0.1)),
    ]
    c = only(run(batches))
    assert all(f.cpk == pytest.approx(5 / (3 * 0.2 / 1.128)) for f in c.batches)
    # 40 values, each (+-10 +- 0.1) from 15: sum of squares 20 * (9.9**2 + 10.1**2)
    s = math.sqrt(20 * (9.9**2 + 10.1**2) / 39)
    assert c.overall.ppk == pytest.approx(15 / (3 * s))
    assert c.verdict == NOT_CAPABLE and "pooled Ppk 0.49 below 1.00" in c.text


def test_pooled_ppk_marginal():
    # means 11 and 19 (4 from the centre), tiny spread: Ppk ~ 15 / (3 * 4.05) ~ 1.23
    c = only(run([data(i, alternating(11.0 if i % 2 else 19.0, 0.1)) for i in range(1, 5)]))
    assert 1.0 < c.overall.ppk < 1.33
    assert c.verdict == MARGINAL and f"pooled Ppk {c.overall.ppk:.2f} below 1.33" in c.text


def test_drifting_means_are_named_in_the_text():
    c = only(run([data(i, alternating(9.0 + i, 0.1)) for i in range(1, 7)]))
    assert c.trend.drift and c.trend.direction == "rising"
    assert c.trend.slope_per_batch == pytest.approx(1.0)
    assert c.verdict == CAPABLE and "Batch means drift (rising)" in c.text


@pytest.mark.parametrize(
    "kw",
    [
        {"cpk_target": 0.9},  # below the minimum
        {"cpk_minimum": 0.0},
        {"min_batches": 0},
        {"trend_run": 1},
    ],
)
def test_policy_is_checked(kw):
    with pytest.raises(ValueError):
        Policy(**kw)


def test_to_dict_is_json_with_zoned_times():
    s = run(cpk_batches(2.0, 1.2, 0.9))
    d = json.loads(json.dumps(s.to_dict(), allow_nan=False))
    assert d["policy"] == {"cpk_target": 1.33, "cpk_minimum": 1.0, "min_batches": 3, "trend_run": 6}
    assert d["batches"][0]["start"].endswith("Z") and d["compiled"].endswith("Z")
    cpp = d["cpps"][0]
    assert [b["batch_id"] for b in cpp["batches"]] == ["B-1", "B-2", "B-3"]
    assert cpp["batches"][0]["end"].endswith("Z") and cpp["verdict"] == NOT_CAPABLE
    assert set(cpp["overall"]) >= {"cp", "cpk", "pp", "ppk", "n", "mean"}
    assert s.text.startswith("3 batch(es) of all products, 1 CPP(s): 1 not capable.")


# ----------------------------------------------------------------------- equipment

NOW = T0 + DAY  # 2026-09-22T14:13:20Z
TODAY = date(2026, 9, 22)


def eq(id="press-01", q=None, c=None) -> EquipmentInfo:
    return EquipmentInfo(id, "tablet_press", "compression", "Press", q, c)


@pytest.mark.parametrize(
    "q, c, expect",
    [
        # (qualification status, days, calibration status, days)
        (date(2026, 9, 22), date(2026, 9, 23), ("qualified", 0, "in_date", 1)),  # through today
        (date(2026, 9, 21), date(2026, 9, 1), ("expired", -1, "overdue", -21)),
        (None, None, ("not_recorded", None, "not_recorded", None)),
        (date(2027, 9, 30), None, ("qualified", 373, "not_recorded", None)),
    ],
)
def test_equipment_status_now(q, c, expect):
    (o,) = equipment_overview([eq(q=q, c=c)], [], NOW)
    got = (
        o.qualification_status,
        o.qualification_days_remaining,
        o.calibration_status,
        o.calibration_days_remaining,
    )
    assert got == expect
    assert (o.qualified_until, o.calibration_due) == (
        None if q is None else q.isoformat(),
        None if c is None else c.isoformat(),
    )


def test_equipment_texts():
    (o,) = equipment_overview([eq(q=date(2026, 9, 30), c=date(2026, 9, 1))], [], NOW)
    assert o.text == (
        "qualification valid until 2026-09-30 (8 day(s) left); "
        "calibration overdue since 2026-09-01 (21 day(s) ago)"
    )
    (o,) = equipment_overview([eq()], [], NOW)
    assert o.text == "qualification not recorded; calibration not recorded"


def test_batches_that_used_equipment_out_of_status():
    until = date(2026, 9, 10)  # qualification holds through 2026-09-10 UTC
    end_of_until = 1_789_084_800 * S  # 2026-09-11T00:00:00Z
    before = Batch(
        "B-1", "P", ("press-01",), ("compression",), end_of_until - 2 * H, end_of_until - H
    )
    across = Batch("B-2", "P", ("press-01",), ("compression",), end_of_until - H, end_of_until + H)
    after = Batch(
        "B-3", "P", ("press-01",), ("compression",), end_of_until + DAY, end_of_until + DAY + H
    )
    running = Batch("B-4", "P", ("press-01",), ("compression",), NOW - H, None)
    elsewhere = Batch("B-5", "P", ("press-02",), ("compression",), end_of_until + DAY, None)
    usage = [(b, set(b.equipment)) for b in (after, before, across, running, elsewhere)]
    o, o2 = equipment_overview([eq(q=until), eq("press-02", q=date(2030, 1, 1))], usage, NOW)
    assert o.batches_used == 4 and o2.batches_used == 1
    assert [(u.batch_id, u.qualification_status) for u in o.out_of_status] == [
        ("B-2", "expired_during_batch"),
        ("B-3", "expired"),
        ("B-4", "expired"),
    ]
    assert o.out_of_status[2].end_us is None
    assert "qualification valid until 2026-09-10 (expired" in o.out_of_status[1].reason
    assert o.text.endswith("used by 3 batch(es) while out of qualification/calibration")
    assert o2.out_of_status == ()
    d = json.loads(json.dumps(o.to_dict()))
    assert d["out_of_status"][0]["start"].endswith("Z") and d["out_of_status"][2]["end"] is None


def test_equipment_sorted_by_id_and_usage_through_tags():
    b = Batch("B-1", "P", (), ("compression",), NOW - 2 * DAY, NOW - DAY)
    # the batch names no equipment, but the counter's tags were in its scope
    out = equipment_overview(
        [eq("pc-01", c=date(2026, 1, 1)), eq("a-press")], [(b, {"pc-01"})], NOW
    )
    assert [o.id for o in out] == ["a-press", "pc-01"]
    assert [u.calibration_status for u in out[1].out_of_status] == ["overdue"]


# ------------------------------------------------------------- gather from a real store


def test_gather_from_a_real_store_and_books(tmp_path):
    from gmp_edge.audit.trail import AuditTrail
    from gmp_edge.clock import now_us
    from gmp_edge.collector.reading import Quality, Reading
    from gmp_edge.edge.service import EdgeService
    from gmp_edge.historian.store import Store
    from gmp_edge.monitoring.engine import Books, MonitoringEngine
    from gmp_edge.review.validation_gather import equipment_view, process_validation

    force, speed = FORCE, SPEED
    # qualified for a year from today (UTC): the view below is taken a few seconds from now
    qualified = datetime.now(UTC).date() + timedelta(days=365)
    plant = small_plant().update("equipment", "id", PRESS, qualified_until=qualified)
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
        store.commit([Reading(STATE, "EXECUTE", Quality.GOOD, t0 - S)])
        b1 = [14.0, 16.0] * 10  # mean 15, every moving range 2
        b2 = [15.0, 17.0] * 10 + [19.0] * 3  # an action excursion above 18 at the end
        for i, (bid, values) in enumerate((("PV-1", b1), ("PV-2", b2))):
            start = t0 + i * 100 * S
            books.batches.start("mes", Batch(bid, "Paracetamol", (PRESS,), (COMPRESSION,), start))
            store.commit(
                [Reading(force, v, Quality.GOOD, start + j * S) for j, v in enumerate(values)]
            )
            store.commit([Reading(speed, 40.0, Quality.BAD, start + S, message="no answer")])
            engine.step()
            books.batches.end("mes", bid, start + 50 * S)
        books.batches.start(
            "mes", Batch("PV-3", "Paracetamol", (PRESS,), (COMPRESSION,), t0 + 300 * S)
        )
        books.batches.start(
            "mes",
            Batch("OTHER-1", "Ibuprofen", (PRESS,), (COMPRESSION,), t0 + 400 * S, t0 + 450 * S),
        )
        s = process_validation(
            store, books, cfg, t0 + 500 * S, product="Paracetamol", policy=Policy(min_batches=2)
        )
        capped = process_validation(store, books, cfg, t0 + 500 * S, max_batches=1)
        eqs = {e.id: e for e in equipment_view(books, cfg, t0 + 500 * S)}
    finally:
        books.close()
        trail.close()
        store.close()
    assert [b.id for b in s.batches] == ["PV-1", "PV-2"]
    assert [(e.batch_id, e.reason) for e in s.excluded] == [
        ("PV-3", "still running: only ended batches count")
    ]
    cpps = {c.tag: c for c in s.cpps}
    assert set(cpps) == {t.path for t in cfg.tags if t.kind.value == "press_parameter"}
    c = cpps[force]
    f1, f2 = c.batches
    assert f1.capability is not None
    assert (f1.n, f1.mean, f1.capability.lsl, f1.capability.usl) == (20, 15.0, 12.0, 18.0)
    assert f1.cpk == pytest.approx(3 / (3 * W))  # min(18 - 15, 15 - 12) / (3 * 2/1.128)
    assert f1.excursions == 0 and f1.limit_set is not None
    assert f2.n == 23 and f2.max == 19.0 and f2.action_excursions >= 1
    # the excursion raised a deviation naming PV-2 and the force tag
    assert [d.status for d in f2.deviations] == ["open"]
    assert c.overall.n == 43 and c.verdict == NOT_CAPABLE
    assert cpps[speed].batches[0].n == 0  # Bad readings only
    assert [b.id for b in capped.batches] == ["OTHER-1"] and "newest 1 of 3" in capped.notes[0]
    press = eqs[PRESS]
    assert press.qualification_status == "qualified" and press.calibration_status == "not_recorded"
    assert press.batches_used == 4 and press.out_of_status == ()
    assert eqs[COUNTER].batches_used == 4  # its tags were in the batches' room


# --------------------------------------------------------------------------- the API


def test_answer_models_match_the_summary_exactly():
    import typing

    from gmp_edge.api.validation_routes import CppOut, EquipmentOut, ProcessValidationOut
    from gmp_edge.review.validation import VERDICTS

    devs = (dev(1, TAG, ("B-1",)),)
    s = run([data(1, alternating(15.0, 1.0), deviations=devs), *cpk_batches(2.0, 0.9)[1:]])
    d = json.loads(json.dumps(s.to_dict()))
    assert ProcessValidationOut.model_validate(d).model_dump() == d
    (o,) = equipment_overview([eq(q=date(2026, 9, 1))], [(batch(1), {"press-01"})], NOW)
    e = json.loads(json.dumps(o.to_dict()))
    assert e["out_of_status"] and EquipmentOut.model_validate(e).model_dump() == e
    assert set(typing.get_args(CppOut.model_fields["verdict"].annotation)) == set(VERDICTS)


PRESS_QUALIFIED = date(2027, 9, 30)


@pytest.fixture
def inspector(tmp_path):
    import warnings

    from gmp_edge.audit.trail import AuditTrail
    from gmp_edge.edge.api_wiring import build_api
    from gmp_edge.edge.service import EdgeService
    from gmp_edge.historian.store import Store
    from gmp_edge.identity.roles import Role

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    plant = small_plant().update("equipment", "id", PRESS, qualified_until=PRESS_QUALIFIED)
    cfg, sha = plant.load(tmp_path)
    store, trail = Store(cfg.store.path), AuditTrail(cfg.store.path)
    parts = build_api(cfg, EdgeService(cfg, sha, store), trail)
    token = parts.directory.create_token("system", "insp", Role.INSPECTOR, "test")
    c = TestClient(parts.app, base_url="http://127.0.0.1")
    c.headers["Authorization"] = f"Bearer {token}"
    yield c
    parts.close()
    trail.close()
    store.close()


@pytest.mark.parametrize(
    "params, status, phrase",
    [
        ({}, 200, None),
        ({"product": PRODUCT, "start": "2026-01-01T00:00:00Z"}, 200, None),
        ({"start": "2026-01-01T00:00:00"}, 400, "start '2026-01-01T00:00:00' has no time zone"),
        ({"end": "2026-01-01T00:00:00"}, 400, "end '2026-01-01T00:00:00' has no time zone"),
        ({"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, 400, "not before"),
        ({"start": "0001-01-01T00:00:00Z"}, 400, "outside 1970-01-01 to 9999-01-01"),
        ({"end": "9999-12-31T23:59:59Z"}, 400, "outside 1970-01-01 to 9999-01-01"),
        ({"start": "yesterday"}, 422, "datetime"),
        ({"cpk_target": "0.5"}, 422, "greater than or equal to 1"),
        ({"min_batches": "0"}, 422, "greater than or equal to 1"),
        ({"product": ""}, 422, "at least 1 character"),
    ],
)
def test_process_validation_parameters(inspector, params, status, phrase):
    r = inspector.get("/api/process-validation", params=params)
    assert r.status_code == status, r.text
    if phrase:
        assert phrase in json.dumps(r.json()["detail"])
    else:
        body = r.json()
        assert body["cpps"] == [] and body["batches"] == [] and "a person" in body["text"]
        assert body["compiled"].endswith("Z")


@pytest.mark.parametrize(
    ("now", "left", "status"),
    [
        (datetime(2026, 9, 21, 14, 13, 20, tzinfo=UTC), 374, "qualified"),
        (datetime(2027, 9, 30, 23, 59, 59, tzinfo=UTC), 0, "qualified"),  # the last day
        (datetime(2027, 10, 1, 0, 0, 0, tzinfo=UTC), -1, "expired"),
    ],
    ids=["a year ahead", "last day", "day after"],
)
def test_equipment_answer(inspector, monkeypatch, now, left, status):
    # the service's clock is fixed: days remaining count UTC calendar days from that instant
    history = inspector.app.state.services.history
    monkeypatch.setattr(history, "clock", ManualClock(int(now.timestamp()) * S))
    r = inspector.get("/api/equipment")
    assert r.status_code == 200
    by_id = {e["id"]: e for e in r.json()}
    press = by_id[PRESS]
    assert (press["kind"], press["room"], press["qualified_until"]) == (
        "tablet_press",
        COMPRESSION,
        PRESS_QUALIFIED.isoformat(),
    )
    assert press["calibration_status"] == "not_recorded" and press["batches_used"] == 0
    assert press["qualification_days_remaining"] == left
    assert press["qualification_status"] == status


def test_the_page_loads_its_script_and_style_under_a_strict_csp(inspector):
    page = inspector.get("/validation")
    assert page.status_code == 200 and 'src="/validation.js"' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe" not in csp
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline
    js = inspector.get("/validation.js")
    assert js.headers["content-type"].startswith("text/javascript")
    assert "eval(" not in js.text and "new Function" not in js.text and "style=" not in js.text
    assert inspector.get("/validation.css").headers["content-type"].startswith("text/css")
    assert 'href="/validation"' in inspector.get("/batch").text
