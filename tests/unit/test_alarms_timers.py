"""Alarm timers: re-alarm, shelve expiry and escalation (once per level), next due time,
and policy validation."""

from __future__ import annotations

import pytest

from gmp_edge.alarms import machine as m
from gmp_edge.alarms.model import (
    SYSTEM,
    Alarm,
    AlarmEvent,
    AlarmPolicy,
    AlarmState,
    ConditionKind,
    Priority,
)
from gmp_edge.alarms.timers import DueTimer, TimerKind, due_timers, next_due_us, tick

T0 = 1_790_000_000_000_000
MIN = 60_000_000
POLICY = AlarmPolicy(
    max_shelve_us=8 * 60 * MIN,
    realarm_us={Priority.HIGH: 30 * MIN},
    escalation_us={Priority.CRITICAL: (5 * MIN, 15 * MIN, 60 * MIN), Priority.HIGH: (20 * MIN,)},
)


def active(priority: Priority = Priority.HIGH, at: int = T0) -> Alarm:
    a = m.new_alarm("AL-9", "site/compression/R201/p_0_5", ConditionKind.ACTION_HIGH, priority)
    a, _ = m.activate(a, at, value=4000.0, limit=3520.0)
    return a


def acked(priority: Priority = Priority.HIGH, at: int = T0) -> Alarm:
    a, _ = m.acknowledge(active(priority, at - 1), at, user="olga", comment="seen")
    return a


@pytest.mark.parametrize(
    ("offset", "expected_state"),
    [
        (29 * MIN, AlarmState.ACKNOWLEDGED),
        (30 * MIN - 1, AlarmState.ACKNOWLEDGED),
        (30 * MIN, AlarmState.UNACKNOWLEDGED),
        (45 * MIN, AlarmState.UNACKNOWLEDGED),
    ],
)
def test_realarm_after_realarm_time(offset, expected_state):
    r = tick(acked(), T0 + offset, POLICY)
    assert r.alarm.state is expected_state
    if expected_state is AlarmState.UNACKNOWLEDGED:
        (t,) = r.transitions
        assert (t.event, t.actor, t.at_us) == (AlarmEvent.REALARM, SYSTEM, T0 + offset)
        assert str(T0 + 30 * MIN) in t.reason
        assert r.alarm.unack_since_us == T0 + offset and r.alarm.acked_by is None
    else:
        assert r.transitions == () and r.alarm == acked()


def test_no_realarm_for_priority_without_realarm_time():
    a = acked(Priority.LOW)
    assert tick(a, T0 + 10 * 24 * 60 * MIN, POLICY).alarm.state is AlarmState.ACKNOWLEDGED
    assert next_due_us(a, POLICY) is None


def test_no_realarm_once_condition_cleared():
    a, _ = m.clear(acked(), T0 + MIN)
    assert a.state is AlarmState.NORMAL
    assert tick(a, T0 + 60 * MIN, POLICY).transitions == ()


@pytest.mark.parametrize(
    ("condition_active", "suppressed", "expected"),
    [
        (False, False, AlarmState.NORMAL),
        (True, False, AlarmState.UNACKNOWLEDGED),
        (True, True, AlarmState.SUPPRESSED_BY_DESIGN),
    ],
)
def test_shelve_expiry(condition_active, suppressed, expected):
    a = m.new_alarm("AL-3", "t", ConditionKind.ALERT_HIGH, Priority.LOW)
    a, _ = m.shelve(a, T0, user="olga", reason="r", until_us=T0 + 60 * MIN, policy=POLICY)
    if condition_active:
        a, _ = m.activate(a, T0 + MIN)
    if suppressed:
        a, _ = m.suppress(a, T0 + 2 * MIN, reason="at rest")
    assert next_due_us(a, POLICY) == T0 + 60 * MIN
    assert tick(a, T0 + 60 * MIN - 1, POLICY).alarm == a
    r = tick(a, T0 + 61 * MIN, POLICY)
    (t,) = r.transitions
    assert (t.event, t.actor, t.at_us) == (AlarmEvent.UNSHELVE, SYSTEM, T0 + 61 * MIN)
    assert "expired" in t.reason
    assert r.alarm.state is expected and r.alarm.shelved_until_us is None
    if expected is AlarmState.UNACKNOWLEDGED:
        assert r.alarm.unack_since_us == T0 + 61 * MIN  # escalation counts from unshelve


def levels(results):
    return [e.level for r in results for e in r.escalations]


def test_escalation_once_per_level():
    a = active(Priority.CRITICAL)
    results = []
    for minutes in (4, 5, 6, 14, 15, 16, 59, 60, 61, 600):
        r = tick(a, T0 + minutes * MIN, POLICY)
        a = r.alarm
        results.append(r)
    assert levels(results) == [1, 2, 3]
    fired_at = [(e.level, e.at_us, e.due_us) for r in results for e in r.escalations]
    assert fired_at == [
        (1, T0 + 5 * MIN, T0 + 5 * MIN),
        (2, T0 + 15 * MIN, T0 + 15 * MIN),
        (3, T0 + 60 * MIN, T0 + 60 * MIN),
    ]
    assert a.escalation_level == 3 and a.state is AlarmState.UNACKNOWLEDGED
    assert next_due_us(a, POLICY) is None


def test_escalations_due_together_all_fire_in_order_once():
    a = active(Priority.CRITICAL)
    r = tick(a, T0 + 100 * MIN, POLICY)
    assert [e.level for e in r.escalations] == [1, 2, 3]
    assert [t.event for t in r.transitions] == [AlarmEvent.ESCALATE] * 3
    assert all(e.unack_since_us == T0 and e.priority is Priority.CRITICAL for e in r.escalations)
    assert tick(r.alarm, T0 + 200 * MIN, POLICY).escalations == ()


def test_escalation_continues_after_return_to_normal_unacknowledged():
    a = active(Priority.CRITICAL)
    a = tick(a, T0 + 5 * MIN, POLICY).alarm
    a, _ = m.clear(a, T0 + 6 * MIN)
    assert a.state is AlarmState.RTN_UNACKNOWLEDGED
    r = tick(a, T0 + 15 * MIN, POLICY)
    assert [e.level for e in r.escalations] == [2]


def test_acknowledgement_stops_escalation_and_realarm_starts_a_new_period():
    a = active(Priority.HIGH)
    a, _ = m.acknowledge(a, T0 + MIN, user="olga", comment="seen")
    assert due_timers(a, T0 + 29 * MIN, POLICY) == ()
    r = tick(a, T0 + 31 * MIN, POLICY)  # re-alarm (due at T0 + 31 min)
    assert r.escalations == () and r.alarm.state is AlarmState.UNACKNOWLEDGED
    a = r.alarm
    assert next_due_us(a, POLICY) == T0 + 51 * MIN  # escalation 20 min after re-alarm
    r = tick(a, T0 + 51 * MIN, POLICY)
    assert [e.level for e in r.escalations] == [1]


def test_no_escalation_without_levels_for_priority():
    a = active(Priority.LOW)
    assert tick(a, T0 + 10**12, POLICY).escalations == ()


def test_due_timers_lists_without_applying():
    a = active(Priority.CRITICAL)
    assert due_timers(a, T0 + 15 * MIN, POLICY) == (
        DueTimer(TimerKind.ESCALATION, T0 + 5 * MIN, 1),
        DueTimer(TimerKind.ESCALATION, T0 + 15 * MIN, 2),
    )
    assert next_due_us(a, POLICY) == T0 + 5 * MIN
    assert a.escalation_level == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_shelve_us": 0},
        {"realarm_us": {Priority.HIGH: 0}},
        {"escalation_us": {Priority.HIGH: (10, 10)}},
        {"escalation_us": {Priority.HIGH: (20, 10)}},
        {"escalation_us": {Priority.HIGH: (0,)}},
    ],
)
def test_policy_validation(kwargs):
    with pytest.raises(ValueError):
        AlarmPolicy(**kwargs)
