"""Alarm transition committed -> delivered to an MQTT subscriber: latency at a steady rate.

A real Mosquitto on a loopback port, a real store (WAL, synchronous=FULL) with the real
AlarmBook writing transitions and their audit entries, and the MqttPublisher. Each event
is committed (``AlarmBook.save`` returns), then the publisher is told (``committed()``);
a QoS 1 subscriber in the same process stamps its arrival. A second phase does not call
``committed()``: the publisher finds the rows at its next poll (``poll_interval_s``).

The raw floor, same run and broker: bare paho publish QoS 1 -> the same subscriber.

Run: .venv/bin/python bench/mqtt_bench.py [--events 200] [--rate 20]
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gmp_edge.alarms.model import Alarm, AlarmEvent, AlarmState, ConditionKind, Priority, Transition
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.historian.store import Store
from gmp_edge.monitoring.records import AlarmBook
from gmp_edge.mqttlink import MqttConfig, MqttPublisher

TAG = "acme/solid-dose/granulation/dp-01/dp"
PREFIX = "gmp-edge/acme"


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def start_broker(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("mosquitto")
    if binary is None:
        raise SystemExit("mosquitto is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    conf = work / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
        f"persistence true\npersistence_location {work}/\n"
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


class Receiver:
    """QoS 1 subscriber: arrival time (perf_counter) per key."""

    def __init__(self, port: int, topic: str, key: str):
        self.arrived: dict[int, float] = {}
        self._key = key
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._topic = topic
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._ready.wait(5):
            raise SystemExit("subscriber did not connect")
        time.sleep(0.2)  # SUBACK

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        client.subscribe(self._topic, qos=1)
        self._ready.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        t = time.perf_counter()
        self.arrived.setdefault(int(json.loads(msg.payload)[self._key]), t)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def raw_floor(port: int, n: int, rate: float) -> list[float]:
    rx = Receiver(port, "bench/raw", "i")
    tx = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    tx.connect("127.0.0.1", port)
    tx.loop_start()
    sent: dict[int, float] = {}
    for i in range(n):
        sent[i] = time.perf_counter()
        tx.publish("bench/raw", json.dumps({"i": i}), qos=1)
        time.sleep(1 / rate)
    deadline = time.monotonic() + 10
    while len(rx.arrived) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    tx.disconnect()
    tx.loop_stop()
    rx.close()
    return [(rx.arrived[i] - sent[i]) * 1000 for i in sent if i in rx.arrived]


def save(book: AlarmBook, i: int) -> None:
    at = time.time_ns() // 1000
    alarm = Alarm(
        id=f"{TAG}#action_high#{i}",
        tag=TAG,
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
        TAG,
        Priority.HIGH,
        AlarmEvent.CONDITION_ACTIVE,
        AlarmState.NORMAL,
        AlarmState.UNACKNOWLEDGED,
        "system",
        at,
        "",
        {"value": 30.0},
    )
    book.save(alarm, [t])


async def product_path(port: int, db: Path, n: int, rate: float, wake: bool) -> list[float]:
    store = Store(db)
    store.register_tags([(TAG, "Pa", "dp", "dp-01")])
    trail = AuditTrail(db)
    book = AlarmBook(trail)
    cfg = MqttConfig(host="127.0.0.1", port=port, client_id=f"bench-{wake}")
    pub = MqttPublisher(cfg, db, {}, "acme")
    stop = asyncio.Event()
    task = asyncio.create_task(pub.run(stop))
    while not pub.status().connected:
        await asyncio.sleep(0.01)
    rx = Receiver(port, f"{PREFIX}/events/alarms/+", "seq")
    committed: dict[int, float] = {}  # alarm_transitions.id -> commit time
    for i in range(n):
        await asyncio.to_thread(save, book, i)
        t = time.perf_counter()
        committed[i + 1] = t  # a fresh database: ids are 1, 2, ...
        if wake:
            pub.committed()
        await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - t)))
    deadline = time.monotonic() + 10
    while len(rx.arrived) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    stop.set()
    await task
    rx.close()
    book.close()
    trail.close()
    store.close()
    return [(rx.arrived[k] - committed[k]) * 1000 for k in committed if k in rx.arrived]


def show(name: str, xs: list[float], n: int) -> None:
    print(
        f"{name:<46} n={len(xs)}/{n}  p50 {statistics.median(xs):7.2f} ms  "
        f"p99 {pct(xs, 0.99):7.2f} ms  max {max(xs):7.2f} ms"
    )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0, help="events per second")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        proc, port = start_broker(work)
        try:
            floor = await asyncio.to_thread(raw_floor, port, args.events, args.rate)
            woken = await product_path(port, work / "a.db", args.events, args.rate, True)
            polled = await product_path(port, work / "b.db", args.events, args.rate, False)
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"{args.events} events at {args.rate:g}/s, mosquitto on loopback, QoS 1")
    show("raw floor: paho publish -> subscriber", floor, args.events)
    show("committed -> subscriber (committed() wake)", woken, args.events)
    show("committed -> subscriber (poll, 100 ms)", polled, args.events)
    print("target: p99 < 200 ms")


if __name__ == "__main__":
    asyncio.run(main())
