"""Limit engine throughput (one core): evaluation with on-delay and deadband, and what-if.

Run: .venv/bin/python bench/limits_bench.py [--n 10000000] [--tags 500] [--hours 8]

(a) one tag, N readings at 1 s, with alert/action high and low limits, a 30 s on-delay,
    10 s off-delay and a deadband, against a bare numpy ``(v > hi) | (v < lo)`` of the
    same arrays in the same run (target >= 1 M readings/s).
(b) what-if: 500 tags x 8 h at 1 s (14.4 M readings, synthetic, in memory) against a
    limit set with two production-state windows (target < 5 s).
Figures only, no assertions; best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

import numpy as np

from gmp_edge.limits.engine import evaluate, what_if
from gmp_edge.limits.model import IN_OPERATION, LimitSet, TagLimits, Threshold

S = 1_000_000
T = TypeVar("T")


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise around 20 with slow drift, rare spikes and 0.1 % Bad readings."""
    rng = np.random.default_rng(seed)
    ts = np.arange(n, dtype=np.int64) * S + 1_700_000_000 * S
    v = 20.0 + rng.normal(0, 0.6, n) + 2.0 * np.sin(np.arange(n) / 3600.0)
    spikes = rng.random(n) < 0.0005
    v[spikes] += rng.normal(0, 5, int(spikes.sum()))
    q = np.where(rng.random(n) < 0.001, 2, 0).astype(np.int8)
    return ts, v, q


def limits(tag: str) -> TagLimits:
    return TagLimits(
        tag,
        alert_high=Threshold(22.5),
        action_high=Threshold(24.0),
        alert_low=Threshold(17.5),
        action_low=Threshold(16.0, inclusive=True),
        deadband=0.3,
        on_delay_s=30,
        off_delay_s=10,
        delay_justification="benchmark",
    )


def best(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    t_best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t0)
    assert out is not None
    return t_best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--tags", type=int, default=500)
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    ts, v, q = synthetic(args.n, 1)
    lim = limits("t")
    t_bare, _ = best(lambda: (v > 24.0) | (v < 16.0), args.repeat)
    t_eng, events = best(lambda: evaluate(lim, ts, v, q), args.repeat)
    n_ev = len(events)
    print(f"(a) evaluation, {args.n:,} readings, 4 limits, on-delay 30 s, off-delay 10 s,")
    print("    deadband 0.3, 0.1 % Bad readings:")
    rate = args.n / t_eng / 1e6
    print(f"    engine      {t_eng:8.3f} s  {rate:8.2f} M readings/s  ({n_ev} events)")
    print(f"    bare numpy  {t_bare:8.3f} s  {args.n / t_bare / 1e6:8.2f} M readings/s")
    print(f"    engine / bare numpy time: {t_eng / t_bare:.1f}x   (target >= 1 M readings/s)")

    per_tag = int(args.hours * 3600)
    data = {}
    for i in range(args.tags):
        tts, tv, tq = synthetic(per_tag, 100 + i)
        data[f"room{i // 10}/tag{i}"] = (tts, tv, tq)
    start = int(data[next(iter(data))][0][0])
    timeline = [
        (start, "at_rest"),
        (start + 2 * 3600 * S, IN_OPERATION),
        (start + 6 * 3600 * S, "at_rest"),
    ]
    # Odd tags apply in operation only (two window ends), even tags always.
    entries = [
        replace(limits(tag), applies_in=frozenset({IN_OPERATION}) if k % 2 else None)
        for k, tag in enumerate(data)
    ]
    proposal = LimitSet("bench", 2, 0, "what-if", "alice", None, tuple(entries))
    total = args.tags * per_tag
    t_wi, res = best(lambda: what_if(proposal, data, timeline), args.repeat)
    n_exc = len(res.excursions)
    print(f"(b) what-if, {args.tags} tags x {args.hours:g} h at 1 s = {total:,} readings:")
    print(
        f"    total {t_wi:8.3f} s  {total / t_wi / 1e6:8.2f} M readings/s  "
        f"({n_exc} excursions)   (target < 5 s)"
    )


if __name__ == "__main__":
    main()
