"""The demo's out-of-trend rule fits the simulated press (issue 13 item 13): over quiet
half-hours it stays silent, and it catches the scripted force drift before the alert limit.

Before the fix the rule (CUSUM, mean 15.0, sigma 0.2) took the spread of one tablet for the
spread of the process; the press's force wanders slowly with its fill depth, so the sums
grew on every quiet batch: six OOT alarms in a 6-minute demo batch.
"""

from __future__ import annotations

import random
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gmp_edge.limits.trend import cusum, ewma
from gmp_edge.simulators.scenario import TargetEffects
from gmp_edge.simulators.spec import PressParams
from gmp_edge.simulators.tablet_press import TabletPress

EXAMPLES = Path(__file__).parents[2] / "examples"
FORCE = "acme-basel/solid-dose/compression/press-01/main_compression_force"
SAMPLE_S = 0.5  # the press's OPC UA sampling interval in examples/plant.toml


def demo_rule() -> tuple[dict, dict]:
    plant = tomllib.loads((EXAMPLES / "plant.toml").read_text())
    (limit,) = [e for e in plant["limits"] if e["tag"] == FORCE]
    press = next(d for d in plant["devices"] if d["id"] == "press-01")
    assert press["sampling_interval_ms"] / 1000 == SAMPLE_S
    return limit, limit["trend"]


def force(seed: int, minutes: float, drift_from_s: float | None = None, rate: float = 0.0):
    press = TabletPress(PressParams(), random.Random(seed), 0.0)
    out, t = [], 0.0
    for _ in range(int(minutes * 60 / SAMPLE_S)):
        t += SAMPLE_S
        effects = TargetEffects()
        if drift_from_s is not None and t > drift_from_s:
            effects = replace(effects, force_drift_kn=rate * (t - drift_from_s) / 60)
        press.tick(t, effects)
        out.append(press.values["MainCompressionForce"])
    return np.array(out)


def signals(trend: dict, x: np.ndarray) -> np.ndarray:
    chart = cusum if trend["method"] == "cusum" else ewma
    return chart(x, trend["mean"], trend["sigma"]).signals


@pytest.mark.parametrize("seed", range(12))
def test_a_quiet_half_hour_of_the_simulated_press_raises_no_oot(seed):
    _, trend = demo_rule()
    assert signals(trend, force(seed, 30)).size == 0


@pytest.mark.parametrize("seed", range(6))
def test_the_scripted_force_drift_is_out_of_trend_before_the_alert_limit(seed):
    limit, trend = demo_rule()
    sim = tomllib.loads((EXAMPLES / "sim-solid-dose.toml").read_text())
    (drift,) = [e for e in sim["scenario"] if e["kind"] == "press_force_drift"]
    x = force(seed, (drift["at_s"] + drift["duration_s"]) / 60, drift["at_s"], drift["magnitude"])
    start = int(drift["at_s"] / SAMPLE_S)
    found = signals(trend, x)
    first = found[found >= start]
    assert signals(trend, x[:start]).size == 0  # nothing before it
    assert first.size, "the drift is not out of trend"
    assert x[first[0]] < limit["alert_high"]  # seen as a trend before it is an excursion


def test_the_scripted_particle_burst_is_clearly_an_action_excursion():
    # x20 on a 150,000/m3 baseline sat on the 3 M action limit: the alarm chattered and the
    # one scripted burst raised two deviations
    plant = tomllib.loads((EXAMPLES / "plant.toml").read_text())
    sim = tomllib.loads((EXAMPLES / "sim-solid-dose.toml").read_text())
    tag = "acme-basel/solid-dose/granulation/pc-gran-01/particles_0_5"
    (limit,) = [e for e in plant["limits"] if e["tag"] == tag]
    (burst,) = [e for e in sim["scenario"] if e["kind"] == "particle_burst"]
    unit = next(u for ep in sim["modbus"] for u in ep["units"] if u["id"] == burst["target"])
    peak = unit["conc_0_5"] * burst["magnitude"]
    assert peak >= 1.3 * limit["action_high"]
    assert limit["deadband"] >= 0.05 * limit["action_high"]
