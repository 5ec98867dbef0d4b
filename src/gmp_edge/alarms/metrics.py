"""Alarm-system performance metrics (ISA-18.2 §16 / EEMUA 191), computed from transitions.

Pure functions over a list of :class:`~alarms.model.Transition` (as the audit trail or
the alarm journal gives them back), so the same figures can be recomputed by anyone
from the record. Windows are half-open: ``[t, t + window)``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gmp_edge.alarms.model import (
    ACTIVE_STATES,
    HOUR_US,
    MINUTE_US,
    UNACKED_STATES,
    AlarmEvent,
    AlarmState,
    Transition,
)

DEFAULT_POSITION = "all"


def is_annunciation(t: Transition) -> bool:
    """True if ``t`` presents a new alarm to the operator (enters unacknowledged-active)."""
    return t.to_state is AlarmState.UNACKNOWLEDGED and t.from_state is not t.to_state


@dataclass(frozen=True, slots=True)
class Chattering:
    """An alarm whose condition activated ``count`` times within ``window_us``."""

    alarm_id: str
    count: int  # the most activations found in any one window
    first_us: int  # first activation of that window
    last_us: int  # last activation of that window


def chattering(
    transitions: Iterable[Transition], *, min_count: int = 3, window_us: int = MINUTE_US
) -> list[Chattering]:
    """Alarms whose condition activated at least ``min_count`` times within ``window_us``.

    Counts ``condition_active`` events in any state (an alarm shelved because it chatters
    still chatters). Default 3 in 60 s, the usual ISA-18.2 guidance. Sorted by alarm id.
    """
    times: dict[str, list[int]] = defaultdict(list)
    for t in transitions:
        if t.event is AlarmEvent.CONDITION_ACTIVE:
            times[t.alarm_id].append(t.at_us)
    found: list[Chattering] = []
    for alarm_id in sorted(times):
        ts = sorted(times[alarm_id])
        best: Chattering | None = None
        lo = 0
        for hi, t_hi in enumerate(ts):
            while t_hi - ts[lo] >= window_us:
                lo += 1
            n = hi - lo + 1
            if n >= min_count and (best is None or n > best.count):
                best = Chattering(alarm_id, n, ts[lo], t_hi)
        if best is not None:
            found.append(best)
    return found


@dataclass(frozen=True, slots=True)
class FloodPeriod:
    """A period in which one operator position got more alarms than it can handle."""

    position: str
    start_us: int  # first annunciation of the first flooded window
    end_us: int  # last annunciation of the last flooded window
    count: int  # annunciations from start to end inclusive


def floods(
    transitions: Iterable[Transition],
    *,
    threshold: int = 10,
    window_us: int = 10 * MINUTE_US,
    positions: Mapping[str, str] | None = None,
) -> list[FloodPeriod]:
    """Alarm floods: more than ``threshold`` annunciations within ``window_us`` per position.

    ``positions`` maps alarm id -> operator position; alarms not in it (or all, if None)
    belong to :data:`DEFAULT_POSITION`. Overlapping flooded windows merge into one period.
    Sorted by position, then start.
    """
    by_pos: dict[str, list[int]] = defaultdict(list)
    for t in transitions:
        if is_annunciation(t):
            pos = (positions or {}).get(t.alarm_id, DEFAULT_POSITION)
            by_pos[pos].append(t.at_us)
    periods: list[FloodPeriod] = []
    for pos in sorted(by_pos):
        ts = sorted(by_pos[pos])
        spans: list[tuple[int, int]] = []  # index ranges of flooded windows, merged
        lo = 0
        for hi, t_hi in enumerate(ts):
            while t_hi - ts[lo] >= window_us:
                lo += 1
            if hi - lo + 1 > threshold:
                if spans and lo <= spans[-1][1]:
                    spans[-1] = (spans[-1][0], hi)
                else:
                    spans.append((lo, hi))
        periods.extend(FloodPeriod(pos, ts[a], ts[b], b - a + 1) for a, b in spans)
    return periods


def time_in_flood(periods: Iterable[FloodPeriod], start_us: int, end_us: int) -> float:
    """Fraction of ``[start_us, end_us)`` covered by flood periods (target < 1 %)."""
    if end_us <= start_us:
        raise ValueError("empty interval")
    spans = sorted((max(p.start_us, start_us), min(p.end_us, end_us)) for p in periods)
    covered, reach = 0, start_us
    for a, b in spans:
        a = max(a, reach)
        if b > a:
            covered += b - a
            reach = b
    return covered / (end_us - start_us)


@dataclass(frozen=True, slots=True)
class StandingAlarm:
    """An alarm annunciated as active (unacknowledged or acknowledged) for a long time."""

    alarm_id: str
    state: AlarmState
    since_us: int
    age_us: int


def standing_alarms(
    transitions: Iterable[Transition], now_us: int, *, min_age_us: int = 24 * HOUR_US
) -> list[StandingAlarm]:
    """Alarms active (unacknowledged or acknowledged) without a break for ``min_age_us``.

    Replays each alarm's transitions in time order; default 24 h (EEMUA "stale alarm").
    Oldest first.
    """
    since: dict[str, int | None] = {}
    state: dict[str, AlarmState] = {}
    for t in sorted(transitions, key=lambda t: t.at_us):
        if t.to_state in ACTIVE_STATES:
            if since.get(t.alarm_id) is None:
                since[t.alarm_id] = t.at_us
        else:
            since[t.alarm_id] = None
        state[t.alarm_id] = t.to_state
    found = [
        StandingAlarm(a, state[a], s, now_us - s)
        for a, s in since.items()
        if s is not None and now_us - s >= min_age_us
    ]
    return sorted(found, key=lambda x: (x.since_us, x.alarm_id))


def unacknowledged_count(transitions: Iterable[Transition]) -> int:
    """How many alarms are waiting for acknowledgement after these transitions."""
    last: dict[str, AlarmState] = {}
    for t in sorted(transitions, key=lambda t: t.at_us):
        last[t.alarm_id] = t.to_state
    return sum(1 for s in last.values() if s in UNACKED_STATES)
