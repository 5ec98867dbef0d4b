"""Adapts the running service to what the API needs (api.runtime.Runtime)."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict

from gmp_edge.api.runtime import RoomInfo, TagInfo
from gmp_edge.clock import now_us as now
from gmp_edge.collector.driver import DeviceStatus, LinkState
from gmp_edge.collector.reading import Reading
from gmp_edge.edge.clock_status import ClockSync
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.services.health import DeviceState, HealthInputs
from gmp_edge.timefmt import iso

MISSED_POLLS_WINDOW_US = 60_000_000  # health speaks of polls missed in the last minute


class RecentCounts:
    """How much each of a set of ever-growing counters grew over the last ``window_us``,
    from samples taken when asked (health is asked by people and scrapers, a few seconds
    apart); samples older than the window are let go, so memory stays bounded."""

    def __init__(self, window_us: int):
        self.window_us = window_us
        self._samples: deque[tuple[int, dict[str, int]]] = deque()

    def seed(self, at_us: int, counts: dict[str, int]) -> None:
        """The counters' values at ``at_us`` (the start), so the first answer has a base."""
        self._samples.append((at_us, dict(counts)))

    def recent(self, at_us: int, counts: dict[str, int]) -> tuple[list[tuple[str, int]], float]:
        """(name, growth) for each counter since the oldest sample still within the window
        (or the newest before it), and that span in seconds; sampled now at ``at_us``."""
        while len(self._samples) > 1 and self._samples[1][0] <= at_us - self.window_us:
            self._samples.popleft()
        since, base = self._samples[0] if self._samples else (at_us, {})
        self._samples.append((at_us, dict(counts)))
        growth = [(k, max(0, v - base.get(k, 0))) for k, v in sorted(counts.items())]
        return growth, max(0.0, (at_us - since) / 1e6)


class ServiceRuntime:
    """The API's view of an :class:`EdgeService`."""

    def __init__(self, service: EdgeService, clock_sync: ClockSync | None = None):
        self._svc = service
        self._clock = clock_sync or ClockSync()
        self._missed_polls = RecentCounts(MISSED_POLLS_WINDOW_US)
        self._missed_polls.seed(now(), self._missed_counts())
        cfg = service.cfg
        self.site_id = cfg.site.id
        self.site_name = cfg.site.name
        self.config_sha256 = service.config_sha256
        self._tags = [
            TagInfo(
                path=t.path,
                site=t.segments[0],
                area=t.segments[1],
                room=t.segments[2],
                equipment=t.segments[3],
                signal=t.segments[4],
                unit=t.unit,
                kind=t.kind.value,
                device=t.device,
                description=t.description,
            )
            for t in cfg.tags
        ]
        self._rooms = [
            RoomInfo(
                id=r.id,
                area=r.area,
                name=r.name,
                grade=r.grade.value if r.grade else None,
                iso_class=r.iso_class,
                adjacent=list(r.adjacent),
            )
            for r in cfg.rooms
        ]

    @property
    def store(self) -> Store:
        """The local store."""
        return self._svc.store

    @property
    def started_us(self) -> int | None:
        """When collection started."""
        return self._svc.started_us

    def tag_infos(self) -> list[TagInfo]:
        """Every configured tag."""
        return self._tags

    def room_infos(self) -> list[RoomInfo]:
        """Every configured room."""
        return self._rooms

    def latest_readings(self) -> dict[str, Reading]:
        """Newest reading per tag since start."""
        return dict(self._svc.latest)

    def device_statuses(self) -> list[DeviceStatus]:
        """Live device health."""
        return self._svc.device_statuses()

    def store_health(self) -> dict[str, object]:
        """Committer health, with timestamps in UTC."""
        h = asdict(self._svc.health)
        h["last_commit"] = iso(h.pop("last_commit_us"))
        h["path"] = str(self._svc.store.path)
        return h

    def forwarder_statuses(self) -> dict[str, dict[str, object]]:
        """Per destination (InfluxDB, MQTT): sent, backlog, lag, errors."""
        return {name: fn() for name, fn in self._svc.forwarders.items()}

    def _missed_counts(self) -> dict[str, int]:
        return {s.device_id: s.missed_polls for s in self._svc.device_statuses()}

    def health_inputs(self, now_us: int) -> HealthInputs:
        """Store, supervised tasks, devices, Bad tags and the clock, for the verdict."""
        svc = self._svc
        h = svc.cfg.health
        missed, span = self._missed_polls.recent(now_us, self._missed_counts())
        return HealthInputs(
            started=svc.started_us is not None,
            store_error=svc.health.error,
            failed_tasks=[(f.task, f.reason) for f in svc.task_failures],
            devices=[
                DeviceState(s.device_id, s.state is LinkState.CONNECTED, s.last_error)
                for s in svc.device_statuses()
            ],
            bad_tags=svc.bad_tags(now_us),
            bad_tag_polls=h.bad_tag_polls,
            clock_synchronised=self._clock.synchronised(),
            clock_check=h.clock_check,
            missed_polls=missed,
            missed_polls_span_s=span,
            missed_polls_allowed=h.missed_polls,
            last_commit_ms=svc.health.last_commit_ms,
            buffer_share=svc.health.pending / svc.max_pending if svc.max_pending else 0.0,
            integrity_problems=svc.integrity.problems,
            integrity_error=svc.integrity.error,
        )
