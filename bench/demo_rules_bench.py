"""How out-of-trend rules fit the simulated tablet press (the demo's compression force).

Run: .venv/bin/python bench/demo_rules_bench.py [--runs 100] [--minutes 30]

For CUSUM and EWMA at several sigmas (mean 15.0 kN, the press's set point): how many quiet
runs of ``--minutes`` (samples every 0.5 s, the demo's OPC UA sampling) raise a signal, and
how soon a 0.5 kN/min force drift (the demo's scripted one) is out of trend. The press's force
wanders slowly with its fill depth, so the samples are far from independent: a sigma taken
from one tablet's spread makes every quiet batch signal. Figures only, no assertions; the
demo's chosen rule is held to them by tests/unit/test_demo_rules.py.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import replace

import numpy as np

from gmp_edge.limits.trend import cusum, ewma
from gmp_edge.simulators.scenario import TargetEffects
from gmp_edge.simulators.spec import PressParams
from gmp_edge.simulators.tablet_press import TabletPress

SAMPLE_S = 0.5


def force(seed: int, minutes: float, drift_from_s: float | None = None) -> np.ndarray:
    """The simulated main compression force, one sample per 0.5 s."""
    press = TabletPress(PressParams(), random.Random(seed), 0.0)
    out, t = [], 0.0
    for _ in range(int(minutes * 60 / SAMPLE_S)):
        t += SAMPLE_S
        effects = TargetEffects()
        if drift_from_s is not None and t > drift_from_s:
            effects = replace(effects, force_drift_kn=0.5 * (t - drift_from_s) / 60)
        press.tick(t, effects)
        out.append(press.values["MainCompressionForce"])
    return np.array(out)


def main() -> None:
    """Print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=30.0)
    args = ap.parse_args()
    quiet = [force(s, args.minutes) for s in range(args.runs)]
    x = np.concatenate(quiet)
    print(f"force over {args.runs} x {args.minutes:g} min: mean {x.mean():.3f} sd {x.std():.3f} kN")
    drift_at = 360.0
    drifting = [force(s, 12, drift_at) for s in range(min(50, args.runs))]
    start = int(drift_at / SAMPLE_S)
    for name, chart in (("cusum", cusum), ("ewma", ewma)):
        for sigma in (0.2, 0.5, 1.0, 1.5):
            false = sum(bool(chart(q, 15.0, sigma).signals.size) for q in quiet)
            delays = []
            for d in drifting:
                sig = chart(d, 15.0, sigma).signals
                after = sig[sig >= start]
                if after.size:
                    delays.append((after[0] - start) * SAMPLE_S)
            caught = f"{len(delays)}/{len(drifting)}"
            median = f"{np.median(delays):.0f} s" if delays else "-"
            print(
                f"{name:5} sigma {sigma:>4}: quiet runs signalling {false:>3}/{args.runs}; "
                f"0.5 kN/min drift caught {caught}, median after {median}"
            )


if __name__ == "__main__":
    main()
