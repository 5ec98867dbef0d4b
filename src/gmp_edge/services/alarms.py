"""What a person does to an alarm: acknowledge, shelve, unshelve, out of / back in service."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gmp_edge.alarms import machine as am
from gmp_edge.alarms.model import Alarm, AlarmError
from gmp_edge.clock import Clock
from gmp_edge.monitoring.engine import MonitoringEngine
from gmp_edge.services.errors import Conflict, NotFound


class AlarmService:
    """Alarm actions, each applied under the monitoring engine's lock and audited."""

    def __init__(self, engine: MonitoringEngine, clock: Clock):
        self._engine = engine
        self._clock = clock

    def _act(self, alarm_id: str, fn: Callable[[Alarm], tuple[Alarm, Any]]) -> Alarm:
        try:
            return self._engine.act(alarm_id, fn)
        except KeyError:
            raise NotFound(f"no alarm {alarm_id!r}") from None
        except AlarmError as exc:
            raise Conflict(str(exc)) from None

    def acknowledge(self, user: str, alarm_id: str, comment: str) -> Alarm:
        """Acknowledge an unacknowledged alarm, with a comment."""
        now = self._clock.now_us()
        return self._act(alarm_id, lambda a: am.acknowledge(a, now, user=user, comment=comment))

    def shelve(self, user: str, alarm_id: str, reason: str, minutes: float) -> Alarm:
        """Shelve for a limited time (the policy caps it), with a reason."""
        now = self._clock.now_us()
        until = now + int(minutes * 60_000_000)
        policy = self._engine.policy
        return self._act(
            alarm_id,
            lambda a: am.shelve(a, now, user=user, reason=reason, until_us=until, policy=policy),
        )

    def unshelve(self, user: str, alarm_id: str, reason: str) -> Alarm:
        """End a shelve early."""
        now = self._clock.now_us()
        return self._act(alarm_id, lambda a: am.unshelve(a, now, user=user, reason=reason))

    def remove_from_service(self, user: str, alarm_id: str, reason: str) -> Alarm:
        """Take an alarm out of service (maintenance of its instrument)."""
        now = self._clock.now_us()
        return self._act(
            alarm_id, lambda a: am.remove_from_service(a, now, user=user, reason=reason)
        )

    def return_to_service(self, user: str, alarm_id: str, reason: str) -> Alarm:
        """Return an alarm to service."""
        now = self._clock.now_us()
        return self._act(alarm_id, lambda a: am.return_to_service(a, now, user=user, reason=reason))

    def active(self) -> list[Alarm]:
        """Alarms not in the normal state."""
        return self._engine.books.alarms.active()
