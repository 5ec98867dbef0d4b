"""The Modbus driver through its mock backend: no socket, no sleep, no real time.

The driver talks to :class:`collector.modbus_fake.FakeModbusServer` through its transport
seam. Every test runs on a :class:`VirtualTimeLoop`, an event loop whose clock moves only
when nothing is ready to run, and then straight to the next timer; the driver gets that
clock injected (:class:`LoopClock`). So request timeouts, connect timeouts, backoff delays
and the poll schedule are observed to the exact virtual second, a "30 s" outage costs
microseconds, and nothing races a real clock. A test that would wait on something nothing
will ever do fails at once ("nothing ready, nothing scheduled") instead of hanging.

Each test also fails if it leaves an asyncio task behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from gmp_edge.collector import particle
from gmp_edge.collector.codec import DataType, Order, ValueSpec, register_count
from gmp_edge.collector.driver import LinkState
from gmp_edge.collector.modbus import (
    ModbusDeviceSpec,
    ModbusDriver,
    RecordPoint,
    pymodbus_transport,
)
from gmp_edge.collector.modbus_fake import (
    READ_HOLDING,
    READ_INPUT,
    WRITE_REGISTER,
    FakeModbusServer,
    FakeParticleCounter,
    FakeUnit,
    FaultKind,
)
from gmp_edge.collector.plan import Function, RegisterPoint
from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.retry import Backoff
from gmp_edge.timefmt import iso
from tests.virtual_time import START, virtual_time

# -- virtual time ----------------------------------------------------------------------------

EPOCH_US = 1_700_000_000_000_000  # wall clock (us) at virtual loop time 0


class LoopClock:
    """The driver's clock (``gmp_edge.clock.Clock``) read from the running loop."""

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def now_us(self) -> int:
        return EPOCH_US + round(asyncio.get_running_loop().time() * 1_000_000)


def now() -> float:
    return asyncio.get_running_loop().time()


def edge_us(t: float) -> int:
    """The edge timestamp the driver gives a reading taken at virtual time ``t``."""
    return EPOCH_US + round(t * 1_000_000)


# -- building drivers ------------------------------------------------------------------------

UNIT = 1
DEV = "site/area/dev-01"


def point(
    name: str,
    address: int,
    data_type: DataType,
    *,
    function: Function = Function.HOLDING,
    word_order: Order = Order.BIG,
    byte_order: Order = Order.BIG,
    length: int | None = None,
    **value: Any,
) -> RegisterPoint:
    return RegisterPoint(
        f"{DEV}/{name}",
        function,
        address,
        register_count(data_type, length),
        ValueSpec(data_type, word_order, byte_order, **value),
    )


def u16(name: str, address: int, function: Function = Function.HOLDING) -> RegisterPoint:
    return point(name, address, DataType.UINT16, function=function)


def image(start: int, n: int, value: int = 0) -> dict[int, int]:
    return dict.fromkeys(range(start, start + n), value)


def device_spec(**kw: Any) -> ModbusDeviceSpec:
    base: dict[str, Any] = {
        "timeout_s": 1.0,
        "poll_interval_s": 1.0,
        "reconnect_min_s": 1.0,
        "reconnect_max_s": 8.0,
        "float_word_order": Order.LITTLE,  # the fake counter's, like REMOTE/Solair
        "record_missed_cycles": 3,
    }
    return ModbusDeviceSpec("dev-01", "fake", 502, UNIT, **(base | kw))


def make_driver(
    server: FakeModbusServer,
    points: Sequence[RegisterPoint] = (),
    records: Sequence[RecordPoint] = (),
    last_record_s: int | None = None,
    *,
    jitter: bool = False,
    **spec: Any,
) -> ModbusDriver:
    """A driver on the fake; backoff without jitter unless ``jitter`` (then the driver's own)."""
    s = device_spec(**spec)
    exact = Backoff(s.reconnect_min_s, s.reconnect_max_s, jitter=0)
    return ModbusDriver(
        s,
        points,
        records,
        last_record_s,
        transport_factory=server.transport,
        clock=LoopClock(),
        backoff=None if jitter else exact,
    )


class ListSink:
    """Collects what a driver emits."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.batches: list[list[Reading]] = []
        self.gaps: list[tuple[list[str], int, int, Cause, str]] = []
        self.intervals: list[tuple[list[str], int, float]] = []

    async def put(self, readings: Sequence[Reading]) -> None:
        self.batches.append(list(readings))
        self.readings.extend(readings)

    async def gap(
        self, tags: Sequence[str], start_us: int, end_us: int, cause: Cause, message: str
    ) -> None:
        self.gaps.append((list(tags), start_us, end_us, cause, message))

    async def sample_interval(self, tags: Sequence[str], from_us: int, interval_s: float) -> None:
        self.intervals.append((list(tags), from_us, interval_s))

    def of(self, tag: str) -> list[Reading]:
        return [r for r in self.readings if r.tag == tag]


@contextlib.asynccontextmanager
async def running(*drivers: ModbusDriver, sink: ListSink) -> AsyncIterator[None]:
    """The drivers' ``run`` loops, stopped (and awaited) on leaving the block."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(d.run(sink, stop)) for d in drivers]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def by_tag(readings: Sequence[Reading]) -> dict[str, Reading]:
    out = {r.tag: r for r in readings}
    assert len(out) == len(readings), "more than one reading of a tag in one poll"
    return out


def sent(server: FakeModbusServer) -> list[tuple[int, int, int]]:
    """(function, address, count) of every request so far."""
    return [(r.function, r.address, r.count) for r in server.requests]


# -- the virtual loop itself -----------------------------------------------------------------


@virtual_time
async def test_virtual_time_moves_only_by_timers() -> None:
    t0, real0 = now(), time.monotonic()
    await asyncio.sleep(3600)
    assert now() - t0 == 3600
    async with asyncio.timeout(0.5):
        await asyncio.sleep(0.25)
    assert now() - t0 == pytest.approx(3600.25)
    assert time.monotonic() - real0 < 60  # an hour of virtual time is not an hour


def test_virtual_time_fails_instead_of_hanging() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    with pytest.raises(RuntimeError, match="nothing scheduled"):
        virtual_time(forever)()


# -- decoding through the driver -------------------------------------------------------------

BIG, LITTLE = Order.BIG, Order.LITTLE

DECODING = [
    # data type, word order, byte order, registers as the device sends them, value
    (DataType.INT16, BIG, BIG, [0xFF85], -123),
    (DataType.INT16, BIG, LITTLE, [0x85FF], -123),
    (DataType.UINT16, BIG, BIG, [0xFF85], 65413),
    (DataType.INT32, BIG, BIG, [0xFFFE, 0x1DC0], -123456),  # ABCD
    (DataType.INT32, LITTLE, BIG, [0x1DC0, 0xFFFE], -123456),  # CDAB
    (DataType.UINT32, BIG, LITTLE, [0x0100, 0x0302], 0x00010203),  # BADC
    (DataType.UINT32, LITTLE, LITTLE, [0x0302, 0x0100], 0x00010203),  # DCBA
    (DataType.INT64, BIG, BIG, [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], -2),
    (DataType.UINT64, LITTLE, BIG, [0x0004, 0x0003, 0x0002, 0x0001], 281483566841860),
    (DataType.FLOAT32, BIG, BIG, [0x41AC, 0x0000], 21.5),  # ABCD
    (DataType.FLOAT32, LITTLE, BIG, [0x0000, 0x41AC], 21.5),  # CDAB
    (DataType.FLOAT32, BIG, LITTLE, [0xAC41, 0x0000], 21.5),  # BADC
    (DataType.FLOAT32, LITTLE, LITTLE, [0x0000, 0xAC41], 21.5),  # DCBA
    (DataType.FLOAT32, BIG, BIG, [0xC050, 0x0000], -3.25),
    (DataType.FLOAT64, BIG, BIG, [0x3FF8, 0, 0, 0], 1.5),
    (DataType.FLOAT64, LITTLE, LITTLE, [0, 0, 0, 0xF83F], 1.5),
]


@pytest.mark.parametrize("function", [Function.HOLDING, Function.INPUT])
@pytest.mark.parametrize(("data_type", "word_order", "byte_order", "words", "value"), DECODING)
@virtual_time
async def test_every_type_and_order_decodes(
    function: Function,
    data_type: DataType,
    word_order: Order,
    byte_order: Order,
    words: list[int],
    value: float,
) -> None:
    unit = FakeUnit()
    unit.set_words(function, 10, words)
    server = FakeModbusServer({UNIT: unit})
    p = point("x", 10, data_type, function=function, word_order=word_order, byte_order=byte_order)
    d = make_driver(server, [p])
    t0 = now()
    (r,) = await d.poll_once()
    assert (r.tag, r.value, r.quality, r.message, r.cause) == (
        p.tag,
        value,
        Quality.GOOD,
        None,
        None,
    )
    assert isinstance(r.value, float) and r.ts_edge_us == edge_us(t0) and r.ts_source_us is None
    assert sent(server) == [(int(function), 10, len(words))]


@pytest.mark.parametrize(
    ("byte_order", "words", "text"),
    [
        (BIG, [0x4142, 0x3132, 0x0000], "AB12"),
        (LITTLE, [0x4241, 0x3231, 0x2020], "AB12"),  # padded with spaces, stripped
        (BIG, [0x4F4B, 0x0041, 0x4141], "OK"),  # ends at the first NUL
    ],
)
@virtual_time
async def test_strings_decode(byte_order: Order, words: list[int], text: str) -> None:
    server = FakeModbusServer({UNIT: FakeUnit(holding=dict(enumerate(words)))})
    d = make_driver(server, [point("s", 0, DataType.STRING, length=3, byte_order=byte_order)])
    (r,) = await d.poll_once()
    assert (r.value, r.quality) == (text, Quality.GOOD)


@virtual_time
async def test_scale_and_offset_apply_after_decoding() -> None:
    server = FakeModbusServer({UNIT: FakeUnit(holding={0: 250, 1: 0xFF38})})
    d = make_driver(
        server,
        [
            point("a", 0, DataType.UINT16, scale=0.1, offset=-5.0),
            point("b", 1, DataType.INT16, scale=0.5),
        ],
    )
    got = by_tag(await d.poll_once())
    assert got[f"{DEV}/a"].value == pytest.approx(20.0)
    assert got[f"{DEV}/b"].value == -100.0


# -- garbage: Bad per the product rules, never clamped ---------------------------------------

GARBAGE = [
    # value spec kwargs, words, quality, value kept, message part, cause
    pytest.param(
        {"data_type": DataType.FLOAT32},
        [0x7FC0, 0x0000],
        Quality.BAD,
        None,
        "device returned nan [0x7FC0 0x0000]",
        Cause.DEVICE,
        id="nan",
    ),
    pytest.param(
        {"data_type": DataType.FLOAT32},
        [0x7F80, 0x0000],
        Quality.BAD,
        None,
        "device returned inf",
        Cause.DEVICE,
        id="inf",
    ),
    pytest.param(
        {"data_type": DataType.FLOAT32},
        [0xFF80, 0x0000],
        Quality.BAD,
        None,
        "device returned -inf",
        Cause.DEVICE,
        id="-inf",
    ),
    pytest.param(
        {"data_type": DataType.INT16, "invalid_raw": frozenset({-32768})},
        [0x8000],
        Quality.BAD,
        None,
        "device invalid-value marker -32768 [0x8000]",
        Cause.DEVICE,
        id="invalid-marker",
    ),
    pytest.param(
        {"data_type": DataType.UINT16, "valid_min": 0.0, "valid_max": 100.0},
        [500],
        Quality.BAD,
        500.0,
        "500 outside the sensor range [0.0, 100.0] [0x01F4]",
        Cause.DEVICE,
        id="out-of-range-kept",
    ),
    pytest.param(
        {"data_type": DataType.FLOAT64, "scale": 10.0},
        [0x7FEF, 0xFFFF, 0xFFFF, 0xFFFF],
        Quality.BAD,
        None,
        "scaled value overflows",
        Cause.COLLECTOR,
        id="scale-overflow",
    ),
    pytest.param(
        {"data_type": DataType.STRING},
        [0xC3A9, 0x0000],
        Quality.BAD,
        None,
        "string registers are not ASCII",
        Cause.DEVICE,
        id="not-ascii",
    ),
    pytest.param(
        {"data_type": DataType.STRING},
        [0x4107, 0x0000],
        Quality.BAD,
        None,
        "control characters",
        Cause.DEVICE,
        id="control-chars",
    ),
    pytest.param(
        {"data_type": DataType.UINT16},
        [0x1_0000],
        Quality.BAD,
        None,
        "undecodable registers [0x10000]: register value 65536 is not a 16-bit word",
        Cause.DEVICE,
        id="not-a-word",
    ),
]


@pytest.mark.parametrize(("value", "words", "quality", "kept", "message", "cause"), GARBAGE)
@virtual_time
async def test_garbage_is_bad_and_only_for_its_tag(
    value: dict[str, Any],
    words: list[int],
    quality: Quality,
    kept: float | None,
    message: str,
    cause: Cause,
) -> None:
    unit = FakeUnit(holding=image(0, 1, 42))
    unit.set_words(READ_HOLDING, 1, words)
    server = FakeModbusServer({UNIT: unit})
    bad = RegisterPoint(f"{DEV}/bad", Function.HOLDING, 1, len(words), ValueSpec(**value))
    good = u16("good", 0)
    d = make_driver(server, [good, bad])
    got = by_tag(await d.poll_once())
    r = got[bad.tag]
    assert (r.quality, r.value, r.cause) == (quality, kept, cause)
    assert message in (r.message or "")
    # the neighbour in the same request is untouched
    assert (got[good.tag].value, got[good.tag].quality) == (42.0, Quality.GOOD)
    assert sent(server) == [(3, 0, 1 + len(words))]


# -- which requests go out -------------------------------------------------------------------

COALESCING = [
    pytest.param(
        [u16("a", 0), point("b", 1, DataType.FLOAT32), point("c", 3, DataType.INT32)],
        {},
        [(3, 0, 5)],
        id="adjacent-one-request",
    ),
    pytest.param(
        [u16("a", 0), u16("b", 3)], {}, [(3, 0, 1), (3, 3, 1)], id="hole-splits-by-default"
    ),
    pytest.param([u16("a", 0), u16("b", 3)], {"max_gap": 2}, [(3, 0, 4)], id="max-gap-spans-hole"),
    pytest.param(
        [u16("a", 0), u16("b", 4)], {"max_gap": 2}, [(3, 0, 1), (3, 4, 1)], id="hole-beyond-max-gap"
    ),
    pytest.param(
        [u16("i", 0, Function.INPUT), u16("h", 0)],
        {},
        [(3, 0, 1), (4, 0, 1)],
        id="one-request-per-function-holding-first",
    ),
    pytest.param(
        [u16(f"r{i}", i) for i in range(130)], {}, [(3, 0, 125), (3, 125, 5)], id="125-limit"
    ),
    pytest.param(
        [u16(f"r{i}", i) for i in range(12)],
        {"max_registers": 10},
        [(3, 0, 10), (3, 10, 2)],
        id="device-limit",
    ),
    pytest.param(
        [*(u16(f"r{i}", i) for i in range(124)), point("f", 124, DataType.FLOAT32)],
        {},
        [(3, 0, 124), (3, 124, 2)],
        id="a-value-never-straddles-two-requests",
    ),
    pytest.param(
        [u16("u", 5), point("s", 5, DataType.INT16), point("f", 5, DataType.FLOAT32)],
        {},
        [(3, 5, 2)],
        id="overlapping-points-share-registers",
    ),
    pytest.param(
        [u16("b", 20), u16("a", 2), u16("c", 21)],
        {},
        [(3, 2, 1), (3, 20, 2)],
        id="address-order-not-config-order",
    ),
]


@pytest.mark.parametrize(("points", "spec", "requests"), COALESCING)
@virtual_time
async def test_requests_are_coalesced(
    points: list[RegisterPoint], spec: dict[str, Any], requests: list[tuple[int, int, int]]
) -> None:
    server = FakeModbusServer(
        {UNIT: FakeUnit(holding=image(0, 200, 7), input_registers=image(0, 200, 7))}
    )
    d = make_driver(server, points, **spec)
    readings = await d.poll_once()
    assert sent(server) == requests
    assert sorted(r.tag for r in readings) == sorted(d.tags)
    assert all(r.quality is Quality.GOOD for r in readings)


@virtual_time
async def test_reading_across_a_hole_gets_illegal_data_address() -> None:
    """Why max_gap is 0 by default: the device refuses reads over unmapped registers."""
    server = FakeModbusServer({UNIT: FakeUnit(holding={0: 1, 3: 2})})
    d = make_driver(server, [u16("a", 0), u16("b", 3)], max_gap=2)
    readings = await d.poll_once()
    assert sent(server) == [(3, 0, 4)]
    assert all(r.quality is Quality.BAD and r.cause is Cause.DEVICE for r in readings)
    assert all(r.message == "FC03 0+4: Modbus exception 2 (illegal data address)" for r in readings)


@virtual_time
async def test_one_request_in_flight_and_one_connection() -> None:
    counter = FakeParticleCounter(capacity=20)
    counter.holding |= image(100, 300)
    counter.input |= image(100, 300)
    counter.sample(5)
    server = FakeModbusServer({UNIT: counter})
    server.latency_s = 0.05  # overlapping requests would show as more than one in flight
    pts = [u16(f"h{i}", 100 + 3 * i) for i in range(5)]
    pts += [u16(f"i{i}", 100 + 3 * i, Function.INPUT) for i in range(5)]
    d = make_driver(
        server,
        pts,
        [RecordPoint(f"{DEV}/p05", channel=1)],
        last_record_s=counter.records[0].timestamp_s,  # four records to backfill
    )
    sink = ListSink()
    async with running(d, sink=sink):
        await asyncio.sleep(2.5)
        server.drop_connections()
        await asyncio.sleep(3.0)
    assert len(server.requests) > 30
    assert server.max_in_flight == 1
    assert server.max_open_connections == 1
    assert d.status.connects == 2
    assert not any(t.connected for t in server.transports)  # closed on stop
    assert d.status.state is LinkState.STOPPED
    # the requests went out one after the other, each after the previous answer
    times = [r.at for r in server.requests]
    assert all(b - a >= 0.05 - 1e-9 for a, b in itertools.pairwise(times))


# -- timeouts, exceptions, disconnects ---------------------------------------------------------


def three_requests() -> tuple[FakeModbusServer, list[RegisterPoint]]:
    """A device read in three requests: 0+2, 10+2, 20+2 (float32 each)."""
    unit = FakeUnit()
    for a in (0, 10, 20):
        unit.set_words(READ_HOLDING, a, [0x41AC, 0x0000])
    pts = [point(f"t{a}", a, DataType.FLOAT32) for a in (0, 10, 20)]
    return FakeModbusServer({UNIT: unit}), pts


@pytest.mark.parametrize(
    ("kind", "elapsed", "message"),
    [
        pytest.param(
            FaultKind.NO_ANSWER,
            1.0,  # pymodbus's own timeout (timeout_s), said in the driver's words
            "FC03 10+2: no answer within 1 s",
            id="client-timeout",
        ),
        pytest.param(
            FaultKind.HANG,
            1.5,  # the driver's guard: 1.5 x timeout_s
            "FC03 10+2: no answer within 1 s",
            id="driver-guard",
        ),
        pytest.param(
            FaultKind.DISCONNECT,
            0.0,
            "FC03 10+2: Modbus Error: [Connection] Connection lost during request",
            id="disconnect-mid-read",
        ),
    ],
)
@virtual_time
async def test_link_fault_mid_poll_is_bad_network_then_reconnects(
    kind: FaultKind, elapsed: float, message: str
) -> None:
    server, pts = three_requests()
    d = make_driver(server, pts)
    server.fail(kind, address=10)
    t0 = now()
    got = by_tag(await d.poll_once())
    assert now() - t0 == pytest.approx(elapsed)
    first, failed, after = (got[p.tag] for p in pts)
    assert (first.value, first.quality) == (21.5, Quality.GOOD)
    assert (failed.quality, failed.value, failed.cause) == (Quality.BAD, None, Cause.NETWORK)
    assert failed.message == message
    # the connection is dropped at once: the rest of the poll is not even tried, and its tags
    # say why the link was lost
    assert (after.quality, after.cause, after.message) == (Quality.BAD, Cause.NETWORK, message)
    assert d.status.last_error == message
    assert sent(server) == [(3, 0, 2), (3, 10, 2)]
    assert d.status.state is LinkState.DISCONNECTED and d.status.disconnects == 1
    assert not server.transports[0].connected
    # the first reconnect is not delayed: the next poll reads everything again
    again = await d.poll_once()
    assert [r.quality for r in again] == [Quality.GOOD] * 3
    assert d.status.connects == 2 and len(server.transports) == 2
    assert server.max_open_connections == 1


@virtual_time
async def test_device_status_keeps_the_cause_of_a_lost_link() -> None:
    server, pts = three_requests()
    d = make_driver(server, pts)
    server.fail(FaultKind.HANG, address=10)
    await d.poll_once()
    assert d.status.last_error == "FC03 10+2: no answer within 1 s"


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (1, "illegal function"),
        (2, "illegal data address"),
        (3, "illegal data value"),
        (4, "server device failure"),
        (5, "acknowledge"),
        (6, "server device busy"),
        (10, "gateway path unavailable"),
        (11, "gateway target failed to respond"),
        (99, "unknown"),
    ],
)
@virtual_time
async def test_exception_code_is_bad_device_and_keeps_the_link(code: int, name: str) -> None:
    server, pts = three_requests()
    d = make_driver(server, pts)
    server.fail(FaultKind.EXCEPTION, code=code, address=10)
    got = by_tag(await d.poll_once())
    r = got[pts[1].tag]
    assert (r.quality, r.value, r.cause) == (Quality.BAD, None, Cause.DEVICE)
    assert r.message == f"FC03 10+2: Modbus exception {code} ({name})"
    assert d.status.last_error == r.message
    # only that request's tags: the others were still read on the same connection
    assert got[pts[0].tag].quality is got[pts[2].tag].quality is Quality.GOOD
    assert sent(server) == [(3, 0, 2), (3, 10, 2), (3, 20, 2)]
    again = await d.poll_once()
    assert all(r.quality is Quality.GOOD for r in again)
    assert (d.status.connects, d.status.disconnects, d.status.state) == (
        1,
        0,
        LinkState.CONNECTED,
    )


@virtual_time
async def test_unit_missing_behind_a_gateway_is_exception_11() -> None:
    server = FakeModbusServer({UNIT + 1: FakeUnit(holding=image(0, 2))})
    d = make_driver(server, [u16("a", 0)])
    (r,) = await d.poll_once()
    assert r.message == "FC03 0+1: Modbus exception 11 (gateway target failed to respond)"
    assert r.cause is Cause.DEVICE and server.requests[0].unit == UNIT


@virtual_time
async def test_short_answer_is_bad_device() -> None:
    server, pts = three_requests()
    d = make_driver(server, pts)
    server.fail(FaultKind.SHORT, address=20)
    got = by_tag(await d.poll_once())
    r = got[pts[2].tag]
    assert (r.quality, r.cause, r.message) == (
        Quality.BAD,
        Cause.DEVICE,
        "FC03 20+2: short answer, 1 registers",
    )
    assert d.status.state is LinkState.CONNECTED


@virtual_time
async def test_connect_refused_and_connect_hang() -> None:
    server, pts = three_requests()
    d = make_driver(server, pts)
    server.refuse_connections = True
    t0 = now()
    got = await d.poll_once()
    assert now() == t0  # refused at once
    assert {(r.quality, r.cause, r.message) for r in got} == {
        (Quality.BAD, Cause.NETWORK, "cannot connect to fake:502 within 2 s")
    }
    assert server.requests == [] and d.status.state is LinkState.DISCONNECTED
    server.refuse_connections = False
    server.hang_connections = True
    await asyncio.sleep(1.0)  # the backoff
    t0 = now()
    got = await d.poll_once()
    assert now() - t0 == pytest.approx(2.0)  # the driver's connect guard: 2 x timeout_s
    assert {(r.quality, r.cause) for r in got} == {(Quality.BAD, Cause.NETWORK)}
    assert all((r.message or "").startswith("connect failed:") for r in got)
    assert d.status.state is LinkState.DISCONNECTED and d.status.connects == 0
    assert not server.transports[-1].connected


@virtual_time
async def test_connect_timeout_message_names_the_reason() -> None:
    server, pts = three_requests()
    server.hang_connections = True
    d = make_driver(server, pts)
    got = await d.poll_once()
    assert {r.message for r in got} == {"connect failed: TimeoutError"}


@virtual_time
async def test_the_default_transport_is_a_pymodbus_client_we_own_retries_for() -> None:
    """The real path: built, never connected (no socket in unit tests)."""
    client = pymodbus_transport(device_spec(timeout_s=0.7))
    try:
        assert isinstance(client, AsyncModbusTcpClient) and not client.connected
        p = client.comm_params
        assert (p.host, p.port, p.timeout_connect, p.reconnect_delay, p.comm_name) == (
            "fake",
            502,
            0.7,
            0,
            "dev-01",
        )
        assert client.ctx.retries == 0
    finally:
        client.close()


@virtual_time
async def test_reconnect_backs_off_exponentially_to_the_cap_and_resets() -> None:
    server, pts = three_requests()
    d = make_driver(server, pts, poll_interval_s=0.25, reconnect_min_s=1.0, reconnect_max_s=8.0)
    sink = ListSink()
    async with running(d, sink=sink):
        await asyncio.sleep(0.1)
        server.drop_connections()
        server.refuse_connections = True
        await asyncio.sleep(20.0)  # t = 1020.1
        server.refuse_connections = False
        await asyncio.sleep(4.0)  # reconnected at 1023.5; t = 1024.1
        server.drop_connections()
        server.refuse_connections = True
        await asyncio.sleep(2.0)
    attempts = [t - START for t in server.connect_attempts]
    # 0: first connect; 0.25: the poll that finds the link gone; 0.5: first reconnect
    # attempt, at once; then 1, 2, 4, 8, 8 s apart; success at 23.5 resets the backoff.
    expected = [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 23.5, 24.5, 25.5]
    assert attempts == pytest.approx(expected, abs=1e-6)
    assert d.status.connects == 2
    # a poll every 0.25 s throughout, one reading per tag each; Good exactly while connected
    assert [b[0].ts_edge_us for b in sink.batches] == [
        edge_us(START + 0.25 * i) for i in range(len(sink.batches))
    ]
    assert {len(b) for b in sink.batches} == {3}
    good_polls = [i * 0.25 for i, b in enumerate(sink.batches) if b[0].quality is Quality.GOOD]
    assert good_polls == [0.0, 23.5, 23.75, 24.0]
    assert {
        (r.quality, r.cause) for b in sink.batches for r in b if r.quality is not Quality.GOOD
    } == {(Quality.BAD, Cause.NETWORK)}
    assert d.status.failed_polls == len(sink.batches) - 4


@virtual_time
async def test_default_backoff_comes_from_the_spec_with_jitter() -> None:
    server, pts = three_requests()
    server.refuse_connections = True
    d = make_driver(server, pts, jitter=True, reconnect_min_s=0.5, reconnect_max_s=3.0)
    while now() - START < 30:
        await d.poll_once()
        await asyncio.sleep(0.01)
    gaps = [b - a for a, b in itertools.pairwise(server.connect_attempts)]
    for gap, base in zip(gaps, [0.5, 1.0, 2.0, 3.0, 3.0, 3.0], strict=False):
        assert base * 0.9 - 1e-9 <= gap <= min(3.0, base * 1.1) + 0.011
    assert max(gaps) <= 3.0 + 0.011


@virtual_time
async def test_dead_device_does_not_stall_the_others() -> None:
    dead, pts = three_requests()
    dead.fail(FaultKind.HANG, times=None)
    alive, pts2 = three_requests()
    a, b = make_driver(dead, pts), make_driver(alive, pts2)
    sink_a, sink_b = ListSink(), ListSink()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(a.run(sink_a, stop)), asyncio.create_task(b.run(sink_b, stop))]
    await asyncio.sleep(10.5)
    stop.set()
    await asyncio.gather(*tasks)
    # the healthy device kept its 1 s schedule to the microsecond
    assert [batch[0].ts_edge_us for batch in sink_b.batches] == [
        edge_us(START + i) for i in range(11)
    ]
    assert all(r.quality is Quality.GOOD for r in sink_b.readings)
    assert sink_a.readings and all(r.quality is Quality.BAD for r in sink_a.readings)
    assert {r.cause for r in sink_a.readings} == {Cause.NETWORK}


@virtual_time
async def test_poll_schedule_and_missed_polls_on_the_injected_clock() -> None:
    server, pts = three_requests()
    d = make_driver(server, pts[:2])
    sink = ListSink()
    async with running(d, sink=sink):
        await asyncio.sleep(3.5)
    assert [b[0].ts_edge_us for b in sink.batches] == [edge_us(START + i) for i in range(4)]
    assert sink.gaps == [] and d.status.missed_polls == 0
    # a device that answers slowly: two requests of 0.6 s take longer than the 1 s interval
    server.latency_s = 0.6
    slow = make_driver(server, pts[:2])
    sink = ListSink()
    t0 = now()
    async with running(slow, sink=sink):
        await asyncio.sleep(5.5)
    starts = [b[0].ts_edge_us for b in sink.batches]
    assert starts == [edge_us(t0 + s) for s in (0, 2, 4)]  # the missed slot is skipped
    assert slow.status.missed_polls == 3
    expected = [(edge_us(t0 + s + 1.0), edge_us(t0 + s + 1.2)) for s in (0, 2, 4)]
    assert [(g[1], g[2]) for g in sink.gaps] == [pytest.approx(e, abs=2) for e in expected]
    assert {(g[3], g[4]) for g in sink.gaps} == {
        (Cause.COLLECTOR, "1 poll(s) missed: the poll took longer than the 1 s interval")
    }


# -- particle-counter records ----------------------------------------------------------------

P05, P50, TEMP = (f"{DEV}/particles_0_5", f"{DEV}/particles_5_0", f"{DEV}/temperature")
RECORDS = [RecordPoint(P05, channel=1), RecordPoint(P50, channel=4), RecordPoint(TEMP, analog=1)]
PER_M3 = 1 / 0.028316846592  # 1 CFM for 60 s samples 1 ft3


def counter_driver(
    counter: FakeParticleCounter, last_record_s: int | None = None, **spec: Any
) -> tuple[FakeModbusServer, ModbusDriver]:
    server = FakeModbusServer({UNIT: counter})
    return server, make_driver(server, records=RECORDS, last_record_s=last_record_s, **spec)


def stamps(readings: Sequence[Reading], tag: str = P05) -> list[int]:
    return [r.ts_source_us // 1_000_000 for r in readings if r.tag == tag and r.ts_source_us]


@virtual_time
async def test_first_contact_reads_the_newest_record_only() -> None:
    counter = FakeParticleCounter()
    counter.sample(3)
    server, d = counter_driver(counter)
    got = await d.poll_once()
    newest = counter.records[-1]
    assert sent(server) == [(3, 22, 12), (WRITE_REGISTER, 24, 2), (READ_INPUT, 0, 76)]
    assert [r.tag for r in got] == [P05, P50, TEMP]
    assert {r.ts_source_us for r in got} == {newest.timestamp_s * 1_000_000}
    assert {r.ts_edge_us for r in got} == {edge_us(START)}
    r05, r50, temp = got
    assert r05.value == pytest.approx(1000 * PER_M3) and r05.quality is Quality.GOOD
    assert r50.value == pytest.approx(10 * PER_M3)
    assert temp.value == 21.0
    assert d.last_record_s == newest.timestamp_s and d.status.backfilled == 0
    # nothing new: the newest record is looked at, nothing is emitted
    server.requests.clear()
    assert await d.poll_once() == []
    assert sent(server) == [(3, 22, 12), (WRITE_REGISTER, 24, 2), (READ_INPUT, 0, 76)]


@virtual_time
async def test_backfill_by_record_index_after_an_outage() -> None:
    counter = FakeParticleCounter()
    counter.sample(3)
    server, d = counter_driver(counter)
    sink = ListSink()
    async with running(d, sink=sink):
        await asyncio.sleep(0.5)
        server.drop_connections()
        server.refuse_connections = True
        counter.sample(4)  # the counter keeps sampling while the link is down
        await asyncio.sleep(3.0)
        server.refuse_connections = False
        await asyncio.sleep(3.0)
    good = [r for r in sink.readings if r.quality is Quality.GOOD]
    first = counter.records[2].timestamp_s
    assert stamps(good) == [first + 60 * i for i in range(5)]  # every record once, in order
    assert stamps(good, TEMP) == stamps(good)
    assert d.status.backfilled == 3 and sink.gaps == []
    bad = [r for r in sink.readings if r.quality is Quality.BAD]
    assert bad and {r.cause for r in bad} == {Cause.NETWORK}  # the outage itself is visible
    # after the outage: newest first, walking back by index until a record already had
    after = [(r.function, r.address, r.count) for r in server.requests if r.at > START + 3.5]
    assert after[:11] == [
        (3, 22, 12),
        *[x for i in (6, 5, 4, 3, 2) for x in ((6, 24, i), (4, 0, 76))],
    ]


@virtual_time
async def test_backfill_after_a_restart_from_the_stored_last_record() -> None:
    counter = FakeParticleCounter()
    counter.sample(6)
    server, d = counter_driver(counter, last_record_s=counter.records[1].timestamp_s)
    got = await d.poll_once()
    assert stamps(got) == [r.timestamp_s for r in list(counter.records)[2:]]
    assert d.status.backfilled == 3


@virtual_time
async def test_link_lost_mid_backfill_loses_nothing() -> None:
    counter = FakeParticleCounter()
    counter.sample(6)
    server, d = counter_driver(counter, last_record_s=counter.records[1].timestamp_s)
    server.fail(FaultKind.DISCONNECT, function=READ_INPUT)
    # poll 2 is requests 4..: FC03, then FC06/FC04 pairs; request 10 is its third FC04
    server.at_request(10, lambda: server.fail(FaultKind.DISCONNECT, function=READ_INPUT))
    got = await d.poll_once()  # the first FC04 fails
    assert {(r.quality, r.cause) for r in got} == {(Quality.BAD, Cause.NETWORK)}
    assert d.last_record_s == counter.records[1].timestamp_s
    got = await d.poll_once()  # reconnects; fails again in the middle of the walk back
    assert {(r.quality, r.cause) for r in got} == {(Quality.BAD, Cause.NETWORK)}
    got = await d.poll_once()
    assert stamps(got) == [r.timestamp_s for r in list(counter.records)[2:]]
    assert d.status.connects == 3


@pytest.mark.parametrize(("new", "lost_s"), [(5, 0), (6, 60), (8, 180)])
@virtual_time
async def test_overwritten_records_are_a_gap(new: int, lost_s: int) -> None:
    counter = FakeParticleCounter(capacity=5)
    counter.sample(2)
    server, d = counter_driver(counter)
    sink = ListSink()
    async with running(d, sink=sink):
        await asyncio.sleep(0.5)
        last = counter.records[-1].timestamp_s
        counter.sample(new)  # more than the ring holds: the oldest unread ones are gone
        await asyncio.sleep(1.0)
    oldest = counter.records[0]
    assert stamps(sink.readings) == [last, *(r.timestamp_s for r in counter.records)]
    if lost_s == 0:
        assert sink.gaps == []
        return
    assert sink.gaps == [
        (
            [P05, P50, TEMP],
            last * 1_000_000,
            (oldest.timestamp_s - 60) * 1_000_000,
            Cause.DEVICE,
            f"device record memory (5 records) overwrote about {lost_s} s of samples "
            "before they could be read",
        )
    ]


@pytest.mark.parametrize(("unread", "lost_s"), [(0, 0), (3, 180)])
@virtual_time
async def test_counter_reset_clears_its_memory(unread: int, lost_s: int) -> None:
    counter = FakeParticleCounter()
    counter.sample(3)
    server, d = counter_driver(counter)
    sink = ListSink()
    async with running(d, sink=sink):
        await asyncio.sleep(0.5)
        last = counter.records[-1].timestamp_s
        counter.sample(unread)
        counter.clear()
        await asyncio.sleep(1.0)  # a poll of an empty memory: nothing to read, no error
        assert len(sink.readings) == 3 and d.status.last_error is None
        counter.sample(2)
        await asyncio.sleep(1.0)
    assert stamps(sink.readings) == [last, *(r.timestamp_s for r in counter.records)]
    assert all(r.quality is Quality.GOOD for r in sink.readings)
    # the message counts the records now in memory (2), whatever their capacity
    message = f"device record memory (2 records) overwrote about {lost_s} s of samples"
    assert [g[4] for g in sink.gaps] == ([f"{message} before they could be read"] if lost_s else [])


@virtual_time
async def test_a_record_stored_during_the_walk_back_is_read_next_poll() -> None:
    counter = FakeParticleCounter(capacity=10)
    counter.sample(3)
    server, d = counter_driver(counter)
    await d.poll_once()
    counter.sample(2)
    server.at_request(4, lambda: counter.sample(1))  # between the newest and the walk back
    got = await d.poll_once()
    got += await d.poll_once()
    assert stamps(got) == [r.timestamp_s for r in list(counter.records)[3:]]


@virtual_time
async def test_full_ring_shifting_during_the_walk_back_emits_each_record_once() -> None:
    counter = FakeParticleCounter(capacity=5)
    counter.sample(5)
    server, d = counter_driver(counter)
    await d.poll_once()
    counter.sample(1)
    server.at_request(4, lambda: counter.sample(1))  # before FC06 24 <- 3
    got = await d.poll_once()
    got += await d.poll_once()
    seen = stamps(got)
    assert seen == sorted(set(seen))
    # once each, and none lost: the two records sampled after first contact
    assert seen == [r.timestamp_s for r in list(counter.records)[-2:]]


@virtual_time
async def test_counter_clock_set_back_is_not_silent() -> None:
    counter = FakeParticleCounter()
    counter.sample(3)
    server, d = counter_driver(counter)
    await d.poll_once()
    last = counter.records[-1].timestamp_s
    counter.clock_s -= 3600  # the counter's real-time clock is set back an hour
    counter.sample(3)
    got = await d.poll_once()
    assert [r.quality for r in got] == [Quality.BAD] * 3  # before the fix: nothing at all
    assert got[0].cause is Cause.DEVICE and got[0].message is not None
    assert got[0].message.startswith("counter clock set back: its newest record (")
    assert f"older than the last one read ({iso(last * 1_000_000)[:19]}Z)" in got[0].message
    counter.sample(1)  # from then on its records are read again
    again = await d.poll_once()
    assert [r.quality for r in again] == [Quality.GOOD] * 3
    assert {r.ts_source_us for r in again} == {counter.records[-1].timestamp_s * 1_000_000}


RECORD_QUALITY = [
    # status, flow, analog 1, (P05 quality, value kept, message), (TEMP quality, message)
    pytest.param(0, 1.0, 21.0, (Quality.GOOD, True, None), (Quality.GOOD, None), id="good"),
    pytest.param(
        particle.THRESHOLD_HIGH,
        1.0,
        21.0,
        (Quality.GOOD, True, None),
        (Quality.GOOD, None),
        id="threshold-bit-no-effect",
    ),
    pytest.param(
        particle.OVERFLOW,
        1.0,
        21.0,
        (
            Quality.UNCERTAIN,
            True,
            "particle overflow: the count is a lower bound (status 0x04); raw count 1000",
        ),
        (Quality.GOOD, None),
        id="overflow",
    ),
    pytest.param(
        particle.LASER_ALERT,
        1.0,
        21.0,
        (Quality.UNCERTAIN, True, "laser alert (status 0x01); raw count 1000"),
        (Quality.UNCERTAIN, "laser alert (status 0x01); analog channel 1"),
        id="laser",
    ),
    pytest.param(
        particle.FLOW_ALERT | particle.SERVICE,
        1.0,
        21.0,
        (
            Quality.UNCERTAIN,
            True,
            "flow alert; instrument service due (status 0x0A); raw count 1000",
        ),
        (Quality.UNCERTAIN, "flow alert; instrument service due (status 0x0A); analog channel 1"),
        id="flow-and-service",
    ),
    pytest.param(
        particle.SAMPLER_ERROR | particle.LASER_ALERT,
        1.0,
        21.0,
        (Quality.BAD, True, "sampler error (status 0x41); raw count 1000"),
        (Quality.BAD, "sampler error (status 0x41); analog channel 1"),
        id="sampler-error-bad-value-kept",
    ),
    pytest.param(
        0,
        1.0,
        math.nan,
        (Quality.GOOD, True, None),
        (Quality.BAD, "analog channel 1 is nan"),
        id="nan-analog",
    ),
    pytest.param(
        0,
        0.0,
        21.0,
        (Quality.BAD, False, "zero sample volume (flow 0.0 CFM, sample 60 s); raw count 1000"),
        (Quality.GOOD, None),
        id="zero-flow",
    ),
]


@pytest.mark.parametrize(("status", "flow", "analog", "p05", "temp"), RECORD_QUALITY)
@virtual_time
async def test_record_quality_from_status_bits(
    status: int,
    flow: float,
    analog: float,
    p05: tuple[Quality, bool, str | None],
    temp: tuple[Quality, str | None],
) -> None:
    counter = FakeParticleCounter(flow_cfm=flow)
    counter.store(status=status, analog=(analog,))
    server, d = counter_driver(counter)
    got = by_tag(await d.poll_once())
    r, t = got[P05], got[TEMP]
    quality, kept, message = p05
    assert (r.quality, r.message) == (quality, message)
    assert r.value == (pytest.approx(1000 * PER_M3) if kept else None)
    assert r.cause is (None if quality is Quality.GOOD else Cause.DEVICE)
    assert (t.quality, t.message) == temp
    assert t.value == (None if math.isnan(analog) else 21.0)


@pytest.mark.parametrize("order", [Order.BIG, Order.LITTLE])
@virtual_time
async def test_analog_float_word_order_is_the_models(order: Order) -> None:
    counter = FakeParticleCounter(float_word_order=order)
    counter.store(analog=(-3.25, 45.5))
    server, d = counter_driver(counter, float_word_order=order)
    got = by_tag(await d.poll_once())
    assert got[TEMP].value == -3.25


@pytest.mark.parametrize(
    ("function", "code", "message"),
    [
        (READ_HOLDING, 2, "FC03 22+12: Modbus exception 2 (illegal data address)"),
        (WRITE_REGISTER, 4, "FC06 24: Modbus exception 4"),
        (READ_INPUT, 6, "FC04 0+76: Modbus exception 6 (server device busy)"),
    ],
)
@virtual_time
async def test_record_read_exception_is_bad_device(function: int, code: int, message: str) -> None:
    counter = FakeParticleCounter()
    counter.sample(2)
    server, d = counter_driver(counter, last_record_s=counter.records[0].timestamp_s)
    server.fail(FaultKind.EXCEPTION, code=code, function=function)
    got = await d.poll_once()
    assert {(r.quality, r.cause, r.message, r.value) for r in got} == {
        (Quality.BAD, Cause.DEVICE, message, None)
    }
    assert [r.tag for r in got] == [P05, P50, TEMP]
    assert d.last_record_s == counter.records[0].timestamp_s  # retried next poll
    got = await d.poll_once()
    assert stamps(got) == [counter.records[1].timestamp_s]
    assert d.status.disconnects == 0


@virtual_time
async def test_registers_and_records_on_one_device() -> None:
    counter = FakeParticleCounter()
    counter.sample(1)
    counter.set_words(READ_HOLDING, 2, [7])  # the status register
    server = FakeModbusServer({UNIT: counter})
    d = make_driver(server, [u16("status", 2)], RECORDS)
    got = by_tag(await d.poll_once())
    assert got[f"{DEV}/status"].value == 7.0 and got[P05].quality is Quality.GOOD
    assert sent(server)[0] == (3, 2, 1)
    server.fail(FaultKind.HANG, address=2)
    got = by_tag(await d.poll_once())
    # the link broke during the register reads: the records are not read either
    assert {r.cause for r in got.values()} == {Cause.NETWORK}
    assert got[P05].message == "FC03 2+1: no answer within 1 s"


@pytest.mark.parametrize(
    ("analog", "stored_order", "quality", "says"),
    [
        (21.0, Order.LITTLE, Quality.GOOD, None),
        (22.5, Order.LITTLE, Quality.BAD, "22.5 outside the sensor range [-40.0, 20.0]"),
        # a float in the other word order decodes to nonsense: never stored Good
        (21.0, Order.BIG, Quality.BAD, "subnormal float: the device's float_word_order"),
    ],
)
@virtual_time
async def test_record_tags_obey_their_sensor_range(
    analog: float, stored_order: Order, quality: Quality, says: str | None
) -> None:
    """Found: 22.5 stored Good on a record tag with ``valid_max = 20``."""
    counter = FakeParticleCounter(float_word_order=stored_order)
    counter.store(analog=(analog,))
    server = FakeModbusServer({UNIT: counter})
    ranged = [
        RecordPoint(P05, channel=1, valid_min=0.0, valid_max=1e9),
        RecordPoint(TEMP, analog=1, valid_min=-40.0, valid_max=20.0 if analog > 22 else 80.0),
    ]
    d = make_driver(server, records=ranged, float_word_order=Order.LITTLE)
    got = by_tag(await d.poll_once())
    t = got[TEMP]
    assert t.quality is quality
    if says is None:
        assert t.message is None and t.value == analog
    else:
        assert t.message is not None and says in t.message and t.cause is not None
        assert t.value is not None  # kept, so the reviewer sees what the device reported
    assert got[P05].quality is Quality.GOOD


# -- a counter that stops sampling (issue 13 items 2 and 3) -----------------------------------


@virtual_time
async def test_a_counter_that_stops_sampling_reads_bad_and_leaves_a_gap() -> None:
    # before the fix: one Good reading, then nothing at all, no Bad reading, no gap
    counter = FakeParticleCounter(sample_time_s=6)
    counter.sample(1)
    server, d = counter_driver(counter, poll_interval_s=2.0)
    sink = ListSink()
    async with running(d, sink=sink):
        for _ in range(10):  # a minute of sampling: a record every 6 s
            await asyncio.sleep(6)
            counter.store()
        stopped_at = now()
        newest = counter.records[-1].timestamp_s
        await asyncio.sleep(60)  # it stops; 3 missed cycles are 18 s
        counter.store()  # and samples again
        await asyncio.sleep(5)
    p05 = sink.of(P05)
    good_before = [r for r in p05 if r.ts_edge_us <= edge_us(stopped_at)]
    assert good_before and all(r.quality is Quality.GOOD for r in good_before)
    bad = [r for r in p05 if r.quality is Quality.BAD]
    assert bad, "a stopped counter must not be silent"
    first_bad = bad[0]
    stamp = iso(newest * 1_000_000).replace(".000000Z", "Z")
    assert first_bad.message is not None
    assert first_bad.message.startswith(f"counter not sampling: newest record {stamp}")
    assert "one is due every 6 s (hold 0 s + sample 6 s)" in first_bad.message
    assert first_bad.cause is Cause.DEVICE
    # not before 3 cycles of 6 s (a poll of 2 s late at most), while it keeps being stopped
    assert edge_us(stopped_at + 18) <= first_bad.ts_edge_us <= edge_us(stopped_at + 18 + 2 + 2)
    assert all(
        r.quality is Quality.BAD
        for r in p05
        if first_bad.ts_edge_us <= r.ts_edge_us <= edge_us(stopped_at + 59)
    )
    assert p05[-1].quality is Quality.GOOD  # sampling again: a Good reading closes the gap
    (gap,) = [g for g in sink.gaps if g[4].startswith("counter not sampling")]
    tags, start, end, cause, _ = gap
    assert set(tags) == {P05, P50, TEMP} and cause is Cause.DEVICE
    # the gap starts when the first missing sample would have begun, not when it was noticed
    assert edge_us(stopped_at) <= start <= edge_us(stopped_at + 2) and end == first_bad.ts_edge_us
    # the counter's own cycle, reported once for the review's expected samples
    assert sink.intervals == [([P05, P50, TEMP], edge_us(START), 6.0)]


@virtual_time
async def test_a_counter_found_with_a_days_old_newest_record_is_not_sampling() -> None:
    counter = FakeParticleCounter(sample_time_s=6)
    counter.sample(1)
    counter.clock_s += 10 * 86_400  # its clock ran on for ten days without a record
    server, d = counter_driver(counter)
    got = await d.poll_once()
    newest = counter.records[-1].timestamp_s
    stamp = iso(newest * 1_000_000).replace(".000000Z", "Z")
    assert [r.quality for r in got] == [Quality.BAD] * 3
    assert got[0].message == (
        f"counter not sampling: newest record {stamp}, 10 d ago; "
        "one is due every 6 s (hold 0 s + sample 6 s)"
    )
    assert d.status.last_error == got[0].message
    # the stale record is history: not offered again as a current value
    assert all(r.quality is Quality.BAD for r in await d.poll_once())


@virtual_time
async def test_the_hold_time_is_part_of_the_cycle() -> None:
    counter = FakeParticleCounter(sample_time_s=6)
    counter.holding[30], counter.holding[31] = 0, 54  # hold 54 s: a record a minute
    counter.sample(1)
    server, d = counter_driver(counter, poll_interval_s=2.0)
    sink = ListSink()
    async with running(d, sink=sink):
        await asyncio.sleep(170)  # under 3 cycles of 60 s: still sampling, as far as known
    assert all(r.quality is Quality.GOOD for r in sink.of(P05))
    assert sink.intervals == [([P05, P50, TEMP], edge_us(START), 60.0)]
