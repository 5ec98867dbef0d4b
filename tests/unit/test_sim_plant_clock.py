"""The simulated plant takes wall time from a :class:`gmp_edge.clock.Clock`."""

from __future__ import annotations

import tomllib
from pathlib import Path

from gmp_edge.clock import ManualClock
from gmp_edge.simulators.plant import SimulatedPlant
from gmp_edge.simulators.spec import parse_spec
from gmp_edge.simulators.trh_transmitter import TrhTransmitter

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sim-solid-dose.toml"


async def test_devices_follow_the_injected_clock() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    data["scenario"] = []
    for endpoint in data["modbus"]:
        endpoint["port"] = 0  # any free port
    clock = ManualClock(start_us=1_700_000_000_000_000)
    async with SimulatedPlant(parse_spec(data), opcua=False, clock=clock) as plant:
        trh = plant.device("trh-gran-01")
        assert isinstance(trh, TrhTransmitter)
        assert trh.holding.get("uptime_s") == 0
        clock.advance(90)
        await plant.step()
        assert trh.holding.get("uptime_s") == 90
