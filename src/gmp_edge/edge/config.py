"""Typed plant configuration, validated at load.

TOML in, pydantic v2 models out (``extra="forbid"`` everywhere). An invalid file
refuses to start with errors naming the file, the key path and the offending
value; nothing is repaired silently and loading never touches the network.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gmp_edge.collector.codec import DataType, Order, register_count
from gmp_edge.errors import GmpEdgeError
from gmp_edge.mqttlink.config import MqttConfig
from gmp_edge.notify.config import NotifyConfig

ID = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Grade(StrEnum):
    """EU GMP cleanroom grade; CNC is controlled-not-classified."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"
    CNC = "CNC"


class TagKind(StrEnum):
    """What a tag measures; limit presets and dashboards are chosen by kind."""

    PARTICLES_0_5 = "particles_0_5"
    PARTICLES_1_0 = "particles_1_0"
    PARTICLES_3_0 = "particles_3_0"
    PARTICLES_5_0 = "particles_5_0"
    DP = "dp"
    TEMPERATURE = "temperature"
    RH = "rh"
    PRESS_PARAMETER = "press_parameter"
    STATE = "state"
    BATCH_ID = "batch_id"
    STATUS = "status"
    OTHER = "other"


class Site(_Model):
    """The plant (ISA-95 site): first segment of every tag path."""

    id: ID
    name: str = ""


class Area(_Model):
    """A production area (ISA-95 area), e.g. solid-dose."""

    id: ID
    name: str = ""


class Room(_Model):
    """A room with its cleanroom classification and its neighbours (for DP pairs)."""

    id: ID
    area: ID
    name: str = ""
    grade: Grade | None = None
    iso_class: float | None = Field(default=None, ge=1, le=9)
    adjacent: list[ID] = Field(default_factory=list)


class ModbusDevice(_Model):
    """A Modbus TCP device (or a unit behind a gateway)."""

    id: ID
    protocol: Literal["modbus"]
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=247)
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)
    address_base: Literal[0, 1] = 0
    max_registers_per_request: int = Field(default=125, ge=1, le=125)
    max_register_gap: int = Field(default=0, ge=0, le=124)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    record_mode: Literal["none", "lighthouse"] = "none"
    float_word_order: Order = Order.BIG
    description: str = ""


class OpcuaDevice(_Model):
    """An OPC UA server, e.g. a tablet press controller."""

    id: ID
    protocol: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://.+")
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    security_policy: Literal[
        "None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"
    ] = "None"
    certificate: Path | None = None
    private_key: Path | None = None
    username: str | None = None
    password_env: str | None = None
    mode: Literal["subscription", "polling"] = "subscription"
    sampling_interval_ms: float = Field(default=500, ge=0)
    publishing_interval_ms: float = Field(default=1000, gt=0)
    queue_size: int = Field(default=100, ge=1)
    poll_interval_s: float = Field(default=1.0, gt=0)
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    description: str = ""

    @model_validator(mode="after")
    def _security_is_consistent(self) -> OpcuaDevice:
        if (self.security_mode == "None") != (self.security_policy == "None"):
            raise ValueError(
                f"security_mode={self.security_mode!r} and security_policy="
                f"{self.security_policy!r} must both be 'None' or both be set"
            )
        if self.security_mode != "None" and (self.certificate is None or self.private_key is None):
            raise ValueError("a secured endpoint needs certificate and private_key")
        return self


Device = Annotated[ModbusDevice | OpcuaDevice, Field(discriminator="protocol")]


class ModbusSource(_Model):
    """Where a tag lives in a Modbus device's register space."""

    function: Literal["holding", "input"] = "holding"
    address: int = Field(ge=0, le=65536)
    data_type: DataType
    word_order: Order | None = None
    byte_order: Order = Order.BIG
    length: int | None = Field(default=None, ge=1, le=125)
    scale: float = 1.0
    offset: float = 0.0
    invalid_raw: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> ModbusSource:
        if self.data_type is DataType.STRING and self.length is None:
            raise ValueError("a string needs length (registers)")
        if self.data_type is not DataType.STRING and self.length is not None:
            raise ValueError(f"length only applies to strings, not {self.data_type}")
        if self.word_order is not None and register_count(self.data_type, self.length) == 1:
            raise ValueError(f"word_order set on a 16-bit value ({self.data_type})")
        if self.scale == 0:
            raise ValueError("scale 0 would erase every value")
        return self


class RecordSource(_Model):
    """A field of a particle counter's stored sample record (record_mode devices)."""

    channel: int | None = Field(default=None, ge=1, le=16)
    analog: int | None = Field(default=None, ge=1, le=16)

    @model_validator(mode="after")
    def _exactly_one(self) -> RecordSource:
        if (self.channel is None) == (self.analog is None):
            raise ValueError("set exactly one of channel (particle count) or analog")
        return self


class OpcuaSource(_Model):
    """An OPC UA variable node."""

    node_id: str = Field(min_length=3)


class Tag(_Model):
    """A measured signal with an ISA-95 style path ``site/area/room/equipment/signal``."""

    path: str
    device: ID
    unit: str = ""
    kind: TagKind = TagKind.OTHER
    description: str = ""
    valid_min: float | None = None
    valid_max: float | None = None
    modbus: ModbusSource | None = None
    record: RecordSource | None = None
    opcua: OpcuaSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Tag:
        sources = [s for s in (self.modbus, self.record, self.opcua) if s is not None]
        if len(sources) != 1:
            raise ValueError("set exactly one of modbus, record or opcua")
        if (
            self.valid_min is not None
            and self.valid_max is not None
            and self.valid_min >= self.valid_max
        ):
            raise ValueError(f"valid_min {self.valid_min} must be below valid_max {self.valid_max}")
        return self

    @property
    def segments(self) -> list[str]:
        """The path split into site, area, room, equipment, signal."""
        return self.path.split("/")


class Equipment(_Model):
    """A qualified asset: a press, a particle counter, a transmitter."""

    id: ID
    kind: str
    room: ID
    name: str = ""
    qualified_until: date | None = None
    calibration_due: date | None = None


class StoreConfig(_Model):
    """The local durable store (the original record)."""

    path: Path = Path("var/gmp-edge.db")
    commit_interval_s: float = Field(default=0.5, gt=0, le=1.0)
    retention_days: int | None = Field(default=None, ge=1)
    # readings are folded into per-minute review segments this often (ADR 0018); a review
    # reads what is not folded yet from the readings table, so this trades indexing work
    # against review speed, never completeness
    segment_index_interval_s: float = Field(default=30.0, gt=0, le=3600)
    # the store (with its forwarding backlog) may grow to this; at 80 % an alarm is raised
    disk_budget_mb: float | None = Field(default=None, gt=0)


class ApiConfig(_Model):
    """Where the API and the status page listen, and how callers are let in."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    session_idle_minutes: float = Field(default=15, gt=0, le=24 * 60)
    session_max_hours: float = Field(default=12, gt=0, le=24 * 7)
    signin_attempts_per_minute_per_client: int = Field(default=20, ge=1, le=10_000)
    signin_attempts_per_minute_per_user: int = Field(default=5, ge=1, le=10_000)

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiConfig:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("api: tls_certfile and tls_keyfile go together (give both or none)")
        return self

    @property
    def tls(self) -> bool:
        """Whether the API serves HTTPS."""
        return self.tls_certfile is not None


class SecurityConfig(_Model):
    """Account rules (21 CFR 11.300)."""

    max_failed_signins: int = Field(default=5, ge=1, le=100)
    password_max_age_days: int | None = Field(default=90, ge=1)
    audit_anchor_minutes: float = Field(default=60, gt=0, le=24 * 60)


PriorityName = Literal["critical", "high", "medium", "low"]
StateName = Literal["at_rest", "in_operation"]


class TrendRule(_Model):
    """Out-of-trend detection on a tag: raises an OOT alert, not a deviation."""

    method: Literal["ewma", "cusum"] = "ewma"
    mean: float
    sigma: float = Field(gt=0)
    window: int = Field(default=60, ge=10, le=10_000)  # readings kept for the statistic


class LimitEntry(_Model):
    """Alert and action limits of one tag (Annex 1 §9: alert inside action).

    ``preset`` fills the limits from a regulatory or site preset (see docs); values
    given here override it and must stay inside it.
    """

    tag: str
    preset: Literal["annex1", "osd_room", "dp_min"] | None = None
    alert_high: float | None = None
    action_high: float | None = None
    alert_low: float | None = None
    action_low: float | None = None
    inclusive: bool = False  # True: a value equal to the limit is an excursion
    deadband: float = Field(default=0.0, ge=0)
    on_delay_s: float = Field(default=0.0, ge=0)
    off_delay_s: float = Field(default=0.0, ge=0)
    delay_justification: str = ""
    applies_in: list[StateName] | None = None
    continuous_monitoring: bool = False
    priority: PriorityName = "high"
    trend: TrendRule | None = None


class ProductionSource(_Model):
    """How the edge box knows whether a room is in operation, and which batch runs."""

    room: str
    state: StateName | None = None  # fixed state, or ...
    state_tag: str | None = None  # ... a tag whose value says it
    in_operation_values: list[str] = Field(default_factory=lambda: ["EXECUTE"])
    batch_tag: str | None = None  # a tag holding the running batch id (starts/ends batches)
    equipment: str | None = None
    product: str = "not stated by the equipment"

    @model_validator(mode="after")
    def _one_state_source(self) -> ProductionSource:
        if (self.state is None) == (self.state_tag is None):
            raise ValueError("give either state or state_tag")
        return self


class MonitoringConfig(_Model):
    """Limit evaluation, alarms and deviations."""

    limit_set_id: str = Field(default="site-limits", pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    evaluate_every_s: float = Field(default=0.2, gt=0, le=1.0)
    max_shelve_hours: float = Field(default=12, gt=0, le=24 * 7)
    realarm_minutes: float | None = Field(default=30, gt=0)
    escalate_after_minutes: float | None = Field(default=15, gt=0)


class InfluxConfig(_Model):
    """Where readings, alarm and deviation events are forwarded (InfluxDB 1.x or 2.x)."""

    version: Literal[1, 2] = 1
    url: str = Field(pattern=r"^https?://")
    database: str = "gmp_edge"  # 1.x, or a 2.x bucket's DBRP mapping for InfluxQL
    retention_policy: str | None = None
    username: str | None = None
    password_env: str | None = None  # name of the environment variable with the password
    org: str | None = None  # 2.x
    bucket: str | None = None  # 2.x
    token_env: str | None = None  # 2.x: name of the environment variable with the token
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    flush_interval_s: float = Field(default=1.0, gt=0, le=60)
    gzip: bool = True
    events: bool = True  # also alarm transitions and deviation events

    @model_validator(mode="after")
    def _v2_needs(self) -> InfluxConfig:
        if self.version == 2 and not (self.org and self.bucket and self.token_env):
            raise ValueError("influxdb: version 2 needs org, bucket and token_env")
        return self


class SimulationConfig(_Model):
    """The simulated plant `gmp-edge simulate` and `demo` start."""

    spec: Path


class PlantConfig(_Model):
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
    notify: NotifyConfig = NotifyConfig()
    influxdb: InfluxConfig | None = None
    mqtt: MqttConfig | None = None
    production: list[ProductionSource] = Field(default_factory=list)
    limits: list[LimitEntry] = Field(default_factory=list)
    simulation: SimulationConfig | None = None

    @model_validator(mode="after")
    def _cross_check(self) -> PlantConfig:
        problems = cross_check(self)
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


def cross_check(cfg: PlantConfig) -> list[str]:
    """Consistency checks across sections; each problem names its key path."""
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
    p += _monitoring_problems(cfg)
    return p


class ConfigError(GmpEdgeError):
    """The configuration is invalid; ``problems`` name file, key path and value."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  {path}: {x}" for x in problems)
        super().__init__(f"invalid configuration {path} ({len(problems)} problem(s)):\n{lines}")


def _loc(loc: tuple[Any, ...], data: Any) -> str:
    """Render a pydantic error location as a key path, naming list items by their id."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(node, list) and part < len(node):
                node = node[part]
                if isinstance(node, dict) and "id" in node:
                    label = f"[{part}]({node['id']})"
                elif isinstance(node, dict) and "path" in node:
                    label = f"[{part}]({node['path']})"
            else:
                node = None
            out += label
        else:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif part in ("modbus", "opcua"):  # discriminated-union branch name, not a key
                continue
            else:
                node = None
            out += ("." if out else "") + str(part)
    return out or "(top level)"


_ITEM = re.compile(r"^(areas|rooms|devices|equipment|tags)\[(\d+)\]")


def _label_items(line: str, data: dict[str, Any]) -> str:
    """Add the item's id (or path) to a leading ``section[i]`` so people can find it."""
    m = _ITEM.match(line)
    if not m:
        return line
    items = data.get(m.group(1))
    i = int(m.group(2))
    if not isinstance(items, list) or i >= len(items) or not isinstance(items[i], dict):
        return line
    name = items[i].get("id") or items[i].get("path")
    return line if name is None else f"{m.group(0)}({name}){line[m.end() :]}"


def parse_config(data: dict[str, Any], path: Path) -> PlantConfig:
    """Validate already-parsed TOML; raise :class:`ConfigError` with every problem."""
    try:
        return PlantConfig.model_validate(data)
    except ValidationError as exc:
        problems: list[str] = []
        for err in exc.errors(include_url=False):
            where = _loc(tuple(err["loc"]), data)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "value_error" and where == "(top level)":
                problems.extend(_label_items(line, data) for line in msg.splitlines())
                continue
            value = err.get("input")
            shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
            problems.append(f"{where}: {msg}{shown}")
        raise ConfigError(path, problems) from None


def load_config(path: str | Path) -> tuple[PlantConfig, str]:
    """Load and validate a TOML plant config; returns it with the file's SHA-256.

    Relative paths inside (store, simulation spec) are resolved against the file's folder.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(path, [f"cannot read: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    cfg = parse_config(data, path)
    base = path.resolve().parent
    updates: dict[str, Any] = {}
    if not cfg.store.path.is_absolute():
        updates["store"] = cfg.store.model_copy(update={"path": (base / cfg.store.path).resolve()})
    if cfg.api.tls_certfile is not None and cfg.api.tls_keyfile is not None:
        api = cfg.api.model_copy(
            update={
                "tls_certfile": (base / cfg.api.tls_certfile).resolve(),
                "tls_keyfile": (base / cfg.api.tls_keyfile).resolve(),
            }
        )
        for name, file in (("tls_certfile", api.tls_certfile), ("tls_keyfile", api.tls_keyfile)):
            if file is None or not file.is_file():
                raise ConfigError(path, [f"api.{name}: no such file (got {str(file)!r})"])
        updates["api"] = api
    if cfg.simulation is not None and not cfg.simulation.spec.is_absolute():
        updates["simulation"] = SimulationConfig(spec=(base / cfg.simulation.spec).resolve())
    if updates:
        cfg = cfg.model_copy(update=updates)
    return cfg, hashlib.sha256(raw).hexdigest()


def _monitoring_problems(cfg: PlantConfig) -> list[str]:
    """Production sources and limits: known rooms and tags, limits consistent and inside
    their presets (the limit model's own validation, reported with key paths)."""
    from gmp_edge.monitoring.setup import LimitConfigError, build_limit_set  # the limit model

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
    if p:
        return p
    try:
        build_limit_set(cfg, "check", 0)
    except LimitConfigError as exc:
        p += exc.problems
    return p
