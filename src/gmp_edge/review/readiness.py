"""Release readiness (pure): blockers and warnings found in a compiled batch review.

The software recommends; a person decides. ``assess`` never releases or rejects
anything: it lists what stands in the way of release (blockers) and what a reviewer
should look at (warnings), and suggests hold while there are blockers.
"""

from __future__ import annotations

from dataclasses import dataclass

from gmp_edge.numfmt import duration, number
from gmp_edge.review.model import BatchReview, Finding, Readiness
from gmp_edge.timefmt import iso

DISCLAIMER = (
    "The software recommends; a person decides: the QA reviewer and the Qualified Person "
    "assess this evidence and sign the release decision."
)


@dataclass(frozen=True, slots=True)
class Policy:
    """Site thresholds (per SOP; defaults are examples)."""

    completeness_blocker_pct: float = 95.0  # critical tags below this block release
    completeness_warning_pct: float = 99.0  # any tag below this is a warning
    cpk_min: float = 1.33  # press CPPs below this are a warning
    open_statuses: frozenset[str] = frozenset({"open", "under_investigation"})


def _pct(x: float) -> str:
    return f"{x:.2f} %"


def assess(review: BatchReview, policy: Policy | None = None) -> Readiness:
    """Blockers, warnings and a suggestion for ``review``."""
    p = policy or Policy()
    blockers: list[Finding] = []
    warnings: list[Finding] = []
    if not review.ended:
        blockers.append(
            Finding(
                "batch_not_ended",
                f"batch {review.batch_id} has not ended",
                (f"batch:{review.batch_id}",),
            )
        )
    for d in review.deviations:
        ref = (f"deviation:{d.id}",)
        if d.status in p.open_statuses:
            blockers.append(
                Finding(
                    "deviation_open",
                    f"deviation {d.id} ({d.title}) is {d.status.replace('_', ' ')}",
                    ref,
                )
            )
        elif d.status != "cancelled" and d.classification is None:
            blockers.append(
                Finding(
                    "deviation_unclassified",
                    f"deviation {d.id} ({d.title}) has no final classification",
                    ref,
                )
            )
    for t in review.tags:
        ref = (f"tag:{t.tag}",)
        c = t.completeness_pct
        if c is None and t.critical:
            # not a blocker: nothing says data is missing; but nobody can say it is complete
            warnings.append(
                Finding(
                    "completeness_unknown",
                    f"{t.tag}: data completeness unknown: the expected sample interval is not "
                    "known (a particle counter's cycle is read from the counter)",
                    ref,
                )
            )
        if c is not None:
            if t.critical and c < p.completeness_blocker_pct:
                blockers.append(
                    Finding(
                        "completeness_low",
                        f"{t.tag}: data completeness {_pct(c)} is below "
                        f"{p.completeness_blocker_pct:g} % on a critical tag",
                        ref,
                    )
                )
            elif c < p.completeness_warning_pct:
                warnings.append(
                    Finding(
                        "completeness_below_target",
                        f"{t.tag}: data completeness {_pct(c)} is below "
                        f"{p.completeness_warning_pct:g} %",
                        ref,
                    )
                )
        loss = [g for g in t.gaps if g.during_production and g.duration_us > 0]
        if t.critical and loss:
            lost_us = sum(g.duration_us for g in loss)
            causes = ", ".join(sorted({g.cause for g in loss}))
            blockers.append(
                Finding(
                    "monitoring_loss",
                    f"{t.tag}: monitoring lost {len(loss)} time(s), {duration(lost_us)} in total "
                    f"({causes}) during the batch",
                    ref,
                )
            )
        for e in t.excursions:
            if e.level == "action" and not any(
                d.status != "cancelled" and d.covers(t.tag, e.alarm_id, e.start_us, e.end_us)
                for d in review.deviations
            ):
                # exceeding an action limit calls for an investigation (Annex 1 glossary):
                # without a deviation about it nothing else in the review would speak of it
                peak = f"{number(e.peak)} {t.unit}".rstrip()
                blockers.append(
                    Finding(
                        "action_excursion_without_deviation",
                        f"{t.tag}: action {e.side} excursion from {_when(e.start_us)} for "
                        f"{duration(e.duration_us)} (peak {peak}) has no deviation",
                        (*ref, f"alarm:{e.alarm_id}"),
                    )
                )
            if e.level == "alert":
                peak = f"{number(e.peak)} {t.unit}".rstrip()
                warnings.append(
                    Finding(
                        "alert_excursion",
                        f"{t.tag}: alert {e.side} excursion from {_when(e.start_us)} for "
                        f"{duration(e.duration_us)} (peak {peak})",
                        (*ref, f"alarm:{e.alarm_id}"),
                    )
                )
        for o in t.oot:
            warnings.append(
                Finding(
                    "oot",
                    f"{t.tag}: out of trend from {_when(o.start_us)} ({o.rule})",
                    (*ref, f"alarm:{o.alarm_id}"),
                )
            )
        cap = t.capability
        if cap is not None:
            idx = cap.cpk if cap.cpk is not None else cap.ppk
            if idx is not None and idx < p.cpk_min:
                warnings.append(
                    Finding(
                        "capability_low",
                        f"{t.tag}: Cpk {idx:.2f} is below {p.cpk_min:g} against the validated "
                        f"range (n = {cap.n})",
                        ref,
                    )
                )
    for eq in review.equipment:
        if eq.flagged:
            blockers.append(
                Finding(
                    "equipment_status", f"equipment {eq.id}: {eq.reason}", (f"equipment:{eq.id}",)
                )
            )
    if review.quarantined:
        blockers.append(
            Finding(
                "quarantined_points",
                f"{review.quarantined} reading(s) of the batch period were refused by a "
                "forwarding destination and sit in quarantine",
                ("quarantine",),
            )
        )
    if not review.audit.intact:
        blockers.append(
            Finding(
                "audit_chain_broken",
                f"the audit trail's hash chain is broken at entry {review.audit.break_seq}: "
                f"{review.audit.break_reason}",
                ("audit",),
            )
        )
    ids = {v.set_id for v in review.limit_sets}
    for set_id in sorted(ids):
        vs = [v for v in review.limit_sets if v.set_id == set_id]
        if len(vs) > 1:
            warnings.append(
                Finding(
                    "limit_set_changed",
                    f"limit set {set_id} changed during the batch: versions "
                    + ", ".join(str(v.version) for v in vs),
                    tuple(f"limit_set:{set_id}@v{v.version}" for v in vs),
                )
            )
    critical = [d.id for d in review.deviations if d.classification == "critical"]
    if critical:
        rec = "reject"
        text = (
            f"Suggestion: reject. Batch {review.batch_id} is linked to critical deviation(s) "
            f"{', '.join(critical)}; {len(blockers)} blocker(s), {len(warnings)} warning(s). "
            + DISCLAIMER
        )
    elif blockers:
        rec = "hold"
        text = (
            f"Suggestion: hold. {len(blockers)} blocker(s) must be resolved before batch "
            f"{review.batch_id} can be released; {len(warnings)} warning(s) to review. "
            + DISCLAIMER
        )
    else:
        rec = "release"
        text = (
            f"Suggestion: release. No blockers found for batch {review.batch_id}; "
            f"{len(warnings)} warning(s) to review. " + DISCLAIMER
        )
    return Readiness(tuple(blockers), tuple(warnings), rec, text)


def _when(us: int) -> str:
    return iso(us)
