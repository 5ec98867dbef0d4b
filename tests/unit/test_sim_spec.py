"""Spec loading: the example file is valid, and each error names its key (on a small spec
built here, so every list position below is the test's own)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from gmp_edge.simulators.scenario import EventKind, ScenarioEvent
from gmp_edge.simulators.spec import (
    ParticleCounterParams,
    PlantSpec,
    SpecError,
    check_event,
    load_spec,
    parse_spec,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sim-solid-dose.toml"


def test_example_spec_loads() -> None:
    spec = load_spec(EXAMPLE)
    assert spec.seed == 42
    endpoints = {e.id: (e.port, {u.id for u in e.units}) for e in spec.modbus}
    assert endpoints == {
        "gw-granulation": (15020, {"pc-gran-01", "trh-gran-01", "dp-gran-01"}),
        "gw-compression": (15021, {"pc-comp-01", "trh-comp-01"}),
    }
    endpoint, unit = spec.unit("pc-gran-01")
    assert endpoint.id == "gw-granulation" and unit.unit_id == 1
    assert isinstance(unit.params, ParticleCounterParams)
    assert unit.params.sample_time_s == 6
    (press,) = [e for e in spec.opcua if e.id == "press-01"]
    assert press.port == 4840 and press.press.batch_id == "B-2026-0001"
    assert {e.kind for e in spec.scenario} == {
        EventKind.PARTICLE_BURST,
        EventKind.PRESS_FORCE_DRIFT,
        EventKind.TEMPERATURE_EXCURSION,
    }


BASE: dict[str, Any] = {
    "seed": 42,
    "tick_s": 0.5,
    "modbus": [
        {
            "id": "gw-1",
            "host": "127.0.0.1",
            "port": 15020,
            "units": [
                {
                    "unit_id": 1,
                    "id": "pc-01",
                    "model": "particle_counter",
                    "conc_0_5": 150_000.0,
                    "conc_5_0": 900.0,
                    "flow_cfm": 1.0,
                    "sample_time_s": 6,
                },
                {"unit_id": 2, "id": "trh-01", "model": "trh_transmitter"},
                {"unit_id": 3, "id": "dp-01", "model": "dp_transmitter"},
            ],
        },
        {
            "id": "gw-2",
            "host": "127.0.0.1",
            "port": 15021,
            "units": [{"unit_id": 1, "id": "trh-02", "model": "trh_transmitter"}],
        },
    ],
    "opcua": [{"id": "press-01", "host": "127.0.0.1", "port": 4840}],
    "scenario": [
        {
            "at_s": 120,
            "kind": "particle_burst",
            "target": "pc-01",
            "duration_s": 30,
            "magnitude": 20,
        }
    ],
}


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def test_the_base_spec_is_valid() -> None:
    spec = parse_spec(base())
    assert [e.id for e in spec.modbus] == ["gw-1", "gw-2"]
    assert [u.id for u in spec.modbus[0].units] == ["pc-01", "trh-01", "dp-01"]
    assert [e.kind for e in spec.scenario] == [EventKind.PARTICLE_BURST]


def mutate(path: str, value: Any) -> dict[str, Any]:
    """Set (or with value=DELETE remove) a key given as 'a.0.b' in a copy of the base."""
    data = copy.deepcopy(base())
    *parents, last = path.split(".")
    node: Any = data
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


DELETE = object()

ERRORS = [
    ("seed", "x", "seed: must be an integer"),
    ("tick_s", 0, "tick_s: must be > 0"),
    ("colour", "red", "colour: unknown key"),
    ("modbus.0.port", 70000, "modbus[0].port: must be 0..65535"),
    ("modbus.0.port", DELETE, "modbus[0].port: required key missing"),
    ("modbus.1.port", 15020, "modbus[1].port: 127.0.0.1:15020 already used by modbus[0].port"),
    ("modbus.0.units.0.unit_id", 0, "modbus[0].units[0].unit_id: must be 1..247"),
    ("modbus.0.units.1.unit_id", 1, "modbus[0].units[1].unit_id: 1 already used by units[0]"),
    ("modbus.0.units.0.model", "toaster", "modbus[0].units[0].model: unknown model 'toaster'"),
    ("modbus.0.units.0.sample_time_s", 0, "modbus[0].units[0].sample_time_s: must be >= 1"),
    ("modbus.0.units.0.sample_time_s", 6.5, "modbus[0].units[0].sample_time_s: must be an integer"),
    ("modbus.0.units.0.flow_cfm", True, "modbus[0].units[0].flow_cfm: must be a number"),
    (
        "modbus.0.units.0.conc_5_0",
        1e9,
        "modbus[0].units[0].conc_5_0: 1000000000.0 exceeds conc_0_5",
    ),
    ("modbus.0.units.0.dp1_pa", 5.0, "modbus[0].units[0].dp1_pa: unknown key"),
    ("modbus.0.units.1.id", "pc-01", "modbus[0].units[1].id: id 'pc-01' already used"),
    ("modbus.0.units", [], "modbus[0].units: an endpoint needs at least one"),
    ("opcua.0.state", "RUNNING", "opcua[0].state: must be one of IDLE, EXECUTE, HELD, STOPPED"),
    ("opcua.0.stations", 0, "opcua[0].stations: must be >= 1"),
    ("scenario.0.kind", "meteor", "scenario[0].kind: unknown kind 'meteor'"),
    ("scenario.0.target", "nobody", "scenario[0].target: no device or endpoint with id 'nobody'"),
    (
        "scenario.0.target",
        "trh-01",
        "scenario[0].target: particle_burst needs a particle_counter",
    ),
    ("scenario.0.duration_s", 0, "scenario[0].duration_s: must be > 0"),
    ("scenario.0.at_s", -1, "scenario[0].at_s: must be >= 0"),
    ("scenario.0.mode", "silent", "scenario[0].mode: only device_disconnect takes a mode"),
    ("scenario.0.magnitude", 0, "scenario[0].magnitude: a particle burst factor must be > 0"),
    ("scenario.0.at_s", DELETE, "scenario[0].at_s: required key missing"),
]


@pytest.mark.parametrize(
    ("path", "value", "message"), ERRORS, ids=[f"{e[0]}={e[1]!r}" for e in ERRORS]
)
def test_errors_name_the_key(path: str, value: Any, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(mutate(path, value))
    assert message in str(info.value)


EVENT_ERRORS = [
    (ScenarioEvent(0, EventKind.SERVER_RESTART, "pc-01", 5), "needs a Modbus endpoint id"),
    (ScenarioEvent(0, EventKind.DEVICE_DISCONNECT, "press-01", 5), "needs a Modbus device id"),
    (
        ScenarioEvent(0, EventKind.DP_INVERSION, "dp-01", 5, channel=3),
        "channel: must be 1 or 2",
    ),
    (ScenarioEvent(0, EventKind.GARBAGE_REGISTER, "dp-01", 5), "needs a non-empty list"),
    (
        ScenarioEvent(0, EventKind.MODBUS_EXCEPTION, "dp-01", 5, magnitude=2.5),
        "exception code",
    ),
    (ScenarioEvent(0, EventKind.PRESS_FORCE_DRIFT, "dp-01", 5), "needs a tablet_press"),
]


@pytest.mark.parametrize(("event", "message"), EVENT_ERRORS)
def test_check_event(event: ScenarioEvent, message: str) -> None:
    spec = parse_spec(base())
    with pytest.raises(SpecError, match=message):
        check_event(event, spec)


def test_valid_events_and_defaults() -> None:
    spec = parse_spec(
        {
            "modbus": [
                {
                    "id": "gw",
                    "port": 0,
                    "units": [{"unit_id": 1, "id": "dp", "model": "dp_transmitter"}],
                }
            ],
            "opcua": [{"id": "press", "port": 0}],
            "scenario": [
                {"at_s": 1, "kind": "server_restart", "target": "gw", "duration_s": 2},
                {"at_s": 1, "kind": "server_restart", "target": "press", "duration_s": 2},
                {"at_s": 1, "kind": "frozen_value", "target": "press", "duration_s": 2},
                {
                    "at_s": 1,
                    "kind": "device_disconnect",
                    "target": "dp",
                    "duration_s": 2,
                    "mode": "reset",
                },
                {
                    "at_s": 1,
                    "kind": "garbage_register",
                    "target": "dp",
                    "duration_s": 2,
                    "registers": [4, 100],
                },
            ],
        }
    )
    assert isinstance(spec, PlantSpec)
    assert spec.tick_s == 0.5 and spec.seed == 0
    assert spec.modbus[0].host == "127.0.0.1"
    assert spec.opcua[0].press.state == "EXECUTE"
    assert spec.scenario[4].registers == (4, 100)


def test_load_spec_reports_file_problems(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = [")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('seed = "x"')
    with pytest.raises(SpecError, match=r"wrong\.toml: seed"):
        load_spec(wrong)
