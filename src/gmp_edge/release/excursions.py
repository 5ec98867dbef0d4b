"""Excursion history (pure): alarm transitions paired into excursions, searchable.

An excursion is one activation of an alert, action, monitoring or out-of-trend
condition, from ``condition_active`` to the next ``condition_cleared`` of the same alarm
(open if none yet), with who acknowledged it and the deviation raised for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from gmp_edge.alarms.model import AlarmEvent, Transition


@dataclass(frozen=True, slots=True)
class ExcursionRecord:
    """One excursion as the history lists it."""

    alarm_id: str
    tag: str
    room: str
    kind: str
    level: str  # alert / action / monitoring / oot / other
    priority: str
    start_us: int
    end_us: int | None
    value_at_trip: float | None
    limit: float | None
    limit_set: str | None
    acknowledged_by: str | None
    ack_comment: str | None
    deviation_id: str | None

    @property
    def open(self) -> bool:
        """Still active."""
        return self.end_us is None


def _level(kind: str) -> str:
    if kind.startswith("alert"):
        return "alert"
    if kind.startswith("action"):
        return "action"
    if kind == "monitoring_unavailable":
        return "monitoring"
    return kind


def excursions(
    transitions: Iterable[Transition], deviation_of: Mapping[str, str] | None = None
) -> list[ExcursionRecord]:
    """Pair activations with their clears, oldest first.

    ``deviation_of`` maps ``"<alarm id>@<start µs>"`` (the deviation evidence's excursion
    id) to the deviation id.
    """
    deviation_of = deviation_of or {}
    open_: dict[str, ExcursionRecord] = {}
    done: list[ExcursionRecord] = []
    for t in sorted(transitions, key=lambda t: t.at_us):
        if t.event is AlarmEvent.CONDITION_ACTIVE:
            kind = t.alarm_id.rpartition("#")[2]
            parts = t.tag.split("/")
            d = t.detail or {}
            ls = d.get("limit_set_id")
            open_[t.alarm_id] = ExcursionRecord(
                t.alarm_id,
                t.tag,
                parts[2] if len(parts) > 2 else "",
                kind,
                _level(kind),
                t.priority.value,
                t.at_us,
                None,
                _num(d.get("value_at_trip")),
                _num(d.get("limit_at_trip")),
                f"{ls} v{d.get('limit_set_version')}" if ls else None,
                None,
                None,
                None,
            )
        elif t.event is AlarmEvent.ACKNOWLEDGE and t.alarm_id in open_:
            open_[t.alarm_id] = replace(
                open_[t.alarm_id], acknowledged_by=t.actor, ack_comment=t.reason
            )
        elif t.event is AlarmEvent.CONDITION_CLEARED and t.alarm_id in open_:
            done.append(replace(open_.pop(t.alarm_id), end_us=t.at_us))
    out = sorted(done + list(open_.values()), key=lambda e: e.start_us)
    previous_end: dict[str, int] = {}
    linked = []
    for e in out:
        after = previous_end.get(e.alarm_id, -1)
        linked.append(replace(e, deviation_id=_dev(e, after, deviation_of)))
        previous_end[e.alarm_id] = e.end_us if e.end_us is not None else e.start_us
    return linked


def _dev(e: ExcursionRecord, after_us: int, deviation_of: Mapping[str, str]) -> str | None:
    # the deviation's excursion id holds the excursion start, which precedes the activation
    # by the on-delay: it lies after the same alarm's previous excursion ended
    for key, dev in deviation_of.items():
        alarm, _, start = key.rpartition("@")
        if alarm == e.alarm_id and after_us < int(start) <= e.start_us:
            return dev
    return None


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def search(
    items: list[ExcursionRecord],
    *,
    room: str | None = None,
    tag: str | None = None,
    level: str | None = None,
    status: str | None = None,
    start_us: int | None = None,
    end_us: int | None = None,
    scope: tuple[set[str], set[str]] | None = None,
) -> list[ExcursionRecord]:
    """Excursions matching every given filter; ``scope`` = (rooms, equipment) of a batch."""
    out = []
    for e in items:
        if room is not None and e.room != room:
            continue
        if tag is not None and e.tag != tag:
            continue
        if level is not None and e.level != level:
            continue
        if (status == "open" and not e.open) or (status == "closed" and e.open):
            continue
        if end_us is not None and e.start_us >= end_us:
            continue
        if start_us is not None and e.end_us is not None and e.end_us < start_us:
            continue
        if scope is not None:
            rooms, equipment = scope
            parts = e.tag.split("/")
            eq = parts[3] if len(parts) > 3 else ""
            if e.room not in rooms and eq not in equipment:
                continue
        out.append(e)
    return out
