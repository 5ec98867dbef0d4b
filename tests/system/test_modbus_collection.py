"""The Modbus driver against the simulated plant over real Modbus TCP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator

import pytest

from gmp_edge.collector.modbus import ModbusDriver
from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.edge.wiring import build_driver
from gmp_edge.simulators.plant import SimulatedPlant
from gmp_edge.simulators.scenario import DisconnectMode, EventKind, ScenarioEvent
from gmp_edge.simulators.spec import parse_spec
from tests.waiting import until

from .conftest import sim_spec_data

pytestmark = pytest.mark.system

GRAN = "acme-basel/solid-dose/granulation"


@pytest.fixture
def started() -> float:
    """Wall time just before the plant is built: no device stamps anything earlier."""
    return time.time()


@pytest.fixture
async def plant(started):
    """The example plant's Modbus side only: these tests need no OPC UA server."""
    async with SimulatedPlant(parse_spec(sim_spec_data()), opcua=False) as p:
        yield p


class ListSink:
    """Collects what a driver emits."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.gaps: list[tuple] = []
        self.intervals: list[tuple] = []

    async def put(self, readings):
        self.readings.extend(readings)

    async def gap(self, tags, start_us, end_us, cause, message):
        self.gaps.append((list(tags), start_us, end_us, cause, message))

    async def sample_interval(self, tags, from_us, interval_s):
        self.intervals.append((list(tags), from_us, interval_s))

    def of(self, tag: str) -> list[Reading]:
        return [r for r in self.readings if r.tag == tag]


def driver(plant_config, device_id: str) -> ModbusDriver:
    d = build_driver(plant_config, device_id)
    assert isinstance(d, ModbusDriver)
    return d


@contextlib.asynccontextmanager
async def running(drivers) -> AsyncIterator[ListSink]:
    """The drivers polling into one sink until the block ends (then stopped)."""
    sink = ListSink()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(d.run(sink, stop)) for d in drivers]
    try:
        yield sink
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)


def number(r: Reading) -> float:
    """A reading's numeric value (a Good number, not text or None)."""
    assert isinstance(r.value, int | float), r
    return float(r.value)


def last_is(sink: ListSink, tag: str, quality: Quality) -> bool:
    got = sink.of(tag)
    return bool(got) and got[-1].quality is quality


def event(kind, target, **kw) -> ScenarioEvent:
    return ScenarioEvent(
        at_s=0, kind=kind, target=target, duration_s=kw.pop("duration_s", 600), **kw
    )


async def test_every_data_type_and_word_order_decodes(plant_config):
    trh, dp = driver(plant_config, "trh-gran-01"), driver(plant_config, "dp-gran-01")
    async with running([trh, dp]) as sink:
        await until(lambda: trh.status.polls >= 2 and dp.status.polls >= 1, what="polls")
    latest = {r.tag: r for r in sink.readings}
    assert all(r.quality is Quality.GOOD for r in latest.values()), latest
    assert latest[f"{GRAN}/trh-gran-01/temperature"].value == pytest.approx(21.0, abs=1.5)  # CDAB
    assert latest[f"{GRAN}/trh-gran-01/rh"].value == pytest.approx(40.0, abs=5)
    assert 0 < number(latest[f"{GRAN}/trh-gran-01/absolute_humidity"]) < 30  # DCBA
    assert latest[f"{GRAN}/dp-gran-01/dp_granulation_corridor"].value == pytest.approx(15, abs=2)
    dp1_raw = latest[f"{GRAN}/dp-gran-01/dp1_raw"].value  # int16 x 0.1
    assert dp1_raw == pytest.approx(
        latest[f"{GRAN}/dp-gran-01/dp_granulation_corridor"].value, abs=1.0
    )
    assert 5 < number(latest[f"{GRAN}/dp-gran-01/sensor_temperature"]) < 45  # BADC
    # one reading per tag per poll, never a missing row
    polls = trh.status.polls
    assert polls >= 2
    for tag in trh.tags:
        assert len(sink.of(tag)) == polls


async def test_particle_counter_records_become_concentrations(plant_config, started):
    pc = driver(plant_config, "pc-gran-01")
    tag = f"{GRAN}/pc-gran-01/particles_0_5"
    async with running([pc]) as sink:
        await until(lambda: len(sink.of(tag)) >= 2, what="2 records (1 s samples)")
    conc = sink.of(tag)
    r = conc[-1]
    assert r.quality is Quality.GOOD
    # the device stamps a record's end in whole seconds (rounded) with its own clock: after
    # the plant started, and at most half a second after the edge read it
    assert r.ts_source_us is not None
    assert started * 1e6 <= r.ts_source_us <= r.ts_edge_us + 500_000
    assert 50_000 < number(r) < 400_000  # around the simulated 150,000 /m3
    big = sink.of(f"{GRAN}/pc-gran-01/particles_5_0")[-1]
    assert number(big) < number(r)
    # a record is emitted once, never re-stamped
    stamps = [x.ts_source_us for x in conc]
    assert len(stamps) == len(set(stamps))


async def test_silent_device_is_bad_and_others_unaffected(plant, plant_config):
    dp, trh = driver(plant_config, "dp-gran-01"), driver(plant_config, "trh-gran-01")
    await plant.inject(event(EventKind.DEVICE_DISCONNECT, "dp-gran-01", mode=DisconnectMode.SILENT))
    dp_tag, trh_tag = f"{GRAN}/dp-gran-01/dp_granulation_corridor", f"{GRAN}/trh-gran-01/rh"
    async with running([dp, trh]) as sink:
        # the silent device timed out 3 times while its neighbour was read 5 times
        await until(
            lambda: dp.status.failed_polls >= 3 and len(sink.of(trh_tag)) >= 5,
            what="3 failed DP polls and 5 RH readings",
        )
    bad = sink.of(dp_tag)
    assert bad and all(r.quality is Quality.BAD and r.value is None for r in bad)
    assert all(r.cause is Cause.NETWORK and r.message for r in bad)
    assert all("no answer within 0.5 s" in (r.message or "") for r in bad), bad  # its timeout
    # the healthy device on the same gateway is unaffected: every poll of it answered
    good = sink.of(trh_tag)
    assert len(good) >= 5 and all(r.quality is Quality.GOOD for r in good)
    assert trh.status.failed_polls == 0


async def test_recovers_on_its_own_after_disconnect(plant, plant_config):
    dp = driver(plant_config, "dp-gran-01")
    tag = f"{GRAN}/dp-gran-01/dp_granulation_corridor"
    await plant.inject(event(EventKind.DEVICE_DISCONNECT, "dp-gran-01", mode=DisconnectMode.RESET))
    async with running([dp]) as sink:
        await until(lambda: last_is(sink, tag, Quality.BAD), what="the link reset")
        await plant.clear_faults()  # the device is back: the driver reconnects by itself
        await until(lambda: last_is(sink, tag, Quality.GOOD), what="recovered")
    q = [r.quality for r in sink.of(tag)]
    assert Quality.BAD in q and q[-1] is Quality.GOOD
    assert dp.status.connects >= 2


async def test_modbus_exception_is_a_device_fault(plant, plant_config):
    trh = driver(plant_config, "trh-gran-01")
    await plant.inject(event(EventKind.MODBUS_EXCEPTION, "trh-gran-01", magnitude=4))
    async with running([trh]) as sink:
        await until(lambda: trh.status.polls >= 2, what="2 polls")
    r = sink.of(f"{GRAN}/trh-gran-01/temperature")[-1]
    assert r.quality is Quality.BAD and r.cause is Cause.DEVICE
    assert "Modbus exception 4 (server device failure)" in (r.message or "")
    assert (trh.status.connects, trh.status.disconnects) == (1, 0)  # the link itself is fine


async def test_garbage_register_is_bad_not_clamped(plant, plant_config):
    trh = driver(plant_config, "trh-gran-01")
    await plant.inject(event(EventKind.GARBAGE_REGISTER, "trh-gran-01", registers=(2, 3)))
    async with running([trh]) as sink:
        await until(lambda: trh.status.polls >= 2, what="2 polls")
    t = sink.of(f"{GRAN}/trh-gran-01/temperature")[-1]
    assert t.quality is Quality.BAD and t.value is None and "nan" in (t.message or "")
    assert sink.of(f"{GRAN}/trh-gran-01/rh")[-1].quality is Quality.GOOD


async def test_server_restart_refused_then_back(plant, plant_config):
    trh = driver(plant_config, "trh-gran-01")
    tag = f"{GRAN}/trh-gran-01/rh"
    await plant.inject(event(EventKind.SERVER_RESTART, "gw-granulation"))
    async with running([trh]) as sink:
        await until(lambda: last_is(sink, tag, Quality.BAD), what="connection refused")
        await plant.clear_faults()  # the gateway listens again
        await until(lambda: last_is(sink, tag, Quality.GOOD), what="back")
    q = [r.quality for r in sink.of(tag)]
    assert q[0] is Quality.BAD and q[-1] is Quality.GOOD


async def test_backfill_after_outage_from_device_memory(plant, plant_config):
    pc = driver(plant_config, "pc-gran-01")
    counter = plant.device("pc-gran-01")
    tag = f"{GRAN}/pc-gran-01/particles_0_5"

    def good() -> list[Reading]:
        return [r for r in sink.of(tag) if r.quality is Quality.GOOD]

    async with running([pc]) as sink:
        await until(good, what="a record read")
        await plant.inject(
            event(EventKind.DEVICE_DISCONNECT, "pc-gran-01", mode=DisconnectMode.SILENT)
        )
        down_from = counter.records[-1].timestamp  # the newest record when the link went
        # the counter keeps sampling (1 s records) while the link is down: 4 made meanwhile
        await until(
            lambda: (
                counter.records[-1].timestamp >= down_from + 4
                and any(r.quality is Quality.BAD for r in sink.of(tag))
            ),
            what="4 records made during the outage",
        )
        await plant.clear_faults()
        newest = counter.records[-1].timestamp
        await until(
            lambda: any((r.ts_source_us or 0) >= newest * 1_000_000 for r in good()),
            what="the records of the outage read back",
        )
    stamps = sorted(r.ts_source_us // 1_000_000 for r in good() if r.ts_source_us is not None)
    assert pc.status.backfilled >= 3
    # every second of the outage has its record: no hole in the source timestamps
    assert [s for s in stamps if down_from < s <= down_from + 4] == [
        down_from + 1,
        down_from + 2,
        down_from + 3,
        down_from + 4,
    ]
    assert all(b - a == 1 for a, b in itertools.pairwise(stamps)), stamps
    assert any(r.quality is Quality.BAD for r in sink.of(tag))  # the outage itself is visible
