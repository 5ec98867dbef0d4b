"""Alarm state machine: every (state, event) pair of the ISA-18.2 table, the landing state
when leaving shelved / suppressed / out of service, tracked-condition guards, required
inputs, and the fields each transition sets."""

from __future__ import annotations

import json

import pytest

from gmp_edge.alarms import machine as m
from gmp_edge.alarms.model import (
    SYSTEM,
    Alarm,
    AlarmEvent,
    AlarmPolicy,
    AlarmState,
    ConditionKind,
    IllegalAlarmTransition,
    InvalidRequest,
    MissingAlarmFields,
    Priority,
    Transition,
)
from gmp_edge.alarms.table import TABLE, allowed_events, states_allowing

T0 = 1_790_000_000_000_000
MIN = 60_000_000
POLICY = AlarmPolicy(max_shelve_us=60 * MIN)

S = AlarmState
E = AlarmEvent

# The expected table, written out independently of alarms.table.TABLE.
EXPECTED: dict[tuple[AlarmState, AlarmEvent], AlarmState] = {
    (S.NORMAL, E.CONDITION_ACTIVE): S.UNACKNOWLEDGED,
    (S.NORMAL, E.SHELVE): S.SHELVED,
    (S.NORMAL, E.SUPPRESS): S.SUPPRESSED_BY_DESIGN,
    (S.NORMAL, E.REMOVE_FROM_SERVICE): S.OUT_OF_SERVICE,
    (S.UNACKNOWLEDGED, E.CONDITION_CLEARED): S.RTN_UNACKNOWLEDGED,
    (S.UNACKNOWLEDGED, E.ACKNOWLEDGE): S.ACKNOWLEDGED,
    (S.UNACKNOWLEDGED, E.SHELVE): S.SHELVED,
    (S.UNACKNOWLEDGED, E.SUPPRESS): S.SUPPRESSED_BY_DESIGN,
    (S.UNACKNOWLEDGED, E.REMOVE_FROM_SERVICE): S.OUT_OF_SERVICE,
    (S.UNACKNOWLEDGED, E.ESCALATE): S.UNACKNOWLEDGED,
    (S.ACKNOWLEDGED, E.CONDITION_CLEARED): S.NORMAL,
    (S.ACKNOWLEDGED, E.SHELVE): S.SHELVED,
    (S.ACKNOWLEDGED, E.SUPPRESS): S.SUPPRESSED_BY_DESIGN,
    (S.ACKNOWLEDGED, E.REMOVE_FROM_SERVICE): S.OUT_OF_SERVICE,
    (S.ACKNOWLEDGED, E.REALARM): S.UNACKNOWLEDGED,
    (S.RTN_UNACKNOWLEDGED, E.CONDITION_ACTIVE): S.UNACKNOWLEDGED,
    (S.RTN_UNACKNOWLEDGED, E.ACKNOWLEDGE): S.NORMAL,
    (S.RTN_UNACKNOWLEDGED, E.SHELVE): S.SHELVED,
    (S.RTN_UNACKNOWLEDGED, E.SUPPRESS): S.SUPPRESSED_BY_DESIGN,
    (S.RTN_UNACKNOWLEDGED, E.REMOVE_FROM_SERVICE): S.OUT_OF_SERVICE,
    (S.RTN_UNACKNOWLEDGED, E.ESCALATE): S.RTN_UNACKNOWLEDGED,
    (S.SHELVED, E.CONDITION_ACTIVE): S.SHELVED,
    (S.SHELVED, E.CONDITION_CLEARED): S.SHELVED,
    (S.SHELVED, E.SUPPRESS): S.SHELVED,
    (S.SHELVED, E.UNSUPPRESS): S.SHELVED,
    (S.SHELVED, E.UNSHELVE): S.NORMAL,  # condition normal, not suppressed (see prepared())
    (S.SHELVED, E.REMOVE_FROM_SERVICE): S.OUT_OF_SERVICE,
    (S.SUPPRESSED_BY_DESIGN, E.CONDITION_ACTIVE): S.SUPPRESSED_BY_DESIGN,
    (S.SUPPRESSED_BY_DESIGN, E.CONDITION_CLEARED): S.SUPPRESSED_BY_DESIGN,
    (S.SUPPRESSED_BY_DESIGN, E.UNSUPPRESS): S.NORMAL,
    (S.SUPPRESSED_BY_DESIGN, E.REMOVE_FROM_SERVICE): S.OUT_OF_SERVICE,
    (S.OUT_OF_SERVICE, E.CONDITION_ACTIVE): S.OUT_OF_SERVICE,
    (S.OUT_OF_SERVICE, E.CONDITION_CLEARED): S.OUT_OF_SERVICE,
    (S.OUT_OF_SERVICE, E.SUPPRESS): S.OUT_OF_SERVICE,
    (S.OUT_OF_SERVICE, E.UNSUPPRESS): S.OUT_OF_SERVICE,
    (S.OUT_OF_SERVICE, E.RETURN_TO_SERVICE): S.NORMAL,
}

ALL_PAIRS = [(s, e) for s in AlarmState for e in AlarmEvent]


def fresh() -> Alarm:
    return m.new_alarm("AL-1", "site/granulation/R101/dp", ConditionKind.DP_CASCADE, Priority.HIGH)


def in_state(
    state: AlarmState, *, condition_active: bool = False, design_suppressed: bool = False
) -> Alarm:
    """Drive a fresh alarm into ``state`` through real transitions, with the tracked flags."""
    a = fresh()
    t = T0
    if state in (S.UNACKNOWLEDGED, S.ACKNOWLEDGED, S.RTN_UNACKNOWLEDGED):
        a, _ = m.activate(a, t, value=12.0, limit=10.0)
        if state is S.ACKNOWLEDGED:
            a, _ = m.acknowledge(a, t + 1, user="olga", comment="seen, door open")
        if state is S.RTN_UNACKNOWLEDGED:
            a, _ = m.clear(a, t + 1)
        return a
    if state is S.NORMAL:
        return a
    if condition_active:
        a, _ = m.activate(a, t)
    if state is S.SHELVED:
        if design_suppressed:
            a, _ = m.suppress(a, t + 1, reason="at rest")
            a, _ = m.unsuppress(a, t + 2, reason="in operation")  # back to A/B to shelve
            a, _ = m.shelve(
                a, t + 3, user="olga", reason="nuisance", until_us=t + 30 * MIN, policy=POLICY
            )
            a, _ = m.suppress(a, t + 4, reason="at rest")
        else:
            a, _ = m.shelve(
                a, t + 3, user="olga", reason="nuisance", until_us=t + 30 * MIN, policy=POLICY
            )
    elif state is S.SUPPRESSED_BY_DESIGN:
        a, _ = m.suppress(a, t + 1, reason="production state at rest")
    elif state is S.OUT_OF_SERVICE:
        if design_suppressed:
            a, _ = m.suppress(a, t + 1, reason="at rest")
        a, _ = m.remove_from_service(a, t + 2, user="ivan", reason="sensor calibration WO-77")
    return a


def prepared(state: AlarmState, event: AlarmEvent) -> Alarm:
    """An alarm in ``state`` whose tracked flags make ``event`` sensible, so that only the
    table decides (the flag guards are tested separately)."""
    holding = state in (S.SHELVED, S.SUPPRESSED_BY_DESIGN, S.OUT_OF_SERVICE)
    return in_state(
        state,
        condition_active=holding and event is E.CONDITION_CLEARED,
        design_suppressed=state is not S.SUPPRESSED_BY_DESIGN and holding and event is E.UNSUPPRESS,
    )


def fire(a: Alarm, event: AlarmEvent, at: int = T0 + MIN) -> tuple[Alarm, Transition]:
    """Apply ``event`` with valid inputs."""
    if event is E.CONDITION_ACTIVE:
        return m.activate(
            a, at, value=15.0, limit=10.0, limit_set_id="LS-R101", limit_set_version=3
        )
    if event is E.CONDITION_CLEARED:
        return m.clear(a, at, value=8.0)
    if event is E.ACKNOWLEDGE:
        return m.acknowledge(a, at, user="olga", comment="checked room")
    if event is E.SHELVE:
        return m.shelve(
            a, at, user="olga", reason="known fault", until_us=at + 10 * MIN, policy=POLICY
        )
    if event is E.UNSHELVE:
        return m.unshelve(a, at, user="olga", reason="fault fixed")
    if event is E.SUPPRESS:
        return m.suppress(a, at, reason="production state at rest")
    if event is E.UNSUPPRESS:
        return m.unsuppress(a, at, reason="production state in operation")
    if event is E.REMOVE_FROM_SERVICE:
        return m.remove_from_service(a, at, user="ivan", reason="calibration")
    if event is E.RETURN_TO_SERVICE:
        return m.return_to_service(a, at, user="ivan", reason="calibrated")
    if event is E.REALARM:
        return m.realarm(a, at)
    assert event is E.ESCALATE
    return m.escalate(a, at, level=a.escalation_level + 1)


def test_builders_reach_their_state():
    for s in AlarmState:
        assert in_state(s).state is s


def test_table_module_matches_expected_shape():
    # Allowed pairs in the module equal the independently written expectation.
    assert set(TABLE) == set(EXPECTED)
    assert E.ACKNOWLEDGE in allowed_events(S.UNACKNOWLEDGED)
    assert states_allowing(E.ACKNOWLEDGE) == (S.UNACKNOWLEDGED, S.RTN_UNACKNOWLEDGED)


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS, ids=[f"{s}-{e}" for s, e in ALL_PAIRS])
def test_every_state_event_pair(state, event):
    a = prepared(state, event)
    expected = EXPECTED.get((state, event))
    if expected is None:
        with pytest.raises(IllegalAlarmTransition) as ei:
            fire(a, event)
        assert ei.value.state is state and ei.value.event is event
        assert f"'{event}'" in str(ei.value) and f"'{state}'" in str(ei.value)
        assert not m.is_allowed(a, event)
        return
    assert m.is_allowed(a, event)
    new, t = fire(a, event)
    assert new.state is expected
    assert (t.from_state, t.to_state, t.event, t.alarm_id) == (state, expected, event, "AL-1")
    assert t.at_us == new.last_transition_us == T0 + MIN
    assert new.last_event is event
    json.dumps(t.to_dict())  # every transition is serialisable for the audit trail


# Leaving shelved / suppressed / out of service lands by the tracked condition.
LEAVE = [
    (S.SHELVED, False, False, E.UNSHELVE, S.NORMAL),
    (S.SHELVED, True, False, E.UNSHELVE, S.UNACKNOWLEDGED),
    (S.SHELVED, False, True, E.UNSHELVE, S.SUPPRESSED_BY_DESIGN),
    (S.SHELVED, True, True, E.UNSHELVE, S.SUPPRESSED_BY_DESIGN),
    (S.SUPPRESSED_BY_DESIGN, False, True, E.UNSUPPRESS, S.NORMAL),
    (S.SUPPRESSED_BY_DESIGN, True, True, E.UNSUPPRESS, S.UNACKNOWLEDGED),
    (S.OUT_OF_SERVICE, False, False, E.RETURN_TO_SERVICE, S.NORMAL),
    (S.OUT_OF_SERVICE, True, False, E.RETURN_TO_SERVICE, S.UNACKNOWLEDGED),
    (S.OUT_OF_SERVICE, False, True, E.RETURN_TO_SERVICE, S.SUPPRESSED_BY_DESIGN),
    (S.OUT_OF_SERVICE, True, True, E.RETURN_TO_SERVICE, S.SUPPRESSED_BY_DESIGN),
]


@pytest.mark.parametrize(("state", "active", "suppressed", "event", "expected"), LEAVE)
def test_leaving_holding_state_lands_by_tracked_condition(
    state, active, suppressed, event, expected
):
    a = in_state(state, condition_active=active, design_suppressed=suppressed)
    assert (a.condition_active, a.design_suppressed) == (active, suppressed)
    new, _ = fire(a, event)
    assert new.state is expected


@pytest.mark.parametrize("state", [S.SHELVED, S.SUPPRESSED_BY_DESIGN, S.OUT_OF_SERVICE])
def test_condition_changes_while_held_are_tracked(state):
    a = in_state(state)
    a, _ = m.activate(a, T0 + MIN, value=20.0, limit=10.0)
    assert (a.state, a.condition_active, a.raised_us, a.value_at_trip) == (
        state,
        True,
        T0 + MIN,
        20.0,
    )
    a, _ = m.clear(a, T0 + 2 * MIN)
    assert (a.state, a.condition_active, a.cleared_us) == (state, False, T0 + 2 * MIN)


GUARDS = [
    # (state, condition_active, design_suppressed, event, reason fragment)
    (S.SHELVED, True, False, E.CONDITION_ACTIVE, "already active"),
    (S.SHELVED, False, False, E.CONDITION_CLEARED, "not active"),
    (S.SHELVED, False, True, E.SUPPRESS, "already suppressed"),
    (S.SHELVED, False, False, E.UNSUPPRESS, "not suppressed"),
    (S.SUPPRESSED_BY_DESIGN, True, False, E.CONDITION_ACTIVE, "already active"),
    (S.SUPPRESSED_BY_DESIGN, False, False, E.CONDITION_CLEARED, "not active"),
    (S.OUT_OF_SERVICE, True, False, E.CONDITION_ACTIVE, "already active"),
    (S.OUT_OF_SERVICE, False, False, E.CONDITION_CLEARED, "not active"),
    (S.OUT_OF_SERVICE, False, True, E.SUPPRESS, "already suppressed"),
    (S.OUT_OF_SERVICE, False, False, E.UNSUPPRESS, "not suppressed"),
]


@pytest.mark.parametrize(("state", "active", "suppressed", "event", "fragment"), GUARDS)
def test_tracked_condition_guards(state, active, suppressed, event, fragment):
    a = in_state(state, condition_active=active, design_suppressed=suppressed)
    with pytest.raises(IllegalAlarmTransition, match=fragment):
        fire(a, event)


MISSING = [
    (S.UNACKNOWLEDGED, lambda a: m.acknowledge(a, T0, user=None, comment="x"), ["user"]),
    (S.UNACKNOWLEDGED, lambda a: m.acknowledge(a, T0, user="olga", comment="  "), ["comment"]),
    (
        S.RTN_UNACKNOWLEDGED,
        lambda a: m.acknowledge(a, T0, user="", comment=None),
        ["user", "comment"],
    ),
    (
        S.NORMAL,
        lambda a: m.shelve(a, T0, user=None, reason=None, until_us=None, policy=POLICY),
        ["user", "reason", "until_us"],
    ),
    (
        S.UNACKNOWLEDGED,
        lambda a: m.shelve(a, T0, user="olga", reason="", until_us=T0 + MIN, policy=POLICY),
        ["reason"],
    ),
    (S.SHELVED, lambda a: m.unshelve(a, T0, user=" "), ["user"]),
    (S.NORMAL, lambda a: m.suppress(a, T0, reason=""), ["reason"]),
    (S.SUPPRESSED_BY_DESIGN, lambda a: m.unsuppress(a, T0, reason=None), ["reason"]),
    (S.NORMAL, lambda a: m.remove_from_service(a, T0, user=None, reason=""), ["user", "reason"]),
    (S.OUT_OF_SERVICE, lambda a: m.return_to_service(a, T0, user="ivan", reason=None), ["reason"]),
]


@pytest.mark.parametrize(("state", "call", "missing"), MISSING)
def test_missing_inputs_are_listed(state, call, missing):
    a = in_state(state)
    with pytest.raises(MissingAlarmFields) as ei:
        call(a)
    assert list(ei.value.missing) == missing
    for name in missing:
        assert name in str(ei.value)


def test_illegal_transition_is_reported_before_missing_inputs():
    with pytest.raises(IllegalAlarmTransition):
        m.acknowledge(fresh(), T0, user=None, comment=None)


@pytest.mark.parametrize(
    "call",
    [
        lambda a: m.acknowledge(a, T0, user="system", comment="auto"),
        lambda a: m.shelve(a, T0, user="system", reason="r", until_us=T0 + MIN, policy=POLICY),
        lambda a: m.remove_from_service(a, T0, user="system", reason="r"),
    ],
)
def test_human_acts_need_a_named_user(call):
    with pytest.raises(InvalidRequest, match="named user"):
        call(in_state(S.UNACKNOWLEDGED))


def test_return_to_service_needs_a_named_user():
    with pytest.raises(InvalidRequest, match="named user"):
        m.return_to_service(in_state(S.OUT_OF_SERVICE), T0, user=SYSTEM, reason="r")


@pytest.mark.parametrize(
    ("duration", "ok"),
    [(1, True), (60 * MIN, True), (60 * MIN + 1, False), (0, False), (-MIN, False)],
)
def test_shelve_duration_limit(duration, ok):
    a = in_state(S.UNACKNOWLEDGED)
    if ok:
        new, t = m.shelve(
            a, T0 + MIN, user="olga", reason="r", until_us=T0 + MIN + duration, policy=POLICY
        )
        assert new.shelved_until_us == T0 + MIN + duration
        assert t.detail["until_us"] == T0 + MIN + duration
    else:
        with pytest.raises(InvalidRequest):
            m.shelve(
                a, T0 + MIN, user="olga", reason="r", until_us=T0 + MIN + duration, policy=POLICY
            )


def test_activation_records_trip_and_starts_unacknowledged_period():
    a, t = m.activate(fresh(), T0, value=3.2, limit=5.0, limit_set_id="LS-7", limit_set_version=2)
    assert (a.state, a.condition_active, a.raised_us) == (S.UNACKNOWLEDGED, True, T0)
    assert (a.value_at_trip, a.limit_at_trip, a.limit_set_id, a.limit_set_version) == (
        3.2,
        5.0,
        "LS-7",
        2,
    )
    assert a.unack_since_us == T0 and a.escalation_level == 0
    assert t.actor == SYSTEM and t.detail["value_at_trip"] == 3.2
    assert t.tag == a.tag and t.priority is Priority.HIGH


def test_acknowledgement_fields_and_transition():
    a = in_state(S.UNACKNOWLEDGED)
    a, t = m.acknowledge(a, T0 + 5, user="olga", comment="door was open")
    assert (a.acked_by, a.acked_us, a.ack_comment) == ("olga", T0 + 5, "door was open")
    assert a.unack_since_us is None
    assert (t.actor, t.reason, t.detail["comment"]) == ("olga", "door was open", "door was open")


def test_return_to_normal_unacknowledged_keeps_unack_period_and_ack_completes_it():
    a = in_state(S.UNACKNOWLEDGED)
    since = a.unack_since_us
    a, _ = m.clear(a, T0 + 10)
    assert a.state is S.RTN_UNACKNOWLEDGED and a.unack_since_us == since
    a, _ = m.activate(a, T0 + 20)  # re-activation before anyone acknowledged
    assert a.state is S.UNACKNOWLEDGED and a.unack_since_us == since and a.raised_us == T0 + 20
    a, _ = m.clear(a, T0 + 30)
    a, _ = m.acknowledge(a, T0 + 40, user="olga", comment="ok")
    assert a.state is S.NORMAL and a.acked_by == "olga" and a.unack_since_us is None


def test_new_occurrence_clears_previous_acknowledgement():
    a = in_state(S.ACKNOWLEDGED)
    a, _ = m.clear(a, T0 + 10)
    assert a.acked_by == "olga"  # the last acknowledgement stays visible while normal
    a, _ = m.activate(a, T0 + 20)
    assert (a.acked_by, a.acked_us, a.ack_comment) == (None, None, None)
    assert a.unack_since_us == T0 + 20


def test_shelve_fields_set_and_cleared_on_unshelve():
    a = in_state(S.UNACKNOWLEDGED)
    a, _ = m.shelve(
        a,
        T0 + MIN,
        user="olga",
        reason="chattering transmitter",
        until_us=T0 + 20 * MIN,
        policy=POLICY,
    )
    assert (a.shelved_by, a.shelved_us, a.shelved_until_us, a.shelve_reason) == (
        "olga",
        T0 + MIN,
        T0 + 20 * MIN,
        "chattering transmitter",
    )
    assert a.unack_since_us is None  # escalation does not run while shelved
    a, t = m.unshelve(a, T0 + 2 * MIN, user="olga")
    assert a.state is S.UNACKNOWLEDGED and a.unack_since_us == T0 + 2 * MIN
    assert (a.shelved_by, a.shelved_us, a.shelved_until_us, a.shelve_reason) == (None,) * 4
    assert t.detail["shelved_until_us"] == T0 + 20 * MIN


def test_removing_shelved_alarm_from_service_ends_the_shelve():
    a = in_state(S.SHELVED)
    a, _ = m.remove_from_service(a, T0 + MIN, user="ivan", reason="WO-1")
    assert a.state is S.OUT_OF_SERVICE and a.shelved_by is None
    assert (a.oos_by, a.oos_us, a.oos_reason) == ("ivan", T0 + MIN, "WO-1")
    a, _ = m.return_to_service(a, T0 + 2 * MIN, user="ivan", reason="done")
    assert (a.oos_by, a.oos_us, a.oos_reason) == (None, None, None)


def test_suppress_reason_kept_while_suppressed():
    a, t = m.suppress(fresh(), T0, reason="production state at rest")
    assert a.suppress_reason == "production state at rest" and t.actor == SYSTEM
    a, _ = m.unsuppress(a, T0 + 1, reason="in operation")
    assert a.suppress_reason is None and not a.design_suppressed


def test_escalate_needs_the_next_level():
    a = in_state(S.UNACKNOWLEDGED)
    with pytest.raises(InvalidRequest):
        m.escalate(a, T0, level=2)
    a, t = m.escalate(a, T0, level=1)
    assert a.escalation_level == 1 and t.detail["level"] == 1
    with pytest.raises(InvalidRequest):
        m.escalate(a, T0, level=1)


def test_input_alarm_is_not_changed():
    a = in_state(S.UNACKNOWLEDGED)
    before = a.to_dict()
    m.acknowledge(a, T0 + 1, user="olga", comment="c")
    assert a.to_dict() == before


def test_audit_kwargs():
    a = in_state(S.UNACKNOWLEDGED)
    _, t = m.acknowledge(a, T0 + 7, user="olga", comment="door open")
    assert t.audit_kwargs() == {
        "actor": "olga",
        "action": "alarm.acknowledge",
        "record_type": "alarm",
        "record_id": "AL-1",
        "reason": "door open",
        "old": {"state": "unacknowledged"},
        "new": {"state": "acknowledged", "comment": "door open"},
        "ts_us": T0 + 7,
    }
    json.dumps(t.audit_kwargs())


def test_records_round_trip_through_json() -> None:
    from gmp_edge.alarms.model import Escalation

    a, t = m.activate(fresh(), T0, value=3.2, limit=5.0, limit_set_id="LS-7", limit_set_version=2)
    a, t2 = m.acknowledge(a, T0 + 1, user="op", comment="seen")
    assert Alarm.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    for tr in (t, t2):
        assert Transition.from_dict(json.loads(json.dumps(tr.to_dict()))) == tr
    e = Escalation(a.id, a.tag, a.priority, 1, T0, T0 + 5, T0 + 6)
    assert Escalation.from_dict(e.to_dict()) == e
    assert AlarmPolicy.from_dict(AlarmPolicy().to_dict()) == AlarmPolicy()
