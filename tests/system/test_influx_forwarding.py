"""Store-and-forward to real InfluxDB (influxd 1.6) and VictoriaMetrics on loopback.

A real SQLite store is drained by the forwarder; counts are reconciled per tag against the
server; the server is killed and restarted mid-stream; a poison point is quarantined while
the rest lands; the forwarder is cancelled with a batch stored but not acknowledged.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.config import PlantConfig
from gmp_edge.edge.config import load_config
from gmp_edge.historian.forwarder import Drain, Forwarder, SendResult, reading_encoder
from gmp_edge.historian.influx import InfluxV1Sink, InfluxV2Sink, reconcile
from gmp_edge.historian.lineprotocol import meta_from_config, series_prefix
from gmp_edge.historian.store import Store
from gmp_edge.retry import Backoff
from tests.system.conftest import require_tool

pytestmark = pytest.mark.system

ROOT = Path(__file__).parents[2]
S = 1_000_000
DAY = 86_400 * S
WEEK = 7 * DAY
# The readings' times are fixed, never "now": InfluxDB 1.x types a field per measurement *and
# shard*, and the autogen policy's shard groups are 7-day buckets aligned to the Unix epoch, so
# what a query returns may depend on which shards its range touches. T0 lies in the middle of a
# shard group (2026-02-26 12:00 UTC, a Thursday + 3.5 days) whatever day the suite runs on.
T0 = 2930 * WEEK + WEEK // 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=0.5).status_code < 300:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{what} did not come up within {timeout_s} s")


class Influxd:
    """influxd 1.6 with every directory under ``root``, HTTP on a free loopback port."""

    def __init__(self, root: Path):
        self.binary = require_tool("influxd")
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = root / "influxdb.conf"
        self.config.write_text(
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
[coordinator]
  log-queries-after = "0s"
[retention]
  enabled = false
[shard-precreation]
  enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  pprof-enabled = false
"""
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with (self.root / "influxd.log").open("ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                [self.binary, "-config", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_http(f"{self.url}/ping", self.proc, "influxd")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def query(self, q: str, db: str | None = None) -> list[dict]:
        params = {"q": q} | ({"db": db} if db else {})
        r = httpx.post(f"{self.url}/query", data=params, timeout=30)
        r.raise_for_status()
        results = r.json()["results"]
        for res in results:
            assert "error" not in res, res
        return results

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')

    def write(self, db: str, lines: list[str]) -> httpx.Response:
        return httpx.post(
            f"{self.url}/write",
            params={"db": db, "precision": "ns"},
            content="\n".join(lines).encode(),
            timeout=30,
        )


@pytest.fixture(scope="module")
def influxd(tmp_path_factory):
    server = Influxd(tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.kill(signal.SIGTERM)


_db_names = itertools.count()


@pytest.fixture
def db(influxd) -> str:
    name = f"edge{next(_db_names)}"
    influxd.create_database(name)
    return name


@pytest.fixture(scope="module")
def cfg() -> PlantConfig:
    return load_config(ROOT / "examples" / "plant.toml")[0]


@pytest.fixture
def store(tmp_path, cfg):
    s = Store(tmp_path / "edge.db")
    s.register_tags((t.path, t.unit, t.kind.value, t.device) for t in cfg.tags)
    yield s
    s.close()


def readings(cfg: PlantConfig, t0_us: int, per_tag: int, step_us: int = 100_000) -> list[Reading]:
    """``per_tag`` readings of every tag, interleaved in time: numbers, text, Bad, Uncertain."""
    out = []
    for i in range(per_tag):
        ts = t0_us + i * step_us
        for k, tag in enumerate(cfg.tags):
            if tag.kind.value == "batch_id":
                out.append(Reading(tag.path, f'B-{i // 50:04d} "lot" ✓', Quality.GOOD, ts))
            elif (i + k) % 97 == 0:
                out.append(
                    Reading.bad(tag.path, ts, "FC03 0+2: no answer\nwithin 1 s", Cause.NETWORK)
                )
            elif (i + k) % 89 == 0:
                out.append(Reading(tag.path, 1e6 + i, Quality.UNCERTAIN, ts, message="above max"))
            else:
                out.append(Reading(tag.path, 20.0 + (i % 50) / 10, Quality.GOOD, ts))
    return out


def commit(store: Store, rows: list[Reading], chunk: int = 2000) -> None:
    for i in range(0, len(rows), chunk):
        store.commit(rows[i : i + chunk])


def local_counts(store: Store, cfg: PlantConfig, start=0, end=2**62) -> dict[str, int]:
    """Readings per tag with distinct timestamps in [start, end) (all unique here)."""
    return {t.path: len({r.ts_us for r in store.readings(t.path, start, end)}) for t in cfg.tags}


async def assert_reconciled(url: str, db: str, store: Store, cfg: PlantConfig, start, end):
    counts = local_counts(store, cfg, start, end)
    rec = await reconcile(url, db, counts, start, end, counts)
    bad = {p: r for p, r in rec.items() if r.missing or r.extra}
    assert not bad, bad
    assert sum(r.remote for r in rec.values()) == sum(counts.values()) > 0


async def drain_all(fwd: Forwarder) -> list[Drain]:
    out = []
    while True:
        d = await fwd.drain_once()
        out.append(d)
        assert d.retry is None, d.retry
        if d.caught_up:
            return out


def forwarder(store, cfg, sink, **kw) -> Forwarder:
    return Forwarder(store, sink, reading_encoder(meta_from_config(cfg)), "influxdb", **kw)


async def test_store_drained_to_influxd_reconciles_exactly(influxd, db, store, cfg):
    t0 = T0
    rows = readings(cfg, t0, 400)
    commit(store, rows)
    sink = InfluxV1Sink(influxd.url, db, gzip=True)
    fwd = forwarder(store, cfg, sink, batch_size=3000)
    try:
        drains = await drain_all(fwd)
    finally:
        await sink.aclose()
    assert sum(d.acked for d in drains) == len(rows)
    st = fwd.status()
    assert (st["sent"], st["backlog"], st["quarantined"], st["lag_s"]) == (len(rows), 0, 0, 0)
    assert store.outbox_cursor("influxdb") == store.last_reading_id()
    await assert_reconciled(influxd.url, db, store, cfg, t0, t0 + DAY)

    # what Grafana sees: text values, Bad readings with their message and cause
    [res] = influxd.query(
        "SELECT value_text, quality FROM reading WHERE \"tag\"='batch_id' LIMIT 1", db
    )
    assert res["series"][0]["values"][0][1:] == ['B-0000 "lot" ✓', "good"]
    n_bad = sum(1 for r in rows if r.quality is Quality.BAD)
    [res] = influxd.query("SELECT count(quality_code) FROM reading WHERE quality_code=2", db)
    assert res["series"][0]["values"][0][1] == n_bad
    [res] = influxd.query(
        "SELECT message, cause, value FROM reading WHERE quality_code=2 LIMIT 1", db
    )
    assert res["series"][0]["values"][0][1:] == [
        "FC03 0+2: no answer\\nwithin 1 s",  # a newline is not portable line protocol
        "network",
        None,
    ]

    # draining again sends nothing; replaying everything overwrites (counts unchanged)
    assert (await fwd.drain_once()).acked == 0
    store.outbox_ack("replay", 0)
    replay = Forwarder(store, InfluxV1Sink(influxd.url, db), fwd.encode, "replay", batch_size=5000)
    await drain_all(replay)
    await replay.sink.aclose()  # type: ignore[attr-defined]
    await assert_reconciled(influxd.url, db, store, cfg, t0, t0 + DAY)


async def test_influxd_killed_and_restarted_mid_stream_loses_nothing(influxd, db, store, cfg):
    t0 = T0
    sink = InfluxV1Sink(influxd.url, db, timeout_s=2)
    fwd = forwarder(
        store,
        cfg,
        sink,
        batch_size=2000,
        flush_interval_s=0.1,
        min_backoff_s=0.1,
        max_backoff_s=0.5,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(fwd.run(stop))
    per_tick = 10  # per tag, every 0.1 s: 2,700 readings/s over the example's 27 tags
    ticks = 40
    outage = (10, 25)
    try:
        for tick in range(ticks):
            rows = readings(cfg, t0 + tick * per_tick * 1000, per_tick, step_us=1000)
            await asyncio.to_thread(commit, store, rows)
            fwd.wake()
            if tick == outage[0]:
                await asyncio.to_thread(influxd.kill)  # SIGKILL: no graceful flush
            if tick == outage[1]:
                assert fwd.status()["backlog"] > 0
                assert fwd.status()["failing"]
                await asyncio.to_thread(influxd.start)
            await asyncio.sleep(0.1)
        deadline = time.monotonic() + 30
        while fwd.status()["backlog"] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
        await sink.aclose()
        if influxd.proc is None:
            influxd.start()
    st = fwd.status()
    assert st["backlog"] == 0 and st["quarantined"] == 0, st
    assert st["retries"] > 0 and st["last_error"] and not st["failing"], st
    assert store.outbox_cursor("influxdb") == store.last_reading_id() == ticks * per_tick * 27
    await assert_reconciled(influxd.url, db, store, cfg, t0, t0 + DAY)


async def test_poison_point_is_quarantined_and_the_rest_lands(influxd, db, store, cfg):
    meta = meta_from_config(cfg)
    victim = "acme-basel/solid-dose/granulation/trh-gran-01/temperature"
    t0 = T0
    # a legacy string "value" 30 days before T0 (1.5 days into its shard group) conflicts only
    # with floats sent into that old shard
    old = t0 - 30 * DAY
    assert old // WEEK == (old + S) // WEEK != t0 // WEEK  # guards the choice of T0
    r = influxd.write(db, [f'{series_prefix(meta[victim])}value="legacy" {old * 1000}'])
    assert r.status_code == 204, r.text
    rows = readings(cfg, t0, 200)
    rows.insert(1234, Reading(victim, 21.5, Quality.GOOD, old + S))
    commit(store, rows)
    sink = InfluxV1Sink(influxd.url, db)
    fwd = forwarder(store, cfg, sink, batch_size=5000)
    try:
        await drain_all(fwd)
    finally:
        await sink.aclose()
    [q] = fwd.quarantined()
    assert (q.tag, q.ts_us, q.destination) == (victim, old + S, "influxdb")
    assert "field type conflict" in q.reason, q.reason
    assert q.line.startswith(series_prefix(meta[victim])) and "value=21.5" in q.line
    st = fwd.status()
    assert st["quarantined"] == 1 and st["rejects"] >= 1 and st["backlog"] == 0, st
    assert st["sent"] == len(rows) - 1
    assert store.outbox_cursor("influxdb") == store.last_reading_id()
    # everything else landed: exact counts in the current range, the legacy point untouched
    await assert_reconciled(influxd.url, db, store, cfg, t0, t0 + DAY)
    # the query's range lies inside the old shard only: in a range that also touched T0's shard,
    # "value" would be typed float there and InfluxDB would leave the string out of the result
    [res] = influxd.query(
        f"SELECT * FROM reading WHERE time >= {(old - DAY) * 1000} AND time < {(old + DAY) * 1000}",
        db,
    )
    [series] = res["series"]
    assert len(series["values"]) == 1
    assert series["values"][0][series["columns"].index("value")] == "legacy"

    # a restarted forwarder sees the quarantine and does not send the poison again
    again = forwarder(store, cfg, InfluxV1Sink(influxd.url, db))
    assert (await again.drain_once()).acked == 0
    assert again.status()["quarantined"] == 1
    await again.sink.aclose()  # type: ignore[attr-defined]


class LandedButUnacked:
    """Stores the batch for real, then stalls before answering: a crash window."""

    def __init__(self, sink: InfluxV1Sink):
        self.sink = sink
        self.name = "slow-ack"
        self.landed = 0
        self.stalled = asyncio.Event()

    async def send(self, lines: list[str]) -> SendResult:
        res = await self.sink.send(lines)
        assert res.kind == "ok", res
        self.landed += len(lines)
        if self.landed > 4000:
            self.stalled.set()
            await asyncio.sleep(3600)
        return res


async def test_forwarder_cancelled_mid_batch_resumes_without_loss(influxd, db, store, cfg):
    t0 = T0
    rows = readings(cfg, t0, 400)
    commit(store, rows)
    inner = InfluxV1Sink(influxd.url, db)
    slow = LandedButUnacked(inner)
    fwd = forwarder(store, cfg, slow, batch_size=2000)
    stop = asyncio.Event()
    task = asyncio.create_task(fwd.run(stop))
    await asyncio.wait_for(slow.stalled.wait(), 20)
    task.cancel()  # killed with a stored batch not acknowledged
    with pytest.raises(asyncio.CancelledError):
        await task
    acked = store.outbox_cursor("influxdb")
    assert 0 < acked < slow.landed  # the last batch is in InfluxDB but not acknowledged
    fwd.close()

    fresh = forwarder(store, cfg, inner, batch_size=2000)
    drains = await drain_all(fresh)
    await inner.aclose()
    assert sum(d.acked for d in drains) == len(rows) - acked  # resumed at the cursor
    assert store.outbox_cursor("influxdb") == store.last_reading_id()
    await assert_reconciled(influxd.url, db, store, cfg, t0, t0 + DAY)  # duplicates overwrote


async def test_configuration_problems_are_retried_never_quarantined(influxd, store, cfg):
    commit(store, readings(cfg, T0, 2))
    cases: list[InfluxV1Sink | InfluxV2Sink] = [
        InfluxV1Sink(influxd.url, "no_such_database"),
        InfluxV1Sink(f"http://127.0.0.1:{free_port()}", "edge"),  # nothing listening
        InfluxV2Sink(influxd.url, "token", "org", "bucket"),  # 1.6 serves no /api/v2/write
    ]
    for sink in cases:
        fwd = forwarder(store, cfg, sink)
        d = await fwd.drain_once()
        await sink.aclose()
        assert d.retry is not None and d.acked == 0, (sink.name, d)
        assert fwd.status()["quarantined"] == 0 and fwd.status()["backlog"] == 54
        assert fwd.status()["last_error"]
    fwd = forwarder(store, cfg, InfluxV1Sink(influxd.url, "no_such_database"))
    d = await fwd.drain_once()
    assert d.retry is not None and "configuration problem" in d.retry.reason
    assert "database not found" in d.retry.reason
    await fwd.sink.aclose()  # type: ignore[attr-defined]


@pytest.fixture
def victoria(tmp_path):
    binary = require_tool("victoria-metrics")
    port = free_port()
    with (tmp_path / "vm.log").open("wb") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            [
                binary,
                f"-httpListenAddr=127.0.0.1:{port}",
                f"-storageDataPath={tmp_path / 'vm'}",
                "-retentionPeriod=100y",
                "-dedup.minScrapeInterval=1ms",  # same series + timestamp: one sample (replays)
                "-search.latencyOffset=0s",
                "-loggerLevel=ERROR",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", proc, "victoria-metrics")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def test_v2_write_api_to_victoriametrics(victoria, store, cfg):
    t0 = T0
    rows = readings(cfg, t0, 100)
    commit(store, rows)
    sink = InfluxV2Sink(victoria, token="unused", org="gmp", bucket="edge")
    fwd = forwarder(store, cfg, sink, batch_size=1000)
    try:
        await drain_all(fwd)
        replay = Forwarder(store, sink, fwd.encode, "vm-replay", batch_size=5000)
        await drain_all(replay)  # everything again: deduplicated by series + timestamp
    finally:
        await sink.aclose()
    assert fwd.status()["sent"] == len(rows)
    async with httpx.AsyncClient(base_url=victoria, timeout=30) as c:
        (await c.get("/internal/force_flush")).raise_for_status()
        r = await c.post(
            "/api/v1/export",
            data={"match[]": '{__name__="reading_quality_code"}', "start": str(t0 // S - 1)},
        )
        r.raise_for_status()
    remote: Counter[str] = Counter()
    for line in r.text.splitlines():
        item = json.loads(line)
        m = item["metric"]
        path = "/".join(m[k] for k in ("site", "area", "room", "equipment", "tag"))
        remote[path] += len(item["timestamps"])
    assert dict(remote) == local_counts(store, cfg)


class ScriptedSink:
    """Refuses lines containing a marker (whole batch, like InfluxDB), optionally names them."""

    name = "scripted"

    def __init__(self, poison: str = "POISON", name_bad: bool = False):
        self.poison = poison
        self.name_bad = name_bad
        self.stored: list[str] = []
        self.calls = 0
        self.retry_at_call: int | None = None

    async def send(self, lines: list[str]) -> SendResult:
        self.calls += 1
        if self.calls == self.retry_at_call:
            return SendResult.retry(2.5, "HTTP 503 busy")
        bad = tuple(i for i, line in enumerate(lines) if self.poison in line)
        if bad:
            return SendResult.reject("poison", bad if self.name_bad else None)
        self.stored.extend(lines)
        return SendResult.ok()


def poison_encoder(cfg, poisoned: set[int]):
    base = reading_encoder(meta_from_config(cfg))

    def encode(r):
        line = base(r)
        assert line is not None
        return line.replace("quality=", "POISON=") if r.ts_us in poisoned else line

    return encode


@pytest.mark.parametrize("name_bad", [False, True])
async def test_bisection_quarantines_exactly_the_poison(store, cfg, name_bad):
    t0 = 1_790_000_000 * S
    rows = readings(cfg, t0, 100)
    commit(store, rows)
    poisoned = {rows[i].ts_us for i in (0, 1, 777, 2699)}  # whole time slices: 4 x 27 lines
    n_bad = sum(1 for r in rows if r.ts_us in poisoned)
    sink = ScriptedSink(name_bad=name_bad)
    fwd = Forwarder(store, sink, poison_encoder(cfg, poisoned), "scripted", batch_size=1000)
    await drain_all(fwd)
    assert len(sink.stored) == len(set(sink.stored)) == len(rows) - n_bad
    q = fwd.quarantined()
    assert len(q) == n_bad and {p.ts_us for p in q} == poisoned
    assert all(p.reason == "poison" and "POISON=" in p.line for p in q)
    assert store.outbox_cursor("scripted") == store.last_reading_id()
    st = fwd.status()
    assert (st["sent"], st["quarantined"], st["backlog"]) == (len(rows) - n_bad, n_bad, 0)
    if name_bad:
        assert sink.calls <= 2 * 3 + 1  # one refusal + one resend per affected batch
    fwd.close()


async def test_retry_after_partial_progress_acks_only_the_confirmed_prefix(store, cfg):
    rows = readings(cfg, 1_790_000_000 * S, 40)  # 1,080 readings in one batch
    commit(store, rows)
    poisoned = {rows[600].ts_us}
    sink = ScriptedSink()
    sink.retry_at_call = 4  # refused, left half ok, then right half's first piece: retry
    fwd = Forwarder(store, sink, poison_encoder(cfg, poisoned), "partial", batch_size=2000)
    d = await fwd.drain_once()
    assert d.retry is not None and d.retry.after_s == 2.5
    assert 0 < d.acked < len(rows)
    assert store.outbox_cursor("partial") == d.acked  # rowids start at 1
    assert fwd.status()["failing"] and fwd.status()["last_error"] == "HTTP 503 busy"
    backoff = Backoff(fwd.min_backoff_s, fwd.max_backoff_s)
    assert fwd._backoff(backoff, None) == 0.5 and fwd._backoff(backoff, 120.0) == 120.0
    backoff.reset()
    assert fwd._backoff(backoff, 2.5) == 2.5
    assert [fwd._backoff(backoff, None) for _ in range(9)][-1] == 60.0
    await drain_all(fwd)
    assert store.outbox_cursor("partial") == store.last_reading_id()
    assert set(sink.stored) | {q.line for q in fwd.quarantined()} == {
        fwd.encode(r) for _, r in store.readings_after(0, 10_000)
    }
    assert not fwd.status()["failing"]


async def test_unencodable_readings_are_quarantined_and_skipped_ones_counted(store, cfg):
    rows = readings(cfg, 1_790_000_000 * S, 10)
    commit(store, rows)
    base = reading_encoder(meta_from_config(cfg))

    def encode(r):
        if r.tag.endswith("/flow"):
            raise ValueError("no unit")
        if r.tag.endswith("/state"):
            return None  # not for this destination
        return base(r)

    sink = ScriptedSink()
    fwd = Forwarder(store, sink, encode, "enc")
    await drain_all(fwd)
    q = fwd.quarantined()
    assert len(q) == 10 and all("encoding failed: ValueError: no unit" in p.reason for p in q)
    assert fwd.status()["skipped"] == 10 and len(sink.stored) == len(rows) - 20
    assert store.outbox_cursor("enc") == store.last_reading_id()


def test_retry_after_header_parsing():
    from gmp_edge.historian.influx import classify, parse_retry_after

    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert classify(204, "", None, "x").kind == "ok"
    assert classify(429, "slow down", "7", "x") == SendResult.retry(7.0, "x: HTTP 429 slow down")
    assert classify(400, "partial write: field type conflict", None, "x").kind == "reject"
    assert classify(413, "too large", None, "x").kind == "reject"
    for status in (401, 403, 404):
        res = classify(status, "nope", None, "x")
        assert res.kind == "retry" and "configuration problem" in res.reason
    assert classify(500, "timeout", None, "x").kind == "retry"


async def test_signed_anchors_reach_influxd_verbatim_and_verifiable(influxd, db, store, cfg):
    """ADR 0027: a copy of every anchor outside the box, checkable with the box key alone."""
    from gmp_edge.audit.trail import AuditTrail
    from gmp_edge.historian.events import EventForwarder, anchor_source
    from gmp_edge.integrity import keys
    from gmp_edge.integrity.anchoring import anchor_now
    from gmp_edge.integrity.anchors import parse_anchors, signature_problem

    trail = AuditTrail(store.path)
    commit(store, readings(cfg, T0, 3))
    written = [anchor_now(store.path, "start", at_us=T0 + 1)]
    trail.append("qa.anna", "note", "test", "n1", "between anchors")
    written.append(anchor_now(store.path, "periodic", at_us=T0 + 2))
    sink = InfluxV1Sink(influxd.url, db)
    fwd = EventForwarder(store, trail, sink, "influxdb", sources=(anchor_source(store.path),))
    try:
        assert await fwd.drain_once() == 2
        assert store.outbox_cursor("influxdb", "anchors") == 2
        written.append(anchor_now(store.path, "stop", at_us=T0 + 3))
        assert await fwd.drain_once() == 1  # only what was appended since
        assert await fwd.drain_once() == 0
    finally:
        await sink.aclose()
        trail.close()
    (res,) = influxd.query('SELECT "anchor", "audit_seq", "kind", "line" FROM "anchor"', db)
    rows = res["series"][0]["values"]
    assert [(r[3], r[4]) for r in rows] == [("start", 1), ("periodic", 2), ("stop", 3)]
    assert [r[2] for r in rows] == [a.audit_seq for a in written]
    # what the historian holds verifies against the box key: nobody re-signed it
    copies, unreadable = parse_anchors("\n".join(r[1] for r in rows))
    assert unreadable == [] and len(copies) == 3
    public = keys.load_or_create(keys.key_path_for(store.path)).public_key()
    assert [signature_problem(a, public) for a in copies] == [None, None, None]
