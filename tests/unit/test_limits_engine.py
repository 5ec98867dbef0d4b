"""Limit evaluation: table-driven edges, delays, deadband, quality, windows, streaming."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import numpy as np
import pytest

from gmp_edge.limits.engine import (
    Evaluator,
    EventReason,
    ProductionTimeline,
    evaluate,
    excursions_from_events,
    what_if,
)
from gmp_edge.limits.model import AT_REST, IN_OPERATION, Condition, LimitSet, TagLimits, Threshold

S = 1_000_000
G, U, B = 0, 1, 2
AH, AL, XH, XL, MON = (
    Condition.ALERT_HIGH,
    Condition.ALERT_LOW,
    Condition.ACTION_HIGH,
    Condition.ACTION_LOW,
    Condition.MONITORING_UNAVAILABLE,
)


def run(limits, values, quality=None, timeline=(), step_s=1):
    n = len(values)
    ts = [i * step_s * S for i in range(n)]
    q = quality if quality is not None else [G] * n
    v = [math.nan if x is None else x for x in values]
    return evaluate(limits, ts, v, q, timeline, limit_set_id="LS", limit_set_version=3)


def brief(events):
    """(condition, active, second) triples: the shape the tables below compare."""
    return [(e.condition, e.active, e.ts_us // S) for e in events]


# -- inclusive / exclusive edges -------------------------------------------------------
@pytest.mark.parametrize(
    ("threshold", "values", "expected"),
    [
        (Threshold(10.0), [9, 10, 9], []),  # exclusive: the limit itself is fine
        (Threshold(10.0), [9, 10.000001, 9], [(XH, True, 1), (XH, False, 2)]),
        (Threshold(10.0, inclusive=True), [9, 10, 9], [(XH, True, 1), (XH, False, 2)]),
        (Threshold(10.0, inclusive=True), [9, 9.999999, 9], []),
    ],
)
def test_high_edges(threshold, values, expected):
    assert brief(run(TagLimits("t", action_high=threshold), values)) == expected


@pytest.mark.parametrize(
    ("threshold", "values", "expected"),
    [
        (Threshold(10.0), [11, 10, 11], []),
        (Threshold(10.0), [11, 9.999999, 11], [(XL, True, 1), (XL, False, 2)]),
        (Threshold(10.0, inclusive=True), [11, 10, 11], [(XL, True, 1), (XL, False, 2)]),
        (Threshold(10.0, inclusive=True), [11, 10.000001, 11], []),
    ],
)
def test_low_edges(threshold, values, expected):
    assert brief(run(TagLimits("t", action_low=threshold), values)) == expected


def test_event_fields():
    lim = TagLimits("dp1", action_low=Threshold(10.0), alert_low=Threshold(13.0))
    ev = run(lim, [15, 12, 8, 9, 14])
    # same instant: conditions in the fixed order action_high, alert_high, alert_low, action_low
    assert brief(ev) == [(AL, True, 1), (XL, True, 2), (AL, False, 4), (XL, False, 4)]
    a = ev[1]
    assert (a.value, a.limit, a.limit_set_id, a.limit_set_version) == (8.0, 10.0, "LS", 3)
    assert a.reason is EventReason.BEYOND_LIMIT and a.peak == 8.0
    clear_alert = ev[2]
    assert clear_alert.excursion_start_us == 1 * S and clear_alert.peak == 8.0  # min for low
    assert clear_alert.reason is EventReason.RETURNED and clear_alert.value == 14.0


# -- on-delay, off-delay, deadband -----------------------------------------------------
HI = Threshold(10.0)


@pytest.mark.parametrize(
    ("on", "off", "deadband", "values", "expected"),
    [
        # on-delay 2 s: beyond at 1,2 (1 s) is not enough; 4,5,6 reaches 2 s at t=6
        (2, 0, 0, [0, 11, 11, 0, 11, 11, 11, 0], [(XH, True, 6), (XH, False, 7)]),
        # exactly the delay counts (>=)
        (2, 0, 0, [0, 11, 11, 11, 0], [(XH, True, 3), (XH, False, 4)]),
        # a dip to the limit value (not beyond, exclusive) restarts the on-delay
        (2, 0, 0, [11, 11, 10, 11, 11, 11], [(XH, True, 5)]),
        # off-delay 2 s: inside at 2,3 then beyond again: stays active; clears at 7
        (0, 2, 0, [0, 11, 5, 5, 11, 5, 5, 5, 5], [(XH, True, 1), (XH, False, 7)]),
        # deadband 2: 9 is in the dead zone (not <= 8), so no clear until 8
        (0, 0, 2, [0, 11, 9, 9, 8, 0], [(XH, True, 1), (XH, False, 4)]),
        # dead-zone value resets the off-delay run
        (0, 1, 2, [11, 7, 9, 7, 7, 0], [(XH, True, 0), (XH, False, 4)]),
        # dead-zone value also breaks the on-delay (it is not beyond)
        (1, 0, 2, [11, 9, 11, 9, 11, 11], [(XH, True, 5)]),
    ],
)
def test_delays_and_deadband(on, off, deadband, values, expected):
    lim = TagLimits(
        "t",
        action_high=HI,
        on_delay_s=on,
        off_delay_s=off,
        deadband=deadband,
        delay_justification="door openings, see CCS",
    )
    assert brief(run(lim, values)) == expected


def test_event_timestamp_and_excursion_start_with_on_delay():
    lim = TagLimits("t", action_high=HI, on_delay_s=3, delay_justification="j")
    (ev,) = run(lim, [0, 12, 15, 11, 13, 0][:5])
    assert ev.ts_us == 4 * S and ev.excursion_start_us == 1 * S and ev.peak == 15.0


def test_inclusive_deadband_return():
    # inclusive high 10, deadband 1: clear needs value < 9 (9 itself is still dead zone)
    lim = TagLimits("t", action_high=Threshold(10.0, inclusive=True), deadband=1)
    assert brief(run(lim, [10, 9, 8.9])) == [(XH, True, 0), (XH, False, 2)]


# -- quality ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "quality", "expected"),
    [
        # Bad reading with a high value never trips; monitoring_unavailable instead
        ([0, 99, 0], [G, B, G], [(MON, True, 1), (MON, False, 2)]),
        # Uncertain likewise
        ([0, 99, 0], [G, U, G], [(MON, True, 1), (MON, False, 2)]),
        # Bad does not clear an active condition (holds), Good inside clears it
        ([11, 0, 0], [G, B, G], [(XH, True, 0), (MON, True, 1), (XH, False, 2), (MON, False, 2)]),
        # a run of Bad/Uncertain is one monitoring event
        ([0, None, None, 5, 0], [G, B, U, U, G], [(MON, True, 1), (MON, False, 4)]),
        # NaN with Good quality is no data
        ([0, None, 0], [G, G, G], [(MON, True, 1), (MON, False, 2)]),
    ],
)
def test_quality(values, quality, expected):
    assert brief(run(TagLimits("t", action_high=HI), values, quality)) == expected


def test_bad_holds_pending_on_delay():
    lim = TagLimits("t", action_high=HI, on_delay_s=3, delay_justification="j")
    # beyond at 0, bad at 1-2, beyond at 3: continuous (hold), active at 3
    ev = run(lim, [11, 0, 0, 11], [G, B, B, G])
    assert brief(ev) == [(MON, True, 1), (XH, True, 3), (MON, False, 3)]
    assert ev[1].excursion_start_us == 0


def test_bad_holds_pending_off_delay():
    lim = TagLimits("t", action_high=HI, off_delay_s=2, delay_justification="j")
    ev = run(lim, [11, 5, 99, 5], [G, G, B, G])
    assert brief(ev) == [(XH, True, 0), (MON, True, 2), (XH, False, 3), (MON, False, 3)]


# -- production-state windows ----------------------------------------------------------
def test_limits_apply_only_in_their_state():
    lim = TagLimits("t", action_high=HI, applies_in=frozenset({IN_OPERATION}))
    timeline = [(0, AT_REST), (3 * S, IN_OPERATION), (6 * S, AT_REST)]
    # beyond at rest (t=1,2) ignored; in operation from t=4; window end clears at 6
    ev = run(lim, [0, 11, 11, 0, 11, 11, 11, 11], timeline=timeline)
    assert brief(ev) == [(XH, True, 4), (XH, False, 6)]
    assert ev[1].reason is EventReason.OUT_OF_WINDOW and ev[1].value is None


def test_window_end_between_readings_and_fresh_start():
    lim = TagLimits(
        "t",
        action_high=HI,
        on_delay_s=2,
        applies_in=frozenset({IN_OPERATION}),
        delay_justification="j",
    )
    timeline = [(0, IN_OPERATION), (int(2.5 * S), AT_REST), (int(3.5 * S), IN_OPERATION)]
    # pending from t=1 is dropped at 2.5; in the new window the delay restarts at t=4
    ev = run(lim, [0, 11, 11, 11, 11, 11, 11], timeline=timeline)
    assert brief(ev) == [(XH, True, 6)]
    assert ev[0].excursion_start_us == 4 * S


def test_unknown_state_before_timeline():
    lim = TagLimits("t", action_high=HI, applies_in=frozenset({AT_REST}))
    assert brief(run(lim, [11, 11, 11], timeline=[(2 * S, AT_REST)])) == [(XH, True, 2)]
    always = TagLimits("t", action_high=HI)
    assert brief(run(always, [11, 0], timeline=[(5 * S, AT_REST)])) == [
        (XH, True, 0),
        (XH, False, 1),
    ]


def test_monitoring_only_counts_inside_window():
    lim = TagLimits("t", action_high=HI, applies_in=frozenset({IN_OPERATION}))
    timeline = [(0, AT_REST), (2 * S, IN_OPERATION), (4 * S, AT_REST)]
    ev = run(lim, [None, None, None, None, None], [B] * 5, timeline=timeline)
    assert brief(ev) == [(MON, True, 2), (MON, False, 4)]
    assert ev[1].reason is EventReason.OUT_OF_WINDOW


def test_two_entries_for_disjoint_states():
    rest = TagLimits("p", action_high=Threshold(100.0), applies_in=frozenset({AT_REST}))
    oper = TagLimits("p", action_high=Threshold(1000.0), applies_in=frozenset({IN_OPERATION}))
    timeline = [(0, AT_REST), (2 * S, IN_OPERATION)]
    ev = run([rest, oper], [50, 500, 500, 500, 1500], timeline=timeline)
    assert [(e.condition, e.active, e.ts_us // S, e.limit) for e in ev] == [
        (XH, True, 1, 100.0),
        (XH, False, 2, 100.0),
        (XH, True, 4, 1000.0),
    ]


def test_effective_from_ignores_earlier_readings():
    ev = evaluate(TagLimits("t", action_high=HI), [0, S, 2 * S], [11, 11, 11], [G] * 3, from_us=S)
    assert brief(ev) == [(XH, True, 1)]


def test_input_checks():
    lim = TagLimits("t", action_high=HI)
    with pytest.raises(ValueError, match="strictly increasing"):
        evaluate(lim, [0, 0], [1, 1], [0, 0])
    with pytest.raises(ValueError, match="lengths differ"):
        evaluate(lim, [0, 1], [1], [0, 0])


# -- scalar reference model, used for random cross-checks ------------------------------
def reference(limits, ts, v, q, changes, from_us=None):
    """Sample-by-sample state machine written straight from the rules in the docstring."""
    tl = ProductionTimeline(changes)
    starts, ends = tl.windows(limits.applies_in, from_us)
    spans = list(zip(starts.tolist(), ends.tolist(), strict=True))
    out: list[tuple[Condition, bool, int, int | None, float | None]] = []
    conds = [c for c in (XH, AH, AL, XL) if limits.threshold(c) is not None]
    st: dict[Condition, dict[str, Any]] = {}

    def reset():
        for c in conds:
            st[c] = {
                "active": False,
                "pend": None,
                "ppeak": None,
                "start": None,
                "peak": None,
                "rtn": None,
            }
        st[MON] = {"active": False, "start": None}

    reset()
    cur = None  # (start, end) of the window of the last in-window reading
    d_on, d_off = round(limits.on_delay_s * S), round(limits.off_delay_s * S)
    for t, x, qq in zip(ts, v, q, strict=True):
        if cur is not None and t >= cur[1]:
            for c in conds:
                if st[c]["active"]:
                    assert c.side is not None  # conds are the four limit conditions
                    sg = 1 if c.side.value == "high" else -1
                    out.append((c, False, cur[1], st[c]["start"], sg * st[c]["peak"]))
            if st[MON]["active"]:
                out.append((MON, False, cur[1], st[MON]["start"], None))
            reset()
            cur = None
        span = next(((s, e) for s, e in spans if s <= t < e), None)
        if span is None:
            continue
        cur = span
        good = qq == G and math.isfinite(x)
        if not good and not st[MON]["active"]:
            st[MON] = {"active": True, "start": t}
            out.append((MON, True, t, t, None))
        elif good and st[MON]["active"]:
            out.append((MON, False, t, st[MON]["start"], None))
            st[MON] = {"active": False, "start": None}
        if not good:
            continue
        for c in conds:
            th = limits.threshold(c)
            assert c.side is not None
            sg = 1 if c.side.value == "high" else -1
            y, lim = sg * x, sg * th.value
            beyond = y >= lim if th.inclusive else y > lim
            inside = y < lim - limits.deadband if th.inclusive else y <= lim - limits.deadband
            s_ = st[c]
            if not s_["active"]:
                if beyond:
                    if s_["pend"] is None:
                        s_["pend"], s_["ppeak"] = t, y
                    s_["ppeak"] = max(s_["ppeak"], y)
                    if t - s_["pend"] >= d_on:
                        s_.update(active=True, start=s_["pend"], peak=s_["ppeak"], rtn=None)
                        out.append((c, True, t, s_["start"], sg * s_["peak"]))
                else:
                    s_["pend"] = None
            else:
                s_["peak"] = max(s_["peak"], y)
                if inside:
                    if s_["rtn"] is None:
                        s_["rtn"] = t
                    if t - s_["rtn"] >= d_off:
                        out.append((c, False, t, s_["start"], sg * s_["peak"]))
                        s_.update(active=False, pend=None, rtn=None)
                else:
                    s_["rtn"] = None
    order = {c: i for i, c in enumerate((XH, AH, AL, XL, MON))}
    out.sort(key=lambda e: (e[2], order[e[0]]))
    return out


def shape(events):
    return [(e.condition, e.active, e.ts_us, e.excursion_start_us, e.peak) for e in events]


def random_case(rng: random.Random):
    levels = [0.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0]  # few values: many exact-edge hits
    lim = TagLimits(
        "t",
        alert_high=Threshold(7.0, rng.random() < 0.5) if rng.random() < 0.8 else None,
        action_high=Threshold(8.0, rng.random() < 0.5),
        alert_low=Threshold(4.0, rng.random() < 0.5) if rng.random() < 0.5 else None,
        action_low=Threshold(2.0, rng.random() < 0.5) if rng.random() < 0.5 else None,
        deadband=rng.choice([0.0, 1.0, 2.0]),
        on_delay_s=rng.choice([0, 0, 2, 5]),
        off_delay_s=rng.choice([0, 0, 1, 3]),
        delay_justification="j",
        applies_in=rng.choice([None, frozenset({IN_OPERATION}), frozenset({AT_REST})]),
    )
    n = rng.randint(1, 120)
    ts, t = [], 0
    for _ in range(n):
        t += rng.choice([S, S, S, 2 * S, 500_000])
        ts.append(t)
    v = [rng.choice(levels) + rng.choice([0.0, 0.0, 0.5]) for _ in range(n)]
    q = [rng.choices([G, U, B], [0.85, 0.05, 0.1])[0] for _ in range(n)]
    v = [math.nan if qq == B and rng.random() < 0.5 else x for x, qq in zip(v, q, strict=True)]
    changes, c = [], rng.randint(-5, 20) * S
    for _ in range(rng.randint(0, 6)):
        changes.append((c, rng.choice([AT_REST, IN_OPERATION, "cleaning"])))
        c += rng.randint(1, 40) * S + rng.choice([0, 300_000])
    return lim, np.array(ts, dtype=np.int64), np.array(v), np.array(q, dtype=np.int8), changes


@pytest.mark.parametrize("seed", range(500))
def test_vectorised_matches_reference(seed):
    rng = random.Random(seed)
    lim, ts, v, q, changes = random_case(rng)
    from_us = rng.choice([None, int(ts[len(ts) // 2])])
    got = shape(evaluate(lim, ts, v, q, changes, from_us=from_us))
    assert got == reference(lim, ts.tolist(), v.tolist(), q.tolist(), changes, from_us)


@pytest.mark.parametrize("seed", range(500))
def test_batch_split_invariance_and_state_round_trip(seed):
    rng = random.Random(1000 + seed)
    lim, ts, v, q, changes = random_case(rng)
    ls = LimitSet("LS", 2, 0, "r", "alice", "bob", (lim,))
    whole = Evaluator(ls, changes, apply_from_us=None).feed("t", ts, v, q)
    cuts = sorted(rng.sample(range(len(ts) + 1), k=min(len(ts) + 1, rng.randint(1, 8))))
    ev = Evaluator(ls, changes, apply_from_us=None)
    got = []
    for a, b in zip([0, *cuts], [*cuts, len(ts)], strict=True):
        got.extend(ev.feed("t", ts[a:b], v[a:b], q[a:b]))
        if rng.random() < 0.5:  # restart: state through JSON
            ev = Evaluator.from_state(ls, json.loads(json.dumps(ev.state(), allow_nan=False)))
    assert got == whole
    assert whole == evaluate(lim, ts, v, q, changes, limit_set_id="LS", limit_set_version=2)


@pytest.mark.parametrize("seed", range(300))
def test_quiet_path_matches_the_kernels(seed, monkeypatch):
    # the running service feeds one or two readings a tag a step, as lists; those that
    # cannot change a condition skip the vectorised kernels (engine.quiet_step): events and
    # the carried state must be what the kernels give, batch after batch
    from gmp_edge.limits import engine

    taken = []
    real = engine._EntryMachine.quiet_step

    def counted(self, *args):
        taken.append(ok := real(self, *args))
        return ok

    monkeypatch.setattr(engine._EntryMachine, "quiet_step", counted)
    rng = random.Random(5000 + seed)
    lim, ts, v, q, changes = random_case(rng)
    if seed % 2:  # mostly calm data, so that the quiet path is taken often
        v = np.array([5.0 + rng.choice([0.0, 0.5, -0.5]) if rng.random() < 0.9 else x for x in v])
        q = np.array([G if rng.random() < 0.95 else x for x in q], dtype=np.int8)
    ls = LimitSet("LS", 2, 0, "r", "alice", "bob", (lim,))
    fast = Evaluator(ls, changes, apply_from_us=None)
    slow = Evaluator(ls, changes, apply_from_us=None)
    slow.quiet_path = False
    i = 0
    while i < len(ts):
        j = min(len(ts), i + rng.choice([1, 1, 1, 2, 3, engine.QUIET_MAX]))
        a = fast.feed("t", ts[i:j].tolist(), v[i:j].tolist(), q[i:j].tolist())
        b = slow.feed("t", ts[i:j], v[i:j], q[i:j])
        assert shape(a) == shape(b), (i, j)
        assert json.dumps(fast.state()) == json.dumps(slow.state()), (i, j)
        i = j
    if seed % 2 and lim.applies_in is None and lim.deadband == 0 and not changes:
        assert any(taken), "the quiet path was never taken"


def test_quiet_path_refuses_what_feed_refuses():
    ls = LimitSet("LS", 2, 0, "r", "alice", "bob", (TagLimits("t", action_high=HI),))
    ev = Evaluator(ls)
    ev.feed("t", [5 * S], [1.0], [G])
    with pytest.raises(ValueError, match="not after"):
        ev.feed("t", [5 * S], [1.0], [G])
    with pytest.raises(ValueError, match="strictly increasing"):
        ev.feed("t", [7 * S, 6 * S], [1.0, 1.0], [G, G])
    with pytest.raises(ValueError, match="lengths differ"):
        ev.feed("t", [8 * S], [1.0, 2.0], [G])
    assert ev.state()["last_ts"] == {"t": 5 * S}


def test_streaming_timers_survive_restart():
    lim = TagLimits("t", action_high=HI, on_delay_s=10, delay_justification="door")
    ls = LimitSet("LS", 1, 0, "r", "alice", "bob", (lim,))
    ev = Evaluator(ls)
    assert ev.feed("t", [0, 5 * S], [11, 11], [G, G]) == []
    saved = json.loads(json.dumps(ev.state()))
    ev2 = Evaluator.from_state(ls, saved)
    (e,) = ev2.feed("t", [10 * S], [12], [G])
    assert (e.active, e.ts_us, e.excursion_start_us, e.peak) == (True, 10 * S, 0, 12.0)
    assert ev2.active() == [("t", XH, 0)]
    (r,) = ev2.retire(11 * S)
    assert (r.active, r.reason, r.peak) == (False, EventReason.RETIRED, 12.0)
    assert ev2.active() == []


def test_evaluator_guards():
    ls = LimitSet("LS", 1, 0, "r", "alice", "bob", (TagLimits("t", action_high=HI),))
    ev = Evaluator(ls)
    ev.feed("t", [5 * S], [1], [G])
    with pytest.raises(ValueError, match="not after"):
        ev.feed("t", [5 * S], [1], [G])
    with pytest.raises(ValueError, match="state change"):
        ev.add_state(4 * S, AT_REST)
    ev.add_state(6 * S, AT_REST)
    assert ev.feed("unknown", [0], [99], [G]) == []
    other = LimitSet("LS", 2, 0, "r", "alice", "bob", ls.limits)
    with pytest.raises(ValueError, match="v1"):
        Evaluator.from_state(other, ev.state())


def test_feed_readings_and_effective_from():
    from gmp_edge.collector.reading import Quality, Reading

    ls = LimitSet("LS", 1, 2 * S, "r", "a", "b", (TagLimits("t", action_high=HI),))
    ev = Evaluator(ls)
    got = ev.feed_readings(
        [
            Reading("t", 20.0, Quality.GOOD, S),
            Reading("t", 20.0, Quality.GOOD, 2 * S),
            Reading("t", "text", Quality.GOOD, 3 * S),
            Reading("x", 1.0, Quality.GOOD, 3 * S),
        ]
    )
    assert brief(got) == [(XH, True, 2), (MON, True, 3)]


# -- excursions and what-if ------------------------------------------------------------
def test_excursions_and_what_if():
    lim = TagLimits("a", alert_high=Threshold(5.0), action_high=Threshold(8.0))
    ls = LimitSet("P", 4, 10**15, "proposal", "alice", None, (lim,))
    data = {
        "a": (np.arange(10) * S, [0, 6, 9, 9, 6, 0, 6, 6, 6, 6], [G] * 10),
        "b": (np.arange(3) * S, [99, 99, 99], [G] * 3),  # no limits: skipped
    }
    res = what_if(ls, data)
    assert set(res.events) == {"a"}
    assert res.summary["a"].excursions == {AH: 2, XH: 1}
    # alert: 1..5 (4 s) plus open 6..9 counted to the last reading (3 s); action 2..4
    assert res.summary["a"].time_beyond_us == {AH: 7 * S, XH: 2 * S}
    exc = [x for x in res.excursions if x.condition is AH]
    assert [(x.start_us, x.end_us, x.peak, x.limit_set_version) for x in exc] == [
        (1 * S, 5 * S, 9.0, 4),
        (6 * S, None, 6.0, 4),
    ]
    assert excursions_from_events(res.events["a"])[-1].duration_us is None
