"""The ISA-18.2 alarm state transition table, as data.

Each allowed (state, event) pair maps to the next state, or to :data:`BY_CONDITION` when
the next state depends on what was tracked meanwhile (leaving shelved, suppressed or out
of service): suppressed by design if the design condition still holds, else
unacknowledged if the process condition is active, else normal. A pair that is not in
the table is refused.

Condition changes while shelved, suppressed or out of service are self-loops: the state
stays, the tracked condition changes. The same holds for a design suppression that
starts or ends while shelved or out of service (operator and maintenance actions win
over design logic while they last).
"""

from __future__ import annotations

from enum import StrEnum

from gmp_edge.alarms.model import AlarmEvent, AlarmState


class Resolve(StrEnum):
    """A computed target state (see module docstring)."""

    BY_CONDITION = "by_condition"


BY_CONDITION = Resolve.BY_CONDITION

S = AlarmState
E = AlarmEvent

TABLE: dict[tuple[AlarmState, AlarmEvent], AlarmState | Resolve] = {
    # A: normal
    (S.NORMAL, E.CONDITION_ACTIVE): S.UNACKNOWLEDGED,
    (S.NORMAL, E.SHELVE): S.SHELVED,
    (S.NORMAL, E.SUPPRESS): S.SUPPRESSED_BY_DESIGN,
    (S.NORMAL, E.REMOVE_FROM_SERVICE): S.OUT_OF_SERVICE,
    # B: active, unacknowledged
    (S.UNACKNOWLEDGED, E.CONDITION_CLEARED): S.RTN_UNACKNOWLEDGED,
    (S.UNACKNOWLEDGED, E.ACKNOWLEDGE): S.ACKNOWLEDGED,
    (S.UNACKNOWLEDGED, E.SHELVE): S.SHELVED,
    (S.UNACKNOWLEDGED, E.SUPPRESS): S.SUPPRESSED_BY_DESIGN,
    (S.UNACKNOWLEDGED, E.REMOVE_FROM_SERVICE): S.OUT_OF_SERVICE,
    (S.UNACKNOWLEDGED, E.ESCALATE): S.UNACKNOWLEDGED,
    # C: active, acknowledged
    (S.ACKNOWLEDGED, E.CONDITION_CLEARED): S.NORMAL,
    (S.ACKNOWLEDGED, E.SHELVE): S.SHELVED,
    (S.ACKNOWLEDGED, E.SUPPRESS): S.SUPPRESSED_BY_DESIGN,
    (S.ACKNOWLEDGED, E.REMOVE_FROM_SERVICE): S.OUT_OF_SERVICE,
    (S.ACKNOWLEDGED, E.REALARM): S.UNACKNOWLEDGED,
    # D: returned to normal, unacknowledged
    (S.RTN_UNACKNOWLEDGED, E.CONDITION_ACTIVE): S.UNACKNOWLEDGED,
    (S.RTN_UNACKNOWLEDGED, E.ACKNOWLEDGE): S.NORMAL,
    (S.RTN_UNACKNOWLEDGED, E.SHELVE): S.SHELVED,
    (S.RTN_UNACKNOWLEDGED, E.SUPPRESS): S.SUPPRESSED_BY_DESIGN,
    (S.RTN_UNACKNOWLEDGED, E.REMOVE_FROM_SERVICE): S.OUT_OF_SERVICE,
    (S.RTN_UNACKNOWLEDGED, E.ESCALATE): S.RTN_UNACKNOWLEDGED,
    # G: shelved
    (S.SHELVED, E.CONDITION_ACTIVE): S.SHELVED,
    (S.SHELVED, E.CONDITION_CLEARED): S.SHELVED,
    (S.SHELVED, E.SUPPRESS): S.SHELVED,
    (S.SHELVED, E.UNSUPPRESS): S.SHELVED,
    (S.SHELVED, E.UNSHELVE): BY_CONDITION,
    (S.SHELVED, E.REMOVE_FROM_SERVICE): S.OUT_OF_SERVICE,  # the shelve ends
    # H: suppressed by design
    (S.SUPPRESSED_BY_DESIGN, E.CONDITION_ACTIVE): S.SUPPRESSED_BY_DESIGN,
    (S.SUPPRESSED_BY_DESIGN, E.CONDITION_CLEARED): S.SUPPRESSED_BY_DESIGN,
    (S.SUPPRESSED_BY_DESIGN, E.UNSUPPRESS): BY_CONDITION,
    (S.SUPPRESSED_BY_DESIGN, E.REMOVE_FROM_SERVICE): S.OUT_OF_SERVICE,
    # I: out of service
    (S.OUT_OF_SERVICE, E.CONDITION_ACTIVE): S.OUT_OF_SERVICE,
    (S.OUT_OF_SERVICE, E.CONDITION_CLEARED): S.OUT_OF_SERVICE,
    (S.OUT_OF_SERVICE, E.SUPPRESS): S.OUT_OF_SERVICE,
    (S.OUT_OF_SERVICE, E.UNSUPPRESS): S.OUT_OF_SERVICE,
    (S.OUT_OF_SERVICE, E.RETURN_TO_SERVICE): BY_CONDITION,
}


def allowed_events(state: AlarmState) -> tuple[AlarmEvent, ...]:
    """The events the table accepts in ``state``, in declaration order."""
    return tuple(e for (s, e) in TABLE if s == state)


def states_allowing(event: AlarmEvent) -> tuple[AlarmState, ...]:
    """The states in which the table accepts ``event``."""
    return tuple(s for (s, e) in TABLE if e == event)


def resolve(condition_active: bool, design_suppressed: bool) -> AlarmState:
    """Where an alarm lands when it leaves shelved, suppressed or out of service."""
    if design_suppressed:
        return AlarmState.SUPPRESSED_BY_DESIGN
    return AlarmState.UNACKNOWLEDGED if condition_active else AlarmState.NORMAL
