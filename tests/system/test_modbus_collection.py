"""The Modbus driver against the simulated plant over real Modbus TCP on loopback."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from collector.modbus import ModbusDriver
from collector.reading import Cause, Quality, Reading
from edge.wiring import build_driver
from simulators.plant import SimulatedPlant
from simulators.scenario import DisconnectMode, EventKind, ScenarioEvent
from simulators.spec import parse_spec

from .conftest import sim_spec_data

pytestmark = pytest.mark.system

GRAN = "acme-basel/solid-dose/granulation"


@pytest.fixture
async def plant():
    """The example plant's Modbus side only: these tests need no OPC UA server."""
    async with SimulatedPlant(parse_spec(sim_spec_data()), opcua=False) as p:
        yield p


class ListSink:
    """Collects what a driver emits."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.gaps: list[tuple] = []

    async def put(self, readings):
        self.readings.extend(readings)

    async def gap(self, tags, start_us, end_us, cause, message):
        self.gaps.append((list(tags), start_us, end_us, cause, message))

    def of(self, tag: str) -> list[Reading]:
        return [r for r in self.readings if r.tag == tag]


def driver(plant_config, device_id: str) -> ModbusDriver:
    d = build_driver(plant_config, device_id)
    assert isinstance(d, ModbusDriver)
    return d


async def run_for(drivers, seconds: float) -> ListSink:
    sink = ListSink()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(d.run(sink, stop)) for d in drivers]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    return sink


def event(kind, target, **kw) -> ScenarioEvent:
    return ScenarioEvent(
        at_s=0, kind=kind, target=target, duration_s=kw.pop("duration_s", 600), **kw
    )


async def test_every_data_type_and_word_order_decodes(plant_config):
    trh, dp = driver(plant_config, "trh-gran-01"), driver(plant_config, "dp-gran-01")
    sink = await run_for([trh, dp], 1.2)
    latest = {r.tag: r for r in sink.readings}
    assert all(r.quality is Quality.GOOD for r in latest.values()), latest
    assert latest[f"{GRAN}/trh-gran-01/temperature"].value == pytest.approx(21.0, abs=1.5)  # CDAB
    assert latest[f"{GRAN}/trh-gran-01/rh"].value == pytest.approx(40.0, abs=5)
    assert 0 < latest[f"{GRAN}/trh-gran-01/absolute_humidity"].value < 30  # DCBA
    assert latest[f"{GRAN}/dp-gran-01/dp_granulation_corridor"].value == pytest.approx(15, abs=2)
    dp1_raw = latest[f"{GRAN}/dp-gran-01/dp1_raw"].value  # int16 x 0.1
    assert dp1_raw == pytest.approx(
        latest[f"{GRAN}/dp-gran-01/dp_granulation_corridor"].value, abs=1.0
    )
    assert 5 < latest[f"{GRAN}/dp-gran-01/sensor_temperature"].value < 45  # BADC
    # one reading per tag per poll, never a missing row
    polls = trh.status.polls
    assert polls >= 2
    for tag in trh.tags:
        assert len(sink.of(tag)) == polls


async def test_particle_counter_records_become_concentrations(plant_config):
    pc = driver(plant_config, "pc-gran-01")
    sink = await run_for([pc], 2.6)
    conc = sink.of(f"{GRAN}/pc-gran-01/particles_0_5")
    assert conc, "no record read"
    r = conc[-1]
    assert r.quality is Quality.GOOD
    # the device stamps whole seconds with its own clock: close to, not before, the edge time
    assert r.ts_source_us is not None and abs(r.ts_source_us - r.ts_edge_us) < 2_000_000
    assert 50_000 < r.value < 400_000  # around the simulated 150,000 /m3
    big = sink.of(f"{GRAN}/pc-gran-01/particles_5_0")[-1]
    assert big.value < r.value
    # a record is emitted once, never re-stamped
    stamps = [x.ts_source_us for x in conc]
    assert len(stamps) == len(set(stamps))


async def test_silent_device_is_bad_and_others_unaffected(plant, plant_config):
    dp, trh = driver(plant_config, "dp-gran-01"), driver(plant_config, "trh-gran-01")
    await plant.inject(event(EventKind.DEVICE_DISCONNECT, "dp-gran-01", mode=DisconnectMode.SILENT))
    sink = await run_for([dp, trh], 3.0)
    dp_tag, trh_tag = f"{GRAN}/dp-gran-01/dp_granulation_corridor", f"{GRAN}/trh-gran-01/rh"
    bad = sink.of(dp_tag)
    assert bad and all(r.quality is Quality.BAD and r.value is None for r in bad)
    assert all(r.cause is Cause.NETWORK and r.message for r in bad)
    assert "no answer" in (bad[0].message or "") or "connect" in (bad[0].message or "")
    # the healthy device on the same gateway kept its 0.5 s schedule
    good = sink.of(trh_tag)
    assert len(good) >= 5 and all(r.quality is Quality.GOOD for r in good)
    assert dp.status.failed_polls >= 1


async def test_recovers_on_its_own_after_disconnect(plant, plant_config):
    dp = driver(plant_config, "dp-gran-01")
    await plant.inject(
        event(EventKind.DEVICE_DISCONNECT, "dp-gran-01", mode=DisconnectMode.RESET, duration_s=1.5)
    )
    sink = await run_for([dp], 4.5)
    q = [r.quality for r in sink.of(f"{GRAN}/dp-gran-01/dp_granulation_corridor")]
    assert Quality.BAD in q and q[-1] is Quality.GOOD
    assert dp.status.connects >= 2


async def test_modbus_exception_is_a_device_fault(plant, plant_config):
    trh = driver(plant_config, "trh-gran-01")
    await plant.inject(event(EventKind.MODBUS_EXCEPTION, "trh-gran-01", magnitude=4))
    sink = await run_for([trh], 1.2)
    r = sink.of(f"{GRAN}/trh-gran-01/temperature")[-1]
    assert r.quality is Quality.BAD and r.cause is Cause.DEVICE
    assert "Modbus exception 4 (server device failure)" in (r.message or "")
    assert (trh.status.connects, trh.status.disconnects) == (1, 0)  # the link itself is fine


async def test_garbage_register_is_bad_not_clamped(plant, plant_config):
    trh = driver(plant_config, "trh-gran-01")
    await plant.inject(event(EventKind.GARBAGE_REGISTER, "trh-gran-01", registers=(2, 3)))
    sink = await run_for([trh], 1.2)
    t = sink.of(f"{GRAN}/trh-gran-01/temperature")[-1]
    assert t.quality is Quality.BAD and t.value is None and "nan" in (t.message or "")
    assert sink.of(f"{GRAN}/trh-gran-01/rh")[-1].quality is Quality.GOOD


async def test_server_restart_refused_then_back(plant, plant_config):
    trh = driver(plant_config, "trh-gran-01")
    await plant.inject(event(EventKind.SERVER_RESTART, "gw-granulation", duration_s=1.5))
    sink = await run_for([trh], 5.0)
    q = [r.quality for r in sink.of(f"{GRAN}/trh-gran-01/rh")]
    assert q[0] is Quality.BAD and q[-1] is Quality.GOOD


async def test_backfill_after_outage_from_device_memory(plant, plant_config):
    pc = driver(plant_config, "pc-gran-01")
    sink = await run_for([pc], 1.5)
    tag = f"{GRAN}/pc-gran-01/particles_0_5"
    before = {r.ts_source_us for r in sink.of(tag) if r.ts_source_us}
    assert before
    # the counter keeps sampling (1 s records) while the link is down
    await plant.inject(
        event(EventKind.DEVICE_DISCONNECT, "pc-gran-01", mode=DisconnectMode.SILENT, duration_s=4)
    )
    t0 = time.time()
    sink2 = await run_for([pc], 8.0)
    good = [r for r in sink2.of(tag) if r.quality is Quality.GOOD]
    stamps = sorted(r.ts_source_us // 1_000_000 for r in good)
    assert pc.status.backfilled >= 3
    # every second of the outage has its record: no hole in the source timestamps
    outage = [s for s in stamps if t0 <= s <= t0 + 4]
    assert len(outage) >= 3
    assert all(b - a == 1 for a, b in itertools.pairwise(stamps)), stamps
    assert any(r.quality is Quality.BAD for r in sink2.of(tag))  # the outage itself is visible
