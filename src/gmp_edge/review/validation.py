"""Process validation summary and equipment qualification view (pure: no I/O, no clock).

Continued process verification of the tablet press's critical process parameters (CPPs)
across batches. ``summarise(inputs)`` takes the ended batches of a product (or of all
products) in a period, each with its press CPP readings as the batch review reads them
(raw arrays, Good values counted) and the tags' alarm transitions, and compiles per CPP tag:

* per batch: Good n, mean, std, min, max, Cp/Cpk/Pp/Ppk against the validated range
  (action limits of the limit-set version in force at the batch end), excursions (from
  alarm transitions) and the deviations naming the batch and the tag. Every batch goes
  through ``review.compile.compile_tag``, so the figures are the ones its batch review
  shows.
* across batches: pooled capability against the range in force at the end of the latest
  batch (grand mean; within sigma from the moving ranges inside each batch, never across
  a batch boundary; overall sigma of all Good values); how many batches have Cpk below
  the target and below the minimum; the trend of the batch means (least-squares slope per
  batch, the last rising or falling run, batches until the fitted line reaches a limit);
  and a verdict with its reasons.

``equipment_overview`` tells, for each piece of equipment, its qualification and
calibration status now (days remaining) and the batches that used it while out of
either, with ``review.compile.equipment_status`` (the batch review's own rule).

The software summarises the stored record; a person concludes whether the process
remains in its validated state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np

from gmp_edge.deviations.batch import Batch
from gmp_edge.deviations.model import Deviation
from gmp_edge.limits.model import LimitSet
from gmp_edge.review.compile import (
    D2,
    PRESS_KINDS,
    EquipmentInfo,
    TagInput,
    capability_indices,
    compile_tag,
    equipment_status,
    limit_versions_in_force,
    period_end,
)
from gmp_edge.review.model import Capability, Record, stamped
from gmp_edge.timefmt import utc_datetime

CAPABLE = "capable"
MARGINAL = "marginal"
NOT_CAPABLE = "not capable"
INSUFFICIENT = "insufficient data"
VERDICTS = (CAPABLE, MARGINAL, NOT_CAPABLE, INSUFFICIENT)
DISCLAIMER = (
    "The software summarises the stored record; a person (QA, validation) concludes "
    "whether the process remains in its validated state."
)


def _fmt(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


@dataclass(frozen=True, slots=True)
class Policy(Record):
    """The thresholds a verdict uses (site SOP; these defaults are common practice).

    ``cpk_target``: a batch or the pooled process below it is *marginal* (1.33: four
    sigma to the nearer limit). ``cpk_minimum``: below it *not capable* (1.0: three sigma).
    ``min_batches``: batches with a capability index needed before the summary calls a
    CPP capable or marginal (3, the customary number of PPQ batches); a problem is
    reported whatever the number. ``trend_run``: that many batch means in a row each
    higher (or lower) than the one before is a drift (6: Nelson rule 3).
    """

    cpk_target: float = 1.33
    cpk_minimum: float = 1.0
    min_batches: int = 3
    trend_run: int = 6

    def __post_init__(self) -> None:
        if not 0 < self.cpk_minimum <= self.cpk_target:
            raise ValueError(
                f"need 0 < cpk_minimum ({self.cpk_minimum}) <= cpk_target ({self.cpk_target})"
            )
        if self.min_batches < 1:
            raise ValueError(f"min_batches must be at least 1, not {self.min_batches}")
        if self.trend_run < 2:
            raise ValueError(f"trend_run must be at least 2, not {self.trend_run}")


@dataclass(frozen=True, slots=True)
class BatchData:
    """One batch with its press CPP readings and the deviations naming it.

    ``tags`` are ``TagInput`` of the batch's press CPP tags: raw readings of the batch
    period in time order and the tag's alarm transitions (any from the batch start on;
    earlier ones are ignored). Tags of other kinds are ignored.
    """

    batch: Batch
    tags: Sequence[TagInput] = ()
    deviations: Sequence[Deviation] = ()


@dataclass(frozen=True, slots=True)
class ValidationInputs:
    """Everything the summary is compiled from, already fetched (``validation_gather``).

    ``product``/``start_us``/``end_us`` describe what was asked for (None: any product,
    open period); batches of another product are left out.
    """

    now_us: int
    batches: Sequence[BatchData] = ()
    limit_sets: Sequence[tuple[LimitSet, str]] = ()  # (version, status), any order
    product: str | None = None
    start_us: int | None = None
    end_us: int | None = None
    policy: Policy = field(default_factory=Policy)
    notes: Sequence[str] = ()


# ----------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class DeviationLink(Record):
    """A deviation naming the batch whose evidence is the CPP tag."""

    id: str
    title: str
    status: str
    classification: str  # final, else the proposed one


@dataclass(frozen=True, slots=True)
class BatchFigures(Record):
    """One CPP in one batch: the batch review's statistics and capability."""

    batch_id: str
    product: str
    start_us: int
    end_us: int
    n: int  # Good values in the batch period
    completeness_pct: float | None
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    capability: Capability | None  # None: no validated range in force at the batch end
    limit_set: str | None  # "<set id> v<version>" of the range used
    excursions: int
    action_excursions: int
    deviations: tuple[DeviationLink, ...]
    below_target: bool
    below_minimum: bool
    note: str = ""

    @property
    def cpk(self) -> float | None:
        """The batch's Cpk (None: no range, fewer than 2 Good values, or no spread)."""
        return None if self.capability is None else self.capability.cpk


@dataclass(frozen=True, slots=True)
class Trend(Record):
    """How the batch means move, batch after batch (in batch start order).

    ``slope_per_batch``: least-squares slope of the batch means against their sequence
    number (needs 3 batches). ``run``: length of the last run of batch means each higher
    (``direction`` rising) or lower (falling) than the one before; an equal mean breaks a
    run. ``drift``: run >= the policy's ``trend_run``. ``batches_to_limit``: batches until
    the fitted line reaches the limit it heads for (0: already beyond it).
    """

    points: int
    slope_per_batch: float | None
    slope_pct_of_range: float | None  # per batch, of (USL - LSL)
    run: int
    direction: str | None  # rising | falling
    drift: bool
    batches_to_limit: float | None
    limit_side: str | None  # usl | lsl: the limit the line heads for
    text: str


@dataclass(frozen=True, slots=True)
class CppSummary(Record):
    """One press CPP tag across the batches that ran on its press."""

    tag: str
    room: str
    equipment: str
    signal: str
    unit: str
    lsl: float | None  # validated range in force at the end of the latest batch
    usl: float | None
    limit_set: str | None
    batches: tuple[BatchFigures, ...]
    overall: Capability
    batches_with_index: int
    below_target: int
    below_minimum: int
    trend: Trend
    verdict: str  # one of VERDICTS
    text: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BatchRef(Record):
    """A batch the summary covers."""

    id: str
    product: str
    start_us: int
    end_us: int
    equipment: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Excluded(Record):
    """A batch of the period the summary leaves out, and why."""

    batch_id: str
    product: str
    reason: str


@dataclass(frozen=True, slots=True)
class ProcessValidationSummary:
    """The process validation summary of a product (or all products) over a period."""

    product: str | None
    start_us: int | None
    end_us: int | None
    compiled_us: int
    policy: Policy
    batches: tuple[BatchRef, ...]
    excluded: tuple[Excluded, ...]
    cpps: tuple[CppSummary, ...]
    text: str
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "product": self.product,
            "period": {**stamped("start", self.start_us), **stamped("end", self.end_us)},
            **stamped("compiled", self.compiled_us),
            "policy": self.policy.to_dict(),
            "batches": [b.to_dict() for b in self.batches],
            "excluded": [e.to_dict() for e in self.excluded],
            "cpps": [c.to_dict() for c in self.cpps],
            "text": self.text,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------- statistics


def pooled_capability(
    segments: Sequence[np.ndarray], lsl: float | None, usl: float | None
) -> Capability:
    """Capability of several batches together against one range.

    ``segments`` are each batch's Good values in time order. Mean and overall sigma
    (Pp/Ppk) are those of all values pooled, so differences between batches count;
    the within sigma (Cp/Cpk) is the average moving range / 1.128 over the moving ranges
    inside each batch (the jump from one batch's last value to the next batch's first is
    not a moving range). One segment gives exactly ``review.compile.capability``.
    """
    segs = [np.asarray(s, dtype=np.float64) for s in segments]
    allv = np.concatenate(segs) if segs else np.zeros(0)
    n = int(allv.size)
    mean = float(allv.mean()) if n else None
    if n < 2 or mean is None or (lsl is None and usl is None):
        return Capability(lsl, usl, n, mean, None, None, None, None, None, None)
    ranges = [np.abs(np.diff(s)) for s in segs if s.size >= 2]
    s_within = float(np.concatenate(ranges).mean()) / D2 if ranges else None
    s_overall = float(allv.std(ddof=1))
    cp, cpk = capability_indices(mean, s_within, lsl, usl)
    pp, ppk = capability_indices(mean, s_overall, lsl, usl)
    return Capability(lsl, usl, n, mean, s_within, s_overall, cp, cpk, pp, ppk)


def _last_run(means: Sequence[float]) -> tuple[int, str | None]:
    """Length and direction of the last strictly rising or falling run of ``means``."""
    if not means:
        return 0, None
    if len(means) < 2 or means[-1] == means[-2]:
        return 1, None
    up = means[-1] > means[-2]
    run = 2
    for i in range(len(means) - 2, 0, -1):
        if (means[i] > means[i - 1]) if up else (means[i] < means[i - 1]):
            run += 1
        else:
            break
    return run, "rising" if up else "falling"


def trend(
    means: Sequence[float],
    lsl: float | None,
    usl: float | None,
    trend_run: int = 6,
    unit: str = "",
) -> Trend:
    """The trend of batch means (in batch order) against the validated range."""
    k = len(means)
    run, direction = _last_run(means)
    drift = direction is not None and run >= trend_run
    slope = pct = to_limit = None
    side: str | None = None
    if k >= 3:
        x = np.arange(k, dtype=np.float64)
        y = np.asarray(means, dtype=np.float64)
        dx = x - x.mean()
        slope = float((dx * (y - y.mean())).sum() / (dx * dx).sum())
        if abs(slope) <= 1e-12 * max(1.0, float(np.abs(y).max())):
            slope = 0.0  # rounding noise of equal means, not a direction
        if lsl is not None and usl is not None and usl > lsl:
            pct = 100.0 * slope / (usl - lsl)
        fitted_last = float(y.mean() + slope * (x[-1] - x.mean()))
        limit = usl if slope > 0 else lsl if slope < 0 else None
        if limit is not None:
            side = "usl" if slope > 0 else "lsl"
            to_limit = max(0.0, (limit - fitted_last) / slope)
    u = f" {unit}" if unit else ""
    if k < 3:
        text = f"Trend: {k} batch mean(s); a slope needs at least 3."
    else:
        assert slope is not None
        text = f"Batch means change by {slope:+.3g}{u} per batch"
        if pct is not None:
            text += f" ({pct:+.1f} % of the validated range)"
        text += "; "
        if drift:
            text += f"the last {run} batch means each {'rose' if direction == 'rising' else 'fell'}"
            text += f" (a run of {trend_run} or more is a drift)"
        else:
            text += f"no run of {trend_run} rising or falling batch means (last run: {run})"
        if to_limit is not None and side is not None:
            text += (
                f"; at this slope the fitted mean reaches the {side.upper()} in "
                f"{to_limit:.1f} batches"
            )
        text += "."
    return Trend(k, slope, pct, run, direction, drift, to_limit, side, text)


# --------------------------------------------------------------------- compilation


def _good_values(ti: TagInput, start_us: int, end_us: int) -> np.ndarray:
    """Good, finite values in ``[start_us, end_us)`` (the batch review's selection)."""
    ts = np.asarray(ti.ts_us, dtype=np.int64)
    v = np.asarray(ti.value, dtype=np.float64)
    q = np.asarray(ti.quality)
    keep = (ts >= start_us) & (ts < end_us) & (q == 0) & np.isfinite(v)
    return v[keep]


def _batch_figures(
    bd: BatchData,
    ti: TagInput,
    limit_sets: Sequence[tuple[LimitSet, str]],
    sets: dict[tuple[str, int], LimitSet],
    pol: Policy,
) -> tuple[BatchFigures, np.ndarray]:
    b = bd.batch
    start, end = b.start_us, period_end(b, b.start_us)
    versions = limit_versions_in_force(limit_sets, start, end)
    # the review reads transitions from the batch start on; earlier ones belong elsewhere
    ti = replace(ti, transitions=tuple(t for t in ti.transitions if t.at_us >= start))
    tr = compile_tag(ti, start, end, versions, sets, trace_points=1)
    cap = tr.capability
    limit_set = None
    if cap is not None:
        last = tr.limits[-1]  # the one compile_tag took the range from
        limit_set = f"{last.set_id} v{last.version}"
    cpk = None if cap is None else cap.cpk
    if tr.stats.n == 0:
        note = "no Good data in the batch period"
    elif cap is None:
        note = "no validated range (action limits) in force at the batch end"
    elif cpk is None:
        note = "one Good value only" if tr.stats.n < 2 else "no spread in the Good values"
    else:
        note = ""
    devs = tuple(
        DeviationLink(
            d.id,
            d.title,
            d.status.value,
            (d.final_classification or d.proposed_classification).value,
        )
        for d in sorted(bd.deviations, key=lambda d: (d.discovered_us, d.id))
        if d.evidence is not None and d.evidence.tag == ti.tag
    )
    fig = BatchFigures(
        batch_id=b.id,
        product=b.product,
        start_us=start,
        end_us=end,
        n=tr.stats.n,
        completeness_pct=tr.completeness_pct,
        mean=tr.stats.mean,
        std=tr.stats.std,
        min=tr.stats.min,
        max=tr.stats.max,
        capability=cap,
        limit_set=limit_set,
        excursions=len(tr.excursions),
        action_excursions=sum(1 for e in tr.excursions if e.level == "action"),
        deviations=devs,
        below_target=cpk is not None and cpk < pol.cpk_target,
        below_minimum=cpk is not None and cpk < pol.cpk_minimum,
        note=note,
    )
    return fig, _good_values(ti, start, end)


def _listed(figs: Sequence[BatchFigures]) -> str:
    return ", ".join(f"{f.batch_id} {_fmt(f.cpk)}" for f in figs)


def _verdict(figs: Sequence[BatchFigures], overall: Capability, pol: Policy) -> tuple[str, str]:
    """(verdict, its reasons as a sentence)."""
    if overall.lsl is None and overall.usl is None:
        return INSUFFICIENT, (
            "Insufficient data: no validated range (action limits) was in force for this "
            "CPP at the end of any batch, so there is no capability to judge."
        )
    with_index = [f for f in figs if f.cpk is not None]
    k, ppk = len(with_index), overall.ppk
    lows = [f for f in with_index if f.below_minimum]
    if lows or (ppk is not None and ppk < pol.cpk_minimum):
        why = []
        if lows:
            why.append(
                f"Cpk below {pol.cpk_minimum:.2f} in {len(lows)} of {k} batches ({_listed(lows)})"
            )
        if ppk is not None and ppk < pol.cpk_minimum:
            why.append(f"pooled Ppk {ppk:.2f} below {pol.cpk_minimum:.2f}")
        return NOT_CAPABLE, "Not capable: " + "; ".join(why) + "."
    if k < pol.min_batches or ppk is None:
        why = []
        if k < pol.min_batches:
            why.append(f"{k} batch(es) with a capability index, at least {pol.min_batches} needed")
        if ppk is None:
            why.append("pooled Ppk undefined (fewer than 2 Good values or no spread)")
        return INSUFFICIENT, "Insufficient data: " + "; ".join(why) + "."
    margin = [f for f in with_index if f.below_target]
    if margin or ppk < pol.cpk_target:
        why = []
        if margin:
            why.append(
                f"Cpk below {pol.cpk_target:.2f} in {len(margin)} of {k} batches "
                f"({_listed(margin)})"
            )
        if ppk < pol.cpk_target:
            why.append(f"pooled Ppk {ppk:.2f} below {pol.cpk_target:.2f}")
        return MARGINAL, "Marginal: " + "; ".join(why) + "."
    worst = min(f.cpk for f in with_index if f.cpk is not None)
    return CAPABLE, (
        f"Capable: all {k} batches have Cpk of at least {pol.cpk_target:.2f} (lowest "
        f"{worst:.2f}) and the pooled Ppk is {ppk:.2f}."
    )


def _cpp(
    tag: str,
    rows: Sequence[tuple[BatchData, TagInput]],
    limit_sets: Sequence[tuple[LimitSet, str]],
    sets: dict[tuple[str, int], LimitSet],
    pol: Policy,
) -> CppSummary:
    figs: list[BatchFigures] = []
    goods: list[np.ndarray] = []
    for bd, ti in rows:
        fig, good = _batch_figures(bd, ti, limit_sets, sets, pol)
        figs.append(fig)
        goods.append(good)
    ranged = [f for f in figs if f.capability is not None]
    lsl = usl = None
    limit_set = None
    notes: list[str] = []
    if ranged:
        latest = ranged[-1]  # rows are in batch start order
        assert latest.capability is not None
        lsl, usl, limit_set = latest.capability.lsl, latest.capability.usl, latest.limit_set
        other = [
            f"{f.batch_id} ({_fmt(f.capability.lsl)} to {_fmt(f.capability.usl)}, {f.limit_set})"
            for f in ranged
            if f.capability is not None and (f.capability.lsl, f.capability.usl) != (lsl, usl)
        ]
        if other:
            notes.append(
                "the validated range changed: batch figures use the range in force at each "
                f"batch's end, the pooled figures the latest ({_fmt(lsl)} to {_fmt(usl)}, "
                f"{limit_set}); judged against another range: {', '.join(other)}"
            )
    unranged = [f.batch_id for f in figs if f.capability is None]
    if ranged and unranged:
        notes.append(f"no validated range at the end of: {', '.join(unranged)}")
    overall = pooled_capability(goods, lsl, usl)
    ti0 = rows[-1][1]
    means = [f.mean for f in figs if f.n > 0 and f.mean is not None]
    tr = trend(means, lsl, usl, pol.trend_run, ti0.unit)
    verdict, why = _verdict(figs, overall, pol)
    if tr.drift:
        why += f" Batch means drift ({tr.direction}): look at the trend."
    text = f"{why} {tr.text} {DISCLAIMER}"
    seg = tag.split("/")
    return CppSummary(
        tag=tag,
        room=ti0.room,
        equipment=ti0.equipment,
        signal=seg[-1],
        unit=ti0.unit,
        lsl=lsl,
        usl=usl,
        limit_set=limit_set,
        batches=tuple(figs),
        overall=overall,
        batches_with_index=sum(1 for f in figs if f.cpk is not None),
        below_target=sum(1 for f in figs if f.below_target),
        below_minimum=sum(1 for f in figs if f.below_minimum),
        trend=tr,
        verdict=verdict,
        text=text,
        notes=tuple(notes),
    )


def summarise(inputs: ValidationInputs) -> ProcessValidationSummary:
    """The process validation summary of ``inputs`` (pure; same inputs, same summary).

    Only ended batches count (a running batch's record is not complete); a batch without
    press CPP readings is listed as excluded with the reason. CPPs with a validated range
    come first, then the others, each by tag.
    """
    pol = inputs.policy
    sets = {(ls.id, ls.version): ls for ls, _ in inputs.limit_sets}
    included: list[BatchData] = []
    excluded: list[Excluded] = []
    for bd in sorted(inputs.batches, key=lambda d: (d.batch.start_us, d.batch.id)):
        b = bd.batch
        if inputs.product is not None and b.product != inputs.product:
            continue
        if b.end_us is None:
            excluded.append(Excluded(b.id, b.product, "still running: only ended batches count"))
        elif not any(t.kind in PRESS_KINDS for t in bd.tags):
            excluded.append(Excluded(b.id, b.product, "no press CPP tags on its equipment"))
        else:
            included.append(bd)
    rows: dict[str, list[tuple[BatchData, TagInput]]] = defaultdict(list)
    for bd in included:
        for ti in bd.tags:
            if ti.kind in PRESS_KINDS:
                rows[ti.tag].append((bd, ti))
    cpps = tuple(
        sorted(
            (_cpp(tag, rows[tag], inputs.limit_sets, sets, pol) for tag in rows),
            key=lambda c: (c.lsl is None and c.usl is None, c.tag),  # validated ones first
        )
    )
    counts = {v: sum(1 for c in cpps if c.verdict == v) for v in VERDICTS}
    what = inputs.product or "all products"
    if not included:
        text = f"No ended batch of {what} with press CPP readings in the period. {DISCLAIMER}"
    else:
        shown = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        text = f"{len(included)} batch(es) of {what}, {len(cpps)} CPP(s): {shown}. {DISCLAIMER}"
    return ProcessValidationSummary(
        product=inputs.product,
        start_us=inputs.start_us,
        end_us=inputs.end_us,
        compiled_us=inputs.now_us,
        policy=pol,
        batches=tuple(
            BatchRef(
                bd.batch.id,
                bd.batch.product,
                bd.batch.start_us,
                period_end(bd.batch, bd.batch.start_us),
                bd.batch.equipment,
            )
            for bd in included
        ),
        excluded=tuple(excluded),
        cpps=cpps,
        text=text,
        notes=tuple(inputs.notes),
    )


# ------------------------------------------------------------- equipment qualification


@dataclass(frozen=True, slots=True)
class OutOfStatusUse(Record):
    """A batch that used equipment while its qualification or calibration had lapsed."""

    batch_id: str
    product: str
    start_us: int
    end_us: int | None  # None: still running
    qualification_status: str  # expired | expired_during_batch | qualified | not_recorded
    calibration_status: str  # overdue | overdue_during_batch | in_date | not_recorded
    reason: str


@dataclass(frozen=True, slots=True)
class EquipmentOverview(Record):
    """One piece of equipment: qualification and calibration now, and lapsed uses."""

    id: str
    kind: str
    room: str
    name: str
    qualified_until: str | None  # ISO date (valid through that UTC day)
    calibration_due: str | None
    qualification_status: str  # qualified | expired | not_recorded (now)
    calibration_status: str  # in_date | overdue | not_recorded (now)
    qualification_days_remaining: int | None  # negative: days since it lapsed
    calibration_days_remaining: int | None
    batches_used: int
    out_of_status: tuple[OutOfStatusUse, ...]
    text: str


def _days(d: date | None, today: date) -> int | None:
    return None if d is None else (d - today).days


def _phrase(what: str, d: date | None, days: int | None, ok_word: str, late_word: str) -> str:
    if d is None or days is None:
        return f"{what} not recorded"
    if days >= 0:
        return f"{what} {ok_word} {d.isoformat()} ({days} day(s) left)"
    return f"{what} {late_word} {d.isoformat()} ({-days} day(s) ago)"


def equipment_overview(
    equipment: Sequence[EquipmentInfo],
    usage: Sequence[tuple[Batch, Collection[str]]],
    now_us: int,
) -> tuple[EquipmentOverview, ...]:
    """Each piece of equipment's status at ``now_us`` and the batches that used it lapsed.

    ``usage`` pairs each batch with the equipment it used (as the batch review counts it:
    the batch's equipment and the equipment of the tags in its scope). Dates hold through
    their UTC day; a running batch is judged up to ``now_us``.
    """
    today = utc_datetime(now_us).date()
    out = []
    for eq in sorted(equipment, key=lambda e: e.id):
        now = equipment_status(eq, now_us, now_us)
        used = sorted((b for b, ids in usage if eq.id in ids), key=lambda b: (b.start_us, b.id))
        lapsed = []
        for b in used:
            st = equipment_status(eq, b.start_us, period_end(b, now_us))
            if st.flagged:
                lapsed.append(
                    OutOfStatusUse(
                        b.id,
                        b.product,
                        b.start_us,
                        b.end_us,
                        st.qualification_status,
                        st.calibration_status,
                        st.reason,
                    )
                )
        qd, cd = _days(eq.qualified_until, today), _days(eq.calibration_due, today)
        text = (
            f"{_phrase('qualification', eq.qualified_until, qd, 'valid until', 'expired after')}; "
            f"{_phrase('calibration', eq.calibration_due, cd, 'due', 'overdue since')}"
        )
        if lapsed:
            text += f"; used by {len(lapsed)} batch(es) while out of qualification/calibration"
        out.append(
            EquipmentOverview(
                id=eq.id,
                kind=eq.kind,
                room=eq.room,
                name=eq.name,
                qualified_until=now.qualified_until,
                calibration_due=now.calibration_due,
                qualification_status=now.qualification_status,
                calibration_status=now.calibration_status,
                qualification_days_remaining=qd,
                calibration_days_remaining=cd,
                batches_used=len(used),
                out_of_status=tuple(lapsed),
                text=text,
            )
        )
    return tuple(out)
