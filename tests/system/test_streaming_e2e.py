"""The whole chain with real servers: the simulated plant -> `gmp-edge run` -> influxd and
mosquitto, with InfluxDB stopped mid-stream and the service SIGKILLed mid-stream. In the
end InfluxDB holds every point exactly once and MQTT got readings, events and status."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess

import pytest
import tomli_w

from collector.reading import now_us
from edge.config import parse_config
from historian.influx import reconcile
from historian.store import Store
from simulators.scenario import EventKind, ScenarioEvent

from .conftest import plant_config_data
from .test_influx_forwarding import Influxd, free_port
from .test_mqtt_publishing import Mosquitto, Subscriber
from .test_service import gmp_edge, wait_for_rows

pytestmark = pytest.mark.system


def cursor(db, destination: str, stream: str = "readings") -> int:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "select last_id from outbox_cursors where destination=? and stream=?",
            (destination, stream),
        ).fetchone()
        return 0 if row is None else int(row[0])
    finally:
        conn.close()


def last_id(db) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("select max(rowid) from readings").fetchone()[0] or 0)
    finally:
        conn.close()


async def until_caught_up(db, destination: str, timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.25)):
        if cursor(db, destination) >= last_id(db) > 0:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(
        f"{destination} did not catch up: {cursor(db, destination)} < {last_id(db)}"
    )


async def test_influx_outage_and_sigkill_end_with_every_point_exactly_once(plant, tmp_path):
    (tmp_path / "influxd").mkdir()
    influx = Influxd(tmp_path / "influxd")
    influx.start()
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    sub = Subscriber(broker.port, ["gmp-edge/#"])
    db = tmp_path / "store.db"
    data = plant_config_data(plant, db)
    data["influxdb"] = {"url": influx.url, "database": "gmp_edge", "flush_interval_s": 0.5}
    data["mqtt"] = {"host": "127.0.0.1", "port": broker.port, "client_id": f"edge-{free_port()}"}
    cfg_path = tmp_path / "plant.toml"
    cfg_path.write_bytes(tomli_w.dumps(data).encode())
    influx.create_database("gmp_edge")
    procs: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        p = subprocess.Popen(
            gmp_edge("run", "--config", str(cfg_path)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(p)
        return p

    try:
        proc = start()
        await wait_for_rows(db, 200)
        await until_caught_up(db, "influxdb")
        # InfluxDB goes away: the backlog waits on disk, collection goes on
        influx.kill()
        await plant.inject(
            ScenarioEvent(0, EventKind.TEMPERATURE_EXCURSION, "trh-gran-01", 8, 3.5)
        )  # an alert alarm while it is away
        stuck = cursor(db, "influxdb")
        await wait_for_rows(db, last_id(db) + 300)
        assert cursor(db, "influxdb") == stuck
        # the edge box dies hard in the middle of it
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        influx.start()
        proc = start()
        await wait_for_rows(db, last_id(db) + 200)
        await until_caught_up(db, "influxdb", 60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.stderr.read().decode() if proc.stderr else ""
        # every reading exactly once: counts per tag equal the local record's
        cfg = parse_config(data, cfg_path)
        store = Store(db)
        try:
            counts = {
                t.path: len({r.ts_us for r in store.readings(t.path, 0, 2**62, 10**7)})
                for t in cfg.tags
            }
        finally:
            store.close()
        end = now_us() + 86_400_000_000
        rec = await reconcile(influx.url, "gmp_edge", counts, 0, end, counts)
        assert {p: r for p, r in rec.items() if r.missing or r.extra} == {}
        assert sum(r.remote for r in rec.values()) == sum(counts.values()) > 500
        # the same answer from the command a reviewer runs
        r = subprocess.run(
            gmp_edge("reconcile", "--config", str(cfg_path), "--start", "2020-01-01T00:00:00Z"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0 and "complete: InfluxDB equals the local record" in r.stdout, (
            r.stdout + r.stderr
        )
        # alarm transitions arrived as events too
        conn = sqlite3.connect(db)
        n_transitions = conn.execute("select count(*) from alarm_transitions").fetchone()[0]
        conn.close()
        assert n_transitions >= 1
        res = influx.query("SELECT count(seq) FROM alarm_event", "gmp_edge")
        assert res[0]["series"][0]["values"][0][1] == n_transitions
        # MQTT: readings on ISA-95 topics, the alarm event, retained status; clean stop
        assert sub.on("gmp-edge/acme-basel/solid-dose/granulation/trh-gran-01/temperature")
        assert sub.on("gmp-edge/acme-basel/events/alarms/granulation")
        edge = sub.on("gmp-edge/acme-basel/status/edge")
        assert edge and edge[-1].body["online"] is False and edge[-1].body["reason"] == "stopped"
        assert sub.on("gmp-edge/acme-basel/status/rooms/granulation")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        sub.close()
        broker.stop()
        influx.kill(signal.SIGTERM)
