"""Regulatory and customary presets: Annex 1 (2022) tables, ISO 14644-1, DP and room climate.

Sources are in ``/work/shared/reference/gmp-domain.md`` (sections 1, 2, 9 and Appendix A).
Annex 1 is written for sterile products; for solid oral dosage these values are a chosen
design basis, not binding law, so every preset is only a default the site may tighten.
"""

from __future__ import annotations

from dataclasses import replace
from math import floor, log10
from typing import TypedDict, Unpack

from gmp_edge.limits.model import AT_REST, IN_OPERATION, TagKind, TagLimits, Threshold

GRADES: tuple[str, ...] = ("A", "B", "C", "D")

# Particles per m3, EU GMP Annex 1 (2022) Table 5 (monitoring, maximum action limits);
# None = not predetermined (grade D in operation: set from risk assessment).
ANNEX1_2022_TABLE5: dict[str, dict[str, dict[float, int | None]]] = {
    "A": {AT_REST: {0.5: 3520, 5.0: 29}, IN_OPERATION: {0.5: 3520, 5.0: 29}},
    "B": {AT_REST: {0.5: 3520, 5.0: 29}, IN_OPERATION: {0.5: 352000, 5.0: 2930}},
    "C": {AT_REST: {0.5: 352000, 5.0: 2930}, IN_OPERATION: {0.5: 3520000, 5.0: 29300}},
    "D": {AT_REST: {0.5: 3520000, 5.0: 29300}, IN_OPERATION: {0.5: None, 5.0: None}},
}
# Annex 1 (2022) Table 1 (classification): 5 um "not specified" for A and B at rest.
ANNEX1_2022_TABLE1: dict[str, dict[str, dict[float, int | None]]] = {
    "A": {AT_REST: {0.5: 3520, 5.0: None}, IN_OPERATION: {0.5: 3520, 5.0: None}},
    "B": {AT_REST: {0.5: 3520, 5.0: None}, IN_OPERATION: {0.5: 352000, 5.0: 2930}},
    "C": {AT_REST: {0.5: 352000, 5.0: 2930}, IN_OPERATION: {0.5: 3520000, 5.0: 29300}},
    "D": {AT_REST: {0.5: 3520000, 5.0: 29300}, IN_OPERATION: {0.5: None, 5.0: None}},
}
# Viable, Annex 1 (2022) Table 6: (air CFU/m3, settle CFU/4h, contact CFU/plate,
# glove CFU/glove); 0 == "no growth", None == not given.
ANNEX1_2022_TABLE6: dict[str, tuple[int, int, int, int | None]] = {
    "A": (0, 0, 0, 0),
    "B": (10, 5, 5, 5),
    "C": (100, 50, 25, None),
    "D": (200, 100, 50, None),
}

PARTICLE_SIZE_UM: dict[TagKind, float] = {TagKind.PARTICLES_0_5: 0.5, TagKind.PARTICLES_5_0: 5.0}

# Annex 1 (2022): adjacent rooms of different grades >= 10 Pa (guidance value). The alert
# sits a few Pa above so that drift is seen before the minimum is lost (design - 2..3 Pa).
DP_MIN_PA = 10.0
DP_ALERT_MARGIN_PA = 3.0

# Solid-dose rooms (section 9): customary design ranges, not regulatory constants.
OSD_TEMPERATURE_C: tuple[float, float] = (18.0, 25.0)
OSD_RH_PCT: tuple[float, float] = (30.0, 60.0)

# Alert level as a fraction of the way from "normal" to the action limit: counts use
# alert = fraction * action; two-sided ranges shrink towards the centre by this fraction.
# 0.8 is a starting point only: Annex 1 wants alert levels from qualification and trend
# data (e.g. 95th percentile of 6-12 months), reviewed periodically.
DEFAULT_ALERT_FRACTION = 0.8


def iso14644_limit(n: float, d_um: float) -> int:
    """ISO 14644-1 class limit: Cn = 10^N * (0.1/D)^2.08 particles/m3 of size >= D um.

    Rounded to three significant figures, then to a whole number, as the standard's
    Table 1 is (e.g. ISO 5 at 0.5 um = 3520, ISO 8 at 5 um = 29300).
    """
    if n <= 0 or d_um <= 0:
        raise ValueError(f"ISO class and particle size must be positive, got N={n}, D={d_um}")
    c = 10**n * (0.1 / d_um) ** 2.08
    digits = 3 - floor(log10(c)) - 1
    return round(round(c, digits))


def annex1_action_limit(grade: str, state: str, size_um: float) -> int | None:
    """Annex 1 (2022) Table 5 maximum action limit, particles/m3; None = not predetermined."""
    try:
        return ANNEX1_2022_TABLE5[grade][state][size_um]
    except KeyError:
        raise ValueError(
            f"no Annex 1 Table 5 entry for grade {grade!r}, state {state!r}, size {size_um} um"
        ) from None


def regulatory_action_max(
    kind: TagKind | None, grade: str | None, states: frozenset[str] | None
) -> tuple[float, str] | None:
    """The strictest Annex 1 Table 5 action limit over ``states`` for a particle tag.

    Returns ``(value, description)`` or None when no preset applies (not a particle tag,
    no grade, or only "not predetermined" cells). ``states=None`` (the limits apply
    always) takes both at_rest and in_operation, so the stricter cell wins.
    """
    if kind not in PARTICLE_SIZE_UM or grade is None or grade not in ANNEX1_2022_TABLE5:
        return None
    size = PARTICLE_SIZE_UM[kind]
    candidates = [
        (value, state)
        for state in sorted(states if states is not None else (AT_REST, IN_OPERATION))
        if state in ANNEX1_2022_TABLE5[grade]
        and (value := ANNEX1_2022_TABLE5[grade][state][size]) is not None
    ]
    if not candidates:
        return None
    value, state = min(candidates)
    return float(value), f"Annex 1 (2022) Table 5 grade {grade} {state} >= {size} um: {value}/m3"


class Timing(TypedDict, total=False):
    """Deadband and alarm delays of a tag's limits (the :class:`TagLimits` fields)."""

    deadband: float
    on_delay_s: float
    off_delay_s: float
    delay_justification: str


def default_tag_limits(
    tag: str,
    kind: TagKind,
    *,
    grade: str | None = None,
    state: str | None = None,
    alert_fraction: float = DEFAULT_ALERT_FRACTION,
    dp_min_pa: float = DP_MIN_PA,
    dp_alert_margin_pa: float = DP_ALERT_MARGIN_PA,
    temperature_c: tuple[float, float] = OSD_TEMPERATURE_C,
    rh_pct: tuple[float, float] = OSD_RH_PCT,
    **timing: Unpack[Timing],
) -> TagLimits:
    """Default limits for a tag of ``kind`` in a room of Annex 1 ``grade``.

    - particles: action high = Annex 1 Table 5 for ``grade`` and ``state`` (both
      required; the entry applies only in that state), alert high =
      ``round(alert_fraction * action)``; grades A and B require continuous monitoring
      (Annex 1 asks it for A and recommends a similar system for B).
    - dp: action low = ``dp_min_pa``, alert low = ``dp_min_pa + dp_alert_margin_pa``
      (the minimum itself is still compliant, so comparisons are exclusive).
    - temperature / rh: action = the range, alert = the range shrunk towards its centre
      to ``alert_fraction`` of its half-width.

    ``timing`` (deadband, delays) goes to the limits as given: delays default to zero; a
    delay needs a justification (validation checks it).
    """
    if not 0.0 < alert_fraction <= 1.0:
        raise ValueError(f"alert_fraction must be in (0, 1], got {alert_fraction}")
    base = TagLimits(
        tag,
        kind=kind,
        grade=grade,
        applies_in=None if state is None else frozenset({state}),
        **timing,
    )
    if kind in PARTICLE_SIZE_UM:
        if grade is None or state is None:
            raise ValueError(f"{tag}: particle presets need a grade and a production state")
        action = annex1_action_limit(grade, state, PARTICLE_SIZE_UM[kind])
        if action is None:
            raise ValueError(
                f"{tag}: Annex 1 has no predetermined limit for grade {grade} {state}; "
                "set one from risk assessment and routine data"
            )
        return replace(
            base,
            alert_high=Threshold(float(round(alert_fraction * action))),
            action_high=Threshold(float(action)),
            continuous_monitoring_required=grade in ("A", "B"),
        )
    if kind is TagKind.DP:
        return replace(
            base,
            alert_low=Threshold(dp_min_pa + dp_alert_margin_pa),
            action_low=Threshold(dp_min_pa),
        )
    if kind in (TagKind.TEMPERATURE, TagKind.RH):
        lo, hi = temperature_c if kind is TagKind.TEMPERATURE else rh_pct
        centre, half = (lo + hi) / 2.0, (hi - lo) / 2.0
        return replace(
            base,
            alert_high=Threshold(centre + alert_fraction * half),
            action_high=Threshold(hi),
            alert_low=Threshold(centre - alert_fraction * half),
            action_low=Threshold(lo),
        )
    raise ValueError(f"{tag}: no preset for tag kind {kind.value!r}")
