"""Alarm timers: shelve expiry, re-alarm and escalation, as pure functions of (alarm, now).

The service calls :func:`tick` whenever :func:`next_due_us` says a timer is due (and after
a restart); everything due is applied at ``now_us``, the time it is actually processed,
so the audit trail shows when the system acted and the reason names when it was due.
Escalation state lives in the alarm (``escalation_level``), so each level is raised once
per unacknowledged period, also across restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gmp_edge.alarms.machine import escalate, realarm, unshelve
from gmp_edge.alarms.model import (
    SYSTEM,
    UNACKED_STATES,
    Alarm,
    AlarmPolicy,
    AlarmState,
    Escalation,
    Transition,
)


class TimerKind(StrEnum):
    """Which timer is due."""

    SHELVE_EXPIRY = "shelve_expiry"
    REALARM = "realarm"
    ESCALATION = "escalation"


@dataclass(frozen=True, slots=True)
class DueTimer:
    """A timer of ``kind`` due at ``due_us`` (``level`` for escalations, else 0)."""

    kind: TimerKind
    due_us: int
    level: int = 0


@dataclass(frozen=True, slots=True)
class TickResult:
    """The alarm after all due timers, the transitions made and the escalations raised."""

    alarm: Alarm
    transitions: tuple[Transition, ...]
    escalations: tuple[Escalation, ...]


def _pending(alarm: Alarm, policy: AlarmPolicy) -> list[DueTimer]:
    """All timers armed in the alarm's current state, due or not, earliest first."""
    timers: list[DueTimer] = []
    if alarm.state is AlarmState.SHELVED and alarm.shelved_until_us is not None:
        timers.append(DueTimer(TimerKind.SHELVE_EXPIRY, alarm.shelved_until_us))
    realarm_us = policy.realarm_us.get(alarm.priority)
    if alarm.state is AlarmState.ACKNOWLEDGED and realarm_us and alarm.acked_us is not None:
        timers.append(DueTimer(TimerKind.REALARM, alarm.acked_us + realarm_us))
    if alarm.state in UNACKED_STATES and alarm.unack_since_us is not None:
        delays = policy.escalation_us.get(alarm.priority, ())
        for level, delay in enumerate(delays, start=1):
            if level > alarm.escalation_level:
                timers.append(DueTimer(TimerKind.ESCALATION, alarm.unack_since_us + delay, level))
    return sorted(timers, key=lambda t: (t.due_us, t.level))


def due_timers(alarm: Alarm, now_us: int, policy: AlarmPolicy) -> tuple[DueTimer, ...]:
    """Timers due at ``now_us`` (due time <= now), earliest first; nothing is applied."""
    return tuple(t for t in _pending(alarm, policy) if t.due_us <= now_us)


def next_due_us(alarm: Alarm, policy: AlarmPolicy) -> int | None:
    """When the next timer of this alarm falls due, or None if none is armed."""
    pending = _pending(alarm, policy)
    return pending[0].due_us if pending else None


def tick(alarm: Alarm, now_us: int, policy: AlarmPolicy) -> TickResult:
    """Apply every timer due at ``now_us``: shelve expiry, re-alarm, escalation levels.

    Several escalation levels due at once (e.g. after a restart) are each raised once,
    in order. A timer that fires changes the state, which re-arms the others from now.
    """
    transitions: list[Transition] = []
    escalations: list[Escalation] = []
    # Each step consumes a timer or changes state; the bound only guards against a bug.
    for _ in range(4 + sum(len(d) for d in policy.escalation_us.values())):
        due = due_timers(alarm, now_us, policy)
        if not due:
            break
        timer = due[0]
        if timer.kind is TimerKind.SHELVE_EXPIRY:
            alarm, t = unshelve(
                alarm, now_us, user=SYSTEM, reason=f"shelve expired (due at {timer.due_us})"
            )
        elif timer.kind is TimerKind.REALARM:
            alarm, t = realarm(alarm, now_us, reason=f"re-alarm time elapsed at {timer.due_us}")
        else:
            unack_since = alarm.unack_since_us
            assert unack_since is not None
            alarm, t = escalate(alarm, now_us, level=timer.level)
            escalations.append(
                Escalation(
                    alarm.id,
                    alarm.tag,
                    alarm.priority,
                    timer.level,
                    unack_since,
                    timer.due_us,
                    now_us,
                )
            )
        transitions.append(t)
    else:  # pragma: no cover - the loop bound is generous
        raise RuntimeError(f"alarm {alarm.id}: timers did not settle")
    return TickResult(alarm, tuple(transitions), tuple(escalations))
