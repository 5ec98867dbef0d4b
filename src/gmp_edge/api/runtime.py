"""What the API needs from the running service, as a protocol (edge implements it)."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel

from gmp_edge.collector.driver import DeviceStatus
from gmp_edge.collector.reading import Reading
from gmp_edge.historian.store import Store
from gmp_edge.services.health import HealthInputs


class TagInfo(BaseModel):
    """A configured tag, as the API shows it."""

    path: str
    site: str
    area: str
    room: str
    equipment: str
    signal: str
    unit: str
    kind: str
    device: str
    description: str


class RoomInfo(BaseModel):
    """A configured room."""

    id: str
    area: str
    name: str
    grade: str | None
    iso_class: float | None
    adjacent: list[str]


class Runtime(Protocol):
    """The live service, seen from the API."""

    site_id: str
    site_name: str
    config_sha256: str

    @property
    def store(self) -> Store:
        """The local store the API reads from."""
        ...

    @property
    def started_us(self) -> int | None:
        """When collection started (None while starting)."""
        ...

    def tag_infos(self) -> list[TagInfo]:
        """Every configured tag."""
        ...

    def room_infos(self) -> list[RoomInfo]:
        """Every configured room."""
        ...

    def latest_readings(self) -> dict[str, Reading]:
        """The newest reading of each tag seen since start."""
        ...

    def device_statuses(self) -> list[DeviceStatus]:
        """Live device health."""
        ...

    def store_health(self) -> dict[str, object]:
        """Committer health: committed, pending, last commit, error."""
        ...

    def forwarder_statuses(self) -> dict[str, dict[str, object]]:
        """Per destination (InfluxDB, MQTT): sent, backlog, lag, errors."""
        ...

    def health_inputs(self, now_us: int) -> HealthInputs:
        """What the health verdict needs of collection: store, tasks, devices, tags, clock
        (the monitoring and notification figures are the service layer's)."""
        ...
