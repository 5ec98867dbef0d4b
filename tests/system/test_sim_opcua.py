"""The tablet press OPC UA server on loopback, read by asyncua's client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from asyncua import Client, Node, ua

from gmp_edge.simulators.opcua_press import NAMESPACE_URI, node_id
from gmp_edge.simulators.plant import SimulatedPlant
from gmp_edge.simulators.scenario import EventKind, ScenarioEvent
from gmp_edge.simulators.spec import parse_spec
from gmp_edge.simulators.tablet_press import DOUBLE_VARIABLES
from tests.waiting import until

# One server for the module: asyncua needs ~2 s to build its address space.
pytestmark = [pytest.mark.system, pytest.mark.asyncio(loop_scope="module")]

SPEC: dict[str, Any] = {
    "seed": 3,
    "tick_s": 0.1,
    "opcua": [{"id": "press", "port": 0, "batch_id": "B-TEST-1", "state": "EXECUTE"}],
}

EXPECTED = {
    "MainCompressionForce": (13.5, 16.5),
    "PreCompressionForce": (1.5, 2.5),
    "TurretSpeed": (38, 42),
    "EjectionForce": (200, 400),
    "FillDepth": (9, 11),
    "Output": (38 * 36 * 60, 42 * 36 * 60),
    "TabletWeight": (240, 260),
    "Hardness": (70, 110),
}


@pytest.fixture(scope="module")
def started() -> datetime:
    """Wall time (UTC) just before the plant starts: no source timestamp can be older."""
    return datetime.now(UTC)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def plant(started: datetime) -> AsyncIterator[SimulatedPlant]:
    async with SimulatedPlant(parse_spec(SPEC), modbus=False) as running:
        yield running


async def connect(url: str) -> Client:
    client = Client(url=url, timeout=3)
    await client.connect()
    return client


async def test_reads_every_press_node(plant: SimulatedPlant, started: datetime) -> None:
    url = plant.opcua_endpoint("press")
    assert url.endswith("/gmp-edge/press")
    client = await connect(url)
    try:
        assert await client.get_namespace_index(NAMESPACE_URI) == 2
        for name, (low, high) in EXPECTED.items():
            dv = await client.get_node(node_id(name)).read_data_value()
            read_at = datetime.now(UTC)
            assert dv.Value is not None and dv.Value.VariantType == ua.VariantType.Double
            assert low <= dv.Value.Value <= high, (name, dv.Value.Value)
            assert dv.SourceTimestamp is not None
            # stamped in UTC by the running plant: after it started, before we read it
            stamp = dv.SourceTimestamp.replace(tzinfo=UTC)
            assert started <= stamp <= read_at, (name, started, stamp, read_at)
        assert await client.get_node(node_id("State")).read_value() == "EXECUTE"
        assert await client.get_node(node_id("BatchId")).read_value() == "B-TEST-1"
        press = client.get_node("ns=2;s=TabletPress")
        names = {(await c.read_browse_name()).Name for c in await press.get_children()}
        assert names == set(DOUBLE_VARIABLES) | {"State", "BatchId"}
    finally:
        await client.disconnect()


class Collector:
    """Subscription handler that records data changes."""

    def __init__(self) -> None:
        self.values: list[tuple[str, Any]] = []
        self.changed = asyncio.Event()

    def datachange_notification(self, node: Node, value: Any, data: Any) -> None:
        self.values.append((str(node.nodeid.Identifier), value))
        self.changed.set()


async def test_subscription_receives_changes_and_batch(plant: SimulatedPlant) -> None:
    client = await connect(plant.opcua_endpoint("press"))
    try:
        handler = Collector()
        sub = await client.create_subscription(50, handler)
        nodes = [client.get_node(node_id(n)) for n in ("MainCompressionForce", "BatchId")]
        await sub.subscribe_data_change(nodes)
        await until(
            lambda: sum(1 for n, _ in handler.values if n.endswith("MainCompressionForce")) >= 3,
            what="3 force changes",
        )
        await plant.opcua_server("press").set_batch("B-TEST-2", "HELD")
        await until(
            lambda: ("TabletPress.BatchId", "B-TEST-2") in handler.values, what="new batch id"
        )
        assert await client.get_node(node_id("State")).read_value() == "HELD"
        await plant.step()  # one tick of a held press: the turret stands still
        assert await client.get_node(node_id("TurretSpeed")).read_value() == 0.0
        await sub.delete()
    finally:
        await plant.opcua_server("press").set_batch("B-TEST-1", "EXECUTE")  # for the others
        await client.disconnect()


async def test_force_drift_and_frozen(plant: SimulatedPlant) -> None:
    client = await connect(plant.opcua_endpoint("press"))
    force = client.get_node(node_id("MainCompressionForce"))
    try:
        await plant.inject(
            ScenarioEvent(0, EventKind.PRESS_FORCE_DRIFT, "press", 60, magnitude=120)
        )

        async def force_kn() -> float:
            return float(await force.read_value())

        # 120 kN/min = 2 kN/s: past 18 kN within seconds, beyond the nominal press (<= 16.5)
        await until(lambda: _above(force_kn(), 18.0), what="force drifted past 18 kN")
        await plant.clear_faults()
        await plant.inject(ScenarioEvent(0, EventKind.FROZEN_VALUE, "press", 60))
        first = await force.read_data_value()
        for _ in range(3):  # ticks in which a live press would publish new values
            await plant.step()
        again = await force.read_data_value()
        assert again.SourceTimestamp == first.SourceTimestamp
        assert again.Value == first.Value
        await plant.clear_faults()  # the tick this makes publishes again
        assert (await force.read_data_value()).SourceTimestamp != first.SourceTimestamp
    finally:
        await plant.clear_faults()
        await client.disconnect()


async def _above(value: Awaitable[float], limit: float) -> bool:
    return await value > limit


async def test_server_restart(plant: SimulatedPlant) -> None:
    url = plant.opcua_endpoint("press")
    before = await connect(url)
    # down until the test brings it back: the checks while down cannot race its return
    await plant.inject(ScenarioEvent(0, EventKind.SERVER_RESTART, "press", 3600))
    try:
        with pytest.raises((OSError, asyncio.TimeoutError)):
            await connect(url)
        with pytest.raises((ConnectionError, asyncio.TimeoutError, ua.UaError)):
            await before.get_node(node_id("TurretSpeed")).read_value()  # connection closed
    finally:
        with contextlib.suppress(Exception):
            await before.disconnect()
        await plant.clear_faults()  # listening again once this returns
    client = await connect(url)
    try:
        assert plant.opcua_endpoint("press") == url  # same port
        value = await client.get_node(node_id("TurretSpeed")).read_value()
        assert 38 < value < 42
    finally:
        await client.disconnect()
