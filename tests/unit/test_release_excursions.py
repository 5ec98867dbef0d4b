"""Excursion history: activations paired with clears, filters, deviations linked."""

from __future__ import annotations

from gmp_edge.alarms import machine
from gmp_edge.alarms.model import AlarmEvent, AlarmState, ConditionKind, Priority, Transition
from gmp_edge.release.excursions import excursions, search

TAG = "site/area/granulation/trh-1/temperature"
TAG2 = "site/area/compression/press-01/main_compression_force"


def tr(alarm: str, tag: str, event: AlarmEvent, at: int, actor="system", reason="", **detail):
    states = {
        AlarmEvent.CONDITION_ACTIVE: (AlarmState.NORMAL, AlarmState.UNACKNOWLEDGED),
        AlarmEvent.ACKNOWLEDGE: (AlarmState.UNACKNOWLEDGED, AlarmState.ACKNOWLEDGED),
        AlarmEvent.CONDITION_CLEARED: (AlarmState.ACKNOWLEDGED, AlarmState.NORMAL),
    }
    if event is AlarmEvent.CONDITION_ACTIVE:
        # through the alarm machine, so the trip keys are the ones the engine writes
        kind = ConditionKind(alarm.rpartition("#")[2])
        fresh = machine.new_alarm(alarm, tag, kind, Priority.HIGH)
        return machine.activate(fresh, at, actor=actor, reason=reason, **detail)[1]
    a, b = states[event]
    return Transition(alarm, tag, Priority.HIGH, event, a, b, actor, at, reason, detail)


A = f"{TAG}#action_high"
B = f"{TAG2}#alert_low"
HISTORY = [
    tr(
        A,
        TAG,
        AlarmEvent.CONDITION_ACTIVE,
        100,
        value=25.5,
        limit=25.0,
        limit_set_id="em",
        limit_set_version=2,
    ),
    tr(A, TAG, AlarmEvent.ACKNOWLEDGE, 150, actor="op", reason="HVAC called"),
    tr(A, TAG, AlarmEvent.CONDITION_CLEARED, 300),
    tr(B, TAG2, AlarmEvent.CONDITION_ACTIVE, 200, value=12.5, limit=13.0),
    tr(A, TAG, AlarmEvent.CONDITION_ACTIVE, 400, value=25.2, limit=25.0),
]


def test_pairs_acknowledgements_and_deviations():
    got = excursions(HISTORY, {f"{A}@90": "DEV-2026-0001"})
    assert [(e.alarm_id, e.start_us, e.end_us) for e in got] == [
        (A, 100, 300),
        (B, 200, None),
        (A, 400, None),
    ]
    first = got[0]
    assert (first.level, first.room, first.acknowledged_by, first.ack_comment) == (
        "action",
        "granulation",
        "op",
        "HVAC called",
    )
    assert first.limit_set == "em v2" and first.value_at_trip == 25.5
    assert first.limit == 25.0 and got[1].limit == 13.0
    assert first.deviation_id == "DEV-2026-0001"
    assert got[2].deviation_id is None  # a later excursion of the same alarm is not that one
    assert got[1].deviation_id is None


def test_filters():
    got = excursions(HISTORY)
    assert [e.start_us for e in search(got, level="alert")] == [200]
    assert [e.start_us for e in search(got, status="open")] == [200, 400]
    assert [e.start_us for e in search(got, status="closed")] == [100]
    assert [e.start_us for e in search(got, room="granulation")] == [100, 400]
    assert [e.start_us for e in search(got, start_us=310, end_us=500)] == [200, 400]
    assert [e.start_us for e in search(got, end_us=150)] == [100]
    assert [e.start_us for e in search(got, scope=({"x"}, {"press-01"}))] == [200]
    assert search(got, tag="nope") == []
