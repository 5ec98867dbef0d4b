"""Reading committed -> alarm state persisted: latency at 10,000 readings/s offered.

The example plant's configuration and limits, a real store (WAL, synchronous=FULL) and
the real monitoring engine, driven the way the service drives it: a commit every 0.1 s
of 1,000 readings spread over the plant's 27 tags, the engine woken by each commit. Once
a second the granulation temperature jumps past its action limit (no on-delay) and back,
so every second an alarm activates. For every activation the engine records the time
from the commit's end to the alarm and its audit entry being committed.

The raw floor, measured in the same run: the same store reading the new rows and one
SQLite transaction inserting one row with synchronous=FULL (what persisting anything
costs on this disk).

Run: .venv/bin/python bench/alarm_latency_bench.py [--seconds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.collector.reading import Quality, Reading
from gmp_edge.edge.config import load_config
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.monitoring.engine import Books, MonitoringEngine

EXAMPLE = Path(__file__).parents[1] / "examples" / "plant.toml"
HOT = "acme-basel/solid-dose/granulation/trh-gran-01/temperature"  # action 25 degC, no delay


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def offer(store: Store, engine: MonitoringEngine, seconds: float, rate: int) -> int:
    cfg_tags = [t.path for t in engine.cfg.tags]
    per_commit = rate // 10
    t_us = now_us() + 1_000_000
    sent = 0
    start = time.perf_counter()
    tick = 0
    while time.perf_counter() - start < seconds:
        hot = (tick // 10) % 2 == 1  # one second above the action limit, one below
        batch = []
        for i in range(per_commit):
            tag = cfg_tags[i % len(cfg_tags)]
            t_us += 100  # 0.1 ms apart: strictly increasing per tag
            value = (26.0 if hot else 21.0) if tag == HOT else 20.0 + (i % 7) / 10
            batch.append(Reading(tag, value, Quality.GOOD, t_us))
        await asyncio.to_thread(store.commit, batch)
        engine.committed()
        sent += len(batch)
        tick += 1
        await asyncio.sleep(max(0.0, start + tick * 0.1 - time.perf_counter()))
    return sent


def floor_ms(path: Path, n: int = 50) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("pragma journal_mode=wal")
    conn.execute("pragma synchronous=full")
    conn.execute("create table if not exists floor(x integer)")
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        conn.execute("select max(rowid) from readings").fetchone()
        conn.execute("begin immediate")
        conn.execute("insert into floor values(?)", (i,))
        conn.execute("commit")
        out.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return out


async def main(seconds: float, rate: int) -> None:
    cfg, sha = load_config(EXAMPLE)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"path": db})})
        store = Store(db)
        EdgeService(cfg, sha, store)  # registers the tags
        trail = AuditTrail(db)
        books = Books.open(trail)
        engine = MonitoringEngine(cfg, sha, store, books)
        engine.start()
        engine.stats.alarm_latency_ms.clear()
        stop = asyncio.Event()
        runner = asyncio.create_task(engine.run(stop))
        t0 = time.perf_counter()
        sent = await offer(store, engine, seconds, rate)
        elapsed = time.perf_counter() - t0
        stop.set()
        await runner
        lat = list(engine.stats.alarm_latency_ms)
        floor = floor_ms(db)
        activations = sum(
            1
            for t in books.alarms.history(HOT, limit=100_000)
            if t.event.value == "condition_active"
        )
        print(
            f"offered {sent:,} readings in {elapsed:.1f} s = {sent / elapsed:,.0f} readings/s "
            f"(target 10,000); evaluated {engine.stats.readings:,}; "
            f"lag at end {engine.stats.lag_readings}"
        )
        print(
            f"alarm activations: {activations} (latency samples {len(lat)}); commit -> alarm "
            f"persisted: p50 {statistics.median(lat):.1f} ms, p99 {pct(lat, 0.99):.1f} ms, "
            f"max {max(lat):.1f} ms (target p99 < 100 ms)"
        )
        print(
            f"raw floor (read new rows + one synchronous=FULL transaction): "
            f"p50 {statistics.median(floor):.1f} ms, p99 {pct(floor, 0.99):.1f} ms; "
            f"ratio p99 latency / p99 floor = {pct(lat, 0.99) / pct(floor, 0.99):.1f}x"
        )
        books.close()
        trail.close()
        store.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--rate", type=int, default=10_000)
    a = ap.parse_args()
    asyncio.run(main(a.seconds, a.rate))
