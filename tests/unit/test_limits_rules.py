"""N-of-M particle rule, DP cascade, Western Electric / Nelson, EWMA and CUSUM."""

from __future__ import annotations

import numpy as np
import pytest

from gmp_edge.limits.rules import (
    CascadeInversion,
    dp_cascade,
    particle_n_of_m,
    particle_n_of_m_events,
)
from gmp_edge.limits.trend import cusum, ewma, n_of_m, nelson, run_length, western_electric

S = 1_000_000


@pytest.mark.parametrize(
    ("counts", "alert", "n", "m", "inclusive", "expected"),
    [
        ([0, 5, 0, 5, 0, 0, 5, 0, 0, 5], 3, 2, 3, False, [3]),  # 2 of 3 once
        ([5, 5, 5, 5], 3, 2, 3, False, [1]),  # one streak, one signal
        ([3, 3, 0], 3, 2, 3, False, []),  # at the alert level is not above
        ([3, 3, 0], 3, 2, 3, True, [1]),
        ([5, 0, 0, 5], 3, 2, 3, False, []),  # 3 apart: never 2 within 3
        ([5, 0, 0, 5], 3, 2, 4, False, [3]),
        ([5, 5, 0, 0, 0, 5, 5], 3, 2, 3, False, [1, 6]),
        ([9], 3, 1, 1, False, [0]),
    ],
)
def test_particle_n_of_m(counts, alert, n, m, inclusive, expected):
    assert particle_n_of_m(counts, alert, n, m, inclusive=inclusive).tolist() == expected


def test_particle_n_of_m_events_and_guards():
    (ev,) = particle_n_of_m_events("p50", [10, 20, 30], [4, 5, 0], 3)
    assert (ev.rule, ev.ts_us, ev.value, ev.index) == ("particles_2_of_3", 20, 5.0, 1)
    with pytest.raises(ValueError):
        n_of_m([True], 3, 2)
    assert run_length([True, True, False, True]).tolist() == [1, 2, 0, 1]


# -- DP cascade ------------------------------------------------------------------------
TS = [i * S for i in range(12)]


@pytest.mark.parametrize(
    ("dp", "grace", "expected"),
    [
        # 2 s inversion inside the 3 s door-open grace: ignored; 5 s one is reported
        (
            [15, 15, -2, -2, 15, 15, -1, -1, -1, -1, -1, 15],
            3,
            [CascadeInversion(6 * S, 9 * S, 11 * S, -1.0)],
        ),
        # with a 1 s grace both count
        (
            [15, 15, -2, -2, 15, 15, -1, -1, -1, -1, -1, 15],
            1,
            [
                CascadeInversion(2 * S, 3 * S, 4 * S, -2.0),
                CascadeInversion(6 * S, 7 * S, 11 * S, -1.0),
            ],
        ),
        # zero DP means no flow direction: lost; still lost at the end -> open
        ([15] * 8 + [0, 0, 0, 0], 2, [CascadeInversion(8 * S, 10 * S, None, 0.0)]),
        ([15, 0.1] * 6, 0, []),  # any positive DP holds the direction
    ],
)
def test_dp_cascade(dp, grace, expected):
    assert dp_cascade(TS, dp, grace_s=grace) == expected


def test_dp_cascade_from_two_rooms_and_quality():
    high = np.array([45.0] * 6)
    low = np.array([30.0, 50.0, 50.0, 50.0, 30.0, 30.0])
    assert dp_cascade(TS[:6], high_side_pa=high, low_side_pa=low, grace_s=2) == [
        CascadeInversion(1 * S, 3 * S, 4 * S, -5.0)
    ]
    # a Bad sample between inverted ones holds (does not restore the cascade)
    assert dp_cascade(TS[:5], [-1, 20, -1, -1, 9], quality=[0, 2, 0, 0, 0], grace_s=3) == [
        CascadeInversion(0, 3 * S, 4 * S, -1.0)
    ]
    with pytest.raises(ValueError):
        dp_cascade(TS[:2], high_side_pa=[1, 2])


# -- Western Electric and Nelson: each series fires exactly one rule of its family -----
WE_CASES = {
    1: ([0.5, -0.5, 3.5, -0.5, 0.5], [2]),
    2: ([0.5, 2.5, -0.5, 2.5, -0.5], [3]),
    3: ([1.5, 1.5, -0.5, 1.5, 1.5], [4]),
    4: ([0.5] * 8, [7]),
}


@pytest.mark.parametrize("rule", sorted(WE_CASES))
def test_western_electric_rule_alone(rule):
    series, where = WE_CASES[rule]
    fired = {k: v.tolist() for k, v in western_electric(series, 0.0, 1.0).items() if len(v)}
    assert fired == {rule: where}


NELSON_CASES = {
    1: ([0.5, -0.5, 3.5, -0.5, 0.5], [2]),
    2: ([0.5, 0.6] * 4 + [0.5], [8]),
    3: ([-0.5, -0.3, -0.1, 0.1, 0.3, 0.5], [5]),
    4: ([0.5, -0.5] * 7, [13]),
    5: ([0.5, 2.5, -0.5, 2.5, -0.5], [3]),
    6: ([1.5, 1.5, -0.5, 1.5, 1.5], [4]),
    7: ([0.5, 0.5, -0.5, -0.5] * 4, [14, 15]),
    8: ([1.5, 1.5, -1.5, -1.5] * 2, [7]),
}


@pytest.mark.parametrize("rule", sorted(NELSON_CASES))
def test_nelson_rule_alone(rule):
    series, where = NELSON_CASES[rule]
    fired = {k: v.tolist() for k, v in nelson(series, 0.0, 1.0).items() if len(v)}
    assert fired == {rule: where}


def test_rules_use_mean_and_sigma():
    # the same shape shifted and scaled fires the same rule
    series = np.array(WE_CASES[2][0]) * 4 + 100
    assert western_electric(series, 100, 4)[2].tolist() == [3]
    assert nelson([100, 100, 100], 100, 4)[2].tolist() == []  # on the centre line: no side
    with pytest.raises(ValueError):
        nelson([1.0], 0, 0)


# -- EWMA and CUSUM --------------------------------------------------------------------
STEP = np.concatenate([np.zeros(50), np.full(50, 1.5)])


def test_cusum_step_change():
    r = cusum(STEP, 0.0, 1.0, k=0.5, h=5.0)
    # C+ grows by 1.5 - 0.5 = 1 per point after the step: > 5 first at the 6th point
    assert r.signals[0] == 55 and r.c_plus[54] == pytest.approx(5.0)
    assert not r.c_minus.any() and (r.signals >= 55).all()
    down = cusum(-STEP, 0.0, 1.0)
    assert down.signals[0] == 55 and not down.c_plus.any()


def test_ewma_step_change():
    r = ewma(STEP, 0.0, 1.0, lam=0.1, L=2.7)
    assert len(r.signals) and r.signals[0] >= 50 and r.signals[0] < 60
    assert ewma(np.zeros(100), 0.0, 1.0).signals.tolist() == []


def naive_ewma(x, mean, lam):
    z, out = mean, []
    for v in x:
        z = lam * v + (1 - lam) * z
        out.append(z)
    return np.array(out)


def naive_cusum(x, mean, sigma, k, h):
    cp = cm = 0.0
    ps, ms = [], []
    for v in x:
        cp = max(0.0, v - (mean + k * sigma) + cp)
        cm = max(0.0, (mean - k * sigma) - v + cm)
        ps.append(cp)
        ms.append(cm)
    return np.array(ps), np.array(ms)


@pytest.mark.parametrize("lam", [0.05, 0.1, 0.25, 0.9, 1.0])
def test_ewma_matches_recursion_over_blocks(lam):
    x = np.random.default_rng(7).normal(3, 2, 20_000)
    r = ewma(x, 3.0, 2.0, lam=lam)
    np.testing.assert_allclose(r.z, naive_ewma(x, 3.0, lam), rtol=1e-9, atol=1e-9)
    steady = ewma(x, 3.0, 2.0, lam=lam, time_varying=False)
    assert steady.ucl[0] == pytest.approx(3.0 + 2.7 * 2.0 * np.sqrt(lam / (2 - lam)))
    assert r.ucl[0] < steady.ucl[0] or lam == 1.0


def test_cusum_matches_recursion():
    x = np.random.default_rng(3).normal(0, 1, 5000) + np.repeat([0, 1.2, -1.0, 0], 1250)
    r = cusum(x, 0.0, 1.0, k=0.5, h=4.0)
    cp, cm = naive_cusum(x, 0.0, 1.0, 0.5, 4.0)
    np.testing.assert_allclose(r.c_plus, cp, atol=1e-9)
    np.testing.assert_allclose(r.c_minus, cm, atol=1e-9)
    assert r.signals.tolist() == np.flatnonzero((cp > 4) | (cm > 4)).tolist()
