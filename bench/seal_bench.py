"""What sealing costs the commit path, and how fast `gmp-edge verify` recomputes (ADR 0027).

Commits the same readings through ``Store.commit`` with the seal ledger and with a no-op in
its place (the raw limit: the same store without sealing), at a small box's batch and at
20,000 tags committed twice a second; then recomputes the ledger of the sealed store and
compares with a bare ``select`` of the same columns through Python's ``sqlite3``.

    PYTHONPATH=src .venv/bin/python bench/seal_bench.py [--rows 400000]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import gmp_edge.historian.store as store_module
from gmp_edge.collector.reading import Quality, Reading
from gmp_edge.historian.store import Store
from gmp_edge.integrity.check import check_ledger
from gmp_edge.integrity.covered import READINGS, select_rows

S = 1_000_000
T0 = 1_790_000_000 * S


class _NoSeal:
    """The raw limit: the store's transactions without the seal ledger."""

    def __init__(self, *args: object) -> None:
        pass

    def begin(self) -> None:
        pass

    def seal(self) -> None:
        pass

    def retention(self, through_rowid: int) -> None:
        pass


@contextmanager
def unsealed() -> Iterator[None]:
    real = store_module.Sealer
    store_module.Sealer = _NoSeal  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        store_module.Sealer = real  # type: ignore[misc]


def commit_rate(path: Path, per_commit: int, rows: int) -> tuple[float, float]:
    """(readings/s, median ms per commit) through Store.commit, ``per_commit`` a batch."""
    store = Store(path)
    tags = [f"s/a/r{i % 10}/e/t{i}" for i in range(min(per_commit, 20_000))]
    store.register_tags((t, "u", "k", "d") for t in tags)
    batches: list[list[Reading]] = []
    ts = T0
    while sum(len(b) for b in batches) < rows:
        batches.append([Reading(t, 20.0 + (ts % 7) / 10, Quality.GOOD, ts) for t in tags])
        ts += S
    times = []
    t0 = time.perf_counter()
    for b in batches:
        t = time.perf_counter()
        store.commit(b)
        times.append(time.perf_counter() - t)
    rate = sum(len(b) for b in batches) / (time.perf_counter() - t0)
    store.close()
    times.sort()
    return rate, times[len(times) // 2] * 1000


def verify_rate(path: Path) -> tuple[float, float, int]:
    """(ledger check readings/s, bare select rows/s, readings)."""
    conn = sqlite3.connect(path)
    t = time.perf_counter()
    n = sum(1 for _ in conn.execute(select_rows(READINGS) + " order by rowid"))
    bare = n / (time.perf_counter() - t)
    conn.execute("begin")
    t = time.perf_counter()
    rep = check_ledger(conn)
    ours = rep.readings / (time.perf_counter() - t)
    conn.close()
    assert not rep.findings, rep.findings.lines()
    return ours, bare, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (median shown)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for per_commit in (200, 10_000):
            # alternating rounds: one run of each is at the mercy of whatever else the two
            # cores do (single runs of the same code have differed by 25 %)
            rounds = []
            for r in range(args.rounds):
                with unsealed():
                    raw = commit_rate(Path(tmp) / f"raw{per_commit}-{r}.db", per_commit, args.rows)
                sealed = commit_rate(Path(tmp) / f"s{per_commit}-{r}.db", per_commit, args.rows)
                rounds.append((sealed[0] / raw[0], sealed, raw))
            rounds.sort(key=lambda x: x[0])
            ratio, (sealed_rate, sealed_ms), (raw_rate, raw_ms) = rounds[len(rounds) // 2]
            print(
                f"commit, {per_commit:,} readings a transaction (median of {args.rounds} rounds):"
                f" sealed {sealed_rate:,.0f} readings/s ({sealed_ms:.1f} ms a commit); unsealed"
                f" {raw_rate:,.0f}/s ({raw_ms:.1f} ms); sealed runs at {ratio:.0%} of unsealed"
                f" (rounds {', '.join(f'{x[0]:.0%}' for x in rounds)})"
            )
        ours, bare, n = verify_rate(Path(tmp) / "s10000-0.db")
        print(
            f"verify: the ledger check recomputes {ours:,.0f} readings/s over {n:,} readings;"
            f" a bare select of the same columns {bare:,.0f} rows/s ({ours / bare:.0%})"
        )


if __name__ == "__main__":
    main()
