"""Store -> InfluxDB forwarding: throughput against a bare POST loop, and live latency.

Starts influxd 1.6 on a free loopback port (temp config and data dir), then:

1. Throughput. 1 M readings over the example plant's 27 tags are committed to a real store
   (WAL, synchronous=FULL). The forwarder drains them to influxd (``Forwarder.run``, v1
   sink, 5,000-reading batches, no gzip on loopback) and, in the same run, a bare loop
   POSTs the very same lines, pre-encoded, in the same batch size with httpx to the same
   server (each into its own database). Points/s for both and their ratio, per round.
2. Latency at 10,000 readings/s offered: a commit of 1,000 readings every 0.1 s, the
   forwarder woken by each commit (as the service does); a poller asks influxd for the
   newest point of a marker tag every 10 ms. Latency = first seen in influxd - commit
   returned, p50/p99 over all commits. Once with wake-ups, once on the 1 s flush timer.

Run: .venv/bin/python bench/influx_bench.py [--readings 1000000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from gmp_edge.clock import now_us
from gmp_edge.collector.reading import Quality, Reading
from gmp_edge.edge.config import load_config
from gmp_edge.historian.forwarder import Forwarder, reading_encoder
from gmp_edge.historian.influx import InfluxV1Sink
from gmp_edge.historian.lineprotocol import meta_from_config
from gmp_edge.historian.store import Store

ROOT = Path(__file__).parents[1]
MARKER = "acme-basel/solid-dose/granulation/trh-gran-01/temperature"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_influxd(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("influxd")
    if binary is None:
        raise SystemExit("influxd is not installed (apt-get install influxdb)")
    port = free_port()
    conf = root / "influxdb.conf"
    conf.write_text(
        f"""
reporting-disabled = true
bind-address = "127.0.0.1:{free_port()}"
[meta]
  dir = "{root}/meta"
  logging-enabled = false
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
"""
    )
    proc = subprocess.Popen(
        [binary, "-config", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            if httpx.get(f"{url}/ping", timeout=0.5).status_code == 204:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("influxd did not start")


def query(url: str, q: str, db: str | None = None) -> dict:
    r = httpx.post(f"{url}/query", data={"q": q, "db": db or "", "epoch": "ns"}, timeout=30)
    r.raise_for_status()
    return dict(r.json())


def fill(store: Store, tags: list[str], n: int, t0: int) -> float:
    start = time.perf_counter()
    chunk = 10_000
    for i in range(0, n, chunk):
        batch = []
        for j in range(i, min(n, i + chunk)):
            ts = t0 + (j // len(tags)) * 1000  # 1 ms apart per tag: all distinct
            batch.append(Reading(tags[j % len(tags)], 20.0 + (j % 1000) / 100, Quality.GOOD, ts))
        store.commit(batch)
    return time.perf_counter() - start


async def bare_loop(url: str, db: str, batches: list[bytes]) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        start = time.perf_counter()
        for body in batches:
            r = await c.post("/write", params={"db": db, "precision": "ns"}, content=body)
            if r.status_code != 204:
                raise SystemExit(f"bare write failed: {r.status_code} {r.text}")
        return time.perf_counter() - start


async def forward_all(store: Store, fwd: Forwarder) -> float:
    stop = asyncio.Event()
    last = store.last_reading_id()
    start = time.perf_counter()
    task = asyncio.create_task(fwd.run(stop))
    while await asyncio.to_thread(store.outbox_cursor, fwd.destination) < last:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    stop.set()
    await task
    return elapsed


async def throughput(url: str, store: Store, cfg_meta: dict, n: int, rounds: int) -> None:
    encode = reading_encoder(cfg_meta)
    batches: list[bytes] = []
    after = 0
    while True:
        rows = store.readings_after(after, 5000)
        if not rows:
            break
        after = rows[-1][0]
        batches.append(("\n".join(filter(None, (encode(r) for _, r in rows))) + "\n").encode())
    print(f"pre-encoded {n:,} lines in {len(batches)} batches of 5,000")
    ratios = []
    for k in range(rounds):
        for db in (f"bare{k}", f"fwd{k}"):
            query(url, f'CREATE DATABASE "{db}"')
        t_bare = await bare_loop(url, f"bare{k}", batches)
        sink = InfluxV1Sink(url, f"fwd{k}", gzip=False)
        fwd = Forwarder(store, sink, encode, f"bench{k}", batch_size=5000)
        t_fwd = await forward_all(store, fwd)
        await sink.aclose()
        fwd.close()
        bare, fw = n / t_bare, n / t_fwd
        ratios.append(fw / bare)
        print(
            f"round {k + 1}: bare POST loop {bare:,.0f} points/s, forwarder {fw:,.0f} points/s"
            f" ({fw / bare:.0%}); forwarder status sent={fwd.status()['sent']:,}"
        )
    print(f"forwarder / bare: median {statistics.median(ratios):.0%} over {rounds} round(s)")
    query(url, 'CREATE DATABASE "gz"')
    sink = InfluxV1Sink(url, "gz", gzip=True)
    fwd = Forwarder(store, sink, encode, "bench-gzip", batch_size=5000)
    t = await forward_all(store, fwd)
    await sink.aclose()
    fwd.close()
    print(f"forwarder with gzip (the production default): {n / t:,.0f} points/s")


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def latency(
    url: str, store: Store, cfg_meta: dict, tags: list[str], seconds: float, rate: int, wake: bool
) -> None:
    db = "live_wake" if wake else "live_poll"
    query(url, f'CREATE DATABASE "{db}"')
    sink = InfluxV1Sink(url, db, gzip=False)
    dest = f"live-{db}"
    store.outbox_ack(dest, store.last_reading_id())  # only the live stream
    fwd = Forwarder(store, sink, reading_encoder(cfg_meta), dest, flush_interval_s=1.0)
    stop = asyncio.Event()
    task = asyncio.create_task(fwd.run(stop))
    pending: list[tuple[int, float]] = []  # (marker ts ns, commit returned)
    lat: list[float] = []
    done = asyncio.Event()

    async def poller() -> None:
        q = (
            "SELECT last(quality_code) FROM reading WHERE \"tag\"='temperature'"
            " AND equipment='trh-gran-01' AND time > now() - 30s"
        )
        async with httpx.AsyncClient(base_url=url, timeout=10) as c:
            while not (done.is_set() and not pending):
                r = await c.post("/query", data={"q": q, "db": db, "epoch": "ns"})
                seen = time.perf_counter()
                series = r.json()["results"][0].get("series")
                if series:
                    newest = int(series[0]["values"][0][0])
                    while pending and pending[0][0] <= newest:
                        lat.append(seen - pending.pop(0)[1])
                await asyncio.sleep(0.01)

    poll = asyncio.create_task(poller())
    per_commit = rate // 10
    t_us = now_us()
    start = time.perf_counter()
    tick = 0
    while time.perf_counter() - start < seconds:
        batch = []
        for i in range(per_commit):
            t_us = max(t_us + 1, now_us())  # real time, strictly increasing
            batch.append(Reading(tags[i % len(tags)], 20.0 + i % 7, Quality.GOOD, t_us))
        marker = max(r.ts_us for r in batch if r.tag == MARKER)
        await asyncio.to_thread(store.commit, batch)
        pending.append((marker * 1000, time.perf_counter()))
        if wake:
            fwd.wake()
        tick += 1
        await asyncio.sleep(max(0.0, start + tick * 0.1 - time.perf_counter()))
    done.set()
    await asyncio.wait_for(poll, 60)
    stop.set()
    await task
    await sink.aclose()
    fwd.close()
    ms = [x * 1000 for x in lat]
    how = "woken by each commit" if wake else "1 s flush timer only"
    print(
        f"latency committed -> visible in influxd, {rate:,} readings/s for {seconds:.0f} s"
        f" ({how}): p50 {statistics.median(ms):.0f} ms, p99 {pct(ms, 0.99):.0f} ms,"
        f" max {max(ms):.0f} ms over {len(ms)} commits"
    )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=int, default=10_000)
    args = ap.parse_args()
    cfg, _ = load_config(ROOT / "examples" / "plant.toml")
    meta = meta_from_config(cfg)
    tags = [t.path for t in cfg.tags]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        proc, url = start_influxd(root)
        store = Store(root / "edge.db")
        try:
            store.register_tags((t.path, t.unit, t.kind.value, t.device) for t in cfg.tags)
            t0 = now_us() - 86_400_000_000
            took = fill(store, tags, args.readings, t0)
            print(f"committed {args.readings:,} readings in {took:.1f} s")
            await throughput(url, store, meta, args.readings, args.rounds)
            await latency(url, store, meta, tags, args.seconds, args.rate, wake=True)
            await latency(url, store, meta, tags, args.seconds / 2, args.rate, wake=False)
        finally:
            store.close()
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
