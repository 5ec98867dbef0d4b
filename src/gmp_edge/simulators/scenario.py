"""Deterministic scenario engine: which faults and excursions are active at a given time.

A scenario is a list of :class:`ScenarioEvent`, each starting ``at_s`` seconds after plant
start and lasting ``duration_s``. :func:`effects_at` folds the events active at time ``t``
into one :class:`TargetEffects` per target (a device id, or an endpoint id for
``server_restart``). Pure: no clock, no I/O, so it is tested table by table.

How events of the same target combine: temperature offsets and force drifts add, particle
factors multiply, garbage registers unite, and for the single-valued effects (DP channel
value, disconnect mode, exception code) the event that started last wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum


class EventKind(StrEnum):
    """The kinds of scenario event."""

    TEMPERATURE_EXCURSION = "temperature_excursion"
    PARTICLE_BURST = "particle_burst"
    DP_INVERSION = "dp_inversion"
    PRESS_FORCE_DRIFT = "press_force_drift"
    DEVICE_DISCONNECT = "device_disconnect"
    MODBUS_EXCEPTION = "modbus_exception"
    FROZEN_VALUE = "frozen_value"
    GARBAGE_REGISTER = "garbage_register"
    SERVER_RESTART = "server_restart"


class DisconnectMode(StrEnum):
    """How a disconnected device behaves (``mode`` of device_disconnect)."""

    SILENT = "silent"
    RESET = "reset"


# Magnitude used when an event gives none, and what it means.
DEFAULT_MAGNITUDE: Mapping[EventKind, float] = {
    EventKind.TEMPERATURE_EXCURSION: 5.0,  # degC above normal at the plateau
    EventKind.PARTICLE_BURST: 10.0,  # concentration multiplier
    EventKind.DP_INVERSION: 5.0,  # the DP channel reads -5 Pa
    EventKind.PRESS_FORCE_DRIFT: 0.5,  # kN per minute
    EventKind.MODBUS_EXCEPTION: 4.0,  # exception code: device failure
}

# A temperature excursion rises over the first third, holds, and recovers over the last third.
RAMP_FRACTION = 1.0 / 3.0


@dataclass(frozen=True)
class ScenarioEvent:
    """One scripted disturbance of one target."""

    at_s: float
    kind: EventKind
    target: str
    duration_s: float
    magnitude: float | None = None
    mode: DisconnectMode | None = None
    registers: tuple[int, ...] = ()
    channel: int = 1

    @property
    def end_s(self) -> float:
        """Seconds after plant start when the event is over."""
        return self.at_s + self.duration_s

    @property
    def value(self) -> float:
        """The magnitude, or the kind's default when none was given."""
        if self.magnitude is not None:
            return self.magnitude
        return DEFAULT_MAGNITUDE.get(self.kind, 0.0)

    def active_at(self, t: float) -> bool:
        """True when ``t`` lies in [at_s, at_s + duration_s)."""
        return self.at_s <= t < self.end_s

    def shifted_to(self, at_s: float) -> ScenarioEvent:
        """The same event starting at ``at_s`` (used to inject an event "now")."""
        return replace(self, at_s=at_s)


@dataclass(frozen=True)
class TargetEffects:
    """Everything active on one target at one instant; the default is "nominal"."""

    temperature_offset_c: float = 0.0
    particle_factor: float = 1.0
    dp_override_pa: Mapping[int, float] = field(default_factory=dict)
    force_drift_kn: float = 0.0
    frozen: bool = False
    disconnect: DisconnectMode | None = None
    exception_code: int | None = None
    garbage_registers: frozenset[int] = frozenset()
    server_down: bool = False

    @property
    def nominal(self) -> bool:
        """True when nothing is disturbing the target."""
        return self == NOMINAL


NOMINAL = TargetEffects()


def temperature_offset(event: ScenarioEvent, t: float) -> float:
    """Trapezoid: 0 -> magnitude over the first third, hold, back to 0 over the last third."""
    if not event.active_at(t) or event.duration_s <= 0:
        return 0.0
    ramp = event.duration_s * RAMP_FRACTION
    into = t - event.at_s
    left = event.end_s - t
    return event.value * min(1.0, into / ramp, left / ramp)


def force_drift(event: ScenarioEvent, t: float) -> float:
    """Linear drift: magnitude kN per minute since the event started."""
    if not event.active_at(t):
        return 0.0
    return event.value * (t - event.at_s) / 60.0


def _apply(effects: TargetEffects, event: ScenarioEvent, t: float) -> TargetEffects:
    match event.kind:
        case EventKind.TEMPERATURE_EXCURSION:
            offset = effects.temperature_offset_c + temperature_offset(event, t)
            return replace(effects, temperature_offset_c=offset)
        case EventKind.PARTICLE_BURST:
            return replace(effects, particle_factor=effects.particle_factor * event.value)
        case EventKind.DP_INVERSION:
            override = {**effects.dp_override_pa, event.channel: -abs(event.value)}
            return replace(effects, dp_override_pa=override)
        case EventKind.PRESS_FORCE_DRIFT:
            return replace(effects, force_drift_kn=effects.force_drift_kn + force_drift(event, t))
        case EventKind.DEVICE_DISCONNECT:
            return replace(effects, disconnect=event.mode or DisconnectMode.SILENT)
        case EventKind.MODBUS_EXCEPTION:
            return replace(effects, exception_code=int(event.value))
        case EventKind.FROZEN_VALUE:
            return replace(effects, frozen=True)
        case EventKind.GARBAGE_REGISTER:
            garbage = effects.garbage_registers | frozenset(event.registers)
            return replace(effects, garbage_registers=garbage)
        case EventKind.SERVER_RESTART:
            return replace(effects, server_down=True)
    raise ValueError(f"unknown event kind {event.kind!r}")  # pragma: no cover


def active_events(events: Iterable[ScenarioEvent], t: float) -> list[ScenarioEvent]:
    """The events active at ``t``, in start order (stable for equal starts)."""
    return sorted((e for e in events if e.active_at(t)), key=lambda e: e.at_s)


def effects_at(events: Iterable[ScenarioEvent], t: float) -> dict[str, TargetEffects]:
    """Fold the events active at ``t`` into effects per target; absent targets are nominal."""
    result: dict[str, TargetEffects] = {}
    for event in active_events(events, t):
        result[event.target] = _apply(result.get(event.target, NOMINAL), event, t)
    return result


class Scenario:
    """A mutable list of events on a time axis (plant-relative seconds)."""

    def __init__(self, events: Iterable[ScenarioEvent] = ()) -> None:
        self.events: list[ScenarioEvent] = list(events)

    def add(self, event: ScenarioEvent) -> None:
        """Schedule one more event."""
        self.events.append(event)

    def end_active(self, t: float) -> None:
        """Drop every event that has started by ``t``; events still to come stay."""
        self.events = [e for e in self.events if e.at_s > t]

    def effects_at(self, t: float) -> dict[str, TargetEffects]:
        """Effects per target at ``t`` (see :func:`effects_at`)."""
        return effects_at(self.events, t)

    def effects_for(self, target: str, t: float) -> TargetEffects:
        """Effects on one target at ``t``."""
        return self.effects_at(t).get(target, NOMINAL)
