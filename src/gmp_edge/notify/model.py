"""The notification value: what happened, how urgent, which record it is about."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gmp_edge.timefmt import iso

#: Priorities, lowest first (the alarm priorities of ``alarms.model.Priority``).
PRIORITIES: tuple[str, ...] = ("low", "medium", "high", "critical")

# Deviation classes mapped onto the alarm priority scale, so one filter serves both.
_DEVIATION_PRIORITY = {"minor": "medium", "major": "high", "critical": "critical"}


def priority_rank(priority: str) -> int:
    """Rank of a priority (0 = low); an unknown priority ranks as critical so no filter hides it."""
    try:
        return PRIORITIES.index(priority)
    except ValueError:
        return len(PRIORITIES) - 1


def deviation_priority(classification: str) -> str:
    """Notification priority for a deviation class (minor/major/critical)."""
    # Unknown classes are treated as critical: an unclassified deviation must not be filtered out.
    return _DEVIATION_PRIORITY.get(str(classification), "critical")


@dataclass(frozen=True, slots=True)
class Notification:
    """One thing a person should hear about: an alarm raised/escalated, a deviation raised.

    ``kind`` is a dotted event name (``alarm.raised``, ``alarm.escalated``,
    ``deviation.raised``, ``deviation.critical``); ``priority`` is one of :data:`PRIORITIES`;
    ``record_type``/``record_id`` name the record (alarm, deviation) the receiver can look up;
    ``ts_us`` is when the event happened (integer microseconds UTC); ``data`` is JSON-able detail.
    """

    kind: str
    priority: str
    title: str
    text: str
    record_type: str
    record_id: str
    ts_us: int
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.kind:
            raise ValueError("notification kind must not be empty")
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority {self.priority!r} is not one of {PRIORITIES}")
        if isinstance(self.ts_us, bool) or not isinstance(self.ts_us, int):
            raise TypeError(f"ts_us must be integer microseconds, got {type(self.ts_us).__name__}")
        # Fail where the notification is built, not later inside a sink where it would only
        # show up as a delivery failure.
        try:
            json.dumps(self.data, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"notification data is not JSON-able: {exc}") from exc

    @property
    def key(self) -> str:
        """Stable identity, for receivers to de-duplicate retried deliveries."""
        return f"{self.record_type}/{self.record_id}/{self.kind}/{self.ts_us}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON document sent to receivers (``ts`` is ISO UTC with ``Z``; ``ts_us`` exact)."""
        return {
            "key": self.key,
            "kind": self.kind,
            "priority": self.priority,
            "title": self.title,
            "text": self.text,
            "record_type": self.record_type,
            "record_id": self.record_id,
            "ts": iso(self.ts_us),
            "ts_us": self.ts_us,
            "data": self.data,
        }

    def to_json(self) -> str:
        """Compact, key-sorted JSON of :meth:`to_dict` (deterministic, so it can be signed)."""
        return json.dumps(
            self.to_dict(),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
