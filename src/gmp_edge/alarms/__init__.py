"""Alarms (ISA-18.2 / IEC 62682): a pure state machine driven by a transition table.

- ``model``: states, events, priorities, the :class:`Alarm` record, :class:`Transition`
  (one audit entry per applied event), :class:`AlarmPolicy` (shelve limit, re-alarm,
  escalation), errors.
- ``table``: the (state, event) -> next state table, as data.
- ``machine``: one function per event (``activate``, ``clear``, ``acknowledge``, ``shelve``,
  ``unshelve``, ``suppress``, ``unsuppress``, ``remove_from_service``,
  ``return_to_service``); each returns ``(new_alarm, transition)``.
- ``timers``: ``due_timers``/``next_due_us``/``tick`` for shelve expiry, re-alarm, escalation.
- ``metrics``: chattering, floods, time in flood, standing alarms, from transitions.

No I/O: the service persists alarms and transitions (``to_dict``/``from_dict``) and
writes each transition to the audit trail (``Transition.audit_kwargs()``).
"""

from gmp_edge.alarms.machine import (
    acknowledge,
    activate,
    clear,
    escalate,
    is_allowed,
    new_alarm,
    realarm,
    remove_from_service,
    return_to_service,
    shelve,
    suppress,
    unshelve,
    unsuppress,
)
from gmp_edge.alarms.model import (
    SYSTEM,
    Alarm,
    AlarmError,
    AlarmEvent,
    AlarmPolicy,
    AlarmState,
    ConditionKind,
    Escalation,
    IllegalAlarmTransition,
    InvalidRequest,
    MissingAlarmFields,
    Priority,
    Transition,
)
from gmp_edge.alarms.timers import DueTimer, TickResult, TimerKind, due_timers, next_due_us, tick

__all__ = [
    "SYSTEM",
    "Alarm",
    "AlarmError",
    "AlarmEvent",
    "AlarmPolicy",
    "AlarmState",
    "ConditionKind",
    "DueTimer",
    "Escalation",
    "IllegalAlarmTransition",
    "InvalidRequest",
    "MissingAlarmFields",
    "Priority",
    "TickResult",
    "TimerKind",
    "Transition",
    "acknowledge",
    "activate",
    "clear",
    "due_timers",
    "escalate",
    "is_allowed",
    "new_alarm",
    "next_due_us",
    "realarm",
    "remove_from_service",
    "return_to_service",
    "shelve",
    "suppress",
    "tick",
    "unshelve",
    "unsuppress",
]
