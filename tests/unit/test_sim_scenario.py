"""The scenario engine, table by table: which effects are active at which time."""

from __future__ import annotations

import pytest

from gmp_edge.simulators.scenario import (
    NOMINAL,
    DisconnectMode,
    EventKind,
    Scenario,
    ScenarioEvent,
    TargetEffects,
    effects_at,
)

K = EventKind


def ev(
    at: float, kind: EventKind, target: str = "d", dur: float = 60.0, **kw: object
) -> ScenarioEvent:
    return ScenarioEvent(at_s=at, kind=kind, target=target, duration_s=dur, **kw)  # type: ignore[arg-type]


CASES: list[tuple[str, list[ScenarioEvent], float, dict[str, TargetEffects]]] = [
    ("nothing scheduled", [], 10, {}),
    ("before start", [ev(100, K.PARTICLE_BURST, magnitude=20)], 99.9, {}),
    (
        "at start (inclusive)",
        [ev(100, K.PARTICLE_BURST, magnitude=20)],
        100,
        {"d": TargetEffects(particle_factor=20)},
    ),
    ("at end (exclusive)", [ev(100, K.PARTICLE_BURST, magnitude=20)], 160, {}),
    (
        "default burst factor",
        [ev(0, K.PARTICLE_BURST)],
        1,
        {"d": TargetEffects(particle_factor=10)},
    ),
    (
        "bursts multiply",
        [ev(0, K.PARTICLE_BURST, magnitude=2), ev(5, K.PARTICLE_BURST, magnitude=3)],
        10,
        {"d": TargetEffects(particle_factor=6)},
    ),
    (
        "temperature ramps up over the first third",
        [ev(0, K.TEMPERATURE_EXCURSION, dur=90, magnitude=3)],
        15,
        {"d": TargetEffects(temperature_offset_c=1.5)},
    ),
    (
        "temperature holds in the middle third",
        [ev(0, K.TEMPERATURE_EXCURSION, dur=90, magnitude=3)],
        45,
        {"d": TargetEffects(temperature_offset_c=3.0)},
    ),
    (
        "temperature recovers over the last third",
        [ev(0, K.TEMPERATURE_EXCURSION, dur=90, magnitude=3)],
        75,
        {"d": TargetEffects(temperature_offset_c=1.5)},
    ),
    (
        "dp inversion default channel 1",
        [ev(0, K.DP_INVERSION, magnitude=4)],
        1,
        {"d": TargetEffects(dp_override_pa={1: -4.0})},
    ),
    (
        "dp inversion channel 2, sign forced negative",
        [ev(0, K.DP_INVERSION, magnitude=-6, channel=2)],
        1,
        {"d": TargetEffects(dp_override_pa={2: -6.0})},
    ),
    (
        "force drift per minute",
        [ev(0, K.PRESS_FORCE_DRIFT, target="press", dur=600, magnitude=0.5)],
        120,
        {"press": TargetEffects(force_drift_kn=1.0)},
    ),
    (
        "disconnect defaults to silent",
        [ev(0, K.DEVICE_DISCONNECT)],
        1,
        {"d": TargetEffects(disconnect=DisconnectMode.SILENT)},
    ),
    (
        "later disconnect mode wins",
        [
            ev(0, K.DEVICE_DISCONNECT, mode=DisconnectMode.SILENT),
            ev(5, K.DEVICE_DISCONNECT, mode=DisconnectMode.RESET),
        ],
        6,
        {"d": TargetEffects(disconnect=DisconnectMode.RESET)},
    ),
    ("exception default 4", [ev(0, K.MODBUS_EXCEPTION)], 1, {"d": TargetEffects(exception_code=4)}),
    (
        "exception code from magnitude",
        [ev(0, K.MODBUS_EXCEPTION, magnitude=6)],
        1,
        {"d": TargetEffects(exception_code=6)},
    ),
    ("frozen", [ev(0, K.FROZEN_VALUE)], 1, {"d": TargetEffects(frozen=True)}),
    (
        "garbage registers unite",
        [
            ev(0, K.GARBAGE_REGISTER, registers=(0, 1)),
            ev(0, K.GARBAGE_REGISTER, registers=(4,)),
        ],
        1,
        {"d": TargetEffects(garbage_registers=frozenset({0, 1, 4}))},
    ),
    (
        "server restart",
        [ev(30, K.SERVER_RESTART, target="gw", dur=5)],
        32,
        {"gw": TargetEffects(server_down=True)},
    ),
    ("server restart over", [ev(30, K.SERVER_RESTART, target="gw", dur=5)], 35, {}),
    (
        "targets are independent",
        [ev(0, K.FROZEN_VALUE, target="a"), ev(0, K.PARTICLE_BURST, target="b", magnitude=2)],
        1,
        {"a": TargetEffects(frozen=True), "b": TargetEffects(particle_factor=2)},
    ),
    (
        "effects of different kinds combine",
        [
            ev(0, K.TEMPERATURE_EXCURSION, dur=3, magnitude=2),
            ev(0, K.GARBAGE_REGISTER, registers=(7,)),
        ],
        1.5,
        {"d": TargetEffects(temperature_offset_c=2.0, garbage_registers=frozenset({7}))},
    ),
]


@pytest.mark.parametrize(("name", "events", "t", "expected"), CASES, ids=[c[0] for c in CASES])
def test_effects_at(
    name: str, events: list[ScenarioEvent], t: float, expected: dict[str, TargetEffects]
) -> None:
    got = effects_at(events, t)
    assert got.keys() == expected.keys()
    for target, effects in expected.items():
        assert got[target].temperature_offset_c == pytest.approx(effects.temperature_offset_c)
        assert got[target].force_drift_kn == pytest.approx(effects.force_drift_kn)
        assert _without_floats(got[target]) == _without_floats(effects)


def _without_floats(effects: TargetEffects) -> TargetEffects:
    from dataclasses import replace

    return replace(effects, temperature_offset_c=0.0, force_drift_kn=0.0)


def test_pure_and_deterministic() -> None:
    events = [ev(0, K.TEMPERATURE_EXCURSION, dur=90, magnitude=3), ev(10, K.PARTICLE_BURST)]
    given = list(events)
    first = effects_at(events, 20)
    assert set(first) == {"d"} and not first["d"].nominal  # both events are active at 20 s
    assert first["d"].particle_factor == 10
    assert first == effects_at(list(reversed(events)), 20)  # the order does not matter
    assert first == effects_at(events, 20)  # a second call gives the same
    assert events == given  # and the events are left as they were


def test_scenario_inject_and_end_active() -> None:
    scenario = Scenario([ev(100, K.PARTICLE_BURST, magnitude=5)])
    scenario.add(ev(0, K.FROZEN_VALUE, target="x").shifted_to(40))
    assert scenario.effects_for("x", 41).frozen
    assert scenario.effects_for("x", 39) is NOMINAL
    scenario.end_active(50)  # ends the frozen event; the burst at 100 is still to come
    assert scenario.effects_for("x", 51) is NOMINAL
    assert scenario.effects_for("d", 120).particle_factor == 5


def test_nominal_flag() -> None:
    assert NOMINAL.nominal
    assert not TargetEffects(frozen=True).nominal
