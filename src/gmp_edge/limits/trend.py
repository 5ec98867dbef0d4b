"""Out-of-trend (OOT) rules: Western Electric, Nelson, EWMA and tabular CUSUM (vectorised).

These raise "oot" events for scrutiny, never deviations. Pass Good readings only. For
particle counts (skewed, many zeros) apply them to transformed data (e.g. log1p) or use
count-based rules; the mean and sigma come from a qualified baseline, not from the
series being judged.

Conventions: z = (x - mean) / sigma. "Beyond k sigma" is strict (|z| > k); "within
1 sigma" is strict (|z| < 1); a point exactly on the centre line belongs to neither side
and breaks a same-side run; equal consecutive values break a trend and an alternation.
Each rule reports the index of the last point of every window that satisfies it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class OotEvent:
    """An out-of-trend signal: ``rule`` fired at reading ``index`` (time ``ts_us``)."""

    tag: str
    rule: str
    ts_us: int
    value: float
    index: int


def oot_events(
    tag: str, rule: str, ts_us: npt.ArrayLike, values: npt.ArrayLike, indices: npt.ArrayLike
) -> list[OotEvent]:
    """OOT events for the points ``indices`` of a series."""
    ts = np.asarray(ts_us, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    return [OotEvent(tag, rule, int(ts[i]), float(v[i]), int(i)) for i in np.asarray(indices)]


def run_length(mask: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Length of the run of True ending at each index (0 where False)."""
    m = np.asarray(mask, dtype=bool)
    idx = np.arange(len(m), dtype=np.int64)
    last_false = np.where(m, -1, idx)
    np.maximum.accumulate(last_false, out=last_false)
    return np.where(m, idx - last_false, 0)


def window_count(mask: npt.ArrayLike, m: int) -> npt.NDArray[np.int64]:
    """Number of True among the last ``m`` points ending at each index (fewer at the start)."""
    c = np.concatenate([[0], np.cumsum(np.asarray(mask, dtype=np.int64))])
    i = np.arange(1, len(c))
    return c[i] - c[np.maximum(i - m, 0)]


def n_of_m(mask: npt.ArrayLike, n: int, m: int) -> IndexArray:
    """Indices where at least ``n`` of the last ``m`` points are True (window ends)."""
    if not 1 <= n <= m:
        raise ValueError(f"need 1 <= n <= m, got n={n}, m={m}")
    return np.flatnonzero(window_count(mask, m) >= n)


def _z(x: npt.ArrayLike, mean: float, sigma: float) -> FloatArray:
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    return (np.asarray(x, dtype=np.float64) - mean) / sigma


def _same_side_n_of_m(z: FloatArray, k: float, n: int, m: int) -> IndexArray:
    hits = (window_count(z > k, m) >= n) | (window_count(z < -k, m) >= n)
    return np.flatnonzero(hits)


def _same_side_run(z: FloatArray, n: int) -> IndexArray:
    return np.flatnonzero((run_length(z > 0) >= n) | (run_length(z < 0) >= n))


def _trend(x: FloatArray, points: int) -> IndexArray:
    d = np.diff(x)
    up = np.concatenate([[0], run_length(d > 0)])
    down = np.concatenate([[0], run_length(d < 0)])
    return np.flatnonzero((up >= points - 1) | (down >= points - 1))


def _alternating(x: FloatArray, points: int) -> IndexArray:
    s = np.sign(np.diff(x))
    flips = (s[1:] * s[:-1]) < 0  # each consecutive pair of moves changes direction
    r = np.concatenate([[0, 0], run_length(flips)])
    return np.flatnonzero(r >= points - 2)


def western_electric(x: npt.ArrayLike, mean: float, sigma: float) -> dict[int, IndexArray]:
    """Western Electric rules 1-4 -> {rule: indices where it fires}.

    1: one point beyond 3 sigma. 2: 2 of 3 beyond 2 sigma, same side. 3: 4 of 5 beyond
    1 sigma, same side. 4: 8 consecutive on one side of the centre line.
    """
    z = _z(x, mean, sigma)
    return {
        1: np.flatnonzero(np.abs(z) > 3),
        2: _same_side_n_of_m(z, 2, 2, 3),
        3: _same_side_n_of_m(z, 1, 4, 5),
        4: _same_side_run(z, 8),
    }


def nelson(x: npt.ArrayLike, mean: float, sigma: float) -> dict[int, IndexArray]:
    """Nelson rules 1-8 -> {rule: indices where it fires}.

    1: beyond 3 sigma. 2: 9 consecutive on one side. 3: 6 consecutive points steadily
    increasing or decreasing. 4: 14 consecutive alternating up and down. 5: 2 of 3 beyond
    2 sigma, same side. 6: 4 of 5 beyond 1 sigma, same side. 7: 15 consecutive within
    1 sigma. 8: 8 consecutive beyond 1 sigma with points on both sides.
    """
    xv = np.asarray(x, dtype=np.float64)
    z = _z(xv, mean, sigma)
    outside1 = np.abs(z) > 1
    r8 = run_length(outside1)
    # Both sides present within the last 8 points of an all-outside run.
    both = (window_count(z > 1, 8) > 0) & (window_count(z < -1, 8) > 0)
    return {
        1: np.flatnonzero(np.abs(z) > 3),
        2: _same_side_run(z, 9),
        3: _trend(xv, 6),
        4: _alternating(xv, 14),
        5: _same_side_n_of_m(z, 2, 2, 3),
        6: _same_side_n_of_m(z, 1, 4, 5),
        7: np.flatnonzero(run_length(np.abs(z) < 1) >= 15),
        8: np.flatnonzero((r8 >= 8) & both),
    }


@dataclass(frozen=True, slots=True)
class EwmaResult:
    """EWMA statistic, its control limits and the points outside them."""

    z: FloatArray
    lcl: FloatArray
    ucl: FloatArray
    signals: IndexArray


def ewma(
    x: npt.ArrayLike,
    mean: float,
    sigma: float,
    lam: float = 0.1,
    L: float = 2.7,  # noqa: N803 - the textbook name
    *,
    time_varying: bool = True,
) -> EwmaResult:
    """EWMA chart: z_i = lam*x_i + (1-lam)*z_{i-1}, z_0 = mean.

    Limits mean +- L*sigma*sqrt(lam/(2-lam) * (1-(1-lam)^(2i))) (``time_varying``, the
    exact form, narrower for early points) or the steady-state form. Defaults lam=0.1,
    L=2.7 (Montgomery's example, in-control ARL about 500). Computed in closed form per
    block of points, so it stays vectorised without underflow.
    """
    if not 0 < lam <= 1:
        raise ValueError(f"lambda must be in (0, 1], got {lam}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    xv = np.asarray(x, dtype=np.float64)
    n = len(xv)
    w = 1.0 - lam
    z = np.empty(n)
    if w == 0.0:
        z[:] = xv
    else:
        # Block length keeps w**-k below 1e100.
        block = int(max(1, min(4096, 100 // max(-np.log10(w), 1e-12))))
        prev = float(mean)
        for b0 in range(0, n, block):
            seg = xv[b0 : b0 + block]
            k = np.arange(len(seg))
            wk = w**k
            z_seg = wk * (w * prev + lam * np.cumsum(seg / wk))
            z[b0 : b0 + len(seg)] = z_seg
            if len(seg):
                prev = float(z_seg[-1])
    i = np.arange(1, n + 1)
    factor = lam / (2 - lam) * (1 - w ** (2 * i)) if time_varying else np.full(n, lam / (2 - lam))
    half = L * sigma * np.sqrt(factor)
    lcl, ucl = mean - half, mean + half
    return EwmaResult(z, lcl, ucl, np.flatnonzero((z > ucl) | (z < lcl)))


@dataclass(frozen=True, slots=True)
class CusumResult:
    """Tabular CUSUM sums and the points where either exceeds H."""

    c_plus: FloatArray
    c_minus: FloatArray
    signals: IndexArray


def cusum(
    x: npt.ArrayLike, mean: float, sigma: float, k: float = 0.5, h: float = 5.0
) -> CusumResult:
    """Tabular CUSUM with K = k*sigma, H = h*sigma (k=0.5 targets a 1 sigma shift; h=5
    gives an in-control ARL of about 465).

    C+_i = max(0, x_i - (mean + K) + C+_{i-1}), C-_i = max(0, (mean - K) - x_i + C-_{i-1}),
    C_0 = 0; a signal wherever C+ > H or C- > H. The sums are not reset after a signal.
    Vectorised through the Lindley form C_i = S_i - min(0, min_{j<=i} S_j).
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    xv = np.asarray(x, dtype=np.float64)
    big_k, big_h = k * sigma, h * sigma

    def one_sided(y: FloatArray) -> FloatArray:
        s = np.cumsum(y)
        floor = np.minimum.accumulate(np.concatenate([[0.0], s]))[1:]
        return s - np.minimum(floor, 0.0)

    cp = one_sided(xv - (mean + big_k))
    cm = one_sided((mean - big_k) - xv)
    return CusumResult(cp, cm, np.flatnonzero((cp > big_h) | (cm > big_h)))
