"""Alarm performance metrics from transitions: chattering, floods, time in flood, standing
alarms; and JSON round trips of every alarm value type."""

from __future__ import annotations

import json

import pytest

from gmp_edge.alarms import machine as m
from gmp_edge.alarms.metrics import (
    DEFAULT_POSITION,
    Chattering,
    FloodPeriod,
    chattering,
    floods,
    is_annunciation,
    standing_alarms,
    time_in_flood,
    unacknowledged_count,
)
from gmp_edge.alarms.model import (
    Alarm,
    AlarmPolicy,
    AlarmState,
    ConditionKind,
    Escalation,
    Priority,
    Transition,
)
from gmp_edge.alarms.timers import tick

T0 = 1_790_000_000_000_000
SEC = 1_000_000
MIN = 60 * SEC
HOUR = 60 * MIN


def cycles(alarm_id: str, times: list[int], ack: bool = False) -> list[Transition]:
    """Activation at each time, cleared 1 s later (acknowledged in between if ``ack``)."""
    a = m.new_alarm(alarm_id, f"tag/{alarm_id}", ConditionKind.ALERT_HIGH, Priority.LOW)
    out = []
    for t in times:
        a, tr = m.activate(a, t)
        out.append(tr)
        if ack:
            a, tr = m.acknowledge(a, t + 1, user="olga", comment="c")
            out.append(tr)
        a, tr = m.clear(a, t + SEC // 2)
        out.append(tr)
        if not ack:
            a, tr = m.acknowledge(a, t + SEC // 2 + 1, user="olga", comment="c")
            out.append(tr)
    return out


@pytest.mark.parametrize(
    ("offsets_s", "min_count", "expected"),
    [
        ([0, 30, 59.999999], 3, 3),  # 3 within 60 s
        ([0, 30, 60], 3, None),  # window is half-open: 60 s apart is not within 60 s
        ([0, 50], 3, None),
        ([0, 10, 20, 30, 40], 3, 5),  # the most found in one window is reported
        ([0, 100, 200, 205, 210], 3, 3),
        ([0, 100, 200, 205], 3, None),
        ([0, 1], 2, 2),
    ],
)
def test_chattering(offsets_s, min_count, expected):
    trs = cycles("AL-C", [T0 + int(s * SEC) for s in offsets_s])
    found = chattering(trs, min_count=min_count, window_us=60 * SEC)
    if expected is None:
        assert found == []
    else:
        (c,) = found
        assert c.alarm_id == "AL-C" and c.count == expected


def test_chattering_reports_window_and_separates_alarms():
    trs = cycles("B", [T0, T0 + 100 * SEC]) + cycles(
        "A", [T0 + 5 * SEC, T0 + 6 * SEC, T0 + 7 * SEC]
    )
    assert chattering(trs) == [Chattering("A", 3, T0 + 5 * SEC, T0 + 7 * SEC)]


def test_activations_while_shelved_count_as_chattering():
    a = m.new_alarm("S", "t", ConditionKind.ALERT_HIGH, Priority.LOW)
    a, t0 = m.shelve(
        a, T0, user="olga", reason="chatters", until_us=T0 + HOUR, policy=AlarmPolicy()
    )
    trs = [t0]
    for k in range(3):
        a, t = m.activate(a, T0 + k * SEC + 1)
        trs.append(t)
        a, t = m.clear(a, T0 + k * SEC + 2)
        trs.append(t)
    assert [c.count for c in chattering(trs)] == [3]


def annunciations(n: int, start: int, step: int, prefix: str = "F") -> list[Transition]:
    trs = []
    for i in range(n):
        trs += cycles(f"{prefix}{i}", [start + i * step])
    return trs


@pytest.mark.parametrize(
    ("n", "step", "expected_count"),
    [
        (10, MIN, None),  # 10 in 10 min is not a flood (more than 10 is)
        (11, 50 * SEC, 11),  # 11 within 8 min 20 s
        (11, MIN, None),  # 11th is exactly 10 min after the 1st: not in the same window
        (11, 59 * SEC, 11),
        (30, 30 * SEC, 30),  # one long flood, merged
    ],
)
def test_flood(n, step, expected_count):
    found = floods(annunciations(n, T0, step))
    if expected_count is None:
        assert found == []
    else:
        (p,) = found
        assert (p.position, p.count, p.start_us) == (DEFAULT_POSITION, expected_count, T0)
        assert p.end_us == T0 + (n - 1) * step


def test_floods_are_per_operator_position():
    trs = annunciations(6, T0, 10 * SEC, "X") + annunciations(6, T0, 10 * SEC, "Y")
    assert len(floods(trs)) == 1  # 12 alarms on one desk
    positions = {f"X{i}": "granulation" for i in range(6)} | {
        f"Y{i}": "compression" for i in range(6)
    }
    assert floods(trs, positions=positions) == []


def test_separate_floods_are_separate_periods():
    trs = annunciations(11, T0, SEC, "P") + annunciations(11, T0 + HOUR, SEC, "Q")
    assert floods(trs) == [
        FloodPeriod(DEFAULT_POSITION, T0, T0 + 10 * SEC, 11),
        FloodPeriod(DEFAULT_POSITION, T0 + HOUR, T0 + HOUR + 10 * SEC, 11),
    ]


def test_only_new_annunciations_count_for_floods():
    a = m.new_alarm("E", "t", ConditionKind.ACTION_HIGH, Priority.CRITICAL)
    a, t1 = m.activate(a, T0)
    r = tick(a, T0 + 10 * HOUR, AlarmPolicy())  # three escalation self-loops
    assert len(r.transitions) == 3
    assert [is_annunciation(t) for t in (t1, *r.transitions)] == [True, False, False, False]


def test_time_in_flood():
    p = [FloodPeriod("a", T0, T0 + 10, 11), FloodPeriod("b", T0 + 5, T0 + 20, 11)]
    assert time_in_flood(p, T0, T0 + 100) == pytest.approx(0.20)
    assert time_in_flood(p, T0 + 10, T0 + 20) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        time_in_flood(p, T0, T0)


def test_standing_alarms():
    a = m.new_alarm("L", "t", ConditionKind.ACTION_LOW, Priority.HIGH)
    trs = []
    a, t = m.activate(a, T0)
    trs.append(t)
    a, t = m.acknowledge(a, T0 + HOUR, user="olga", comment="c")  # stays active
    trs.append(t)
    b = m.new_alarm("N", "t2", ConditionKind.ACTION_LOW, Priority.HIGH)
    b, t = m.activate(b, T0)
    trs.append(t)
    b, t = m.clear(b, T0 + HOUR)  # RTN-unack is not active
    trs.append(t)
    c = m.new_alarm("Y", "t3", ConditionKind.ACTION_LOW, Priority.HIGH)
    c, t = m.activate(c, T0 + 2 * HOUR)
    trs.append(t)
    found = standing_alarms(trs, T0 + 24 * HOUR)
    assert [(s.alarm_id, s.state, s.since_us, s.age_us) for s in found] == [
        ("L", AlarmState.ACKNOWLEDGED, T0, 24 * HOUR)
    ]
    assert [s.alarm_id for s in standing_alarms(trs, T0 + 26 * HOUR)] == ["L", "Y"]
    assert standing_alarms(trs, T0 + 24 * HOUR - 1) == []
    assert unacknowledged_count(trs) == 2  # N (rtn unack) and Y


def all_states_alarms() -> list[Alarm]:
    pol = AlarmPolicy()
    a = m.new_alarm("R", "site/a/b/c", ConditionKind.OOT, Priority.MEDIUM)
    out = [a]
    a, _ = m.activate(a, T0, value=1.5, limit=1.0, limit_set_id="LS", limit_set_version=4)
    out.append(a)
    a = tick(a, T0 + 2 * HOUR, pol).alarm
    out.append(a)
    a, _ = m.acknowledge(a, T0 + 3 * HOUR, user="olga", comment="é ü")
    out.append(a)
    a, _ = m.shelve(a, T0 + 4 * HOUR, user="olga", reason="r", until_us=T0 + 5 * HOUR, policy=pol)
    out.append(a)
    a, _ = m.suppress(a, T0 + 4 * HOUR, reason="at rest")
    out.append(a)
    a, _ = m.remove_from_service(a, T0 + 4 * HOUR, user="ivan", reason="WO")
    out.append(a)
    return out


@pytest.mark.parametrize("alarm", all_states_alarms(), ids=lambda a: a.state.value)
def test_alarm_round_trip(alarm):
    back = Alarm.from_dict(json.loads(json.dumps(alarm.to_dict())))
    assert back == alarm


def test_transition_escalation_policy_round_trip():
    a = m.new_alarm("R", "t", ConditionKind.MONITORING_UNAVAILABLE, Priority.CRITICAL)
    a, t1 = m.activate(a, T0, value=None)
    r = tick(a, T0 + HOUR, AlarmPolicy())
    for t in (t1, *r.transitions):
        assert Transition.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    for e in r.escalations:
        assert Escalation.from_dict(json.loads(json.dumps(e.to_dict()))) == e
    pol = AlarmPolicy(
        max_shelve_us=HOUR,
        realarm_us={Priority.LOW: MIN},
        escalation_us={Priority.HIGH: (MIN, 2 * MIN)},
    )
    assert AlarmPolicy.from_dict(json.loads(json.dumps(pol.to_dict()))) == pol
    assert AlarmPolicy.from_dict(json.loads(json.dumps(AlarmPolicy().to_dict()))) == AlarmPolicy()
