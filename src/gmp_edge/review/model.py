"""Batch review types: frozen values with ``to_dict()`` (JSON-able, µs and ISO UTC times).

A :class:`BatchReview` answers "what happened during batch X?": per tag the completeness,
gaps, statistics, limits in force, excursions with their acknowledgements, out-of-trend
findings and (press CPPs) capability; the equipment status; the deviations linked to the
batch; the configuration and limit-set versions in force; the audit trail of the records
in scope and whether the chain is intact; and a readiness assessment. The software
recommends; a person decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from typing import Any

from gmp_edge.timefmt import iso


def stamped(name: str, us: int | None) -> dict[str, Any]:
    """``{name_us: us, name: iso}``: every time in a review dict comes in both forms."""
    return {f"{name}_us": us, name: iso(us)}


def record_dict(obj: Any) -> dict[str, Any]:
    """A review record as JSON, by one convention for every field in declaration order:
    a time ``x_us`` also as ``x`` (ISO 8601 UTC), a duration ``x_duration_us`` as
    ``x_duration_s`` (seconds), floats as plain floats, nested records by their
    ``to_dict`` and tuples as lists."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        name, v = f.name, getattr(obj, f.name)
        if name.endswith("duration_us"):
            out[name[:-3] + "_s"] = v / 1e6
        elif name.endswith("_us"):
            out.update(stamped(name[:-3], v))
        else:
            out[name] = _json(v)
    return out


def _json(v: Any) -> Any:
    if hasattr(v, "to_dict"):
        return v.to_dict()
    if isinstance(v, tuple):
        return [_json(x) for x in v]
    if isinstance(v, Real) and not isinstance(v, Integral):
        return float(v)  # a numpy float as a plain one
    return v


class Record:
    """A review record whose JSON form is :func:`record_dict`'s convention."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return record_dict(self)


@dataclass(frozen=True, slots=True)
class GapSpan(Record):
    """A period without values for a tag, clipped to the batch period."""

    start_us: int
    end_us: int | None  # None: still open when the review was compiled
    duration_us: int  # within the batch period (up to the period end or now)
    cause: str
    message: str
    gap_id: int | None = None
    during_production: bool = True


@dataclass(frozen=True, slots=True)
class Stats(Record):
    """Statistics over the Good values of a tag in the batch period (None when n == 0)."""

    n: int
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    p5: float | None = None
    p50: float | None = None
    p95: float | None = None


@dataclass(frozen=True, slots=True)
class LimitsInForce(Record):
    """One limit-set version's numbers for a tag, and when in the batch they were in force."""

    set_id: str
    version: int
    from_us: int  # max(batch start, effective from)
    to_us: int | None  # next version's effective time, or None (to the end)
    alert_high: float | None = None
    action_high: float | None = None
    alert_low: float | None = None
    action_low: float | None = None
    applies_in: tuple[str, ...] | None = None  # production states; None = always
    continuous_monitoring_required: bool = False


@dataclass(frozen=True, slots=True)
class Acknowledgement(Record):
    """Who acknowledged an alarm, when, with what comment."""

    by: str
    at_us: int
    comment: str


@dataclass(frozen=True, slots=True)
class Excursion:
    """An alert or action excursion of a tag (from its alarm's transitions)."""

    alarm_id: str
    level: str  # alert | action
    side: str  # high | low
    start_us: int
    end_us: int | None  # None: still active at the end of the period
    duration_us: int  # within the period
    peak: float | None  # most extreme Good value in [start, end)
    limit: float | None
    limit_set_id: str | None
    limit_set_version: int | None
    acknowledgements: tuple[Acknowledgement, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {**record_dict(self), "alarm_ids": [self.alarm_id]}


@dataclass(frozen=True, slots=True)
class OotFinding(Record):
    """An out-of-trend signal (trend rule) on a tag."""

    alarm_id: str
    start_us: int
    end_us: int | None
    value: float | None
    rule: str
    acknowledgements: tuple[Acknowledgement, ...] = ()


@dataclass(frozen=True, slots=True)
class Capability(Record):
    """Process capability of a press CPP against its validated range (the action limits).

    Cp/Cpk use the within-subgroup sigma estimated from the average moving range
    (MR-bar / 1.128, individuals); Pp/Ppk the overall sample standard deviation. A
    one-sided range gives only Cpk/Ppk (Cp/Pp None).
    """

    lsl: float | None
    usl: float | None
    n: int
    mean: float | None
    sigma_within: float | None
    sigma_overall: float | None
    cp: float | None
    cpk: float | None
    pp: float | None
    ppk: float | None


@dataclass(frozen=True, slots=True)
class Trace:
    """Per-window min/max/mean of Good values for charts (NaN where a window has none)."""

    window_us: int
    start_us: tuple[int, ...]
    min: tuple[float, ...]
    max: tuple[float, ...]
    mean: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (NaN as None)."""

        def clean(xs: tuple[float, ...]) -> list[float | None]:
            return [None if x != x else x for x in xs]

        return {
            "window_s": self.window_us / 1e6,
            "start_us": list(self.start_us),
            "min": clean(self.min),
            "max": clean(self.max),
            "mean": clean(self.mean),
        }


@dataclass(frozen=True, slots=True)
class TagReview:
    """Everything about one tag during the batch period."""

    tag: str
    room: str
    equipment: str
    unit: str
    kind: str
    critical: bool  # continuous monitoring required, or limits set
    continuous_monitoring: bool
    interval_s: float | None  # expected sample interval
    expected: int | None
    good: int
    uncertain: int
    bad: int
    completeness_pct: float | None  # good / expected x 100 (None: unknown interval)
    gaps: tuple[GapSpan, ...]
    stats: Stats
    limits: tuple[LimitsInForce, ...]
    excursions: tuple[Excursion, ...]
    oot: tuple[OotFinding, ...]
    capability: Capability | None
    trace: Trace | None = None

    @property
    def gap_seconds(self) -> float:
        """Total gap time within the period."""
        return sum(g.duration_us for g in self.gaps) / 1e6

    def to_dict(self, trace: bool = False) -> dict[str, Any]:
        """JSON-able form (the chart trace only if ``trace``)."""
        return {
            "tag": self.tag,
            "room": self.room,
            "equipment": self.equipment,
            "unit": self.unit,
            "kind": self.kind,
            "critical": self.critical,
            "continuous_monitoring": self.continuous_monitoring,
            "interval_s": self.interval_s,
            "expected": self.expected,
            "received": {"good": self.good, "uncertain": self.uncertain, "bad": self.bad},
            "completeness_pct": self.completeness_pct,
            "gaps": [g.to_dict() for g in self.gaps],
            "gap_seconds": self.gap_seconds,
            "stats": self.stats.to_dict(),
            "limits": [lim.to_dict() for lim in self.limits],
            "excursions": [e.to_dict() for e in self.excursions],
            "oot": [o.to_dict() for o in self.oot],
            "capability": None if self.capability is None else self.capability.to_dict(),
            **({"trace": None if self.trace is None else self.trace.to_dict()} if trace else {}),
        }


@dataclass(frozen=True, slots=True)
class EquipmentStatus(Record):
    """Qualification and calibration of one piece of equipment during the batch."""

    id: str
    kind: str
    room: str
    name: str
    qualified_until: str | None  # ISO date
    calibration_due: str | None  # ISO date
    qualification_status: str  # qualified | expired | expired_during_batch | not_recorded
    calibration_status: str  # in_date | overdue | overdue_during_batch | not_recorded
    flagged: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ConfigVersion(Record):
    """A service run (configuration hash) overlapping the batch."""

    run_id: int
    config_sha256: str
    started_us: int
    stopped_us: int | None
    note: str = ""


@dataclass(frozen=True, slots=True)
class LimitSetVersion:
    """A limit-set version in force at some time during the batch."""

    set_id: str
    version: int
    status: str
    effective_from_us: int
    in_force_from_us: int
    in_force_to_us: int | None
    approved_by: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "set_id": self.set_id,
            "version": self.version,
            "record_id": f"{self.set_id}@v{self.version}",
            "status": self.status,
            **stamped("effective_from", self.effective_from_us),
            **stamped("in_force_from", self.in_force_from_us),
            **stamped("in_force_to", self.in_force_to_us),
            "approved_by": self.approved_by,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class DeviationRef(Record):
    """A deviation linked to the batch."""

    id: str
    title: str
    status: str
    classification: str | None  # final, or None if not yet classified
    proposed_classification: str
    discovered_us: int
    tag: str | None = None
    # the excursion it was raised for (empty for a deviation raised by hand)
    alarm_ids: tuple[str, ...] = ()
    excursion_start_us: int | None = None
    excursion_end_us: int | None = None  # None: still under way, or no excursion

    def covers(self, tag: str, alarm_id: str, start_us: int, end_us: int | None) -> bool:
        """True if this deviation is about that excursion: it names the alarm, or it is
        about the same tag and its excursion overlaps the alarm's."""
        if alarm_id in self.alarm_ids:
            return True
        if self.tag != tag or self.excursion_start_us is None:
            return False
        starts_before_end = end_us is None or self.excursion_start_us <= end_us
        return starts_before_end and (
            self.excursion_end_us is None or self.excursion_end_us >= start_us
        )


@dataclass(frozen=True, slots=True)
class AuditRef(Record):
    """An audit entry about a record in scope (as stored; hash shown for traceability)."""

    seq: int
    ts_us: int
    actor: str
    action: str
    record_type: str
    record_id: str
    reason: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditVerdict(Record):
    """The audit chain check at compile time."""

    intact: bool
    entries: int
    head: str
    break_seq: int | None = None
    break_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Finding(Record):
    """A blocker or warning: a stable code, a sentence, the records it is about."""

    code: str
    message: str
    refs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Readiness(Record):
    """Release readiness as the software sees it; a person decides."""

    blockers: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    recommendation: str  # release | hold | reject
    text: str


@dataclass(frozen=True, slots=True)
class BatchReview:
    """The compiled review of one batch."""

    batch_id: str
    product: str
    rooms: tuple[str, ...]
    equipment_ids: tuple[str, ...]
    start_us: int
    end_us: int | None  # the batch's end (None: not ended)
    period_end_us: int  # end of the reviewed period (batch end, or "now" if not ended)
    compiled_us: int
    config_versions: tuple[ConfigVersion, ...]
    limit_sets: tuple[LimitSetVersion, ...]
    tags: tuple[TagReview, ...]
    equipment: tuple[EquipmentStatus, ...]
    deviations: tuple[DeviationRef, ...]
    quarantined: int
    audit: AuditVerdict
    audit_entries: tuple[AuditRef, ...]
    readiness: Readiness | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ended(self) -> bool:
        """True if the batch has an end time."""
        return self.end_us is not None

    def to_dict(self, traces: bool = False) -> dict[str, Any]:
        """JSON-able form (chart traces only if ``traces``)."""
        return {
            "batch": {
                "id": self.batch_id,
                "product": self.product,
                "rooms": list(self.rooms),
                "equipment": list(self.equipment_ids),
                **stamped("start", self.start_us),
                **stamped("end", self.end_us),
                "ended": self.ended,
            },
            "period": {**stamped("start", self.start_us), **stamped("end", self.period_end_us)},
            **stamped("compiled", self.compiled_us),
            "config_versions": [c.to_dict() for c in self.config_versions],
            "limit_sets": [s.to_dict() for s in self.limit_sets],
            "tags": [t.to_dict(trace=traces) for t in self.tags],
            "equipment": [e.to_dict() for e in self.equipment],
            "deviations": [d.to_dict() for d in self.deviations],
            "quarantined": self.quarantined,
            "audit": self.audit.to_dict(),
            "audit_entries": [a.to_dict() for a in self.audit_entries],
            "readiness": None if self.readiness is None else self.readiness.to_dict(),
            "notes": list(self.notes),
        }
