"""Modbus TCP simulators on loopback, read by pymodbus's client (an independent implementation)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Literal

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException, ModbusIOException

from gmp_edge.simulators import encoding as enc
from gmp_edge.simulators.encoding import WordOrder
from gmp_edge.simulators.plant import SimulatedPlant
from gmp_edge.simulators.scenario import DisconnectMode, EventKind, ScenarioEvent
from gmp_edge.simulators.spec import parse_spec
from tests.waiting import until

pytestmark = pytest.mark.system

SPEC: dict[str, Any] = {
    "seed": 7,
    "tick_s": 0.1,
    "modbus": [
        {
            "id": "gw",
            "host": "127.0.0.1",
            "port": 0,
            "units": [
                {
                    "unit_id": 1,
                    "id": "pc",
                    "model": "particle_counter",
                    "sample_time_s": 1,
                    "record_capacity": 50,
                    "conc_0_5": 150000.0,
                    "conc_5_0": 900.0,
                },
                {"unit_id": 2, "id": "trh", "model": "trh_transmitter", "temperature_c": 21.0},
                {"unit_id": 3, "id": "dp", "model": "dp_transmitter", "dp1_pa": 15.0},
            ],
        }
    ],
}

DT = AsyncModbusTcpClient.DATATYPE


def _convert(regs: list[int], dt: Any, word_order: Literal["big", "little"]) -> object:
    return AsyncModbusTcpClient.convert_from_registers(regs, dt, word_order=word_order)


def as_int(regs: list[int], dt: Any, word_order: Literal["big", "little"] = "big") -> int:
    v = _convert(regs, dt, word_order)
    assert isinstance(v, int), v
    return v


def as_float(regs: list[int], dt: Any, word_order: Literal["big", "little"] = "big") -> float:
    v = _convert(regs, dt, word_order)
    assert isinstance(v, float), v
    return v


def as_str(regs: list[int], dt: Any, word_order: Literal["big", "little"] = "big") -> str:
    v = _convert(regs, dt, word_order)
    assert isinstance(v, str), v
    return v


@pytest.fixture
def started() -> float:
    """Wall time just before the plant is built: its devices' clocks start no earlier."""
    return time.time()


@pytest.fixture
async def plant(started: float) -> AsyncIterator[SimulatedPlant]:
    async with SimulatedPlant(parse_spec(SPEC), opcua=False) as running:
        yield running


@pytest.fixture
async def client(plant: SimulatedPlant) -> AsyncIterator[AsyncModbusTcpClient]:
    c = AsyncModbusTcpClient("127.0.0.1", port=plant.modbus_port("gw"), timeout=0.5, retries=0)
    assert await c.connect()
    yield c
    c.close()


async def hr(c: AsyncModbusTcpClient, address: int, count: int, unit: int) -> list[int]:
    r = await c.read_holding_registers(address, count=count, device_id=unit)
    assert not r.isError(), r
    return list(r.registers)


async def ir(c: AsyncModbusTcpClient, address: int, count: int, unit: int) -> list[int]:
    r = await c.read_input_registers(address, count=count, device_id=unit)
    assert not r.isError(), r
    return list(r.registers)


async def test_particle_counter_map(client: AsyncModbusTcpClient, started: float) -> None:
    h = await hr(client, 0, 36, 1)
    read_at = time.time()
    assert h[0] == 150 and h[3] == 210
    assert as_int(h[4:6], DT.UINT32) == 51_040_001
    assert as_str(h[6:14], DT.STRING).rstrip("\0") == "REMOTE 5104P"
    assert h[22] == 100
    rtc = as_int(h[26:28], DT.INT32)
    assert int(started) <= rtc <= read_at  # the device's clock: UTC now
    assert as_int(h[32:34], DT.UINT32) == 1
    due = await hr(client, 46, 2, 1)
    assert as_int(due, DT.INT32) > rtc
    i = await ir(client, 0, 76, 1)
    assert len(i) == 76


async def test_particle_record_write_index_then_read(
    plant: SimulatedPlant, client: AsyncModbusTcpClient
) -> None:
    async def records() -> int:
        return (await hr(client, 23, 1, 1))[0]

    await until(lambda: _at_least(records(), 2), what="2 records (1 s samples)")
    w = await client.write_register(24, 0, device_id=1)
    assert not w.isError()
    assert (await hr(client, 24, 1, 1)) == [0]
    first = await ir(client, 0, 76, 1)
    w = await client.write_register(24, 0xFFFF, device_id=1)
    assert not w.isError()
    last = await ir(client, 0, 76, 1)
    ts_first = as_int(first[0:2], DT.INT32)
    ts_last = as_int(last[0:2], DT.INT32)
    assert ts_last > ts_first
    counts = [as_int(last[8 + 2 * k : 10 + 2 * k], DT.UINT32) for k in range(4)]
    assert counts[0] >= counts[1] >= counts[2] >= counts[3]
    assert counts[0] > 0
    temperature = as_float(last[40:42], DT.FLOAT32, word_order="little")
    assert 19 < temperature < 23
    assert last[72:74] == [0b11, 0b1111]
    # FC16 write of the same register works too.
    w = await client.write_registers(24, [1], device_id=1)
    assert not w.isError()
    assert (await hr(client, 24, 1, 1)) == [1]


async def _at_least(value: Awaitable[int], n: int) -> bool:
    return await value >= n


async def test_trh_map(client: AsyncModbusTcpClient, started: float) -> None:
    h = await hr(client, 0, 8, 2)
    rh = as_float(h[0:2], DT.FLOAT32, word_order="little")
    t = as_float(h[2:4], DT.FLOAT32, word_order="little")
    dew = as_float(h[4:6], DT.FLOAT32, word_order="little")
    assert 20 < t < 22 and 30 < rh < 60 and dew < t
    assert 3 < enc.decode_f32(h[6:8], WordOrder.DCBA) < 15
    uptime = await hr(client, 512, 2, 2)
    up = as_int(uptime, DT.UINT32, word_order="little")
    assert up <= time.time() - started  # seconds since the plant was built (unsigned)
    name = await hr(client, 768, 8, 2)
    assert as_str(name, DT.STRING).rstrip("\0") == "HMT330 TRH"
    i = await ir(client, 0, 3, 2)
    assert abs(as_int(i[0:1], DT.INT16) / 100 - t) < 0.5


async def test_dp_map(client: AsyncModbusTcpClient) -> None:
    h = await hr(client, 0, 7, 3)
    assert h[0] == 9711 and h[1] == 0 and h[3] == 0
    assert 13 < as_int(h[4:5], DT.INT16) / 10 < 17
    assert await hr(client, 66, 1, 3) == [0]
    f = await hr(client, 100, 6, 3)
    assert 13 < as_float(f[0:2], DT.FLOAT32) < 17
    assert 18 < enc.decode_f32(f[4:6], WordOrder.BADC) < 26


async def test_exceptions_on_the_wire(client: AsyncModbusTcpClient) -> None:
    r = await client.read_holding_registers(7, count=1, device_id=3)
    assert r.isError() and r.exception_code == 2
    r = await client.read_holding_registers(0, count=1, device_id=9)  # no such unit
    assert r.isError() and r.exception_code == 0x0B
    r = await client.write_register(0, 1, device_id=3)  # read-only
    assert r.isError() and r.exception_code == 2
    r = await client.write_register(1, 99, device_id=1)  # unknown command
    assert r.isError() and r.exception_code == 3


async def test_modbus_exception_fault(plant: SimulatedPlant, client: AsyncModbusTcpClient) -> None:
    await plant.inject(ScenarioEvent(0, EventKind.MODBUS_EXCEPTION, "trh", 30, magnitude=6))
    r = await client.read_holding_registers(0, count=2, device_id=2)
    assert r.isError() and r.exception_code == 6
    assert (await hr(client, 0, 1, 3)) == [9711]  # other units on the gateway still answer
    await plant.clear_faults()
    assert len(await hr(client, 0, 2, 2)) == 2


async def test_silent_disconnect_times_out(
    plant: SimulatedPlant, client: AsyncModbusTcpClient
) -> None:
    await plant.inject(
        ScenarioEvent(0, EventKind.DEVICE_DISCONNECT, "dp", 30, mode=DisconnectMode.SILENT)
    )
    started = time.monotonic()
    with pytest.raises(ModbusIOException):
        await client.read_holding_registers(0, count=1, device_id=3)
    assert time.monotonic() - started >= 0.45  # it was the client's timeout, not an error reply
    await plant.clear_faults()
    await client.connect()
    assert (await hr(client, 0, 1, 3)) == [9711]


async def test_reset_disconnect_closes_the_connection(plant: SimulatedPlant) -> None:
    await plant.inject(
        ScenarioEvent(0, EventKind.DEVICE_DISCONNECT, "dp", 30, mode=DisconnectMode.RESET)
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", plant.modbus_port("gw"))
    writer.write(bytes.fromhex("0001 0000 0006 02 03 0000 0001"))  # unit 2 is fine
    assert len(await asyncio.wait_for(reader.readexactly(11), 2)) == 11
    writer.write(bytes.fromhex("0002 0000 0006 03 03 0000 0001"))  # unit 3 resets
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(reader.readexactly(11), 2)
    writer.close()
    with contextlib.suppress(ConnectionResetError):  # the reset it was sent
        await writer.wait_closed()
    # pymodbus sees the request fail too.
    c = AsyncModbusTcpClient("127.0.0.1", port=plant.modbus_port("gw"), timeout=0.5, retries=0)
    try:
        assert await c.connect()
        with pytest.raises(ModbusIOException):
            await c.read_holding_registers(0, count=1, device_id=3)
    finally:
        c.close()


async def test_server_restart_refuses_then_comes_back(
    plant: SimulatedPlant, client: AsyncModbusTcpClient
) -> None:
    port = plant.modbus_port("gw")
    # down until the test brings it back: the checks while down cannot race its return
    await plant.inject(ScenarioEvent(0, EventKind.SERVER_RESTART, "gw", 3600))
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    with pytest.raises(ModbusException):  # the open connection was closed: "Not connected"
        await client.read_holding_registers(0, count=1, device_id=3)
    await plant.clear_faults()  # listening again once this returns
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    await writer.wait_closed()
    assert plant.modbus_port("gw") == port
    fresh = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
    try:
        assert await fresh.connect()
        assert (await hr(fresh, 0, 1, 3)) == [9711]
    finally:
        fresh.close()


async def test_dp_inversion_garbage_and_frozen(
    plant: SimulatedPlant, client: AsyncModbusTcpClient
) -> None:
    await plant.inject(ScenarioEvent(0, EventKind.DP_INVERSION, "dp", 30, magnitude=5.0))
    dp1 = as_int(await hr(client, 4, 1, 3), DT.INT16)
    assert -7 < dp1 / 10 < -3
    await plant.inject(ScenarioEvent(0, EventKind.GARBAGE_REGISTER, "trh", 30, registers=(0, 1)))
    rh = as_float(await hr(client, 0, 2, 2), DT.FLOAT32, word_order="little")
    assert math.isnan(rh)
    assert await hr(client, 0, 2, 2) == [0x0000, 0x7FC0]
    await plant.inject(ScenarioEvent(0, EventKind.FROZEN_VALUE, "dp", 30))
    before = await hr(client, 100, 6, 3)
    for _ in range(3):  # ticks in which a live transmitter would move on
        await plant.step()
    assert await hr(client, 100, 6, 3) == before
    await plant.clear_faults()  # the tick this makes updates the registers again
    assert await hr(client, 100, 6, 3) != before
    assert 13 < as_int(await hr(client, 4, 1, 3), DT.INT16) / 10 < 17
