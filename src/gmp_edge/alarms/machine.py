"""Applying events to alarms: one function per event, all through the table in ``table.py``.

Every function takes the current :class:`Alarm` and returns ``(new_alarm, transition)``;
the input is never changed. Refusals raise, in this order: :class:`IllegalAlarmTransition`
(the table or the tracked condition says no), :class:`MissingAlarmFields` (all blank inputs
listed at once), :class:`InvalidRequest` (inputs present but unacceptable).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TypedDict, Unpack

from gmp_edge.alarms.model import (
    SYSTEM,
    UNACKED_STATES,
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
from gmp_edge.alarms.table import TABLE, Resolve, resolve, states_allowing

E = AlarmEvent
S = AlarmState

# Tracked-flag preconditions, checked after the table: an edge that did not happen
# (activation of an already active condition) points at a wiring bug upstream.
_FLAG_GUARDS: dict[AlarmEvent, tuple[str, bool, str]] = {
    E.CONDITION_ACTIVE: ("condition_active", False, "the condition is already active"),
    E.CONDITION_CLEARED: ("condition_active", True, "the condition is not active"),
    E.SUPPRESS: ("design_suppressed", False, "the alarm is already suppressed by design"),
    E.UNSUPPRESS: ("design_suppressed", True, "the alarm is not suppressed by design"),
}

_SHELVE_FIELDS = {
    "shelved_by": None,
    "shelved_us": None,
    "shelved_until_us": None,
    "shelve_reason": None,
}
_OOS_FIELDS = {"oos_by": None, "oos_us": None, "oos_reason": None}
_ACK_FIELDS = {"acked_by": None, "acked_us": None, "ack_comment": None}


def new_alarm(alarm_id: str, tag: str, kind: ConditionKind, priority: Priority) -> Alarm:
    """A fresh alarm point in state normal."""
    return Alarm(id=alarm_id, tag=tag, kind=kind, priority=priority)


def is_allowed(alarm: Alarm, event: AlarmEvent) -> bool:
    """True if ``event`` would pass the table and the tracked-condition checks."""
    try:
        _target(alarm, event)
    except IllegalAlarmTransition:
        return False
    return True


def _target(alarm: Alarm, event: AlarmEvent) -> AlarmState | Resolve:
    target = TABLE.get((alarm.state, event))
    if target is None:
        where = ", ".join(states_allowing(event)) or "no state"
        raise IllegalAlarmTransition(alarm.id, alarm.state, event, f"it is allowed in: {where}")
    guard = _FLAG_GUARDS.get(event)
    if guard is not None and getattr(alarm, guard[0]) != guard[1]:
        raise IllegalAlarmTransition(alarm.id, alarm.state, event, guard[2])
    return target


def _require(alarm: Alarm, event: AlarmEvent, **values: object) -> None:
    missing = [k for k, v in values.items() if v is None or (isinstance(v, str) and not v.strip())]
    if missing:
        raise MissingAlarmFields(alarm.id, event, missing)


def _by_user(alarm: Alarm, event: AlarmEvent, user: str | None, **values: object) -> str:
    """The checks before a human act, in the refusal order: the table, every input given,
    a named user (acknowledging, shelving, taking out of and back into service are
    attributable acts). Returns the user."""
    _target(alarm, event)
    _require(alarm, event, user=user, **values)
    assert user is not None
    if user.strip() == SYSTEM:
        raise InvalidRequest(f"alarm {alarm.id}: '{event}' must be done by a named user")
    return user


def _fire(
    alarm: Alarm,
    event: AlarmEvent,
    at_us: int,
    actor: str,
    reason: str = "",
    updates: dict[str, Any] | None = None,
    detail: dict[str, Any] | None = None,
) -> tuple[Alarm, Transition]:
    target = _target(alarm, event)
    updates = updates or {}
    if isinstance(target, Resolve):
        target = resolve(
            updates.get("condition_active", alarm.condition_active),
            updates.get("design_suppressed", alarm.design_suppressed),
        )
    derived: dict[str, Any] = {}
    if target in UNACKED_STATES and alarm.state not in UNACKED_STATES:
        # A new unacknowledged period: escalation starts over, the old ack no longer holds.
        derived |= {"unack_since_us": at_us, "escalation_level": 0, **_ACK_FIELDS}
    elif target not in UNACKED_STATES:
        derived |= {"unack_since_us": None, "escalation_level": 0}
    if alarm.state is S.SHELVED and target is not S.SHELVED:
        derived |= _SHELVE_FIELDS
    if alarm.state is S.OUT_OF_SERVICE and target is not S.OUT_OF_SERVICE:
        derived |= _OOS_FIELDS
    new = replace(
        alarm,
        **derived,
        **updates,
        state=target,
        last_transition_us=at_us,
        last_event=event,
    )
    which = (alarm.id, alarm.tag, alarm.priority)
    return new, Transition(*which, event, alarm.state, target, actor, at_us, reason, detail or {})


class Trip(TypedDict, total=False):
    """What tripped the alarm: the value, the limit and the limit set (id, version) it
    belongs to; each None or left out when unknown."""

    value: float | None
    limit: float | None
    limit_set_id: str | None
    limit_set_version: int | None


def activate(
    alarm: Alarm, at_us: int, *, actor: str = SYSTEM, reason: str = "", **trip: Unpack[Trip]
) -> tuple[Alarm, Transition]:
    """The alarm condition became active (e.g. an action-limit excursion started)."""
    _target(alarm, E.CONDITION_ACTIVE)
    at_trip = {
        "value_at_trip": trip.get("value"),
        "limit_at_trip": trip.get("limit"),
        "limit_set_id": trip.get("limit_set_id"),
        "limit_set_version": trip.get("limit_set_version"),
    }
    updates = {"condition_active": True, "raised_us": at_us, **at_trip}
    return _fire(alarm, E.CONDITION_ACTIVE, at_us, actor, reason, updates, at_trip)


def clear(
    alarm: Alarm, at_us: int, *, value: float | None = None, actor: str = SYSTEM, reason: str = ""
) -> tuple[Alarm, Transition]:
    """The alarm condition returned to normal."""
    _target(alarm, E.CONDITION_CLEARED)
    return _fire(
        alarm,
        E.CONDITION_CLEARED,
        at_us,
        actor,
        reason,
        {"condition_active": False, "cleared_us": at_us},
        {"value": value},
    )


def acknowledge(
    alarm: Alarm, at_us: int, *, user: str | None, comment: str | None
) -> tuple[Alarm, Transition]:
    """An operator acknowledges an unacknowledged alarm; user and comment are required."""
    user = _by_user(alarm, E.ACKNOWLEDGE, user, comment=comment)
    assert comment is not None
    acked = {"acked_by": user, "acked_us": at_us, "ack_comment": comment}
    return _fire(alarm, E.ACKNOWLEDGE, at_us, user, comment, acked, {"comment": comment})


def shelve(
    alarm: Alarm,
    at_us: int,
    *,
    user: str | None,
    reason: str | None,
    until_us: int | None,
    policy: AlarmPolicy,
) -> tuple[Alarm, Transition]:
    """Shelve the alarm until ``until_us``; refused beyond ``policy.max_shelve_us``."""
    user = _by_user(alarm, E.SHELVE, user, reason=reason, until_us=until_us)
    assert reason is not None and until_us is not None
    if until_us <= at_us:
        raise InvalidRequest(f"alarm {alarm.id}: shelve expiry must be after now")
    if until_us - at_us > policy.max_shelve_us:
        raise InvalidRequest(
            f"alarm {alarm.id}: shelve for {(until_us - at_us) / 60e6:g} min is longer than "
            f"the maximum {policy.max_shelve_us / 60e6:g} min"
        )
    return _fire(
        alarm,
        E.SHELVE,
        at_us,
        user,
        reason,
        {
            "shelved_by": user,
            "shelved_us": at_us,
            "shelved_until_us": until_us,
            "shelve_reason": reason,
        },
        {"until_us": until_us},
    )


def unshelve(
    alarm: Alarm, at_us: int, *, user: str | None, reason: str = ""
) -> tuple[Alarm, Transition]:
    """End a shelve (a user, or :data:`SYSTEM` on expiry); lands by the tracked condition."""
    _target(alarm, E.UNSHELVE)
    _require(alarm, E.UNSHELVE, user=user)
    assert user is not None
    return _fire(
        alarm, E.UNSHELVE, at_us, user, reason, detail={"shelved_until_us": alarm.shelved_until_us}
    )


def _design_suppression(
    alarm: Alarm, at_us: int, on: bool, reason: str | None, actor: str
) -> tuple[Alarm, Transition]:
    event = E.SUPPRESS if on else E.UNSUPPRESS
    _target(alarm, event)
    _require(alarm, event, reason=reason)
    updates = {"design_suppressed": on, "suppress_reason": reason if on else None}
    return _fire(alarm, event, at_us, actor, reason or "", updates)


def suppress(
    alarm: Alarm, at_us: int, *, reason: str | None, actor: str = SYSTEM
) -> tuple[Alarm, Transition]:
    """Suppress by design (e.g. production state at rest makes the alarm irrelevant)."""
    return _design_suppression(alarm, at_us, True, reason, actor)


def unsuppress(
    alarm: Alarm, at_us: int, *, reason: str | None, actor: str = SYSTEM
) -> tuple[Alarm, Transition]:
    """The design suppression ends; lands by the tracked condition if it was in force."""
    return _design_suppression(alarm, at_us, False, reason, actor)


def remove_from_service(
    alarm: Alarm, at_us: int, *, user: str | None, reason: str | None
) -> tuple[Alarm, Transition]:
    """Take the alarm out of service (maintenance); user and reason are required."""
    user = _by_user(alarm, E.REMOVE_FROM_SERVICE, user, reason=reason)
    assert reason is not None
    out_of_service = {"oos_by": user, "oos_us": at_us, "oos_reason": reason}
    return _fire(alarm, E.REMOVE_FROM_SERVICE, at_us, user, reason, out_of_service)


def return_to_service(
    alarm: Alarm, at_us: int, *, user: str | None, reason: str | None
) -> tuple[Alarm, Transition]:
    """Return the alarm to service; lands by the tracked condition."""
    user = _by_user(alarm, E.RETURN_TO_SERVICE, user, reason=reason)
    assert reason is not None
    return _fire(alarm, E.RETURN_TO_SERVICE, at_us, user, reason)


def realarm(
    alarm: Alarm, at_us: int, *, reason: str = "re-alarm time elapsed"
) -> tuple[Alarm, Transition]:
    """Timer: an acknowledged alarm still active after its re-alarm time is unacknowledged."""
    return _fire(alarm, E.REALARM, at_us, SYSTEM, reason, detail={"acked_us": alarm.acked_us})


def escalate(alarm: Alarm, at_us: int, *, level: int) -> tuple[Alarm, Transition]:
    """Timer: record that escalation ``level`` was raised (state unchanged)."""
    _target(alarm, E.ESCALATE)
    if level != alarm.escalation_level + 1:
        raise InvalidRequest(
            f"alarm {alarm.id}: escalation level {level} after level {alarm.escalation_level}"
        )
    return _fire(
        alarm,
        E.ESCALATE,
        at_us,
        SYSTEM,
        f"unacknowledged: escalation level {level}",
        {"escalation_level": level},
        {"level": level, "unack_since_us": alarm.unack_since_us},
    )
