"""The whole chain with real servers: the simulated plant -> `gmp-edge run` -> influxd and
mosquitto, with InfluxDB stopped mid-stream and the service SIGKILLed mid-stream. In the
end InfluxDB holds every point exactly once and MQTT got readings, events and status."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
import tomli_w

from gmp_edge.clock import now_us
from gmp_edge.edge.config import parse_config
from gmp_edge.historian.influx import reconcile
from gmp_edge.historian.store import Store
from tests.waiting import until

from .conftest import plant_config_data
from .test_influx_forwarding import Influxd, free_port
from .test_monitoring_scenarios import hold_excursion
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


def transitions(db) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("select count(*) from alarm_transitions").fetchone()[0])
    except sqlite3.OperationalError:  # the alarm books are not created yet
        return 0
    finally:
        conn.close()


async def until_caught_up(db, destination: str, timeout: float = 30) -> None:
    await until(
        lambda: cursor(db, destination) >= last_id(db) > 0,
        timeout,
        f"{destination} caught up with the store",
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
    logs: list[Path] = []

    def start() -> subprocess.Popen:
        # its log to a file: a pipe nobody reads fills up and stops the service
        log = tmp_path / f"edge-{len(procs)}.log"
        logs.append(log)
        with log.open("wb") as out:
            p = subprocess.Popen(
                gmp_edge("run", "--config", str(cfg_path)),
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        procs.append(p)
        return p

    try:
        proc = start()
        await wait_for_rows(db, 200)
        await until_caught_up(db, "influxdb")
        # InfluxDB goes away: the backlog waits on disk, collection goes on
        influx.kill()
        # what InfluxDB took, it took before it died: nothing committed after can be acked
        at_kill = last_id(db)
        # an alert alarm while it is away (held until the test ends: 21 -> 24.5 degC)
        await hold_excursion(plant, "trh-gran-01", 3.5)
        await until(lambda: transitions(db) >= 1, what="the alert alarm raised")
        await wait_for_rows(db, last_id(db) + 300)
        assert cursor(db, "influxdb") <= at_kill
        # the edge box dies hard in the middle of it
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        influx.start()
        proc = start()
        await wait_for_rows(db, last_id(db) + 200)
        await until_caught_up(db, "influxdb", 60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, logs[-1].read_text(errors="replace")[-3000:]
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
        n_transitions = transitions(db)
        assert n_transitions >= 1
        res = influx.query("SELECT count(seq) FROM alarm_event", "gmp_edge")
        assert res[0]["series"][0]["values"][0][1] == n_transitions
        # MQTT: readings on ISA-95 topics, the alarm event, retained status; clean stop (the
        # broker acknowledged it before the service exited; it reaches our subscriber after)
        assert sub.on("gmp-edge/acme-basel/solid-dose/granulation/trh-gran-01/temperature")
        assert sub.on("gmp-edge/acme-basel/events/alarms/granulation")
        assert sub.on("gmp-edge/acme-basel/status/rooms/granulation")

        def last_edge_status() -> dict | None:
            edge = sub.on("gmp-edge/acme-basel/status/edge")
            return edge[-1].body if edge and edge[-1].body["online"] is False else None

        last = await until(last_edge_status, what="the edge's last status")
        assert last["reason"] == "stopped"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        sub.close()
        broker.stop()
        influx.kill(signal.SIGTERM)
