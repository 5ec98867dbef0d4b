"""OpcuaDriver against a real asyncua server on 127.0.0.1 (no mocks on the wire).

The server is the project's tablet-press simulator (``gmp_edge.simulators.opcua_press``) when it is
importable, otherwise a stand-in asyncua server with the same namespace and node ids.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.server.internal_session import InternalSession
from cryptography.x509.oid import ExtendedKeyUsageOID

from gmp_edge.collector.driver import LinkState
from gmp_edge.collector.opcua import OpcuaDeviceSpec, OpcuaDriver, OpcuaPoint
from gmp_edge.collector.reading import Cause, Quality, Reading
from tests.waiting import until

pytestmark = [pytest.mark.system, pytest.mark.timeout(40)]

NAMESPACE_URI = "urn:gmp-edge:sim:tablet-press"
DOUBLES = [
    "MainCompressionForce",
    "PreCompressionForce",
    "TurretSpeed",
    "EjectionForce",
    "FillDepth",
    "Output",
    "TabletWeight",
    "Hardness",
]
STRINGS = ["State", "BatchId"]
NAMES = DOUBLES + STRINGS
BATCH = "B-2024-0042"


def tag(name: str) -> str:
    return f"site/solid-dose/compression/press1/{name}"


def node(name: str) -> str:
    return f"ns=2;s=TabletPress.{name}"


POINTS = [OpcuaPoint(tag(n), node(n)) for n in NAMES]
TAGS = [p.tag for p in POINTS]


# -- servers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPress:
    """Stand-in tablet press: an asyncua Server with the simulator's address space."""

    def __init__(
        self,
        port: int = 0,
        policies: Sequence[ua.SecurityPolicyType] = (ua.SecurityPolicyType.NoSecurity,),
    ) -> None:
        self.policies = list(policies)
        self.port = port or free_port()
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/gmp-edge/press"
        self.server = Server()
        self._nodes: dict[str, Any] = {}
        self._rng = random.Random(7)

    async def start(self) -> None:
        s = self.server
        await s.init()
        s.set_endpoint(self.endpoint)
        s.set_security_policy(self.policies)
        ns = await s.register_namespace(NAMESPACE_URI)
        assert ns == 2
        press = await s.nodes.objects.add_object("ns=2;s=TabletPress", "2:TabletPress")
        for n in DOUBLES:
            self._nodes[n] = await press.add_variable(
                node(n), f"2:{n}", 0.0, varianttype=ua.VariantType.Double
            )
        for n in STRINGS:
            self._nodes[n] = await press.add_variable(
                node(n), f"2:{n}", "", varianttype=ua.VariantType.String
            )
        await self.publish()
        await s.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def pause(self) -> None:
        assert self.server.bserver is not None
        await self.server.bserver.stop()

    async def resume(self) -> None:
        assert self.server.bserver is not None
        await self.server.bserver.start()

    async def publish(self) -> None:
        stamp = datetime.now(UTC)
        values: list[tuple[str, ua.Variant]] = [
            (n, ua.Variant(10.0 + self._rng.random(), ua.VariantType.Double)) for n in DOUBLES
        ]
        values += [
            ("State", ua.Variant("EXECUTE", ua.VariantType.String)),
            ("BatchId", ua.Variant(BATCH, ua.VariantType.String)),
        ]
        for n, v in values:
            # asyncua annotates timestamps with its own DateTime type, a datetime at run time
            dv = ua.DataValue(v, SourceTimestamp=stamp, ServerTimestamp=stamp)  # type: ignore[arg-type]
            await self.server.write_attribute_value(self._nodes[n].nodeid, dv)

    async def set_limits(self, max_read: int, max_items: int) -> None:
        for oid, value in (
            (ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead, max_read),
            (
                ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
                max_items,
            ),
        ):
            await self.server.write_attribute_value(
                ua.NodeId(ua.Int32(oid)), ua.DataValue(ua.Variant(value, ua.VariantType.UInt32))
            )


class SimPress:
    """The project's simulator behind the same small interface."""

    def __init__(self, port: int = 0) -> None:
        from gmp_edge.simulators.opcua_press import OpcUaPressServer
        from gmp_edge.simulators.spec import OpcUaServerSpec, PressParams
        from gmp_edge.simulators.tablet_press import TabletPress

        params = PressParams(batch_id=BATCH, state="EXECUTE")
        self.sim = OpcUaPressServer(
            OpcUaServerSpec("press1", "127.0.0.1", port, params),
            TabletPress(params, random.Random(7), time.time()),
        )
        self.port = self.sim.port
        self.endpoint = self.sim.endpoint

    async def start(self) -> None:
        await self.sim.start()

    async def stop(self) -> None:
        await self.sim.stop()

    async def pause(self) -> None:
        await self.sim.pause()

    async def resume(self) -> None:
        await self.sim.resume()

    async def publish(self) -> None:
        self.sim.press.tick(time.time())
        await self.sim.publish()


Press = SimPress | LocalPress


def make_press(port: int = 0) -> Press:
    """The project's simulator when it is there and offers what the tests need."""
    try:
        press = SimPress(port)
    except (ImportError, TypeError, ValueError):  # absent, or its API is mid-change
        return LocalPress(port)
    needed = ("start", "stop", "pause", "resume", "publish")
    if not all(callable(getattr(press.sim, m, None)) for m in needed):
        return LocalPress(port)
    return press


async def publish_forever(press: Press, every_s: float = 0.1) -> None:
    while True:
        await asyncio.sleep(every_s)
        await press.publish()


@pytest_asyncio.fixture
async def press() -> AsyncIterator[Press]:
    p = make_press()
    await p.start()
    ticker = asyncio.create_task(publish_forever(p))
    try:
        yield p
    finally:
        ticker.cancel()
        await p.stop()


# -- the collecting sink and helpers -------------------------------------------------------


class CollectingSink:
    """Keeps every batch and gap the driver hands over."""

    def __init__(self) -> None:
        self.batches: list[list[Reading]] = []
        self.gaps: list[tuple[list[str], int, int, Cause, str]] = []

    async def put(self, readings: Sequence[Reading]) -> None:
        self.batches.append(list(readings))

    async def gap(
        self, tags: Sequence[str], start_us: int, end_us: int, cause: Cause, message: str
    ) -> None:
        self.gaps.append((list(tags), start_us, end_us, cause, message))

    async def sample_interval(self, tags: Sequence[str], from_us: int, interval_s: float) -> None:
        raise AssertionError("an OPC UA driver reports no device sample interval")

    @property
    def readings(self) -> list[Reading]:
        return [r for b in self.batches for r in b]

    def of(self, t: str) -> list[Reading]:
        return [r for r in self.readings if r.tag == t]

    def good(self, t: str) -> list[Reading]:
        return [r for r in self.of(t) if r.quality is Quality.GOOD]


def device(endpoint: str, mode: str = "subscription", **kw: Any) -> OpcuaDeviceSpec:
    base: dict[str, Any] = {
        "device_id": "press1",
        "endpoint": endpoint,
        "mode": mode,
        "sampling_interval_ms": 50,
        "publishing_interval_ms": 100,
        "queue_size": 10,
        "poll_interval_s": 0.3,
        "timeout_s": 1.0,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1.0,
    }
    base.update(kw)
    return OpcuaDeviceSpec(**base)


class Running:
    """A driver task with its stop event; stopping asserts the task ends promptly."""

    def __init__(self, driver: OpcuaDriver, sink: CollectingSink) -> None:
        self.driver, self.sink, self.stop = driver, sink, asyncio.Event()
        self.task = asyncio.create_task(driver.run(sink, self.stop))

    async def halt(self, within_s: float = 10.0) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, within_s)


async def run_for(driver: OpcuaDriver, sink: CollectingSink, body: Awaitable[None]) -> None:
    running = Running(driver, sink)
    try:
        await body
    finally:
        await running.halt()


# -- tests -----------------------------------------------------------------------------------


async def test_subscription_delivers_values_with_source_timestamps(press: Press) -> None:
    sink = CollectingSink()
    driver = OpcuaDriver(device(press.endpoint), POINTS)
    running = Running(driver, sink)
    try:
        await until(
            lambda: all(len(sink.good(t)) >= 4 for t in TAGS if not t.endswith("BatchId")),
            what="several notifications per changing tag",
        )
    finally:
        await running.halt()

    assert driver.status.state is LinkState.STOPPED
    assert driver.status.connects == 1 and driver.status.disconnects == 0
    assert driver.status.last_error is None
    for t in TAGS:
        readings = sink.of(t)
        assert readings, t
        assert all(r.quality is Quality.GOOD for r in readings), readings
        stamps = [r.ts_source_us for r in readings]
        assert all(s is not None for s in stamps), t
        # each value is recorded once, with the time the server gave it (never re-stamped)
        assert len(set(stamps)) == len(stamps), f"{t}: a sample was emitted twice"
        for r in readings:
            assert r.ts_source_us is not None
            assert r.ts_source_us <= r.ts_edge_us + 1_000_000  # loopback: clocks agree
            assert r.ts_edge_us - r.ts_source_us < 5_000_000
    doubles = sink.good(tag("MainCompressionForce"))
    assert all(isinstance(r.value, float) for r in doubles)
    assert len({r.value for r in doubles}) > 1  # the press is running: values move
    assert [r.ts_source_us for r in doubles] == sorted(r.ts_source_us or 0 for r in doubles)
    assert sink.good(tag("BatchId"))[-1].value == BATCH
    assert sink.good(tag("State"))[-1].value == "EXECUTE"
    # the first batch after connecting has a fresh value for every tag
    first = {r.tag for r in sink.batches[0]}
    assert first == set(TAGS)
    extra = driver.status.extra
    assert isinstance(extra["notifications"], int) and extra["notifications"] > 0
    assert extra["lost_messages"] == 0 and extra["late_notifications"] == 0
    assert driver.status.readings == len(sink.readings)
    assert driver.status.last_good_us is not None


async def test_polling_gives_one_reading_per_tag_per_poll(press: Press) -> None:
    sink = CollectingSink()
    driver = OpcuaDriver(device(press.endpoint, "polling", poll_interval_s=0.25), POINTS)
    running = Running(driver, sink)
    try:
        await until(lambda: driver.status.polls >= 5, what="five polls")
    finally:
        await running.halt()

    polls = driver.status.polls
    assert len(sink.batches) == polls
    for batch in sink.batches:
        assert sorted(r.tag for r in batch) == sorted(TAGS)  # one reading per tag per poll
        assert all(r.quality is Quality.GOOD for r in batch), batch
        assert all(r.ts_source_us is not None for r in batch)
    for t in TAGS:
        assert len(sink.of(t)) == polls
    assert driver.status.failed_polls == 0
    assert driver.status.last_poll_ms is not None
    assert driver.status.connects == 1
    # the schedule holds: polls are about 0.25 s apart (a loaded CI box may miss one, but
    # then it must say so with a gap record)
    edges = [b[0].ts_edge_us for b in sink.batches]
    steps = sorted(b - a for a, b in itertools.pairwise(edges))
    assert 150_000 < steps[len(steps) // 2] < 400_000, steps
    assert (driver.status.missed_polls == 0) == (not sink.gaps)


@pytest.mark.parametrize("mode", ["subscription", "polling"])
async def test_unknown_node_is_bad_for_that_tag_only(press: Press, mode: str) -> None:
    missing = OpcuaPoint(tag("Nope"), "ns=2;s=TabletPress.DoesNotExist")
    malformed = OpcuaPoint(tag("Typo"), "ns=2;q=TabletPress.TurretSpeed")
    sink = CollectingSink()
    driver = OpcuaDriver(device(press.endpoint, mode), [*POINTS, missing, malformed])
    running = Running(driver, sink)
    try:
        await until(
            lambda: all(len(sink.good(t)) >= 2 for t in TAGS if not t.endswith("BatchId")),
            what="good values on the other tags",
        )
    finally:
        await running.halt()

    bad = sink.of(missing.tag)
    assert bad and all(r.quality is Quality.BAD and r.value is None for r in bad)
    assert all(r.cause is Cause.DEVICE for r in bad)
    assert all("BadNodeIdUnknown" in (r.message or "") for r in bad), bad[0].message
    typo = sink.of(malformed.tag)
    assert typo and all(r.quality is Quality.BAD for r in typo)
    assert "invalid node id" in (typo[0].message or "")
    for t in TAGS:
        assert all(r.quality is Quality.GOOD for r in sink.of(t)), t
    assert driver.status.disconnects == 0
    if mode == "subscription":
        assert driver.status.extra["failed_items"] == 1


@pytest.mark.parametrize("mode", ["subscription", "polling"])
async def test_nodes_named_by_namespace_uri_are_resolved_at_connect(
    press: Press, mode: str
) -> None:
    # issue 13 item 7: asyncua sent the ExpandedNodeId as it was, the server could not decode
    # it, and every tag of the device went Bad ("CreateMonitoredItems: no answer") forever
    by_uri = OpcuaPoint(tag("ByUri"), f"nsu={NAMESPACE_URI};s=TabletPress.TurretSpeed")
    unknown = OpcuaPoint(tag("Elsewhere"), "nsu=urn:acme:other-press;s=TabletPress.TurretSpeed")
    sink = CollectingSink()
    driver = OpcuaDriver(device(press.endpoint, mode), [*POINTS, by_uri, unknown])
    running = Running(driver, sink)
    try:
        await until(
            lambda: (
                len(sink.good(by_uri.tag)) >= 2
                and all(len(sink.good(t)) >= 2 for t in TAGS if not t.endswith("BatchId"))
            ),
            what="good values by index and by namespace URI",
        )
    finally:
        await running.halt()
    bad = sink.of(unknown.tag)
    assert bad and all(r.quality is Quality.BAD and r.value is None for r in bad)
    assert "the server has no namespace 'urn:acme:other-press'" in (bad[0].message or "")
    assert NAMESPACE_URI in (bad[0].message or "")  # it names what the server does have
    for t in TAGS:
        assert all(r.quality is Quality.GOOD for r in sink.of(t)), t
    assert driver.status.disconnects == 0


async def test_server_restart_bad_readings_then_subscription_restored(press: Press) -> None:
    # press.stop() + a new server on the same port = a controller reboot: sessions and
    # subscriptions on the server are gone, the client must build everything again
    sink = CollectingSink()
    driver = OpcuaDriver(device(press.endpoint), POINTS)
    running = Running(driver, sink)
    restarted: Press | None = None
    ticker: asyncio.Task[None] | None = None
    try:
        await until(lambda: all(sink.good(t) for t in TAGS), what="first values")
        first_sub = driver.status.extra["subscription_id"]
        t_down = time.time_ns() // 1000  # before the stop: every Bad reading of the loss is later
        await press.stop()

        def bad_since_down(t: str) -> list[Reading]:
            return [r for r in sink.of(t) if r.ts_edge_us >= t_down and r.quality is Quality.BAD]

        await until(
            lambda: all(len(bad_since_down(t)) >= 3 for t in TAGS), what="Bad readings while down"
        )
        assert driver.status.state in (LinkState.DISCONNECTED, LinkState.CONNECTING)
        assert driver.status.disconnects == 1
        assert driver.status.last_error and press.endpoint in driver.status.last_error

        # taken before the new server exists: every value it serves is source-stamped at or
        # after t_up, every value of the old server before t_down < t_up (the order is causal,
        # so a busy machine cannot make a restarted value look older than t_up)
        t_up = time.time_ns() // 1000
        restarted = make_press(press.port)
        await restarted.start()
        ticker = asyncio.create_task(publish_forever(restarted))
        await until(
            lambda: all(
                len([r for r in sink.good(t) if (r.ts_source_us or 0) >= t_up]) >= 2
                for t in TAGS
                if not t.endswith(("BatchId", "State"))
            ),
            what="Good values from the restarted server",
        )
        assert driver.status.state is LinkState.CONNECTED
        assert driver.status.connects == 2 and driver.status.disconnects == 1
        assert driver.status.extra["subscription_id"] is not None
        restored_sub = driver.status.extra["subscription_id"]
    finally:
        await running.halt()
        if ticker is not None:
            ticker.cancel()
        if restarted is not None:
            await restarted.stop()

    del first_sub, restored_sub  # ids may repeat across server instances; counters matter
    for t in TAGS:
        readings = sink.of(t)
        down = [r for r in readings if r.quality is Quality.BAD]
        # the loss: first a Bad reading naming the endpoint and the error, cause NETWORK
        assert down[0].cause is Cause.NETWORK and down[0].value is None
        assert press.endpoint in (down[0].message or "")
        assert "connection lost" in (down[0].message or "")
        # no Good value between the loss and the restart: nothing stale was emitted
        i_first_bad = readings.index(down[0])
        i_back = next(
            i for i, r in enumerate(readings) if i > i_first_bad and r.quality is Quality.GOOD
        )
        assert all(r.quality is Quality.BAD for r in readings[i_first_bad:i_back])
        assert (readings[i_back].ts_source_us or 0) >= t_up
        later_bad = down[1:]
        assert later_bad and all(
            "cannot connect" in (r.message or "") and r.cause is Cause.NETWORK for r in later_bad
        )
    # the loss is one batch with one Bad reading per tag
    loss_batch = next(b for b in sink.batches if all(r.quality is Quality.BAD for r in b))
    assert sorted(r.tag for r in loss_batch) == sorted(TAGS)
    assert driver.status.failed_polls >= 3


async def test_polling_recovers_after_listener_outage(press: Press) -> None:
    sink = CollectingSink()
    driver = OpcuaDriver(device(press.endpoint, "polling", poll_interval_s=0.25), POINTS)
    running = Running(driver, sink)
    try:
        await until(lambda: driver.status.polls >= 2, what="two polls")
        await press.pause()
        await until(lambda: driver.status.failed_polls >= 3, what="three failed polls")
        assert driver.status.state in (LinkState.DISCONNECTED, LinkState.CONNECTING)
        await press.resume()
        resumed = driver.status.polls
        await until(
            lambda: driver.status.connects == 2 and driver.status.polls >= resumed + 3,
            what="polls after resume",
        )
    finally:
        await running.halt()

    for batch in sink.batches:
        assert sorted(r.tag for r in batch) == sorted(TAGS)
        qualities = {r.quality for r in batch}
        assert len(qualities) == 1  # a poll is all Good or, with the link down, all Bad
        if Quality.BAD in qualities:
            assert all(
                r.cause is Cause.NETWORK and press.endpoint in (r.message or "") for r in batch
            )
    assert all(r.quality is Quality.GOOD for r in sink.batches[-1])
    assert driver.status.disconnects == 1
    assert driver.status.polls == len(sink.batches)


async def test_stop_returns_promptly_connected_and_disconnected(press: Press) -> None:
    sink = CollectingSink()
    driver = OpcuaDriver(device(press.endpoint), POINTS)
    running = Running(driver, sink)
    await until(lambda: driver.status.state is LinkState.CONNECTED, what="connected")
    await running.halt(within_s=3)  # a deadline that bounds a failure, not a measurement
    assert driver.status.state is LinkState.STOPPED
    # run() has returned, so nothing of the driver can hand the sink another reading: no task of
    # its own is left behind (the harness in tests/conftest.py fails a test that leaves one)
    assert running.task.done() and running.task.exception() is None

    # down and backing off (long max delay): stop must not wait for the next attempt
    dead = OpcuaDriver(
        device(f"opc.tcp://127.0.0.1:{free_port()}", reconnect_min_s=5, reconnect_max_s=30),
        POINTS,
    )
    dead_sink = CollectingSink()
    running = Running(dead, dead_sink)
    await until(lambda: dead.status.failed_polls >= 2, what="Bad readings from a dead endpoint")
    await running.halt(within_s=3)  # well inside the 5 s reconnect delay it must not wait for
    assert dead.status.state is LinkState.STOPPED
    assert dead.status.connects == 0 and dead.status.disconnects == 0
    assert dead.status.last_error and "cannot connect" in dead.status.last_error
    assert all(r.quality is Quality.BAD and r.cause is Cause.NETWORK for r in dead_sink.readings)


# -- server operation limits -------------------------------------------------------------------


@pytest_asyncio.fixture
async def limited_press(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[LocalPress, dict[str, list[int]]]]:
    """A server that announces MaxNodesPerRead=3 / MaxMonitoredItemsPerCall=4 and enforces them."""
    seen: dict[str, list[int]] = {"read": [], "items": []}
    real_read = InternalSession.read
    real_create = InternalSession.create_monitored_items

    def ours(ids: list[ua.NodeId]) -> bool:
        return any(i.NamespaceIndex == 2 for i in ids)

    async def read(self: InternalSession, params: ua.ReadParameters) -> list[ua.DataValue]:
        ids = [r.NodeId for r in params.NodesToRead]
        if ours(ids):
            seen["read"].append(len(ids))
            if len(ids) > 3:
                raise ServiceError(ua.StatusCodes.BadTooManyOperations)
        return await real_read(self, params)

    async def create(self: InternalSession, params: ua.CreateMonitoredItemsParameters) -> Any:
        ids = [i.ItemToMonitor.NodeId for i in params.ItemsToCreate]
        if ours(ids):
            seen["items"].append(len(ids))
            if len(ids) > 4:
                raise ServiceError(ua.StatusCodes.BadTooManyOperations)
        return await real_create(self, params)

    monkeypatch.setattr(InternalSession, "read", read)
    monkeypatch.setattr(InternalSession, "create_monitored_items", create)
    p = LocalPress()
    await p.start()
    await p.set_limits(3, 4)
    ticker = asyncio.create_task(publish_forever(p))
    try:
        yield p, seen
    finally:
        ticker.cancel()
        await p.stop()


@pytest.mark.parametrize("mode", ["subscription", "polling"])
async def test_operation_limits_chunk_reads_and_monitored_items(
    limited_press: tuple[LocalPress, dict[str, list[int]]], mode: str
) -> None:
    p, seen = limited_press
    sink = CollectingSink()
    driver = OpcuaDriver(device(p.endpoint, mode), POINTS)
    await run_for(
        driver,
        sink,
        until(lambda: all(len(sink.good(t)) >= 2 for t in TAGS), what="values for every tag"),
    )
    assert driver.status.extra["max_nodes_per_read"] == 3
    assert driver.status.extra["max_monitored_items_per_call"] == 4
    assert seen["read"] and max(seen["read"]) == 3  # 10 nodes → 3 + 3 + 3 + 1
    assert sum(seen["read"][:4]) == len(TAGS)
    if mode == "subscription":
        assert seen["items"] == [4, 4, 2]
    else:
        assert seen["items"] == []
    assert all(r.quality is Quality.GOOD for r in sink.readings)


# -- security ---------------------------------------------------------------------------------


async def test_sign_and_encrypt_endpoint(tmp_path: Path) -> None:
    host = socket.gethostname()
    uses = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    await setup_self_signed_certificate(
        tmp_path / "srv_key.pem", tmp_path / "srv_cert.der", "urn:test:press", host, uses, {}
    )
    await setup_self_signed_certificate(
        tmp_path / "cli_key.pem",
        tmp_path / "cli_cert.der",
        "urn:gmp-edge:test-collector",
        host,
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        {},
    )
    p = LocalPress(policies=[ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    await p.server.load_certificate(str(tmp_path / "srv_cert.der"))
    await p.server.load_private_key(str(tmp_path / "srv_key.pem"))
    await p.start()
    ticker = asyncio.create_task(publish_forever(p))
    try:
        # an unsecured client is refused: Bad readings that say why, nothing else
        plain_sink = CollectingSink()
        plain = OpcuaDriver(device(p.endpoint), POINTS)
        await run_for(
            plain, plain_sink, until(lambda: plain.status.failed_polls >= 1, what="refusal")
        )
        assert plain.status.connects == 0
        assert plain.status.last_error and "cannot connect" in plain.status.last_error
        assert plain_sink.readings
        assert all(r.quality is Quality.BAD for r in plain_sink.readings)

        sink = CollectingSink()
        secured = OpcuaDriver(
            device(
                p.endpoint,
                security_mode="SignAndEncrypt",
                security_policy="Basic256Sha256",
                certificate=str(tmp_path / "cli_cert.der"),
                private_key=str(tmp_path / "cli_key.pem"),
                timeout_s=2.0,
            ),
            POINTS,
        )
        await run_for(
            secured,
            sink,
            until(lambda: all(len(sink.good(t)) >= 2 for t in TAGS), what="secured values"),
        )
        assert secured.status.connects == 1 and secured.status.last_error is None
        assert all(r.quality is Quality.GOOD for r in sink.readings)
    finally:
        ticker.cancel()
        await p.stop()
