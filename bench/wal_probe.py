"""Pages a commit writes as the store grows: N tags committed twice a second into a fresh
store through ``Store.commit``, as the running service commits them.

After some seconds of readings it prints the last commit's time and the WAL frames (pages)
it left, from ``pragma wal_checkpoint(passive)`` on a second connection (the writer's own
auto-checkpoint runs after every commit that leaves more than 1,000 pages, so the frames
in the log are about one commit's). An index keyed by tag first dirties about one leaf
page per tag per commit once each tag's entries fill their own pages (ADR 0028).

    PYTHONPATH=src .venv/bin/python bench/wal_probe.py [--tags 20000] [--seconds 180]

Readings get made-up times one second apart (no waiting): seconds of data, not of clock.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from gmp_edge.collector.reading import Quality, Reading
from gmp_edge.historian.store import Store

S = 1_000_000
T0 = 1_790_000_000 * S
REPORT_AT = (2, 10, 30, 60, 120, 180, 300, 600)


def main() -> None:
    """Commit, report, remove the store."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, default=20_000)
    ap.add_argument("--seconds", type=int, default=180, help="seconds of readings (180)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probe.db"
        store = Store(path)
        tags = [f"s/a/r{i % 10}/e/t{i}" for i in range(a.tags)]
        store.register_tags((t, "u", "k", "d") for t in tags)
        half = a.tags // 2
        for sec in range(1, a.seconds + 1):
            ts = T0 + sec * S
            readings = [Reading(t, random.random(), Quality.GOOD, ts) for t in tags]
            took = 0.0
            for part in (readings[:half], readings[half:]):
                t0 = time.perf_counter()
                store.commit(part)
                took = time.perf_counter() - t0
            if sec in REPORT_AT or sec == a.seconds:
                conn = sqlite3.connect(path)
                _, frames, _ = conn.execute("pragma wal_checkpoint(passive)").fetchone()
                conn.close()
                print(
                    f"{sec:5d} s of {a.tags:,} tags: last commit {took * 1000:.0f} ms, "
                    f"{frames:,} WAL pages ({frames * 4096 / 1e6:.0f} MB) after it",
                    flush=True,
                )
        store.close()


if __name__ == "__main__":
    main()
