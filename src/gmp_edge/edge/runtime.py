"""Adapts the running service to what the API needs (api.runtime.Runtime)."""

from __future__ import annotations

from dataclasses import asdict

from gmp_edge.api.runtime import RoomInfo, TagInfo
from gmp_edge.collector.driver import DeviceStatus, LinkState
from gmp_edge.collector.reading import Reading
from gmp_edge.edge.clock_status import ClockSync
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.services.health import DeviceState, HealthInputs
from gmp_edge.timefmt import iso


class ServiceRuntime:
    """The API's view of an :class:`EdgeService`."""

    def __init__(self, service: EdgeService, clock_sync: ClockSync | None = None):
        self._svc = service
        self._clock = clock_sync or ClockSync()
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

    def health_inputs(self, now_us: int) -> HealthInputs:
        """Store, supervised tasks, devices, Bad tags and the clock, for the verdict."""
        svc = self._svc
        h = svc.cfg.health
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
            integrity_problems=svc.integrity.problems,
            integrity_error=svc.integrity.error,
        )
