"""MQTT publishing against a real Mosquitto on loopback: readings, RBE, QoS 1 events through a
broker restart, retained status, last will, MES batch commands."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gmp_edge.alarms.model import Alarm, AlarmEvent, AlarmState, ConditionKind, Priority, Transition
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.historian.store import Store
from gmp_edge.monitoring.records import AlarmBook
from gmp_edge.mqttlink import MqttConfig, MqttPublisher
from gmp_edge.mqttlink.payloads import SCHEMAS, validate
from tests.system.conftest import require_tool
from tests.waiting import until, until_sync

pytestmark = pytest.mark.system

SITE = "acme"
PREFIX = "gmp-edge/acme"
S = 1_000_000
T0 = 1_790_000_000 * S
DP = "acme/solid-dose/granulation/dp-01/dp"
TEMP = "acme/solid-dose/granulation/trh-01/temperature"
PC = "acme/solid-dose/compression/pc-01/particles_0_5"
TAGS = [
    (DP, "Pa", "dp", "dp-01"),
    (TEMP, "degC", "temperature", "trh-01"),
    (PC, "counts/m3", "particles_0_5", "pc-01"),
]
UNITS = {DP: "Pa", TEMP: "°C"}  # TEMP overrides the store's unit; PC falls back to the store's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """A mosquitto process on a loopback port with persistence in ``workdir``."""

    def __init__(self, workdir: Path):
        self.binary = require_tool("mosquitto")
        self.port = free_port()
        self.workdir = workdir
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.base_conf = (
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            # as root mosquitto would switch to user 'mosquitto', who cannot write tmp_path
            f"user {getpass.getuser()}\n"
            "persistence true\n"
            f"persistence_location {workdir / 'data'}/\n"
            f"log_dest file {workdir / 'mosquitto.log'}\n"
            "log_type all\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, only_client_prefix: str | None = None) -> None:
        """Start and wait until it listens. ``only_client_prefix``: refuse every client whose
        id does not start with it (mosquitto's ``clientid_prefixes``)."""
        extra = f"clientid_prefixes {only_client_prefix}\n" if only_client_prefix else ""
        self.conf.write_text(self.base_conf + extra)
        proc = self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)])

        def up() -> str | None:
            if proc.poll() is not None:
                return "exited"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return "listening"
            except OSError:
                return None

        if until_sync(up, 10, f"mosquitto listening on {self.port}") == "exited":
            pytest.fail(f"mosquitto exited with {proc.returncode}: {self.log()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto writes its persistence file
            self.proc.wait(10)
        self.proc = None

    def log(self) -> str:
        p = self.workdir / "mosquitto.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def subacks_to(self, client_id: str) -> int:
        """SUBACKs the broker has sent to ``client_id`` (its log is written as it goes): once
        one is sent, the subscription is in place for every message the broker takes after."""
        return self.log().count(f"Sending SUBACK to {client_id}\n")


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path / "mosquitto")
    b.start()
    yield b
    b.stop()


@dataclass
class Msg:
    topic: str
    body: dict
    retain: bool
    qos: int


@dataclass
class Subscriber:
    """A paho client in its own thread that records what it receives. Constructed once the
    broker has confirmed its subscriptions (SUBACK): from then on nothing is missed."""

    port: int
    topics: list[str]
    client_id: str = ""
    persistent: bool = False
    messages: list[Msg] = field(default_factory=list)

    def __post_init__(self):
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        props = None
        if self.persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        self.client.connect_async(
            "127.0.0.1", self.port, 5, clean_start=not self.persistent, properties=props
        )
        self.client.loop_start()
        if not self.subscribed.wait(30):
            self.close()
            pytest.fail("subscriber did not connect and subscribe")

    def _on_connect(self, client, userdata, flags, reason, properties):
        client.subscribe([(t, 1) for t in self.topics])

    def _on_subscribe(self, client, userdata, mid, reasons, properties):
        assert not any(r.is_failure for r in reasons), reasons
        self.subscribed.set()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append(Msg(msg.topic, json.loads(msg.payload), msg.retain, msg.qos))

    def on(self, prefix: str) -> list[Msg]:
        with self.lock:
            return [m for m in self.messages if m.topic.startswith(prefix)]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def make_cfg(port: int, client_id: str, **kw) -> MqttConfig:
    return MqttConfig.model_validate(
        {
            "host": "127.0.0.1",
            "port": port,
            "client_id": client_id,
            "keepalive_s": 5,
            "reconnect_min_s": 1,
            "reconnect_max_s": 1,
            "poll_interval_s": 0.05,
            **kw,
        }
    )


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "edge.db")
    s.register_tags(TAGS)
    yield s
    s.close()


@pytest.fixture
def books(store):
    trail = AuditTrail(store.path)
    book = AlarmBook(trail)
    yield trail, book
    book.close()
    trail.close()


def save_alarm(book: AlarmBook, i: int, tag: str = DP) -> None:
    """One alarm transition (normal -> unacknowledged) of a fresh alarm point."""
    at = T0 + i * S
    alarm = Alarm(
        id=f"{tag}#action_high#{i}",
        tag=tag,
        kind=ConditionKind.ACTION_HIGH,
        priority=Priority.HIGH,
        state=AlarmState.UNACKNOWLEDGED,
        condition_active=True,
        raised_us=at,
        last_transition_us=at,
        last_event=AlarmEvent.CONDITION_ACTIVE,
    )
    t = Transition(
        alarm.id,
        tag,
        Priority.HIGH,
        AlarmEvent.CONDITION_ACTIVE,
        AlarmState.NORMAL,
        AlarmState.UNACKNOWLEDGED,
        "system",
        at,
        "",
        {"value": 12.5 + i, "limit": 10.0},
    )
    book.save(alarm, [t])


def alarm_ids(store: Store) -> list[int]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(store.path)) as c:
        return [r[0] for r in c.execute("select id from alarm_transitions order by id")]


class Running:
    """A publisher running as a task in the test's loop."""

    def __init__(self, pub: MqttPublisher):
        self.pub = pub
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(pub.run(self.stop))

    async def connected(self, timeout: float = 30) -> None:
        await until(lambda: self.pub.status().connected, timeout, "publisher connected")

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 15)


def assert_schema(msgs: list[Msg], schema: str) -> None:
    for m in msgs:
        problems = validate(m.body, SCHEMAS[schema])
        assert not problems, (m.topic, m.body, problems)


async def test_readings_arrive_on_isa95_topics_with_schema_valid_json(broker, store):
    sub = Subscriber(broker.port, [f"{PREFIX}/solid-dose/#"])
    pub = MqttPublisher(
        make_cfg(broker.port, "edge-r", readings={"mode": "all"}), store.path, UNITS, SITE
    )
    run = Running(pub)
    try:
        await run.connected()
        store.commit(
            [
                Reading(DP, 12.5, Quality.GOOD, T0),
                Reading(TEMP, 21.25, Quality.UNCERTAIN, T0 + 1, T0 - 5),
                Reading.bad(PC, T0 + 2, "FC04 0+2: no answer within 1 s", Cause.NETWORK),
                Reading(DP, 12.75, Quality.GOOD, T0 + S),
            ]
        )
        pub.committed()
        await until(lambda: len(sub.on(PREFIX)) == 4, what="4 readings")
        msgs = sub.on(PREFIX)
        assert_schema(msgs, "gmp-edge/reading/1")
        assert [m.topic for m in msgs] == [
            f"{PREFIX}/solid-dose/granulation/dp-01/dp",
            f"{PREFIX}/solid-dose/granulation/trh-01/temperature",
            f"{PREFIX}/solid-dose/compression/pc-01/particles_0_5",
            f"{PREFIX}/solid-dose/granulation/dp-01/dp",
        ]
        dp, temp, pc, dp2 = (m.body for m in msgs)
        assert dp["value"] == 12.5 and dp["unit"] == "Pa" and dp["quality"] == "good"
        assert dp["ts"] == "2026-09-21T14:13:20.000000Z" and dp["ts_source"] is None
        assert temp["unit"] == "°C" and temp["quality"] == "uncertain"
        assert temp["ts_source"] == "2026-09-21T14:13:19.999995Z"  # the device's time wins
        assert temp["ts"] == temp["ts_source"] and temp["ts_edge"].endswith("20.000001Z")
        assert pc["value"] is None and pc["quality"] == "bad" and pc["unit"] == "counts/m3"
        assert pc["cause"] == "network" and "no answer" in pc["message"]
        assert dp2["seq"] > dp["seq"]
        assert all(m.qos == 0 and not m.retain for m in msgs)
        await until(lambda: store.outbox_cursor("mqtt", "readings") == store.last_reading_id())
        assert pub.status().published_readings == 4 and pub.status().filtered == 0
    finally:
        await run.close()
        sub.close()


async def test_report_by_exception_suppresses_unchanged_values(broker, store):
    sub = Subscriber(broker.port, [f"{PREFIX}/solid-dose/#"])
    cfg = make_cfg(broker.port, "edge-rbe", readings={"mode": "rbe", "deadband": {"dp": 0.5}})
    pub = MqttPublisher(cfg, store.path, UNITS, SITE)
    run = Running(pub)
    try:
        await run.connected()
        temps = [20.0, 20.0, 20.0, 20.1, 20.1, 20.0]  # deadband 0: every change goes out
        dps = [10.0, 10.2, 10.4, 10.6, 10.6, 9.0]  # deadband 0.5 Pa
        batch = []
        for i, (t, d) in enumerate(zip(temps, dps, strict=True)):
            batch += [
                Reading(TEMP, t, Quality.GOOD, T0 + i * S),
                Reading(DP, d, Quality.GOOD, T0 + i * S),
            ]
        batch.append(Reading(TEMP, 20.0, Quality.UNCERTAIN, T0 + 10 * S))  # quality changed
        # QoS 0 over one connection arrives in publish order: once the sentinel (a tag not seen
        # before, so never filtered) is in, everything published before it is in too
        batch.append(Reading(PC, 1.0, Quality.GOOD, T0 + 11 * S))
        store.commit(batch)
        pub.committed()
        await until(lambda: sub.on(f"{PREFIX}/solid-dose/compression/pc-01"), what="sentinel")
        got_t = [m.body["value"] for m in sub.on(f"{PREFIX}/solid-dose/granulation/trh-01")]
        got_d = [m.body["value"] for m in sub.on(f"{PREFIX}/solid-dose/granulation/dp-01")]
        assert got_t == [20.0, 20.1, 20.0, 20.0]
        assert got_d == [10.0, 10.6, 9.0]
        st = pub.status()
        assert st.published_readings == 7 + 1 and st.filtered == 13 - 7
        assert store.count_readings() == 13 + 1  # the store keeps everything
        await until(lambda: store.outbox_cursor("mqtt", "readings") == store.last_reading_id())
    finally:
        await run.close()
        sub.close()


async def test_alarm_and_deviation_events_qos1_exactly_once_in_order(broker, store, books):
    trail, book = books
    sub = Subscriber(broker.port, [f"{PREFIX}/events/#"])
    pub = MqttPublisher(make_cfg(broker.port, "edge-ev"), store.path, UNITS, SITE)
    run = Running(pub)
    dev_seqs: list[int] = []
    try:
        await run.connected()
        for i in range(60):
            save_alarm(book, i, DP if i % 3 else PC)
            if i % 20 == 0:
                entry = trail.append(
                    "qa.anna",
                    "deviation.raise",
                    "deviation",
                    f"DEV-2026-{i:04d}",
                    "action limit",
                    None,
                    {"status": "open", "classification": "major"},
                )
                dev_seqs.append(entry.seq)
            if i % 7 == 0:
                pub.committed()
            # pacing kept: events trickle in while the publisher runs (commits interleave with
            # publishing); no assertion depends on how long this takes
            await asyncio.sleep(0.005)
        trail.append("qa.anna", "batch.started", "batch", "B1", "", None, {})  # not a deviation
        pub.committed()
        ids = alarm_ids(store)
        # cursors acked after PUBACK only, up to the last event
        await until(lambda: store.outbox_cursor("mqtt", "alarms") == ids[-1], what="alarm cursor")
        await until(lambda: store.outbox_cursor("mqtt", "deviations") == dev_seqs[-1])
        await until(lambda: pub.status().events_pending == 0, what="backlog counted down to 0")
        assert pub.status().published_events == 63
        # a duplicate would be published before events committed after everything was acked:
        # one sentinel per stream, and absence is proven by order, not by a wait
        save_alarm(book, 60, PC)
        dev_seqs.append(trail.append("qa.anna", "deviation.close", "deviation", "DEV-S").seq)
        pub.committed()
        ids = alarm_ids(store)

        def arrived(prefix: str, seq: int) -> bool:
            return any(m.body["seq"] == seq for m in sub.on(prefix))

        await until(lambda: arrived(f"{PREFIX}/events/alarms/", ids[-1]), what="alarm sentinel")
        await until(lambda: arrived(f"{PREFIX}/events/deviations", dev_seqs[-1]), what="sentinel")
        alarms = sub.on(f"{PREFIX}/events/alarms/")
        assert_schema(alarms, "gmp-edge/alarm-event/1")
        assert [m.body["seq"] for m in alarms] == ids  # exactly once, in commit order
        assert {m.topic for m in alarms} == {
            f"{PREFIX}/events/alarms/granulation",
            f"{PREFIX}/events/alarms/compression",
        }
        assert all(m.qos == 1 for m in alarms)
        first = alarms[0].body
        assert first["room"] == "compression" and first["event"] == "condition_active"
        assert first["to_state"] == "unacknowledged" and first["detail"]["limit"] == 10.0
        devs = sub.on(f"{PREFIX}/events/deviations")
        assert_schema(devs, "gmp-edge/deviation-event/1")
        assert [d.body["deviation_id"] for d in devs] == [
            "DEV-2026-0000",
            "DEV-2026-0020",
            "DEV-2026-0040",
            "DEV-S",
        ]
        assert devs[0].body["action"] == "raise" and devs[0].body["changes"]["status"] == "open"
        assert [d.body["seq"] for d in devs] == dev_seqs  # exactly once, in audit order
        await until(lambda: store.outbox_cursor("mqtt", "alarms") == ids[-1], what="alarm cursor")
        await until(lambda: store.outbox_cursor("mqtt", "deviations") == dev_seqs[-1])
        await until(lambda: pub.status().events_pending == 0, what="backlog counted down to 0")
        assert pub.status().published_events == 63 + 2
    finally:
        await run.close()
        sub.close()


async def test_broker_restart_mid_stream_loses_no_events(broker, store, books):
    trail, book = books
    sub = Subscriber(broker.port, [f"{PREFIX}/events/alarms/+"], "qa-persistent", True)
    pub = MqttPublisher(make_cfg(broker.port, "edge-restart"), store.path, UNITS, SITE)
    run = Running(pub)
    total = 120
    committed = 0

    async def produce(n: int) -> None:
        nonlocal committed
        for _ in range(n):
            save_alarm(book, committed)
            committed += 1
            pub.committed()
            # pacing kept: alarms keep coming while the broker goes away and comes back; no
            # assertion depends on how long this takes
            await asyncio.sleep(0.01)

    try:
        await run.connected()
        await produce(40)
        before = alarm_ids(store)
        broker.stop()  # events may be in flight right now
        await until(lambda: not pub.status().connected, what="publisher noticed")
        await produce(40)  # committed while the broker is down
        down = alarm_ids(store)

        def unacked() -> int:  # events after the cursor on disk
            cursor = store.outbox_cursor("mqtt", "alarms")
            return sum(1 for i in down if i > cursor)

        # the publisher has counted all 80 committed events: each one after its cursor pending
        await until(lambda: pub.status().events_pending == unacked(), what="backlog counted")
        # only PUBACKs from before the stop can have moved the cursor: none of the 40 new ones
        assert store.outbox_cursor("mqtt", "alarms") <= before[-1]
        assert pub.status().events_pending >= 40
        broker.start()
        await produce(total - 80)
        ids = alarm_ids(store)
        assert len(ids) == total

        def received() -> list[int]:
            return [m.body["seq"] for m in sub.on(f"{PREFIX}/events/alarms/")]

        await until(lambda: set(received()) >= set(ids), 30, "every event after the restart")
        got = received()
        first_seen = list(dict.fromkeys(got))
        assert first_seen == ids  # none lost, in order (a redelivered one may repeat)
        await until(lambda: store.outbox_cursor("mqtt", "alarms") == ids[-1], what="cursor")
        assert pub.status().connects >= 2
    finally:
        await run.close()
        sub.close()


async def test_retained_status_for_a_late_subscriber_and_clean_stop(broker, store):
    # watches the status topics from before the publisher connects: what it received, the
    # broker has taken (and retained)
    watch = Subscriber(broker.port, [f"{PREFIX}/status/#"])
    room_topic = f"{PREFIX}/status/rooms/granulation"

    def room_states() -> list[str]:
        return [m.body["state"] for m in watch.on(room_topic)]

    pub = MqttPublisher(make_cfg(broker.port, "edge-status"), store.path, UNITS, SITE)
    pub.publish_room_status("granulation", {"state": "in_operation", "batch": "B-42"})
    run = Running(pub)
    try:
        await run.connected()
        # the status kept from before the connection is republished on connect
        await until(lambda: room_states() == ["in_operation"], what="room status republished")
        pub.publish_device_status("dp-01", {"connected": True, "last_error": None})
        pub.publish_room_status("granulation", {"state": "at_rest", "batch": None})
        await until(lambda: watch.on(f"{PREFIX}/status/devices/dp-01"), what="device status")
        await until(lambda: room_states() == ["in_operation", "at_rest"], what="room status")
        late = Subscriber(broker.port, [f"{PREFIX}/status/#"])
        await until(lambda: len({m.topic for m in late.on(PREFIX)}) == 3, what="retained status")
        got: dict[str, Msg] = {}
        for m in late.on(f"{PREFIX}/status/"):
            got.setdefault(m.topic, m)  # the first on each topic is the retained one
        late.close()
        edge = got[f"{PREFIX}/status/edge"]
        room = got[f"{PREFIX}/status/rooms/granulation"]
        dev = got[f"{PREFIX}/status/devices/dp-01"]
        assert all(m.retain for m in (edge, room, dev))
        assert edge.body["online"] is True and edge.body["client_id"] == "edge-status"
        assert_schema([edge], "gmp-edge/edge-status/1")
        assert room.body["state"] == "at_rest" and room.body["room"] == "granulation"
        assert_schema([room], "gmp-edge/room-status/1")
        assert dev.body["connected"] is True and dev.body["device"] == "dp-01"
        assert_schema([dev], "gmp-edge/device-status/1")
    finally:
        await run.close()
        watch.close()
    late = Subscriber(broker.port, [f"{PREFIX}/status/edge"])
    await until(lambda: late.on(f"{PREFIX}/status/edge"), what="retained edge status")
    edge = late.on(f"{PREFIX}/status/edge")[0]
    late.close()
    assert edge.retain and edge.body["online"] is False and edge.body["reason"] == "stopped"


CHILD = """
import asyncio, sys
from gmp_edge.mqttlink import MqttConfig, MqttPublisher
cfg = MqttConfig.model_validate_json(sys.argv[1])
asyncio.run(MqttPublisher(cfg, sys.argv[2], {}, "acme").run(asyncio.Event()))
"""


async def test_last_will_is_retained_when_the_connection_dies(broker, store, tmp_path):
    watcher = Subscriber(broker.port, [f"{PREFIX}/status/edge"])
    cfg = make_cfg(broker.port, "edge-lwt")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, cfg.model_dump_json(), str(store.path)], env=env
    )
    try:
        await until(lambda: any(m.body["online"] for m in watcher.on(PREFIX)), 15, "birth")
        child.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker must publish the will
        child.wait(5)
        await until(lambda: not watcher.on(PREFIX)[-1].body["online"], 10, "last will")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
        watcher.close()
    late = Subscriber(broker.port, [f"{PREFIX}/status/edge"])
    await until(lambda: late.on(PREFIX), what="retained will")
    will = late.on(PREFIX)[0]
    late.close()
    assert will.retain
    assert will.body == {
        "schema": "gmp-edge/edge-status/1",
        "online": False,
        "reason": "connection lost",
        "site": "acme",
        "client_id": "edge-lwt",
    }


async def test_mes_batch_commands_reach_the_callback_or_are_rejected_with_a_reason(broker, store):
    received = []

    async def on_batch(cmd):
        if cmd.batch_id == "B-DUP":
            raise ValueError("batch B-DUP is already in progress")
        received.append(cmd)

    pub = MqttPublisher(make_cfg(broker.port, "edge-cmd"), store.path, UNITS, SITE, on_batch)
    run = Running(pub)
    mes = Subscriber(broker.port, [f"{PREFIX}/commands/rejected"], "mes")
    try:
        await run.connected()
        # the box subscribes on connect: commands sent before the broker has it are lost
        await until(lambda: broker.subacks_to("edge-cmd") == 1, what="command subscription")

        def send(body: object) -> None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            mes.client.publish(f"{PREFIX}/commands/batches", raw, qos=1)

        send(
            {
                "command": "start",
                "batch_id": "B-42",
                "product": "Paracetamol 500 mg",
                "rooms": ["granulation"],
                "equipment": ["press-01"],
                "at": "2026-09-20T08:00:00+02:00",
            }
        )
        send({"command": "start", "batch_id": "B-43", "rooms": ["granulation"]})
        send(b"{not json")
        send({"command": "pause", "batch_id": "B-42"})
        send({"command": "start", "batch_id": "B-DUP", "product": "X", "rooms": ["r1"]})
        send({"command": "end", "batch_id": "B-42"})
        await until(lambda: len(received) == 2, what="2 accepted commands")
        await until(lambda: len(mes.on(f"{PREFIX}/commands/rejected")) == 4, what="4 rejected")
        start, end = received
        assert (start.command, start.batch_id, start.product) == (
            "start",
            "B-42",
            "Paracetamol 500 mg",
        )
        assert start.rooms == ("granulation",) and start.equipment == ("press-01",)
        assert start.at_us == 1_789_884_000 * S  # 06:00Z
        assert (end.command, end.batch_id) == ("end", "B-42")
        rejected = mes.on(f"{PREFIX}/commands/rejected")
        assert_schema(rejected, "gmp-edge/command-rejected/1")
        reasons = [m.body["reason"] for m in rejected]
        assert "start needs a product" in reasons[0]
        assert reasons[1].startswith("not JSON")
        assert "'start' or 'end'" in reasons[2]
        assert "refused by the edge box: batch B-DUP is already in progress" in reasons[3]
        assert '"B-43"' in rejected[0].body["received"]
        st = pub.status()
        assert st.commands_accepted == 2 and st.commands_rejected == 4
    finally:
        await run.close()
        mes.close()


async def test_broker_stop_leaves_the_last_will_retained_until_the_box_reconnects(broker, store):
    # mosquitto publishes the wills of its clients when it shuts down (and persists retained)
    topic = f"{PREFIX}/status/edge"
    watch = Subscriber(broker.port, [topic])
    pub = MqttPublisher(make_cfg(broker.port, "edge-bstop"), store.path, UNITS, SITE)
    run = Running(pub)
    try:
        await run.connected()
        await until(lambda: any(m.body["online"] for m in watch.on(topic)), what="birth")
        watch.close()
        # back up, but refusing the box: the will is what a subscriber finds, however long
        # the box waits before it tries again (no race with its reconnect delay)
        broker.stop()
        broker.start(only_client_prefix="qa-")
        late = Subscriber(broker.port, [topic], "qa-late")
        await until(lambda: late.on(topic), what="retained edge status after broker restart")
        will = late.on(topic)[0]
        late.close()
        assert will.retain and will.body["online"] is False
        assert will.body["reason"] == "connection lost"
        assert pub.status().connects == 1
        # back up for everyone: the box reconnects and its birth replaces the will
        broker.stop()
        broker.start()
        watch = Subscriber(broker.port, [topic])
        await until(lambda: any(m.body["online"] for m in watch.on(topic)), what="birth again")
        await until(lambda: pub.status().connects == 2, what="publisher back")
        late = Subscriber(broker.port, [topic])
        await until(lambda: late.on(topic), what="retained birth after reconnect")
        first = late.on(topic)[0]
        late.close()
        assert first.retain and first.body["online"] is True
    finally:
        await run.close()
        watch.close()


async def test_signed_anchors_are_published_verbatim_and_verify(broker, store, books):
    """ADR 0027: every line of the anchors file reaches the broker once, in order, as
    written, so a plant host can check each signature against the box key."""
    from gmp_edge.integrity import keys
    from gmp_edge.integrity.anchoring import anchor_now
    from gmp_edge.integrity.anchors import parse_anchors, signature_problem

    trail, _ = books
    anchor_now(store.path, "start")
    trail.append("qa.anna", "note", "test", "n1", "between anchors")
    anchor_now(store.path, "periodic")
    sub = Subscriber(broker.port, [f"{PREFIX}/events/anchors"])
    pub = MqttPublisher(make_cfg(broker.port, "edge-anchors"), store.path, UNITS, SITE)
    run = Running(pub)
    try:
        await run.connected()
        pub.committed()
        await until(lambda: store.outbox_cursor("mqtt", "anchors") == 2, what="anchor cursor")
        anchor_now(store.path, "periodic")  # appended while publishing: follows at once
        pub.committed()
        await until(lambda: store.outbox_cursor("mqtt", "anchors") == 3, what="the third")
        await until(lambda: len(sub.on(f"{PREFIX}/events/anchors")) == 3, what="three copies")
    finally:
        await run.close()
        sub.close()
    got = sub.on(f"{PREFIX}/events/anchors")
    assert all(m.qos == 1 and not m.retain for m in got)
    # the box key's public half, as a plant host would hold it
    public = keys.load_or_create(keys.key_path_for(store.path)).public_key()
    copies, unreadable = parse_anchors("\n".join(json.dumps(m.body) for m in got))
    assert unreadable == [] and [a.kind for a in copies] == ["start", "periodic", "periodic"]
    assert [signature_problem(a, public) for a in copies] == [None, None, None]
    file_text = store.path.with_suffix(".anchors").read_text().splitlines()
    assert [json.loads(t) for t in file_text] == [m.body for m in got]
