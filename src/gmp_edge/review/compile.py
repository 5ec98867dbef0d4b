"""Compile a batch review from records already fetched (pure: no I/O, no clock).

``compile_review(inputs)`` is a function of :class:`ReviewInputs` only, so the same
records always give the same review, and every rule here is tested without a database.
Per-tag work is vectorised with numpy over the raw readings of the batch period.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import numpy as np

from gmp_edge.alarms.model import AlarmEvent
from gmp_edge.alarms.model import Transition as AlarmTransition
from gmp_edge.audit.chain import AuditEntry, Break
from gmp_edge.deviations.batch import Batch
from gmp_edge.deviations.model import Deviation
from gmp_edge.historian.store import Gap
from gmp_edge.limits.model import LimitSet
from gmp_edge.review.model import (
    Acknowledgement,
    AuditRef,
    AuditVerdict,
    BatchReview,
    Capability,
    ConfigVersion,
    DeviationRef,
    EquipmentStatus,
    Excursion,
    GapSpan,
    LimitSetVersion,
    LimitsInForce,
    OotFinding,
    Stats,
    TagReview,
    Trace,
)

#: Limit-set statuses of versions that were in force at some time.
IN_FORCE_STATUSES = frozenset({"approved", "superseded"})
#: Tag kinds that are tablet-press critical process parameters (config and limits spelling).
PRESS_KINDS = frozenset({"press_parameter", "press"})
#: d2 for moving ranges of two: sigma_within = MR-bar / 1.128.
D2 = 1.128
#: Chart trace resolution: about this many windows over the period.
TRACE_POINTS = 600

EMPTY_I = np.zeros(0, dtype=np.int64)
EMPTY_F = np.zeros(0, dtype=np.float64)
EMPTY_Q = np.zeros(0, dtype=np.int8)


@dataclass(frozen=True, slots=True)
class TagInput:
    """One tag's records for the batch period.

    ``ts_us``/``value``/``quality`` are the raw readings in ``[start, period_end)``,
    ordered by time (quality 0 Good, 1 Uncertain, 2 Bad; a reading without a numeric
    value has quality 3 here and counts as neither Good nor usable). ``interval_s`` is
    the expected sample interval (None: unknown, no completeness). ``transitions`` are the
    tag's alarm transitions from the batch start on (acknowledgements may come later).
    """

    tag: str
    room: str
    equipment: str
    unit: str = ""
    kind: str = ""
    interval_s: float | None = None
    ts_us: np.ndarray = field(default_factory=lambda: EMPTY_I)
    value: np.ndarray = field(default_factory=lambda: EMPTY_F)
    quality: np.ndarray = field(default_factory=lambda: EMPTY_Q)
    gaps: Sequence[Gap] = ()
    transitions: Sequence[AlarmTransition] = ()


@dataclass(frozen=True, slots=True)
class EquipmentInfo:
    """Equipment master data (from the plant configuration)."""

    id: str
    kind: str = ""
    room: str = ""
    name: str = ""
    qualified_until: date | None = None
    calibration_due: date | None = None


@dataclass(frozen=True, slots=True)
class ReviewInputs:
    """Everything the review is compiled from, already fetched (see ``gmp_edge.review.gather``)."""

    batch: Batch
    now_us: int
    tags: Sequence[TagInput] = ()
    limit_sets: Sequence[tuple[LimitSet, str]] = ()  # (version, status), any order
    runs: Sequence[tuple[int, int, int | None, str, str]] = ()  # Store.service_runs()
    equipment: Sequence[EquipmentInfo] = ()
    deviations: Sequence[Deviation] = ()
    audit_entries: Sequence[AuditEntry] = ()
    audit_verdict: tuple[int, str, Break | None] = (0, "0" * 64, None)
    quarantined: int = 0
    trace_points: int = TRACE_POINTS
    notes: Sequence[str] = ()
    workers: int = 1  # threads compiling tags (the result does not depend on it)


# ------------------------------------------------------------------------- helpers


def period_end(batch: Batch, now_us: int) -> int:
    """End of the reviewed period: the batch end, or now while it runs."""
    return batch.end_us if batch.end_us is not None else max(now_us, batch.start_us)


def _day_end_us(d: date) -> int:
    """First µs after the UTC day ``d`` (a date "valid until" holds through that day)."""
    dt = datetime.combine(d + timedelta(days=1), time(0), tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000


def limit_versions_in_force(
    sets: Sequence[tuple[LimitSet, str]], start_us: int, end_us: int
) -> list[LimitSetVersion]:
    """Versions in force at some time in ``[start_us, end_us)``, by set id and time.

    A version is in force from its effective time until the next in-force version of the
    same set takes effect; only approved or superseded versions were ever in force.
    """
    by_id: dict[str, list[tuple[LimitSet, str]]] = defaultdict(list)
    for ls, status in sets:
        if status in IN_FORCE_STATUSES:
            by_id[ls.id].append((ls, status))
    out: list[LimitSetVersion] = []
    for set_id in sorted(by_id):
        versions = sorted(by_id[set_id], key=lambda x: (x[0].effective_from_us, x[0].version))
        for i, (ls, status) in enumerate(versions):
            nxt = versions[i + 1][0].effective_from_us if i + 1 < len(versions) else None
            lo = ls.effective_from_us
            if lo >= end_us or (nxt is not None and nxt <= start_us):
                continue
            if nxt is not None and nxt <= lo:
                continue  # replaced at the same instant: never in force
            out.append(
                LimitSetVersion(
                    set_id=set_id,
                    version=ls.version,
                    status=status,
                    effective_from_us=ls.effective_from_us,
                    in_force_from_us=max(lo, start_us),
                    in_force_to_us=None if nxt is None or nxt >= end_us else nxt,
                    approved_by=ls.approved_by,
                    reason=ls.reason,
                )
            )
    return out


def config_versions_in_force(
    runs: Sequence[tuple[int, int, int | None, str, str]], start_us: int, end_us: int
) -> list[ConfigVersion]:
    """Service runs overlapping ``[start_us, end_us)`` (a run not stopped runs on)."""
    out = []
    for run_id, started, stopped, sha, note in runs:
        if started < end_us and (stopped is None or stopped > start_us):
            out.append(ConfigVersion(run_id, sha, started, stopped, note))
    return out


def _gaps(gaps: Sequence[Gap], start_us: int, end_us: int) -> tuple[GapSpan, ...]:
    out = []
    for g in sorted(gaps, key=lambda g: (g.start_us, g.id)):
        g_end = end_us if g.end_us is None else g.end_us
        lo, hi = max(g.start_us, start_us), min(g_end, end_us)
        if hi <= lo and not (g.end_us is None and g.start_us < end_us):
            continue
        out.append(GapSpan(g.start_us, g.end_us, max(0, hi - lo), g.cause, g.message, g.id, True))
    return tuple(out)


def _stats(v: np.ndarray) -> Stats:
    n = int(v.size)
    if n == 0:
        return Stats(0)
    p5, p50, p95 = np.percentile(v, [5, 50, 95])
    return Stats(
        n=n,
        min=float(v.min()),
        max=float(v.max()),
        mean=float(v.mean()),
        std=float(v.std(ddof=1)) if n > 1 else 0.0,
        p5=float(p5),
        p50=float(p50),
        p95=float(p95),
    )


def capability_indices(
    mean: float, sigma: float | None, lsl: float | None, usl: float | None
) -> tuple[float | None, float | None]:
    """(two-sided index, nearer-side index) for ``sigma``: Cp/Cpk or Pp/Ppk.

    The two-sided index needs both limits; either is None when sigma is not positive.
    """
    if sigma is None or sigma <= 0:
        return None, None
    p = (usl - lsl) / (6 * sigma) if lsl is not None and usl is not None else None
    sides = []
    if usl is not None:
        sides.append((usl - mean) / (3 * sigma))
    if lsl is not None:
        sides.append((mean - lsl) / (3 * sigma))
    return p, min(sides)


def capability(v: np.ndarray, lsl: float | None, usl: float | None) -> Capability:
    """Cp/Cpk (sigma from the average moving range) and Pp/Ppk (overall sigma).

    ``v`` are Good values in time order. Two-sided indices need both limits.
    """
    n = int(v.size)
    if n < 2 or (lsl is None and usl is None):
        mean = float(v.mean()) if n else None
        return Capability(lsl, usl, n, mean, None, None, None, None, None, None)
    mean = float(v.mean())
    s_overall = float(v.std(ddof=1))
    s_within = float(np.abs(np.diff(v)).mean()) / D2

    cp, cpk = capability_indices(mean, s_within, lsl, usl)
    pp, ppk = capability_indices(mean, s_overall, lsl, usl)
    return Capability(lsl, usl, n, mean, s_within, s_overall, cp, cpk, pp, ppk)


def _trace(ts: np.ndarray, v: np.ndarray, start_us: int, end_us: int, points: int) -> Trace:
    span = max(end_us - start_us, 1)
    window = max(1_000_000, math.ceil(span / max(points, 1) / 1_000_000) * 1_000_000)
    nb = max(1, math.ceil(span / window))
    edges = start_us + window * np.arange(nb + 1, dtype=np.int64)
    cut = np.searchsorted(ts, edges[:-1], side="left")
    counts = np.diff(np.append(cut, ts.size))
    mn = np.full(nb, np.nan)
    mx = np.full(nb, np.nan)
    mean = np.full(nb, np.nan)
    has = counts > 0
    if v.size:
        idx = np.minimum(cut, v.size - 1)
        mn[has] = np.minimum.reduceat(v, idx)[has]
        mx[has] = np.maximum.reduceat(v, idx)[has]
        mean[has] = np.add.reduceat(v, idx)[has] / counts[has]
    return Trace(
        window,
        tuple(edges[:-1].tolist()),
        tuple(mn.tolist()),
        tuple(mx.tolist()),
        tuple(mean.tolist()),
    )


def _kind_of(alarm_id: str) -> str:
    return alarm_id.rpartition("#")[2]


def _acks(trs: Sequence[AlarmTransition], lo: int, hi: int | None) -> tuple[Acknowledgement, ...]:
    return tuple(
        Acknowledgement(t.actor, t.at_us, str(t.detail.get("comment", t.reason)))
        for t in trs
        if t.event is AlarmEvent.ACKNOWLEDGE and t.at_us >= lo and (hi is None or t.at_us < hi)
    )


def _episodes(
    trs: Sequence[AlarmTransition], start_us: int, end_us: int
) -> list[tuple[int, int | None, AlarmTransition | None, tuple[Acknowledgement, ...]]]:
    """(start, end, activating transition, acks) of each active period of one alarm.

    An alarm already active at the period start (cleared without an activation seen)
    starts at the period start. Acknowledgements count until the next activation, even
    after the period end.
    """
    trs = sorted(trs, key=lambda t: t.at_us)
    acts = [t for t in trs if t.event is AlarmEvent.CONDITION_ACTIVE and t.at_us < end_us]
    clears = [t for t in trs if t.event is AlarmEvent.CONDITION_CLEARED]
    out: list[tuple[int, int | None, AlarmTransition | None, tuple[Acknowledgement, ...]]] = []
    first_act = acts[0].at_us if acts else None
    pre_clear = next(
        (c for c in clears if first_act is None or c.at_us <= first_act), None
    )  # cleared before any activation seen: it was active when the period began
    if pre_clear is not None and pre_clear.at_us > start_us:
        out.append((start_us, pre_clear.at_us, None, _acks(trs, start_us, first_act)))
    for i, a in enumerate(acts):
        nxt = acts[i + 1].at_us if i + 1 < len(acts) else None
        end = next((c.at_us for c in clears if c.at_us >= a.at_us), None)
        if end is not None and end >= end_us:
            end = None  # still active at the end of the period
        out.append((a.at_us, end, a, _acks(trs, a.at_us, nxt)))
    return out


def _peak(ts: np.ndarray, v: np.ndarray, lo: int, hi: int, side: str) -> float | None:
    a, b = np.searchsorted(ts, [lo, hi], side="left")
    if b <= a:
        return None
    seg = v[a:b]
    return float(seg.max() if side == "high" else seg.min())


def _tag_limits(
    ti: TagInput, versions: Sequence[LimitSetVersion], sets: dict[tuple[str, int], LimitSet]
) -> tuple[LimitsInForce, ...]:
    out = []
    for lv in versions:
        ls = sets[(lv.set_id, lv.version)]
        for e in ls.entries_for(ti.tag):

            def val(th: object) -> float | None:
                return None if th is None else float(th.value)  # type: ignore[attr-defined]

            out.append(
                LimitsInForce(
                    set_id=lv.set_id,
                    version=lv.version,
                    from_us=lv.in_force_from_us,
                    to_us=lv.in_force_to_us,
                    alert_high=val(e.alert_high),
                    action_high=val(e.action_high),
                    alert_low=val(e.alert_low),
                    action_low=val(e.action_low),
                    applies_in=None if e.applies_in is None else tuple(sorted(e.applies_in)),
                    continuous_monitoring_required=e.continuous_monitoring_required,
                )
            )
    return tuple(out)


def compile_tag(
    ti: TagInput,
    start_us: int,
    end_us: int,
    versions: Sequence[LimitSetVersion],
    sets: dict[tuple[str, int], LimitSet],
    trace_points: int = TRACE_POINTS,
) -> TagReview:
    """The review of one tag over ``[start_us, end_us)``."""
    ts = np.asarray(ti.ts_us, dtype=np.int64)
    val = np.asarray(ti.value, dtype=np.float64)
    q = np.asarray(ti.quality)
    inside = (ts >= start_us) & (ts < end_us)
    if not inside.all():
        ts, val, q = ts[inside], val[inside], q[inside]
    good_mask = (q == 0) & np.isfinite(val)
    good = int(good_mask.sum())
    uncertain = int((q == 1).sum())
    bad = int(q.size - good - uncertain)
    gts, gv = ts[good_mask], val[good_mask]
    expected = None
    completeness = None
    if ti.interval_s is not None and ti.interval_s > 0:
        expected = max(1, int((end_us - start_us) // round(ti.interval_s * 1e6)))
        completeness = min(100.0, 100.0 * good / expected)
    limits = _tag_limits(ti, versions, sets)
    continuous = any(lim.continuous_monitoring_required for lim in limits)
    has_limits = any(
        x is not None
        for lim in limits
        for x in (lim.alert_high, lim.action_high, lim.alert_low, lim.action_low)
    )
    by_alarm: dict[str, list[AlarmTransition]] = defaultdict(list)
    for t in ti.transitions:
        by_alarm[t.alarm_id].append(t)
    excursions: list[Excursion] = []
    oot: list[OotFinding] = []
    for alarm_id in sorted(by_alarm):
        kind = _kind_of(alarm_id)
        trs = by_alarm[alarm_id]
        if kind in ("alert_high", "alert_low", "action_high", "action_low"):
            level, side = kind.split("_")
            for lo, hi, act, acks in _episodes(trs, start_us, end_us):
                stop = end_us if hi is None else hi
                d = act.detail if act is not None else {}
                excursions.append(
                    Excursion(
                        alarm_id=alarm_id,
                        level=level,
                        side=side,
                        start_us=lo,
                        end_us=hi,
                        duration_us=max(0, min(stop, end_us) - max(lo, start_us)),
                        peak=_peak(gts, gv, lo, stop, side),
                        limit=d.get("limit_at_trip"),
                        limit_set_id=d.get("limit_set_id"),
                        limit_set_version=d.get("limit_set_version"),
                        acknowledgements=acks,
                    )
                )
        elif kind == "oot":
            for lo, hi, act, acks in _episodes(trs, start_us, end_us):
                oot.append(
                    OotFinding(
                        alarm_id=alarm_id,
                        start_us=lo,
                        end_us=hi,
                        value=None if act is None else act.detail.get("value_at_trip"),
                        rule="" if act is None else act.reason,
                        acknowledgements=acks,
                    )
                )
    excursions.sort(key=lambda e: (e.start_us, e.alarm_id))
    cap = None
    if ti.kind in PRESS_KINDS and limits:
        last = limits[-1]  # the version in force at the end of the period
        if last.action_low is not None or last.action_high is not None:
            cap = capability(gv, last.action_low, last.action_high)
    return TagReview(
        tag=ti.tag,
        room=ti.room,
        equipment=ti.equipment,
        unit=ti.unit,
        kind=ti.kind,
        critical=continuous or has_limits,
        continuous_monitoring=continuous,
        interval_s=ti.interval_s,
        expected=expected,
        good=good,
        uncertain=uncertain,
        bad=bad,
        completeness_pct=completeness,
        gaps=_gaps(ti.gaps, start_us, end_us),
        stats=_stats(gv),
        limits=limits,
        excursions=tuple(excursions),
        oot=tuple(oot),
        capability=cap,
        trace=_trace(gts, gv, start_us, end_us, trace_points),
    )


def equipment_status(eq: EquipmentInfo, start_us: int, end_us: int) -> EquipmentStatus:
    """Qualification and calibration over the batch (dates hold through their UTC day)."""

    def status(d: date | None, ok: str, late: str) -> tuple[str, bool]:
        if d is None:
            return "not_recorded", False
        until = _day_end_us(d)
        if until <= start_us:
            return late, True
        if until < end_us:
            return f"{late}_during_batch", True
        return ok, False

    qs, qf = status(eq.qualified_until, "qualified", "expired")
    cs, cf = status(eq.calibration_due, "in_date", "overdue")
    reasons = []
    if qf:
        reasons.append(f"qualification valid until {eq.qualified_until} ({qs.replace('_', ' ')})")
    if cf:
        reasons.append(f"calibration due {eq.calibration_due} ({cs.replace('_', ' ')})")
    return EquipmentStatus(
        id=eq.id,
        kind=eq.kind,
        room=eq.room,
        name=eq.name,
        qualified_until=None if eq.qualified_until is None else eq.qualified_until.isoformat(),
        calibration_due=None if eq.calibration_due is None else eq.calibration_due.isoformat(),
        qualification_status=qs,
        calibration_status=cs,
        flagged=qf or cf,
        reason="; ".join(reasons),
    )


def compile_review(inputs: ReviewInputs) -> BatchReview:
    """The batch review of ``inputs`` (with its readiness assessment, default policy)."""
    from gmp_edge.review.readiness import assess  # readiness imports the model only

    b = inputs.batch
    start, end = b.start_us, period_end(b, inputs.now_us)
    versions = limit_versions_in_force(inputs.limit_sets, start, end)
    sets = {(ls.id, ls.version): ls for ls, _ in inputs.limit_sets}
    ordered = sorted(inputs.tags, key=lambda t: (t.room, t.tag))

    def one(ti: TagInput) -> TagReview:
        return compile_tag(ti, start, end, versions, sets, inputs.trace_points)

    if inputs.workers > 1 and len(ordered) > 1:
        # tags are independent and numpy lets go of the GIL in the heavy parts
        # (partition, reductions): same result, order kept by map
        with ThreadPoolExecutor(inputs.workers) as pool:
            tags = tuple(pool.map(one, ordered))
    else:
        tags = tuple(one(ti) for ti in ordered)
    n, head, brk = inputs.audit_verdict
    review = BatchReview(
        batch_id=b.id,
        product=b.product,
        rooms=b.rooms,
        equipment_ids=b.equipment,
        start_us=start,
        end_us=b.end_us,
        period_end_us=end,
        compiled_us=inputs.now_us,
        config_versions=tuple(config_versions_in_force(inputs.runs, start, end)),
        limit_sets=tuple(versions),
        tags=tags,
        equipment=tuple(
            equipment_status(e, start, end) for e in sorted(inputs.equipment, key=lambda e: e.id)
        ),
        deviations=tuple(
            DeviationRef(
                id=d.id,
                title=d.title,
                status=d.status.value,
                classification=None
                if d.final_classification is None
                else d.final_classification.value,
                proposed_classification=d.proposed_classification.value,
                discovered_us=d.discovered_us,
                tag=None if d.evidence is None else d.evidence.tag,
                alarm_ids=() if d.evidence is None else d.evidence.alarm_ids,
                excursion_start_us=None if d.evidence is None else d.evidence.start_us,
                excursion_end_us=None if d.evidence is None else d.evidence.end_us,
            )
            for d in sorted(inputs.deviations, key=lambda d: (d.discovered_us, d.id))
        ),
        quarantined=inputs.quarantined,
        audit=AuditVerdict(
            intact=brk is None,
            entries=n,
            head=head,
            break_seq=None if brk is None else brk.seq,
            break_reason=None if brk is None else brk.reason,
        ),
        audit_entries=tuple(
            AuditRef(
                e.seq, e.ts_us, e.actor, e.action, e.record_type, e.record_id, e.reason, e.hash
            )
            for e in sorted(inputs.audit_entries, key=lambda e: e.seq)
        ),
        notes=tuple(inputs.notes),
    )
    from dataclasses import replace

    return replace(review, readiness=assess(review))
