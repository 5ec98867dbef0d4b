"""The whole plant configuration and the checks that span its sections."""

from __future__ import annotations

import re

from pydantic import Field, ValidationInfo, model_validator

from gmp_edge.config.api import ApiConfig, SecurityConfig
from gmp_edge.config.base import ConfigModel
from gmp_edge.config.checks import NO_CHECKS, DomainChecks, checks_in
from gmp_edge.config.devices import Device, ModbusDevice, OpcuaDevice
from gmp_edge.config.health import HealthConfig
from gmp_edge.config.influx import InfluxConfig
from gmp_edge.config.limits import LimitEntry
from gmp_edge.config.monitoring import MonitoringConfig, ProductionSource
from gmp_edge.config.mqtt import MqttConfig
from gmp_edge.config.notify import NotifyConfig
from gmp_edge.config.registers import register_count
from gmp_edge.config.site import Area, Equipment, Room, Site
from gmp_edge.config.store import SimulationConfig, StoreConfig
from gmp_edge.config.tags import ModbusSource, Tag


class PlantConfig(ConfigModel):
    """A whole edge box's configuration."""

    site: Site
    areas: list[Area] = Field(min_length=1)
    rooms: list[Room] = Field(min_length=1)
    devices: list[Device] = Field(default_factory=list)
    equipment: list[Equipment] = Field(default_factory=list)
    tags: list[Tag] = Field(default_factory=list)
    store: StoreConfig = StoreConfig()
    api: ApiConfig = ApiConfig()
    security: SecurityConfig = SecurityConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    health: HealthConfig = HealthConfig()
    notify: NotifyConfig = NotifyConfig()
    influxdb: InfluxConfig | None = None
    mqtt: MqttConfig | None = None
    production: list[ProductionSource] = Field(default_factory=list)
    limits: list[LimitEntry] = Field(default_factory=list)
    simulation: SimulationConfig | None = None

    @model_validator(mode="after")
    def _cross_check(self, info: ValidationInfo) -> PlantConfig:
        problems = cross_check(self, checks_in(info.context))
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def device(self, device_id: str) -> ModbusDevice | OpcuaDevice:
        """The device with this id."""
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)

    def room_of(self, tag: Tag) -> Room:
        """The room a tag's path names."""
        room_id = tag.segments[2]
        return next(r for r in self.rooms if r.id == room_id)


def _dupes(kind: str, ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, x in enumerate(ids):
        if x in seen:
            out.append(f"{kind}[{i}].id: duplicate {x!r} (first at {kind}[{seen[x]}])")
        seen.setdefault(x, i)
    return out


def cross_check(cfg: PlantConfig, checks: DomainChecks = NO_CHECKS) -> list[str]:
    """Consistency checks across sections; each problem names its key path.

    ``checks.limits``, when given, reports whether the configured limits form a valid
    limit set; it runs only once everything else is consistent.
    """
    p: list[str] = []
    p += _dupes("areas", [a.id for a in cfg.areas])
    p += _dupes("rooms", [r.id for r in cfg.rooms])
    p += _dupes("devices", [d.id for d in cfg.devices])
    p += _dupes("equipment", [e.id for e in cfg.equipment])
    areas = {a.id for a in cfg.areas}
    rooms = {r.id: r for r in cfg.rooms}
    devices = {d.id: d for d in cfg.devices}
    equipment = {e.id: e for e in cfg.equipment}
    for i, r in enumerate(cfg.rooms):
        if r.area not in areas:
            p.append(f"rooms[{i}].area: unknown area {r.area!r}")
        for j, adj in enumerate(r.adjacent):
            if adj == r.id:
                p.append(f"rooms[{i}].adjacent[{j}]: a room cannot be adjacent to itself")
            elif adj not in rooms:
                p.append(f"rooms[{i}].adjacent[{j}]: unknown room {adj!r}")
    for i, e in enumerate(cfg.equipment):
        if e.room not in rooms:
            p.append(f"equipment[{i}].room: unknown room {e.room!r}")
    for i, d in enumerate(cfg.devices):
        if d.reconnect_min_s > d.reconnect_max_s:
            p.append(
                f"devices[{i}].reconnect_min_s: {d.reconnect_min_s} is above "
                f"reconnect_max_s {d.reconnect_max_s}"
            )
    seen_paths: dict[str, int] = {}
    occupied: dict[tuple[str, str], list[tuple[int, int, int, ModbusSource]]] = {}
    path_re = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){4}$")
    for i, t in enumerate(cfg.tags):
        key = f"tags[{i}]"
        if t.path in seen_paths:
            p.append(f"{key}.path: duplicate {t.path!r} (first at tags[{seen_paths[t.path]}])")
        seen_paths.setdefault(t.path, i)
        if not path_re.match(t.path):
            p.append(f"{key}.path: {t.path!r} is not site/area/room/equipment/signal")
        else:
            site, area, room, equip, _ = t.segments
            if site != cfg.site.id:
                p.append(f"{key}.path: site segment {site!r} is not site.id {cfg.site.id!r}")
            if area not in areas:
                p.append(f"{key}.path: unknown area {area!r}")
            if room not in rooms:
                p.append(f"{key}.path: unknown room {room!r}")
            elif rooms[room].area != area:
                p.append(f"{key}.path: room {room!r} is in area {rooms[room].area!r}, not {area!r}")
            if equip not in equipment:
                p.append(f"{key}.path: unknown equipment {equip!r}")
        dev = devices.get(t.device)
        if dev is None:
            p.append(f"{key}.device: unknown device {t.device!r}")
            continue
        if isinstance(dev, OpcuaDevice) and t.opcua is None:
            p.append(f"{key}: device {dev.id!r} is OPC UA; the tag needs an opcua source")
        if isinstance(dev, ModbusDevice):
            if t.opcua is not None:
                p.append(f"{key}.opcua: device {dev.id!r} is Modbus")
            if t.record is not None and dev.record_mode == "none":
                p.append(f"{key}.record: device {dev.id!r} has record_mode 'none'")
            if (
                t.record is not None
                and t.record.analog is not None
                and dev.float_word_order is None
            ):
                # the models differ and a wrong guess decodes 21.0 degC to 2.4e-41, Good
                p.append(
                    f"{key}.record.analog: device {dev.id!r} needs float_word_order: REMOTE "
                    'and Solair counters store floats low word first ("little"), ApexRemote '
                    'and ApexRp high word first ("big")'
                )
            if t.modbus is not None:
                m = t.modbus
                if m.address < dev.address_base:
                    p.append(
                        f"{key}.modbus.address: {m.address} is below the device's "
                        f"address_base {dev.address_base}"
                    )
                start = m.address - dev.address_base
                n = register_count(m.data_type, m.length)
                if start + n > 65536:
                    p.append(f"{key}.modbus.address: {m.address} + {n} registers passes 65535")
                if n > dev.max_registers_per_request:
                    p.append(
                        f"{key}.modbus: {n} registers exceed the device's "
                        f"max_registers_per_request {dev.max_registers_per_request}"
                    )
                occupied.setdefault((dev.id, m.function), []).append((i, start, start + n, m))
    for (dev_id, function), spans in occupied.items():
        spans.sort(key=lambda s: s[1])
        for a_idx, a in enumerate(spans):
            for b in spans[a_idx + 1 :]:
                if b[1] >= a[2]:
                    break
                same = (a[1], a[2], a[3].data_type, a[3].word_order, a[3].byte_order) == (
                    b[1],
                    b[2],
                    b[3].data_type,
                    b[3].word_order,
                    b[3].byte_order,
                )
                if not same:
                    p.append(
                        f"tags[{b[0]}].modbus: {function} registers {b[1]}..{b[2] - 1} of "
                        f"device {dev_id!r} overlap tags[{a[0]}] ({a[1]}..{a[2] - 1}) "
                        f"with a different type or order"
                    )
    # the limit model assumes a consistent plant (every tag in a known room): ask it only then
    p += _monitoring_problems(cfg, checks if not p else NO_CHECKS)
    return p


def _monitoring_problems(cfg: PlantConfig, checks: DomainChecks) -> list[str]:
    """Production sources and limits: known rooms and tags, limits consistent and inside
    their presets (the limit model's own validation, reported with key paths)."""
    p: list[str] = []
    rooms = {r.id for r in cfg.rooms}
    tags = {t.path for t in cfg.tags}
    p += _dupes("production", [s.room for s in cfg.production])
    for i, src in enumerate(cfg.production):
        if src.room not in rooms:
            p.append(f"production[{i}].room: unknown room (got {src.room!r})")
        for key in ("state_tag", "batch_tag"):
            tag = getattr(src, key)
            if tag is not None and tag not in tags:
                p.append(f"production[{i}].{key}: unknown tag (got {tag!r})")
    for i, entry in enumerate(cfg.limits):
        if entry.tag not in tags:
            p.append(f"limits[{i}].tag: unknown tag (got {entry.tag!r})")
    if p or checks.limits is None:
        return p
    return checks.limits(cfg)
