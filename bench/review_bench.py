"""Release-review benchmark: 8 h x 500 tags at 1 s (14.4 M readings) in a store.

Times ``review.gather.review_batch`` (target < 2 s) and ``review.report.render_pdf``
(target < 15 s). The generated database is cached under ``bench/results/`` (gitignored).

    .venv/bin/python bench/review_bench.py [--tags 500] [--hours 8] [--rebuild]
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from pathlib import Path

import numpy as np

from gmp_edge.alarms import machine as am
from gmp_edge.alarms.model import ConditionKind, Priority
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.config import PlantConfig
from gmp_edge.deviations.batch import Batch
from gmp_edge.edge.config import parse_config
from gmp_edge.historian.store import Store
from gmp_edge.monitoring.engine import Books
from gmp_edge.monitoring.setup import build_limit_set
from gmp_edge.review.gather import review_batch
from gmp_edge.review.report import render_pdf

S = 1_000_000
T0 = 1_790_000_000 * S
ROOMS = 20
RESULTS = Path(__file__).resolve().parent / "results"

KINDS = ("particles_0_5", "particles_5_0", "dp", "temperature", "rh", "press_parameter")
UNITS = {
    "particles_0_5": "1/m3",
    "particles_5_0": "1/m3",
    "dp": "Pa",
    "temperature": "degC",
    "rh": "%",
    "press_parameter": "kN",
}
BASE = {
    "particles_0_5": 1500.0,
    "particles_5_0": 20.0,
    "dp": 30.0,
    "temperature": 21.0,
    "rh": 45.0,
    "press_parameter": 15.0,
}
NOISE = {
    "particles_0_5": 300.0,
    "particles_5_0": 5.0,
    "dp": 1.0,
    "temperature": 0.3,
    "rh": 2.0,
    "press_parameter": 0.5,
}


def tag_specs(n_tags: int) -> list[tuple[str, str, str]]:
    """(path, kind, unit) of every generated tag."""
    out = []
    for i in range(n_tags):
        room = i % ROOMS
        kind = KINDS[(i // ROOMS) % len(KINDS)]
        out.append((f"s/a/room{room:02d}/eq{room:02d}/t{i:03d}", kind, UNITS[kind]))
    return out


def fill(path: Path, n_tags: int, hours: float) -> int:
    """Bulk-load the period: every tag at 1 s, a few Bad stretches with their gaps."""
    specs = tag_specs(n_tags)
    store = Store(path)
    store.register_tags((p, u, k, "d") for p, k, u in specs)
    store.start_run("0" * 64, [p for p, _, _ in specs], at_us=T0 - 60 * S)
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("pragma synchronous=off")  # loading test data, not measuring durability
    ids = {p: tid for tid, p in conn.execute("select id, path from tags")}
    seconds = int(hours * 3600)
    rng = np.random.default_rng(1)
    total = 0
    t = time.perf_counter()
    chunk = 600
    base = np.array([BASE[k] for _, k, _ in specs])
    noise = np.array([NOISE[k] for _, k, _ in specs])
    tids = np.array([ids[p] for p, _, _ in specs])
    # tag 0 of every 50 is Bad for 5 minutes one hour in (a gap with its cause)
    bad_from, bad_to = 3600, 3900
    for c0 in range(0, seconds, chunk):
        secs = np.arange(c0, min(c0 + chunk, seconds))
        vals = base[None, :] + noise[None, :] * rng.standard_normal((len(secs), n_tags))
        ts = (T0 + secs * S)[:, None].repeat(n_tags, axis=1)
        q = np.zeros_like(vals, dtype=np.int64)
        inbad = (secs >= bad_from) & (secs < bad_to)
        if inbad.any():
            q[np.ix_(inbad, np.arange(0, n_tags, 50))] = 2
        rows = zip(
            tids[None, :].repeat(len(secs), axis=0).ravel().tolist(),
            ts.ravel().tolist(),
            ts.ravel().tolist(),
            vals.ravel().tolist(),
            q.ravel().tolist(),
            strict=True,
        )
        conn.execute("begin")
        conn.executemany(
            "insert into readings(tag_id, ts_us, ts_edge_us, value, quality) values(?,?,?,?,?)",
            rows,
        )
        conn.execute("commit")
        total += len(secs) * n_tags
        if c0 % 3600 == 0:
            el = time.perf_counter() - t
            print(f"  loaded {total:,} readings ({total / max(el, 1e-9):,.0f}/s)", flush=True)
    conn.execute("begin")
    for i in range(0, n_tags, 50):
        conn.execute(
            "insert into gaps(tag_id, start_us, end_us, cause, message) values(?,?,?,?,?)",
            (int(tids[i]), T0 + bad_from * S, T0 + bad_to * S, "network", "timed out"),
        )
    conn.execute("commit")
    conn.execute("analyze")
    conn.close()
    return total


def plant_config(n_tags: int, db: Path) -> PlantConfig:
    """A plant config naming the generated tags (one Modbus device per room)."""
    specs = tag_specs(n_tags)
    limits = []
    for p, kind, _ in specs:
        if kind == "temperature":
            limits.append(
                {"tag": p, "alert_high": 22.0, "action_high": 23.0, "continuous_monitoring": True}
            )
        elif kind == "press_parameter":
            limits.append(
                {
                    "tag": p,
                    "action_low": 12.0,
                    "action_high": 18.0,
                    "alert_low": 13.0,
                    "alert_high": 17.0,
                }
            )
    data = {
        "site": {"id": "s"},
        "areas": [{"id": "a"}],
        "rooms": [{"id": f"room{r:02d}", "area": "a", "grade": "D"} for r in range(ROOMS)],
        "devices": [
            {"id": f"dev{r:02d}", "protocol": "modbus", "host": "127.0.0.1", "poll_interval_s": 1.0}
            for r in range(ROOMS)
        ],
        "equipment": [
            {
                "id": f"eq{r:02d}",
                "kind": "press" if r == 0 else "counter",
                "room": f"room{r:02d}",
                "qualified_until": "2030-01-01",
                "calibration_due": "2030-01-01",
            }
            for r in range(ROOMS)
        ],
        "tags": [
            {
                "path": p,
                "device": f"dev{int(p.split('/')[2][4:]):02d}",
                "unit": u,
                "kind": k,
                "modbus": {"address": i * 2, "data_type": "float32"},
            }
            for i, (p, k, u) in enumerate(specs)
        ],
        "store": {"path": str(db)},
        "limits": limits,
    }
    return parse_config(data, Path("bench.toml"))


def prepare_records(db: Path, cfg: PlantConfig, hours: float) -> None:
    """Batch, approved limit set in force and a few alarm excursions (once per database)."""
    trail = AuditTrail(db)
    books = Books.open(trail)
    try:
        if books.batches.get("B-BENCH") is not None:
            return
        end = T0 + int(hours * 3600) * S
        ls = books.limit_sets.propose("eng1", build_limit_set(cfg, "eng1", 0), "bench limits")
        books.limit_sets.approve("qa1", ls.id, ls.version, T0 - 3600 * S)
        rooms = tuple(f"room{r:02d}" for r in range(ROOMS))
        books.batches.start("qa1", Batch("B-BENCH", "Bench 500 mg", ("eq00",), rooms, T0))
        books.batches.end("qa1", "B-BENCH", end)
        temps = [p for p, k, _ in tag_specs(len(cfg.tags)) if k == "temperature"]
        for i, tag in enumerate(temps[:10]):
            a = am.new_alarm(f"{tag}#alert_high", tag, ConditionKind.ALERT_HIGH, Priority.LOW)
            t = T0 + (1800 + i * 900) * S
            a, t1 = am.activate(
                a, t, value=22.4, limit=22.0, limit_set_id=ls.id, limit_set_version=ls.version
            )
            a, t2 = am.acknowledge(a, t + 60 * S, user="op1", comment="checked HVAC")
            a, t3 = am.clear(a, t + 300 * S, value=21.5)
            books.alarms.save(a, [t1, t2, t3])
    finally:
        books.close()
        trail.close()


def index_all(store: Store) -> None:
    """Fold every reading into the review segments, as the service does in the background."""
    if store.segments_cursor() >= store.last_reading_id():
        return
    print("indexing review segments (the service does this every 30 s) ...", flush=True)
    t = time.perf_counter()
    n = 0
    while k := store.index_segments(max_rows=200_000):
        n += k
        if n % 2_000_000 < k:
            print(f"  {n:,} readings", flush=True)
    el = time.perf_counter() - t
    print(f"  indexed {n:,} readings in {el:.1f} s ({n / max(el, 1e-9):,.0f}/s)")


def raw_floor(db: Path, cfg: PlantConfig, hours: float) -> None:
    """The floor: fetching each tag's segment blobs joined by SQLite (as the review does,
    mmap, one thread) and nothing else: no unpacking, no tail, no compilation."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.execute("pragma mmap_size=4294967296")
    t = time.perf_counter()
    total = 0
    end = T0 + int(hours * 3600) * S
    for (tid,) in conn.execute("select id from tags").fetchall():
        (data,) = conn.execute(
            "select cast(group_concat(data, '') as blob) from (select data from segments"
            " where tag_id=? and minute_us>=? and minute_us<? order by minute_us)",
            (tid, T0 - 60 * S, end),
        ).fetchone()
        total += len(data or b"")
    el = time.perf_counter() - t
    print(f"floor: bare fetch of the segment blobs ({total / 1e6:.0f} MB), one thread: {el:.2f} s")
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tags", type=int, default=500)
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--fill-only", action="store_true")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    db = RESULTS / f"review-{args.tags}tags-{args.hours:g}h.db"
    if args.rebuild or not db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        print(f"loading {args.tags} tags x {args.hours:g} h at 1 s into {db} ...", flush=True)
        n = fill(db, args.tags, args.hours)
        print(f"  {n:,} readings, {db.stat().st_size / 1e9:.2f} GB")
    if args.fill_only:
        return
    cfg = plant_config(args.tags, db)
    prepare_records(db, cfg, args.hours)
    store = Store(db)
    index_all(store)
    raw_floor(db, cfg, args.hours)
    trail = AuditTrail(db)
    books = Books.open(trail)
    now = T0 + int(args.hours * 3600) * S + 3600 * S
    times = []
    review = None
    for _ in range(3):
        t = time.perf_counter()
        review = review_batch(store, books, trail, cfg, "B-BENCH", now)
        times.append(time.perf_counter() - t)
    assert review is not None
    n = sum(t.good + t.uncertain + t.bad for t in review.tags)
    print(
        f"review_batch: {len(review.tags)} tags, {n:,} readings: "
        f"median {sorted(times)[1]:.2f} s (runs {', '.join(f'{x:.2f}' for x in times)}; "
        f"target < 2 s)"
    )
    from gmp_edge.review.compile import compile_review
    from gmp_edge.review.gather import gather

    inputs = gather(store, books, trail, cfg, "B-BENCH", now)
    t = time.perf_counter()
    compile_review(inputs)
    print(f"  of which compile_review (pure): {time.perf_counter() - t:.2f} s")
    assert review.readiness is not None
    print(
        f"  readiness: {review.readiness.recommendation}, {len(review.readiness.blockers)} "
        f"blockers, {len(review.readiness.warnings)} warnings"
    )
    out = RESULTS / "review-bench.pdf"
    t = time.perf_counter()
    render_pdf(
        review, out, [{"name": "Q. A. Person", "meaning": "approval", "time": now, "valid": True}]
    )
    el = time.perf_counter() - t
    print(f"render_pdf: {el:.2f} s, {out.stat().st_size / 1e6:.1f} MB -> {out} (target < 15 s)")
    books.close()
    trail.close()
    store.close()


if __name__ == "__main__":
    main()
