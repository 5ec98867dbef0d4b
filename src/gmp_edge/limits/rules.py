"""Rules beyond single thresholds: particle N-of-M counts and the DP cascade (pure).

Both raise "oot" events for scrutiny (``trend.OotEvent``) or inversion records; turning
them into alarms or deviations is decided downstream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gmp_edge.limits.engine import evaluate, excursions_from_events
from gmp_edge.limits.model import Condition, TagLimits, Threshold
from gmp_edge.limits.trend import OotEvent, n_of_m, oot_events, run_length

__all__ = ["CascadeInversion", "dp_cascade", "particle_n_of_m", "particle_n_of_m_events"]


def particle_n_of_m(
    counts: npt.ArrayLike,
    alert: float,
    n: int = 2,
    m: int = 3,
    *,
    inclusive: bool = False,
) -> npt.NDArray[np.intp]:
    """Annex 1: "consecutive or regular counts at low levels" of >= 5 um particles.

    Indices of samples where at least ``n`` of the last ``m`` consecutive samples are
    above ``alert`` (``>=`` if ``inclusive``); e.g. 2 of 3 above the alert level. Only
    the first index of each streak is returned, so one cluster gives one signal.
    Pass Good samples only.
    """
    c = np.asarray(counts, dtype=np.float64)
    above = c >= alert if inclusive else c > alert
    fires = np.zeros(len(c), dtype=bool)
    fires[n_of_m(above, n, m)] = True
    return np.flatnonzero(run_length(fires) == 1)


def particle_n_of_m_events(
    tag: str,
    ts_us: npt.ArrayLike,
    counts: npt.ArrayLike,
    alert: float,
    n: int = 2,
    m: int = 3,
    *,
    inclusive: bool = False,
) -> list[OotEvent]:
    """``particle_n_of_m`` as OOT events (rule name ``particles_{n}_of_{m}``)."""
    idx = particle_n_of_m(counts, alert, n, m, inclusive=inclusive)
    return oot_events(tag, f"particles_{n}_of_{m}", ts_us, counts, idx)


@dataclass(frozen=True, slots=True)
class CascadeInversion:
    """The DP cascade between two rooms was lost longer than the grace period.

    ``start_us``: first reading without the required flow direction; ``confirmed_us``:
    the reading at which the grace period was exceeded (the event time); ``end_us``:
    when the direction was restored (None if still lost); ``worst_dp_pa``: the lowest DP.
    """

    start_us: int
    confirmed_us: int
    end_us: int | None
    worst_dp_pa: float | None


def dp_cascade(
    ts_us: npt.ArrayLike,
    dp_pa: npt.ArrayLike | None = None,
    *,
    high_side_pa: npt.ArrayLike | None = None,
    low_side_pa: npt.ArrayLike | None = None,
    quality: npt.ArrayLike | None = None,
    grace_s: float = 60.0,
    min_dp_pa: float = 0.0,
) -> list[CascadeInversion]:
    """Check that air flows from the cleaner room to the other one.

    Give either ``dp_pa`` (cleaner room minus the other room) or the two room pressures
    on the same timestamps. The cascade is lost while DP <= ``min_dp_pa`` (0: no flow or
    reverse flow). A loss shorter than ``grace_s`` (a door opening) is ignored; a longer
    one is reported once confirmed. Bad/Uncertain samples (``quality`` != 0) hold.
    """
    if dp_pa is None:
        if high_side_pa is None or low_side_pa is None:
            raise ValueError("give dp_pa, or both high_side_pa and low_side_pa")
        dp = np.asarray(high_side_pa, dtype=np.float64) - np.asarray(low_side_pa, np.float64)
    else:
        dp = np.asarray(dp_pa, dtype=np.float64)
    q = np.zeros(len(dp), dtype=np.int8) if quality is None else np.asarray(quality, np.int8)
    limits = TagLimits(
        "dp_cascade",
        action_low=Threshold(min_dp_pa, inclusive=True),
        on_delay_s=grace_s,
        delay_justification="door-open grace period",
    )
    events = [e for e in evaluate(limits, ts_us, dp, q) if e.condition is Condition.ACTION_LOW]
    return [
        CascadeInversion(x.start_us, x.active_from_us, x.end_us, x.peak)
        for x in excursions_from_events(events)
    ]
