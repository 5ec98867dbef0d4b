"""The simulated plant's description: TOML in, validated dataclasses out.

Every error names the offending key by its path, e.g.
``modbus[0].units[1].sample_time_s: must be >= 1, got 0``. Unknown keys are errors too, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gmp_edge.errors import GmpEdgeError
from gmp_edge.simulators.scenario import DisconnectMode, EventKind, ScenarioEvent


class SpecError(GmpEdgeError, ValueError):
    """The spec is invalid; the message names the key."""


PRESS_STATES = ("IDLE", "EXECUTE", "HELD", "STOPPED")


def _range(
    *, gt: float | None = None, ge: float | None = None, le: float | None = None
) -> dict[str, float]:
    return {k: v for k, v in (("gt", gt), ("ge", ge), ("le", le)) if v is not None}


@dataclass(frozen=True)
class ParticleCounterParams:
    """Lighthouse REMOTE 5104-like airborne particle counter."""

    conc_0_5: float = field(default=50_000.0, metadata=_range(ge=0))  # particles/m3 >= 0.5 um
    conc_1_0: float | None = field(default=None, metadata=_range(ge=0))  # None: power law
    conc_3_0: float | None = field(default=None, metadata=_range(ge=0))  # None: power law
    conc_5_0: float = field(default=300.0, metadata=_range(ge=0))  # particles/m3 >= 5.0 um
    flow_cfm: float = field(default=1.0, metadata=_range(gt=0, le=655.35))
    sample_time_s: int = field(default=60, metadata=_range(ge=1, le=86_399))
    record_capacity: int = field(default=1000, metadata=_range(ge=1, le=65_534))
    location: int = field(default=1, metadata=_range(ge=1, le=200))
    serial_number: int = field(default=51_040_001, metadata=_range(ge=0, le=0xFFFF_FFFF))
    temperature_c: float = field(default=21.0, metadata=_range(ge=-40, le=80))
    rh_pct: float = field(default=45.0, metadata=_range(ge=0, le=100))


@dataclass(frozen=True)
class TrhParams:
    """Vaisala HMT330-like temperature / relative humidity transmitter."""

    temperature_c: float = field(default=21.0, metadata=_range(ge=-40, le=80))
    rh_pct: float = field(default=45.0, metadata=_range(ge=0, le=100))


@dataclass(frozen=True)
class DpParams:
    """Two-channel differential pressure transmitter (Huba 699M-like, signed)."""

    dp1_pa: float = field(default=15.0, metadata=_range(ge=-1250, le=1250))
    dp2_pa: float = field(default=12.0, metadata=_range(ge=-1250, le=1250))
    temperature_c: float = field(default=22.0, metadata=_range(ge=-40, le=80))


@dataclass(frozen=True)
class PressParams:
    """Rotary tablet press on OPC UA; set points around which the values wander."""

    batch_id: str = ""
    state: str = "EXECUTE"
    main_force_kn: float = field(default=15.0, metadata=_range(gt=0, le=100))
    pre_force_kn: float = field(default=2.0, metadata=_range(ge=0, le=100))
    turret_speed_rpm: float = field(default=40.0, metadata=_range(gt=0, le=200))
    stations: int = field(default=36, metadata=_range(ge=1, le=100))
    ejection_force_n: float = field(default=300.0, metadata=_range(ge=0, le=5000))
    fill_depth_mm: float = field(default=10.0, metadata=_range(gt=0, le=30))
    tablet_weight_mg: float = field(default=250.0, metadata=_range(gt=0, le=5000))
    hardness_n: float = field(default=90.0, metadata=_range(gt=0, le=1000))


DeviceParams = ParticleCounterParams | TrhParams | DpParams

MODELS: Mapping[str, type[ParticleCounterParams] | type[TrhParams] | type[DpParams]] = {
    "particle_counter": ParticleCounterParams,
    "trh_transmitter": TrhParams,
    "dp_transmitter": DpParams,
}


@dataclass(frozen=True)
class UnitSpec:
    """One Modbus unit (device) behind an endpoint."""

    unit_id: int
    id: str
    model: str
    params: DeviceParams


@dataclass(frozen=True)
class ModbusEndpointSpec:
    """One Modbus TCP endpoint: a device with its own address, or a gateway."""

    id: str
    host: str
    port: int
    units: tuple[UnitSpec, ...]


@dataclass(frozen=True)
class OpcUaServerSpec:
    """One OPC UA server exposing a tablet press."""

    id: str
    host: str
    port: int
    press: PressParams


@dataclass(frozen=True)
class PlantSpec:
    """The whole simulated plant."""

    seed: int = 0
    tick_s: float = 0.5
    modbus: tuple[ModbusEndpointSpec, ...] = ()
    opcua: tuple[OpcUaServerSpec, ...] = ()
    scenario: tuple[ScenarioEvent, ...] = ()

    def unit(self, device_id: str) -> tuple[ModbusEndpointSpec, UnitSpec]:
        """The endpoint and unit of a Modbus device id (KeyError when unknown)."""
        for endpoint in self.modbus:
            for unit in endpoint.units:
                if unit.id == device_id:
                    return endpoint, unit
        raise KeyError(device_id)


# ---------------------------------------------------------------------------------------------
# Loading


def load_spec(path: str | Path) -> PlantSpec:
    """Read and validate a spec file; errors name the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return parse_spec(data)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from exc


def parse_spec(data: Mapping[str, Any]) -> PlantSpec:
    """Validate an already-parsed TOML document."""
    _no_unknown(data, {"seed", "tick_s", "modbus", "opcua", "scenario"}, "")
    seed = _typed(data.get("seed", 0), int, "seed")
    tick_s = _typed(data.get("tick_s", 0.5), float, "tick_s")
    if not 0 < tick_s <= 10:
        raise SpecError(f"tick_s: must be > 0 and <= 10, got {tick_s}")
    modbus = tuple(_endpoint(t, f"modbus[{i}]") for i, t in enumerate(_tables(data, "modbus", "")))
    opcua = tuple(_opcua(t, f"opcua[{i}]") for i, t in enumerate(_tables(data, "opcua", "")))
    spec = PlantSpec(seed=seed, tick_s=tick_s, modbus=modbus, opcua=opcua)
    _check_ids(spec)
    scenario = tuple(
        _event(t, f"scenario[{i}]", spec) for i, t in enumerate(_tables(data, "scenario", ""))
    )
    return dataclasses.replace(spec, scenario=scenario)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _no_unknown(table: Mapping[str, Any], allowed: set[str], path: str) -> None:
    for key in table:
        if key not in allowed:
            raise SpecError(
                f"{_join(path, key)}: unknown key (allowed: {', '.join(sorted(allowed))})"
            )


def _tables(table: Mapping[str, Any], key: str, path: str) -> list[Mapping[str, Any]]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise SpecError(f"{_join(path, key)}: must be an array of tables ([[{key}]])")
    return value


def _required(table: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in table:
        raise SpecError(f"{_join(path, key)}: required key missing")
    return table[key]


T = TypeVar("T")


def _typed(value: Any, kind: type[T], path: str) -> T:
    """Check a TOML value's type; ints are accepted where floats are expected."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, float) and not math.isfinite(value):
        ok = False
    if not ok:
        names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
        raise SpecError(f"{path}: must be {names.get(kind, kind.__name__)}, got {value!r}")
    return typing.cast(T, value)


def _port(table: Mapping[str, Any], path: str) -> int:
    port = _typed(_required(table, "port", path), int, _join(path, "port"))
    if not 0 <= port <= 65535:
        raise SpecError(f"{_join(path, 'port')}: must be 0..65535 (0 = any free port), got {port}")
    return port


def _ident(table: Mapping[str, Any], path: str) -> str:
    ident = _typed(_required(table, "id", path), str, _join(path, "id"))
    if not ident or not ident.strip() or ident != ident.strip():
        raise SpecError(f"{_join(path, 'id')}: must be a non-empty name without edge spaces")
    return ident


P = TypeVar("P")


def _params(cls: type[P], table: Mapping[str, Any], path: str, skip: set[str]) -> P:
    """Build a params dataclass from the table's remaining keys, checking types and ranges."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    _no_unknown({k: v for k, v in table.items() if k not in skip}, set(fields), path)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in table:
            continue
        kind = hints[name]
        inner = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
        value = _typed(table[name], inner, _join(path, name))
        limits = f.metadata
        if "gt" in limits and not value > limits["gt"]:
            raise SpecError(f"{_join(path, name)}: must be > {limits['gt']}, got {value}")
        if "ge" in limits and not value >= limits["ge"]:
            raise SpecError(f"{_join(path, name)}: must be >= {limits['ge']}, got {value}")
        if "le" in limits and not value <= limits["le"]:
            raise SpecError(f"{_join(path, name)}: must be <= {limits['le']}, got {value}")
        kwargs[name] = value
    return cls(**kwargs)


def _endpoint(table: Mapping[str, Any], path: str) -> ModbusEndpointSpec:
    _no_unknown(table, {"id", "host", "port", "units"}, path)
    units = tuple(
        _unit(t, f"{path}.units[{i}]") for i, t in enumerate(_tables(table, "units", path))
    )
    if not units:
        raise SpecError(f"{path}.units: an endpoint needs at least one [[modbus.units]]")
    seen: dict[int, int] = {}
    for i, unit in enumerate(units):
        if unit.unit_id in seen:
            first = seen[unit.unit_id]
            raise SpecError(
                f"{path}.units[{i}].unit_id: {unit.unit_id} already used by units[{first}]"
            )
        seen[unit.unit_id] = i
    host = _typed(table.get("host", "127.0.0.1"), str, _join(path, "host"))
    return ModbusEndpointSpec(_ident(table, path), host, _port(table, path), units)


def _unit(table: Mapping[str, Any], path: str) -> UnitSpec:
    unit_id = _typed(_required(table, "unit_id", path), int, _join(path, "unit_id"))
    if not 1 <= unit_id <= 247:
        raise SpecError(f"{_join(path, 'unit_id')}: must be 1..247, got {unit_id}")
    model = _typed(_required(table, "model", path), str, _join(path, "model"))
    if model not in MODELS:
        raise SpecError(
            f"{_join(path, 'model')}: unknown model {model!r} (known: {', '.join(MODELS)})"
        )
    params = _params(MODELS[model], table, path, skip={"unit_id", "id", "model"})
    if isinstance(params, ParticleCounterParams):
        _check_size_distribution(params, path)
    return UnitSpec(unit_id, _ident(table, path), model, params)


def _check_size_distribution(params: ParticleCounterParams, path: str) -> None:
    # Cumulative channels: more particles >= 0.5 um than >= 1.0 um, and so on.
    chain = [("conc_0_5", params.conc_0_5), ("conc_1_0", params.conc_1_0)]
    chain += [("conc_3_0", params.conc_3_0), ("conc_5_0", params.conc_5_0)]
    given = [(k, v) for k, v in chain if v is not None]
    for (k_big, big), (k_small, small) in itertools.pairwise(given):
        if small > big:
            raise SpecError(
                f"{_join(path, k_small)}: {small} exceeds {k_big} = {big}; "
                "cumulative concentrations must not increase with particle size"
            )


def _opcua(table: Mapping[str, Any], path: str) -> OpcUaServerSpec:
    host = _typed(table.get("host", "127.0.0.1"), str, _join(path, "host"))
    press = _params(PressParams, table, path, skip={"id", "host", "port"})
    if press.state not in PRESS_STATES:
        raise SpecError(
            f"{_join(path, 'state')}: must be one of {', '.join(PRESS_STATES)}, got {press.state!r}"
        )
    return OpcUaServerSpec(_ident(table, path), host, _port(table, path), press)


def _check_ids(spec: PlantSpec) -> None:
    seen: dict[str, str] = {}
    listen: dict[tuple[str, int], str] = {}

    def claim(ident: str, path: str) -> None:
        if ident in seen:
            raise SpecError(f"{path}: id {ident!r} already used at {seen[ident]}")
        seen[ident] = path

    def bind(host: str, port: int, path: str) -> None:
        if port and (host, port) in listen:
            raise SpecError(f"{path}: {host}:{port} already used by {listen[(host, port)]}")
        listen[(host, port)] = path

    for i, endpoint in enumerate(spec.modbus):
        claim(endpoint.id, f"modbus[{i}].id")
        bind(endpoint.host, endpoint.port, f"modbus[{i}].port")
        for j, unit in enumerate(endpoint.units):
            claim(unit.id, f"modbus[{i}].units[{j}].id")
    for i, server in enumerate(spec.opcua):
        claim(server.id, f"opcua[{i}].id")
        bind(server.host, server.port, f"opcua[{i}].port")


# Which targets each event kind may name.
_ENDPOINT_KINDS = {EventKind.SERVER_RESTART}
_UNIT_KINDS = {
    EventKind.DEVICE_DISCONNECT,
    EventKind.MODBUS_EXCEPTION,
    EventKind.GARBAGE_REGISTER,
}
_MODEL_KINDS: Mapping[EventKind, set[str]] = {
    EventKind.TEMPERATURE_EXCURSION: {"particle_counter", "trh_transmitter", "dp_transmitter"},
    EventKind.PARTICLE_BURST: {"particle_counter"},
    EventKind.DP_INVERSION: {"dp_transmitter"},
    EventKind.PRESS_FORCE_DRIFT: {"tablet_press"},
}


def _target_model(spec: PlantSpec, target: str) -> str | None:
    """'endpoint', 'opcua', a Modbus model name, or None when the id is unknown."""
    for endpoint in spec.modbus:
        if endpoint.id == target:
            return "endpoint"
        for unit in endpoint.units:
            if unit.id == target:
                return unit.model
    if any(server.id == target for server in spec.opcua):
        return "tablet_press"
    return None


def _check_target(event: ScenarioEvent, spec: PlantSpec, path: str) -> None:
    model = _target_model(spec, event.target)
    where = _join(path, "target")
    if model is None:
        raise SpecError(f"{where}: no device or endpoint with id {event.target!r}")
    kind = event.kind
    if kind in _ENDPOINT_KINDS:
        ok = model in ("endpoint", "tablet_press")
        need = "a Modbus endpoint id or an OPC UA server id"
    elif kind in _UNIT_KINDS:
        ok = model in MODELS
        need = "a Modbus device id"
    elif kind is EventKind.FROZEN_VALUE:
        ok = model in MODELS or model == "tablet_press"
        need = "a device id"
    else:
        ok = model in _MODEL_KINDS[kind]
        need = "a " + " or ".join(sorted(_MODEL_KINDS[kind]))
    if not ok:
        raise SpecError(f"{where}: {kind.value} needs {need}; {event.target!r} is a {model}")


def _event(table: Mapping[str, Any], path: str, spec: PlantSpec) -> ScenarioEvent:
    allowed = {"at_s", "kind", "target", "duration_s", "magnitude", "mode", "registers", "channel"}
    _no_unknown(table, allowed, path)
    kind_name = _typed(_required(table, "kind", path), str, _join(path, "kind"))
    try:
        kind = EventKind(kind_name)
    except ValueError:
        known = ", ".join(k.value for k in EventKind)
        raise SpecError(
            f"{_join(path, 'kind')}: unknown kind {kind_name!r} (known: {known})"
        ) from None
    at_s = _typed(_required(table, "at_s", path), float, _join(path, "at_s"))
    duration_s = _typed(_required(table, "duration_s", path), float, _join(path, "duration_s"))
    if at_s < 0:
        raise SpecError(f"{_join(path, 'at_s')}: must be >= 0, got {at_s}")
    if duration_s <= 0:
        raise SpecError(f"{_join(path, 'duration_s')}: must be > 0, got {duration_s}")
    magnitude = None
    if "magnitude" in table:
        magnitude = _typed(table["magnitude"], float, _join(path, "magnitude"))
    mode = None
    if "mode" in table:
        mode_name = _typed(table["mode"], str, _join(path, "mode"))
        if kind is not EventKind.DEVICE_DISCONNECT:
            raise SpecError(f"{_join(path, 'mode')}: only device_disconnect takes a mode")
        if mode_name not in {m.value for m in DisconnectMode}:
            raise SpecError(
                f"{_join(path, 'mode')}: must be 'silent' or 'reset', got {mode_name!r}"
            )
        mode = DisconnectMode(mode_name)
    registers: tuple[int, ...] = ()
    if "registers" in table:
        raw = table["registers"]
        if not isinstance(raw, list):
            raise SpecError(f"{_join(path, 'registers')}: must be a list of register addresses")
        registers = tuple(
            _typed(r, int, f"{_join(path, 'registers')}[{i}]") for i, r in enumerate(raw)
        )
        bad = [r for r in registers if not 0 <= r <= 0xFFFF]
        if bad:
            raise SpecError(f"{_join(path, 'registers')}: addresses must be 0..65535, got {bad}")
    channel = _typed(table.get("channel", 1), int, _join(path, "channel"))
    target = _typed(_required(table, "target", path), str, _join(path, "target"))
    event = ScenarioEvent(at_s, kind, target, duration_s, magnitude, mode, registers, channel)
    check_event(event, spec, path)
    return event


def check_event(event: ScenarioEvent, spec: PlantSpec, path: str = "event") -> None:
    """Check an event's values and that its target exists and suits its kind (SpecError)."""
    if event.duration_s <= 0:
        raise SpecError(f"{_join(path, 'duration_s')}: must be > 0, got {event.duration_s}")
    _check_event_values(event, path)
    _check_target(event, spec, path)


def _check_event_values(event: ScenarioEvent, path: str) -> None:
    magnitude = _join(path, "magnitude")
    if event.kind is EventKind.GARBAGE_REGISTER and not event.registers:
        raise SpecError(f"{_join(path, 'registers')}: garbage_register needs a non-empty list")
    if event.kind is EventKind.DP_INVERSION and event.channel not in (1, 2):
        raise SpecError(f"{_join(path, 'channel')}: must be 1 or 2, got {event.channel}")
    if event.kind is EventKind.PARTICLE_BURST and event.value <= 0:
        raise SpecError(f"{magnitude}: a particle burst factor must be > 0, got {event.value}")
    if event.kind is EventKind.MODBUS_EXCEPTION:
        code = event.value
        if code != int(code) or not 1 <= code <= 255:
            raise SpecError(f"{magnitude}: must be an exception code 1..255, got {code}")
