"""The compiled batch review as the API serves it (``GET /api/batches/{id}/review``).

These models describe, field by field, the document ``BatchReview.to_dict`` builds
(``gmp_edge.review.model``); they add nothing and rename nothing, so the JSON served is the
compiled document and its hash (``review_sha256``) is the hash of what the reader sees.
Unknown fields are refused: a field the compiler gains must be described here first, or the
round-trip test fails. Every time comes twice, as integer microseconds since the Unix epoch
(``*_us``) and as ISO 8601 UTC text with a ``Z``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gmp_edge.review.model import (
    Acknowledgement,
    AuditRef,
    AuditVerdict,
    BatchReview,
    ConfigVersion,
    DeviationRef,
    EquipmentStatus,
    Excursion,
    GapSpan,
    LimitSetVersion,
    LimitsInForce,
    Stats,
    TagReview,
)
from gmp_edge.review.readiness import assess

US = "microseconds since the Unix epoch (UTC)"
ISO = "the same time as ISO 8601 UTC text"


class BatchReviewPart(BaseModel):
    """A part of the review document: every field described, unknown fields refused."""

    model_config = ConfigDict(extra="forbid")


class BatchReviewBatch(BatchReviewPart):
    """The batch reviewed, as recorded when it was started and ended."""

    id: str = Field(description="batch id")
    product: str = Field(description="product made in the batch")
    rooms: list[str] = Field(description="rooms the batch ran in")
    equipment: list[str] = Field(description="equipment ids the batch ran on")
    start_us: int = Field(description=f"batch start, {US}")
    start: str = Field(description=ISO)
    end_us: int | None = Field(description=f"batch end, {US}; null while it runs")
    end: str | None = Field(description=ISO)
    ended: bool = Field(description="the batch has an end time")


class BatchReviewPeriod(BatchReviewPart):
    """The period the review covers: the batch start to its end (or to compile time)."""

    start_us: int = Field(description=f"period start, {US}")
    start: str = Field(description=ISO)
    end_us: int = Field(description=f"period end (batch end, or compile time if running), {US}")
    end: str = Field(description=ISO)


class BatchReviewConfigVersion(BatchReviewPart):
    """A service run, with the configuration it ran with, that overlaps the period."""

    run_id: int = Field(description="service run number")
    config_sha256: str = Field(description="SHA-256 of the plant configuration of the run")
    started_us: int = Field(description=f"run start, {US}")
    started: str = Field(description=ISO)
    stopped_us: int | None = Field(description=f"run stop, {US}; null while running")
    stopped: str | None = Field(description=ISO)
    note: str = Field(description="note recorded with the run")


class BatchReviewLimitSetVersion(BatchReviewPart):
    """A limit-set version in force at some time during the period."""

    set_id: str = Field(description="limit set id")
    version: int = Field(description="version number")
    record_id: str = Field(description="the version as an audit record id: `<set>@v<version>`")
    status: str = Field(description="lifecycle status of the version (e.g. approved)")
    effective_from_us: int = Field(description=f"when the version took effect, {US}")
    effective_from: str = Field(description=ISO)
    in_force_from_us: int = Field(description=f"start of its time in force in the period, {US}")
    in_force_from: str = Field(description=ISO)
    in_force_to_us: int | None = Field(
        description=f"end of its time in force, {US}; null: to the end of the period"
    )
    in_force_to: str | None = Field(description=ISO)
    approved_by: str | None = Field(description="who approved the version")
    reason: str = Field(description="why the version was made")


class BatchReviewReceived(BatchReviewPart):
    """Readings of a tag in the period, by quality."""

    good: int = Field(description="Good readings")
    uncertain: int = Field(description="Uncertain readings")
    bad: int = Field(description="Bad readings (a failed read, out of range, a fault)")


class BatchReviewGap(BatchReviewPart):
    """A time without values for a tag, clipped to the period."""

    gap_id: int | None = Field(description="gap id in the store's gap ledger")
    start_us: int = Field(description=f"gap start, {US}")
    start: str = Field(description=ISO)
    end_us: int | None = Field(description=f"gap end, {US}; null: still open at compile time")
    end: str | None = Field(description=ISO)
    duration_s: float = Field(description="seconds of the gap within the period")
    cause: str = Field(description="why: device, network, collector or service_down")
    message: str = Field(description="what the collector saw")
    during_production: bool = Field(description="the gap falls in production time")


class BatchReviewStats(BatchReviewPart):
    """Statistics of a tag's Good values in the period (null when there are none)."""

    n: int = Field(description="number of Good values")
    min: float | None = Field(description="lowest value")
    max: float | None = Field(description="highest value")
    mean: float | None = Field(description="mean")
    std: float | None = Field(description="sample standard deviation")
    p5: float | None = Field(description="5th percentile")
    p50: float | None = Field(description="median")
    p95: float | None = Field(description="95th percentile")


class BatchReviewLimits(BatchReviewPart):
    """A limit-set version's limits for a tag, and when in the period they applied."""

    set_id: str = Field(description="limit set id")
    version: int = Field(description="version number")
    from_us: int = Field(description=f"from (the later of period start and effect), {US}")
    from_: str = Field(alias="from", description=ISO)
    to_us: int | None = Field(description=f"until (the next version's effect), {US}; null: end")
    to: str | None = Field(description=ISO)
    alert_high: float | None = Field(description="alert limit, high side")
    action_high: float | None = Field(description="action limit, high side")
    alert_low: float | None = Field(description="alert limit, low side")
    action_low: float | None = Field(description="action limit, low side")
    applies_in: list[str] | None = Field(
        description="production states the limits apply in (at_rest, in_operation); null: always"
    )
    continuous_monitoring_required: bool = Field(
        description="the tag must be monitored without gaps (e.g. Grade A particles)"
    )


class BatchReviewAcknowledgement(BatchReviewPart):
    """An operator's acknowledgement of an alarm."""

    by: str = Field(description="user id")
    at_us: int = Field(description=f"when, {US}")
    at: str = Field(description=ISO)
    comment: str = Field(description="comment given")


class BatchReviewExcursion(BatchReviewPart):
    """An alert or action excursion of a tag, from its alarm's transitions."""

    alarm_id: str = Field(description="the alarm that records the excursion")
    alarm_ids: list[str] = Field(description="the alarms the excursion comes from")
    level: Literal["alert", "action"] = Field(description="which limit was crossed")
    side: Literal["high", "low"] = Field(description="above the high or below the low limit")
    start_us: int = Field(description=f"start (the alarm's activation), {US}")
    start: str = Field(description=ISO)
    end_us: int | None = Field(description=f"end, {US}; null: still active at the period end")
    end: str | None = Field(description=ISO)
    duration_s: float = Field(description="seconds of the excursion within the period")
    peak: float | None = Field(description="most extreme Good value during the excursion")
    limit: float | None = Field(description="the limit in force when the alarm tripped")
    limit_set_id: str | None = Field(description="limit set the limit came from")
    limit_set_version: int | None = Field(description="its version")
    acknowledgements: list[BatchReviewAcknowledgement] = Field(description="who acknowledged, when")


class BatchReviewOotFinding(BatchReviewPart):
    """An out-of-trend signal of a trend rule on a tag."""

    alarm_id: str = Field(description="the trend alarm")
    start_us: int = Field(description=f"start, {US}")
    start: str = Field(description=ISO)
    end_us: int | None = Field(description=f"end, {US}; null: still active at the period end")
    end: str | None = Field(description=ISO)
    value: float | None = Field(description="the value that tripped the rule")
    rule: str = Field(description="the rule, in words")
    acknowledgements: list[BatchReviewAcknowledgement] = Field(description="who acknowledged, when")


class BatchReviewCapability(BatchReviewPart):
    """Process capability of a press parameter against its validated range (action limits).

    Cp/Cpk use the within-subgroup sigma from the average moving range; Pp/Ppk the overall
    standard deviation. A one-sided range gives Cpk/Ppk only.
    """

    lsl: float | None = Field(description="lower specification limit (action low)")
    usl: float | None = Field(description="upper specification limit (action high)")
    n: int = Field(description="Good values used")
    mean: float | None = Field(description="mean")
    sigma_within: float | None = Field(description="within-subgroup sigma (MR-bar / 1.128)")
    sigma_overall: float | None = Field(description="overall sample standard deviation")
    cp: float | None = Field(description="Cp")
    cpk: float | None = Field(description="Cpk")
    pp: float | None = Field(description="Pp")
    ppk: float | None = Field(description="Ppk")


class BatchReviewTrace(BatchReviewPart):
    """A downsampled chart trace of a tag: per window min, max and mean of Good values."""

    window_s: float = Field(description="window length in seconds")
    start_us: list[int] = Field(description=f"window starts, {US}")
    min: list[float | None] = Field(description="lowest value per window; null: no Good value")
    max: list[float | None] = Field(description="highest value per window; null: no Good value")
    mean: list[float | None] = Field(description="mean per window; null: no Good value")


class BatchReviewTag(BatchReviewPart):
    """Everything about one tag during the period."""

    tag: str = Field(description="tag path site/area/room/equipment/signal")
    room: str = Field(description="room of the tag")
    equipment: str = Field(description="equipment of the tag")
    unit: str = Field(description="engineering unit")
    kind: str = Field(description="what it measures (temperature, rh, dp, particles_0_5, ...)")
    critical: bool = Field(description="it has limits or must be monitored continuously")
    continuous_monitoring: bool = Field(description="continuous monitoring is required")
    interval_s: float | None = Field(description="expected sample interval; null: unknown")
    expected: int | None = Field(description="readings expected in the period; null: unknown")
    received: BatchReviewReceived = Field(description="readings received, by quality")
    completeness_pct: float | None = Field(
        description="Good readings / expected x 100; null: unknown interval"
    )
    gaps: list[BatchReviewGap] = Field(description="times without values")
    gap_seconds: float = Field(description="total gap time within the period")
    stats: BatchReviewStats = Field(description="statistics of the Good values")
    limits: list[BatchReviewLimits] = Field(description="limits in force, by version")
    excursions: list[BatchReviewExcursion] = Field(description="alert and action excursions")
    oot: list[BatchReviewOotFinding] = Field(description="out-of-trend findings")
    capability: BatchReviewCapability | None = Field(
        description="press parameters with a validated range only"
    )


class BatchReviewTracedTag(BatchReviewTag):
    """A tag with its chart trace (the review asked for with ``traces=true``)."""

    trace: BatchReviewTrace | None = Field(description="chart trace; null: no values to draw")


class BatchReviewEquipment(BatchReviewPart):
    """Qualification and calibration of one piece of equipment over the period."""

    id: str = Field(description="equipment id")
    kind: str = Field(description="kind of equipment")
    room: str = Field(description="room it stands in")
    name: str = Field(description="name")
    qualified_until: str | None = Field(description="qualification valid until (ISO date)")
    calibration_due: str | None = Field(description="calibration due (ISO date)")
    qualification_status: Literal[
        "qualified", "expired", "expired_during_batch", "not_recorded"
    ] = Field(description="qualification over the period")
    calibration_status: Literal["in_date", "overdue", "overdue_during_batch", "not_recorded"] = (
        Field(description="calibration over the period")
    )
    flagged: bool = Field(description="qualification or calibration lapsed")
    reason: str = Field(description="what lapsed, in words")


class BatchReviewDeviation(BatchReviewPart):
    """A deviation linked to the batch."""

    id: str = Field(description="deviation id")
    title: str = Field(description="title")
    status: Literal["open", "under_investigation", "closed", "cancelled"] = Field(
        description="lifecycle status"
    )
    classification: Literal["minor", "major", "critical"] | None = Field(
        description="final classification; null until classified"
    )
    proposed_classification: Literal["minor", "major", "critical"] = Field(
        description="classification proposed when it was raised"
    )
    discovered_us: int = Field(description=f"when it was discovered, {US}")
    discovered: str = Field(description=ISO)
    tag: str | None = Field(description="the tag of its evidence, if any")
    alarm_ids: list[str] = Field(description="the alarms of the excursion it was raised for")
    excursion_start_us: int | None = Field(description=f"when that excursion began, {US}")
    excursion_start: str | None = Field(description=ISO)
    excursion_end_us: int | None = Field(
        description=f"when it ended, {US} (null: under way, or raised by hand)"
    )
    excursion_end: str | None = Field(description=ISO)


class BatchReviewAuditVerdict(BatchReviewPart):
    """The audit trail's hash chain, checked when the review was compiled."""

    intact: bool = Field(description="every entry's hash and link checked out")
    entries: int = Field(description="entries checked")
    head: str = Field(description="hash of the newest entry")
    break_seq: int | None = Field(description="first entry that failed; null: none")
    break_reason: str | None = Field(description="why it failed")


class BatchReviewAuditEntry(BatchReviewPart):
    """An audit trail entry about a record in scope of the review."""

    seq: int = Field(description="sequence number in the trail")
    ts_us: int = Field(description=f"when, {US}")
    ts: str = Field(description=ISO)
    actor: str = Field(description="who (user id, token:<id> or system)")
    action: str = Field(description="what was done (e.g. batch.started, alarm.acknowledged)")
    record_type: str = Field(description="kind of record")
    record_id: str = Field(description="record id")
    reason: str = Field(description="reason given")
    hash: str = Field(description="the entry's chained hash")


class BatchReviewFinding(BatchReviewPart):
    """A blocker or a warning of the readiness assessment."""

    code: str = Field(description="stable code (e.g. deviation_open, completeness_low)")
    message: str = Field(description="the finding in a sentence")
    refs: list[str] = Field(description="records it is about, as `<type>:<id>`")


class BatchReviewReadiness(BatchReviewPart):
    """Release readiness as the software sees it; a person decides."""

    blockers: list[BatchReviewFinding] = Field(description="what stands in the way of release")
    warnings: list[BatchReviewFinding] = Field(description="what a reviewer should look at")
    recommendation: Literal["release", "hold", "reject"] = Field(
        description="the software's suggestion"
    )
    text: str = Field(description="the suggestion and its disclaimer, in words")


def _example() -> dict[str, Any]:
    """A small review as the compiler writes it: one tag with an action excursion."""
    s = 1_000_000
    t0 = 1_790_000_000 * s  # 2026-09-21T14:13:20Z
    end = t0 + 8 * 3600 * s
    trip = t0 + 5 * 3600 * s
    tag = "acme-basel/solid-dose/compression/trh-comp-01/temperature"
    temperature = TagReview(
        tag=tag,
        room="compression",
        equipment="trh-comp-01",
        unit="degC",
        kind="temperature",
        critical=True,
        continuous_monitoring=False,
        interval_s=2.0,
        expected=14_400,
        good=14_350,
        uncertain=0,
        bad=5,
        completeness_pct=99.65,
        gaps=(
            GapSpan(
                start_us=t0 + 3600 * s,
                end_us=t0 + 3700 * s,
                duration_us=100 * s,
                cause="network",
                message="no answer from 10.20.0.31:502",
                gap_id=17,
            ),
        ),
        stats=Stats(n=14_350, min=20.1, max=25.2, mean=21.4, std=0.6, p5=20.5, p50=21.3, p95=22.6),
        limits=(
            LimitsInForce(
                set_id="LS-solid-dose",
                version=2,
                from_us=t0,
                to_us=None,
                alert_high=23.0,
                action_high=25.0,
                alert_low=15.0,
                action_low=12.0,
            ),
        ),
        excursions=(
            Excursion(
                alarm_id=f"{tag}#action_high",
                level="action",
                side="high",
                start_us=trip,
                end_us=trip + 240 * s,
                duration_us=240 * s,
                peak=25.2,
                limit=25.0,
                limit_set_id="LS-solid-dose",
                limit_set_version=2,
                acknowledgements=(Acknowledgement("op.olga", trip + 60 * s, "doors shut"),),
            ),
        ),
        oot=(),
        capability=None,
    )
    review = BatchReview(
        batch_id="B-2026-0001",
        product="Paracetamol 500 mg tablets",
        rooms=("compression",),
        equipment_ids=("press-01",),
        start_us=t0,
        end_us=end,
        period_end_us=end,
        compiled_us=end + 600 * s,
        config_versions=(ConfigVersion(3, "9f2c" * 16, t0 - 86_400 * s, None),),
        limit_sets=(
            LimitSetVersion(
                set_id="LS-solid-dose",
                version=2,
                status="approved",
                effective_from_us=t0 - 7 * 86_400 * s,
                in_force_from_us=t0,
                in_force_to_us=None,
                approved_by="qa.ann",
                reason="limits per SOP-114 rev 3",
            ),
        ),
        tags=(temperature,),
        equipment=(
            EquipmentStatus(
                id="press-01",
                kind="tablet_press",
                room="compression",
                name="Tablet press 1",
                qualified_until="2027-03-31",
                calibration_due="2026-12-15",
                qualification_status="qualified",
                calibration_status="in_date",
                flagged=False,
            ),
        ),
        deviations=(
            DeviationRef(
                id="DEV-2026-0007",
                title="Temperature above action limit",
                status="open",
                classification=None,
                proposed_classification="minor",
                discovered_us=trip + 30 * s,
                tag=tag,
            ),
        ),
        quarantined=0,
        audit=AuditVerdict(intact=True, entries=1_204, head="5be1" * 16),
        audit_entries=(
            AuditRef(
                1_180, t0, "op.olga", "batch.started", "batch", "B-2026-0001", "", "a3c9" * 16
            ),
        ),
    )
    return replace(review, readiness=assess(review)).to_dict()


#: The OpenAPI example: written by the compiler's own ``to_dict``, so it has the real shape
#: (FastAPI leaves the null fields out of the example it shows in ``/openapi.json``).
EXAMPLE = _example()


class BatchReviewDocument(BatchReviewPart):
    """The compiled review of one batch: what happened in its rooms and on its equipment."""

    batch: BatchReviewBatch = Field(description="the batch")
    period: BatchReviewPeriod = Field(description="the period reviewed")
    compiled_us: int = Field(description=f"when the review was compiled, {US}")
    compiled: str = Field(description=ISO)
    config_versions: list[BatchReviewConfigVersion] = Field(
        description="service runs (configuration hashes) overlapping the period"
    )
    limit_sets: list[BatchReviewLimitSetVersion] = Field(description="limit-set versions in force")
    tags: list[BatchReviewTag | BatchReviewTracedTag] = Field(
        description="every tag in the batch's rooms and equipment (with a trace if asked for)"
    )
    equipment: list[BatchReviewEquipment] = Field(description="equipment status over the period")
    deviations: list[BatchReviewDeviation] = Field(description="deviations linked to the batch")
    quarantined: int = Field(description="readings of these tags quarantined in the period")
    audit: BatchReviewAuditVerdict = Field(description="the audit chain check")
    audit_entries: list[BatchReviewAuditEntry] = Field(
        description="audit entries on records in scope"
    )
    readiness: BatchReviewReadiness | None = Field(description="release readiness")
    notes: list[str] = Field(description="notes of the compiler (e.g. what it could not read)")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})
