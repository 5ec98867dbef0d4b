"""Alarm types (ISA-18.2 / IEC 62682): states, events, the alarm record, transitions, policy.

Everything here is a frozen value that round-trips through JSON (``to_dict``/``from_dict``),
so the service can persist it and pick up where it left off after a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from itertools import pairwise
from typing import Any, ClassVar, Self

from gmp_edge import errors

MINUTE_US = 60_000_000
HOUR_US = 60 * MINUTE_US


class AlarmState(StrEnum):
    """ISA-18.2 alarm states (latching E/F is not used: no limit of ours latches)."""

    NORMAL = "normal"  # A: condition normal, nothing to acknowledge
    UNACKNOWLEDGED = "unacknowledged"  # B: condition active, not acknowledged
    ACKNOWLEDGED = "acknowledged"  # C: condition active, acknowledged
    RTN_UNACKNOWLEDGED = "rtn_unacknowledged"  # D: returned to normal before acknowledgement
    SHELVED = "shelved"  # G: operator-initiated, time-limited
    SUPPRESSED_BY_DESIGN = "suppressed_by_design"  # H: logic (e.g. production state)
    OUT_OF_SERVICE = "out_of_service"  # I: maintenance, with user and reason


#: States in which the alarm waits for an operator's acknowledgement (escalation runs here).
UNACKED_STATES = frozenset({AlarmState.UNACKNOWLEDGED, AlarmState.RTN_UNACKNOWLEDGED})
#: States in which the alarm is annunciated as active (standing-alarm metric counts these).
ACTIVE_STATES = frozenset({AlarmState.UNACKNOWLEDGED, AlarmState.ACKNOWLEDGED})


class AlarmEvent(StrEnum):
    """What can happen to an alarm; every one goes through the transition table."""

    CONDITION_ACTIVE = "condition_active"
    CONDITION_CLEARED = "condition_cleared"
    ACKNOWLEDGE = "acknowledge"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"  # by a user, or by the system when the shelve expires
    SUPPRESS = "suppress"  # by design, e.g. the production state makes the alarm irrelevant
    UNSUPPRESS = "unsuppress"
    REMOVE_FROM_SERVICE = "remove_from_service"
    RETURN_TO_SERVICE = "return_to_service"
    REALARM = "realarm"  # timer: acknowledged but still active after the re-alarm time
    ESCALATE = "escalate"  # timer: still unacknowledged after an escalation delay


class Priority(StrEnum):
    """Alarm priority (ISA-18.2 suggests ~80 % low, 15 % medium, 5 % high)."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class ConditionKind(StrEnum):
    """What the alarm is about."""

    ALERT_HIGH = "alert_high"
    ALERT_LOW = "alert_low"
    ACTION_HIGH = "action_high"
    ACTION_LOW = "action_low"
    MONITORING_UNAVAILABLE = "monitoring_unavailable"  # the tag cannot be monitored (gap)
    OOT = "oot"  # out of trend (trend rule)
    DP_CASCADE = "dp_cascade"  # pressure cascade between rooms inverted or too small


SYSTEM = "system"  # actor for automatic transitions (limit evaluation, timers, design logic)


class AlarmError(errors.GmpEdgeError, ValueError):
    """Base of every refusal by the alarm core."""


class IllegalAlarmTransition(AlarmError, errors.IllegalTransition):
    """The event is not allowed in the alarm's current state (or condition)."""

    def __init__(self, alarm_id: str, state: AlarmState, event: AlarmEvent, detail: str = ""):
        self.alarm_id = alarm_id
        self.state = state
        self.event = event
        msg = f"alarm {alarm_id}: event '{event}' is not allowed in state '{state}'"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class MissingAlarmFields(AlarmError, errors.MissingFields):
    """Required inputs of a transition are missing or blank; lists all of them."""

    def __init__(self, alarm_id: str, event: AlarmEvent, missing: list[str]):
        self.alarm_id = alarm_id
        self.event = event
        self.missing = tuple(missing)
        super().__init__(f"alarm {alarm_id}: '{event}' needs {', '.join(missing)}")


class InvalidRequest(AlarmError):
    """Inputs are present but not acceptable (e.g. a shelve longer than allowed)."""


def _enc(v: Any) -> Any:
    """JSON-friendly form: enums as their value, tuples as lists, dicts recursively."""
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, tuple | list):
        return [_enc(x) for x in v]
    if isinstance(v, Mapping):
        return {str(_enc(k)): _enc(x) for k, x in v.items()}
    return v


def _plain_dict(obj: Any) -> dict[str, Any]:
    return {f.name: _enc(getattr(obj, f.name)) for f in fields(obj)}


def _optional(decode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else decode(v)


class _Record:
    """The JSON round trip of the frozen records below: ``to_dict`` gives every field in
    JSON form, ``from_dict`` turns each field named in ``_DECODE`` back from it."""

    __slots__ = ()
    _DECODE: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return _plain_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        for name, decode in cls._DECODE.items():
            if name in d:
                d[name] = decode(d[name])
        return cls(**d)


@dataclass(frozen=True, slots=True)
class Alarm(_Record):
    """One alarm point (a tag and a condition) and its current ISA-18.2 state.

    ``condition_active`` and ``design_suppressed`` are tracked in every state, including
    shelved, suppressed and out of service, so that leaving those states lands in the
    right one. ``raised_us``/``cleared_us`` are when the condition last became active /
    normal; ``value_at_trip`` and friends describe that last activation.
    ``acked_*`` describe the acknowledgement of the current (or last) unacknowledged period.
    """

    id: str
    tag: str
    kind: ConditionKind
    priority: Priority
    state: AlarmState = AlarmState.NORMAL
    condition_active: bool = False
    design_suppressed: bool = False
    suppress_reason: str | None = None
    raised_us: int | None = None
    cleared_us: int | None = None
    value_at_trip: float | None = None
    limit_at_trip: float | None = None
    limit_set_id: str | None = None
    limit_set_version: int | None = None
    last_transition_us: int | None = None
    last_event: AlarmEvent | None = None
    unack_since_us: int | None = None
    escalation_level: int = 0  # escalation levels already raised in this unacknowledged period
    acked_by: str | None = None
    acked_us: int | None = None
    ack_comment: str | None = None
    shelved_by: str | None = None
    shelved_us: int | None = None
    shelved_until_us: int | None = None
    shelve_reason: str | None = None
    oos_by: str | None = None
    oos_us: int | None = None
    oos_reason: str | None = None

    _DECODE = {
        "kind": ConditionKind,
        "priority": Priority,
        "state": AlarmState,
        "last_event": _optional(AlarmEvent),
    }


@dataclass(frozen=True, slots=True)
class Transition(_Record):
    """One applied event, for the audit trail: who, when, why, from which state to which.

    ``detail`` holds the event's own JSON-serialisable facts (value and limit at trip,
    shelve expiry, escalation level, acknowledgement comment).
    """

    alarm_id: str
    tag: str
    priority: Priority
    event: AlarmEvent
    from_state: AlarmState
    to_state: AlarmState
    actor: str
    at_us: int
    reason: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)

    _DECODE = {
        "priority": Priority,
        "event": AlarmEvent,
        "from_state": AlarmState,
        "to_state": AlarmState,
        "detail": dict,
    }

    def audit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``audit.trail.AuditTrail.append`` (record type ``alarm``)."""
        return {
            "actor": self.actor,
            "action": f"alarm.{self.event.value}",
            "record_type": "alarm",
            "record_id": self.alarm_id,
            "reason": self.reason,
            "old": {"state": self.from_state.value},
            "new": {"state": self.to_state.value, **_enc(self.detail)},
            "ts_us": self.at_us,
        }


@dataclass(frozen=True, slots=True)
class Escalation(_Record):
    """An unacknowledged alarm passed escalation level ``level`` (1-based); notify someone."""

    alarm_id: str
    tag: str
    priority: Priority
    level: int
    unack_since_us: int
    due_us: int
    at_us: int

    _DECODE = {"priority": Priority}


def _default_realarm() -> dict[Priority, int]:
    return {Priority.CRITICAL: 15 * MINUTE_US, Priority.HIGH: 30 * MINUTE_US}


def _default_escalation() -> dict[Priority, tuple[int, ...]]:
    return {
        Priority.CRITICAL: (5 * MINUTE_US, 15 * MINUTE_US, HOUR_US),
        Priority.HIGH: (15 * MINUTE_US, HOUR_US),
        Priority.MEDIUM: (HOUR_US,),
    }


@dataclass(frozen=True, slots=True)
class AlarmPolicy(_Record):
    """Site configuration of the alarm timers (defaults are examples; set them per SOP).

    ``max_shelve_us``: longest shelve accepted (a shelve is always time-limited).
    ``realarm_us``: per priority, how long an acknowledged alarm may stay active before it
    returns to unacknowledged; priorities absent here never re-alarm.
    ``escalation_us``: per priority, delays after the alarm became unacknowledged at which
    escalation levels 1, 2, ... are raised (strictly increasing); absent = no escalation.
    """

    max_shelve_us: int = 12 * HOUR_US
    realarm_us: Mapping[Priority, int] = field(default_factory=_default_realarm)
    escalation_us: Mapping[Priority, tuple[int, ...]] = field(default_factory=_default_escalation)

    def __post_init__(self) -> None:
        if self.max_shelve_us <= 0:
            raise ValueError("max_shelve_us must be positive")
        for p, us in self.realarm_us.items():
            if us <= 0:
                raise ValueError(f"re-alarm time for {p} must be positive")
        for p, delays in self.escalation_us.items():
            if any(d <= 0 for d in delays) or any(b <= a for a, b in pairwise(delays)):
                raise ValueError(f"escalation delays for {p} must be positive and increasing")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        return cls(
            max_shelve_us=int(data["max_shelve_us"]),
            realarm_us={Priority(k): int(v) for k, v in data["realarm_us"].items()},
            escalation_us={
                Priority(k): tuple(int(x) for x in v) for k, v in data["escalation_us"].items()
            },
        )
