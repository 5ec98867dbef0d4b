"""A press controller that refuses subscriptions is still collected, by polling."""

from __future__ import annotations

import asyncio

import pytest
from asyncua import ua
from asyncua.server.internal_session import InternalSession

from gmp_edge.collector.opcua import OpcuaDeviceSpec, OpcuaDriver, OpcuaPoint
from gmp_edge.collector.reading import Quality
from gmp_edge.simulators.plant import SimulatedPlant
from gmp_edge.simulators.spec import parse_spec
from tests.waiting import until

from .conftest import sim_spec_data

pytestmark = pytest.mark.system


class Sink:
    def __init__(self):
        self.readings = []

    async def put(self, readings):
        self.readings.extend(readings)

    async def gap(self, *args):
        pass

    async def sample_interval(self, *args):
        raise AssertionError("an OPC UA driver reports no device sample interval")


async def test_subscription_refused_falls_back_to_polling(monkeypatch):
    async def refuse(self, params, callback, request_callback=None):
        raise ua.UaStatusCodeError(ua.StatusCodes.BadTooManySubscriptions)

    monkeypatch.setattr(InternalSession, "create_subscription", refuse)
    async with SimulatedPlant(parse_spec(sim_spec_data()), modbus=False) as plant:
        spec = OpcuaDeviceSpec(
            device_id="press-01",
            endpoint=plant.opcua_endpoint("press-01"),
            mode="subscription",
            poll_interval_s=0.5,
            reconnect_min_s=0.1,
            reconnect_max_s=0.5,
        )
        tag = "s/a/r/press-01/main_compression_force"
        driver = OpcuaDriver(spec, [OpcuaPoint(tag, "ns=2;s=TabletPress.MainCompressionForce")])
        sink, stop = Sink(), asyncio.Event()
        task = asyncio.create_task(driver.run(sink, stop))

        def polled() -> list:
            return [r for r in sink.readings if r.quality is Quality.GOOD]

        try:
            await until(lambda: len(polled()) >= 3, what="3 Good readings by polling")
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    good = polled()
    assert len(good) >= 3, sink.readings
    assert good[-1].value == pytest.approx(15, abs=2)
    assert "BadTooManySubscriptions" in str(driver.status.extra.get("mode"))
