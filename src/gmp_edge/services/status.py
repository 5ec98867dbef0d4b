"""How the edge box is doing, for the health route, the metrics and the live page.

The "degraded" rule lives here, once: a person reading the health answer and a monitoring
system scraping it must get the same verdict. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gmp_edge.alarms.model import Alarm
from gmp_edge.monitoring.engine import EngineStats, MonitoringEngine

Overall = Literal["ok", "degraded", "starting"]


def overall_status(
    started: bool,
    store: Mapping[str, Any],
    monitoring: Mapping[str, Any],
    devices_connected: Iterable[bool],
    notifications: Mapping[str, Any] | None,
) -> Overall:
    """``starting`` until the service has started; ``degraded`` when the store or the
    evaluation reports an error, a device is not connected or a notification was dropped;
    else ``ok``."""
    if not started:
        return "starting"
    if (
        store.get("error")
        or monitoring.get("error")
        or not all(devices_connected)
        or (notifications is not None and notifications.get("dropped"))
    ):
        return "degraded"
    return "ok"


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
