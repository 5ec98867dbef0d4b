"""Local store benchmarks: insert rate through Store.commit vs bare executemany,
and batch-review range queries over 8 h x 500 tags at 1 s (14.4 M readings).

    .venv/bin/python bench/store_bench.py [--tags 500] [--hours 8] [--db PATH]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gmp_edge.collector.reading import Quality, Reading
from gmp_edge.historian.store import Store

S = 1_000_000
T0 = 1_790_000_000 * S


def insert_rate(path: Path, n_tags: int = 500, rows: int = 300_000) -> tuple[float, float]:
    """Rows/s through Store.commit (1,000-row batches) and bare executemany, same schema."""
    store = Store(path)
    tags = [f"s/a/r{i % 10}/e/t{i}" for i in range(n_tags)]
    store.register_tags((t, "u", "k", "d") for t in tags)
    batch: list[Reading] = []
    t = time.perf_counter()
    n = 0
    ts = T0
    while n < rows:
        for tag in tags:
            batch.append(Reading(tag, random.random(), Quality.GOOD, ts))
        ts += S
        if len(batch) >= 1000:
            store.commit(batch)
            n += len(batch)
            batch = []
    ours = n / (time.perf_counter() - t)
    store.close()
    # bare: the same table, plain tuples, no Reading objects, no heartbeat, no seal
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("pragma synchronous=full")
    ids = [r[0] for r in conn.execute("select id from tags")]
    t = time.perf_counter()
    n = 0
    while n < rows:
        rws = [(tid, ts, ts, None, random.random(), None, 0, None, None) for tid in ids]
        ts += S
        conn.execute("begin")
        conn.executemany("insert into readings values(?,?,?,?,?,?,?,?,?)", rws * 2)
        conn.execute("commit")
        n += len(rws) * 2
    bare = n / (time.perf_counter() - t)
    conn.close()
    return ours, bare


def fill(path: Path, n_tags: int, hours: float) -> int:
    """Bulk-load a batch period: n_tags at 1 s for ``hours``."""
    store = Store(path)
    tags = [f"s/a/room{i % 20:02d}/e/t{i}" for i in range(n_tags)]
    store.register_tags((t, "u", "k", "d") for t in tags)
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("pragma synchronous=off")  # loading test data, not measuring durability
    ids = [r[0] for r in conn.execute("select id from tags order by id")]
    seconds = int(hours * 3600)
    rng = random.Random(1)
    total = 0
    t = time.perf_counter()
    for chunk in range(0, seconds, 60):
        rows = [
            (tid, T0 + s * S, T0 + s * S, None, 20 + rng.random(), None, 0, None, None)
            for s in range(chunk, min(chunk + 60, seconds))
            for tid in ids
        ]
        conn.execute("begin")
        conn.executemany("insert into readings values(?,?,?,?,?,?,?,?,?)", rows)
        conn.execute("commit")
        total += len(rows)
        if chunk % 3600 == 0:
            el = time.perf_counter() - t
            print(f"  loaded {total:,} readings ({total / max(el, 1e-9):,.0f}/s)", flush=True)
    conn.execute("analyze")
    conn.close()
    # what the running service's indexer does minute by minute (ADR 0018, 0029): per-tag
    # reads go through the segments, so a period loaded behind its back is folded first
    store = Store(path)
    t = time.perf_counter()
    while store.index_segments(max_rows=2_000_000):
        pass
    print(f"  folded into segments in {time.perf_counter() - t:.1f} s", flush=True)
    store.close()
    return total


def queries(path: Path, n_tags: int, hours: float) -> dict[str, float]:
    """Median ms of: one tag 1-min downsample; a room's tags; raw export rate."""
    store = Store(path)
    end = T0 + int(hours * 3600) * S
    one = "s/a/room00/e/t0"
    room = [t for t in store.tag_paths() if t.startswith("s/a/room00/")]

    def timed(fn: Callable[[], object], n: int = 5) -> float:
        out = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t) * 1000)
        return statistics.median(out)

    res = {
        "one_tag_1min_ms": timed(lambda: store.downsample(one, T0, end, 60 * S)),
        "room_tags": float(len(room)),
        "room_1min_ms": timed(lambda: [store.downsample(t, T0, end, 60 * S) for t in room], 3),
    }
    t = time.perf_counter()
    rows = store.readings(one, T0, end, limit=10_000_000)
    res["raw_one_tag_rows_per_s"] = len(rows) / (time.perf_counter() - t)
    store.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tags", type=int, default=500)
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--db", type=Path, default=None, help="reuse / keep this database")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours, bare = insert_rate(Path(tmp) / "ins.db")
        print(
            f"insert: Store.commit {ours:,.0f} readings/s; bare executemany {bare:,.0f} rows/s "
            f"(ratio {ours / bare:.0%}); WAL, synchronous=FULL, sealed (ADR 0027)"
        )
        db = args.db or Path(tmp) / "period.db"
        if not db.exists() or args.db is None:
            print(f"loading {args.tags} tags x {args.hours} h at 1 s ...", flush=True)
            n = fill(db, args.tags, args.hours)
            print(f"  {n:,} readings, {db.stat().st_size / 1e9:.2f} GB")
        q = queries(db, args.tags, args.hours)
        print(
            f"query: one tag {args.hours:g} h -> 1-min min/max/mean: "
            f"{q['one_tag_1min_ms']:.1f} ms (target < 100 ms)"
        )
        print(
            f"query: a room's {int(q['room_tags'])} tags -> 1-min: {q['room_1min_ms']:.0f} ms "
            f"(target < 1000 ms)"
        )
        print(f"raw read-back, one tag: {q['raw_one_tag_rows_per_s']:,.0f} readings/s")


if __name__ == "__main__":
    main()
