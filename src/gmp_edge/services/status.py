"""How the edge box is doing, for the health route, the metrics and the live page.

The verdict itself is :func:`gmp_edge.services.health.assess_health`; this adds the
monitoring and notification figures to collection's inputs, so that a person reading the
health answer, a monitoring system scraping it and the live page get the same verdict.
Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gmp_edge.alarms.model import Alarm
from gmp_edge.clock import now_us
from gmp_edge.monitoring.engine import EngineStats, MonitoringEngine
from gmp_edge.services.health import Health, HealthInputs, assess_health


@dataclass(frozen=True, slots=True)
class RoomState:
    """What the live page shows of one room besides its values."""

    production_state: str | None
    batch: str | None
    alarms: list[Alarm]


class StatusService:
    """Figures of the monitoring engine, read under no lock (each is one snapshot)."""

    def __init__(self, engine: MonitoringEngine):
        self._engine = engine

    @property
    def stats(self) -> EngineStats:
        """Evaluation counters (steps, readings, lag, latency)."""
        return self._engine.stats

    def active_alarms(self) -> int:
        """Alarms not in normal state."""
        return len(self._engine.books.alarms.active())

    def alarm_summary(self) -> dict[str, int]:
        """The plant's alarm state for the health answer's ``alarms`` (not its verdict)."""
        active = self._engine.books.alarms.active()
        return {
            "active": len(active),
            "unacknowledged": sum(1 for a in active if a.unack_since_us is not None),
        }

    def health(self, collection: HealthInputs, notifications: Mapping[str, Any] | None) -> Health:
        """The one health verdict (route, metrics, page): collection's inputs with the
        evaluation's error and the notification figures of the service layer."""
        return assess_health(
            replace(
                collection,
                monitoring_error=self._engine.stats.error,
                notifications_dropped=int((notifications or {}).get("dropped") or 0),
                monitoring_behind_s=self._engine.behind_s(now_us()),
            )
        )

    def open_deviations(self) -> int:
        """Deviations with status open."""
        return len(self._engine.books.deviations.list("open"))

    def monitoring(self) -> dict[str, object]:
        """The health answer's monitoring section."""
        ls = self._engine.limit_set
        return {
            "limit_set": f"{ls.id} v{ls.version}" if ls else None,
            "active_alarms": self.active_alarms(),
            "open_deviations": self.open_deviations(),
            **self._engine.stats.as_dict(),
        }

    def notifications(self) -> dict[str, Any] | None:
        """Delivery counters of the notification sinks, or None when none are configured."""
        status = self._engine.notify_status
        return status() if status is not None else None

    def rooms(self) -> dict[str, RoomState]:
        """Production state, running batch and alarms of every configured room."""
        by_room = self._engine.room_alarm_states()
        running = {r: b.id for b in self._engine.books.batches.in_progress() for r in b.rooms}
        out = {}
        for room in self._engine.cfg.rooms:
            tracker = self._engine.trackers.get(room.id)
            out[room.id] = RoomState(
                tracker.state if tracker else None,
                running.get(room.id),
                by_room.get(room.id, []),
            )
        return out
