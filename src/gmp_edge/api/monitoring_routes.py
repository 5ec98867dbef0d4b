"""Alarms, deviations, limit sets and batches: what operators, engineers and QA act on.

Every action names its person (session) and lands in the audit trail through the books.
Closing a deviation asks for the password again and signs the closed record.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from gmp_edge.alarms.model import Alarm
from gmp_edge.api.audit_routes import AuditEntryOut, ManifestOut, entries_out, manifest_out
from gmp_edge.api.models import (
    AUTH,
    BAD_REQUEST,
    CONFLICT,
    NOT_FOUND,
    Password,
    Reason,
    Responses,
    Strict,
    UserId,
)
from gmp_edge.api.records import from_record
from gmp_edge.api.security import (
    ACK,
    APPROVE,
    CONFIGURE,
    READ,
    REVIEW,
    Principal,
    reauthenticate,
    require_person,
    services_of,
)
from gmp_edge.api.times import request_us
from gmp_edge.config import LimitSetEntry
from gmp_edge.deviations.batch import BATCH_ID, BATCH_ID_RULE, Batch
from gmp_edge.deviations.model import Classification, Deviation
from gmp_edge.limits.model import LimitSet, TagLimits
from gmp_edge.timefmt import iso

router = APIRouter(responses=AUTH)
Version = Annotated[int, Path(ge=1, le=2**31)]


def _iso_fields(d: dict[str, Any]) -> dict[str, Any]:
    """Microsecond timestamps (``*_us``) shown as UTC ISO text beside the raw value, and
    microsecond durations (``*duration_us``) as seconds: a duration is not a date."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        out[k] = _iso_fields(v) if isinstance(v, dict) else v
        if k.endswith("duration_us") and isinstance(v, int):
            out[k.removesuffix("_us") + "_s"] = v / 1e6
        elif k.endswith("_us") and isinstance(v, int):
            out[k.removesuffix("_us")] = iso(v)
    return out


# -- alarms ------------------------------------------------------------------------------


class AlarmOut(BaseModel):
    """An alarm point and its ISA-18.2 state."""

    id: str
    tag: str
    kind: str
    priority: str
    state: str
    condition_active: bool
    raised: str | None
    cleared: str | None
    value_at_trip: float | None
    limit_at_trip: float | None
    limit_set: str | None
    acknowledged_by: str | None
    acknowledged: str | None
    ack_comment: str | None
    shelved_by: str | None
    shelved_until: str | None
    shelve_reason: str | None


def alarm_out(a: Alarm) -> AlarmOut:
    """An alarm as the API shows it."""
    return AlarmOut(
        id=a.id,
        tag=a.tag,
        kind=a.kind.value,
        priority=a.priority.value,
        state=a.state.value,
        condition_active=a.condition_active,
        raised=iso(a.raised_us),
        cleared=iso(a.cleared_us),
        value_at_trip=a.value_at_trip,
        limit_at_trip=a.limit_at_trip,
        limit_set=f"{a.limit_set_id} v{a.limit_set_version}" if a.limit_set_id else None,
        acknowledged_by=a.acked_by,
        acknowledged=iso(a.acked_us),
        ack_comment=a.ack_comment,
        shelved_by=a.shelved_by,
        shelved_until=iso(a.shelved_until_us),
        shelve_reason=a.shelve_reason,
    )


class TransitionOut(BaseModel):
    """One alarm transition: who, when, from, to, why."""

    alarm_id: str
    tag: str
    event: str
    from_state: str
    to_state: str
    actor: str
    at: str
    reason: str
    detail: dict[str, Any]


class AlarmMetricsOut(BaseModel):
    """ISA-18.2 alarm-system performance over a period (default: the last 24 h)."""

    start: str
    end: str
    annunciated: int = Field(description="alarms that became unacknowledged")
    chattering: list[dict[str, Any]] = Field(description="3+ activations within 60 s")
    floods: list[dict[str, Any]] = Field(description="more than 10 alarms in 10 min")
    time_in_flood_pct: float
    standing: list[dict[str, Any]] = Field(description="not normal for 24 h or more")


class AckIn(Strict):
    """Acknowledge an alarm, with a comment."""

    alarm_id: str = Field(max_length=300)
    comment: str = Field(min_length=1, max_length=2000)


class ShelveIn(Strict):
    """Shelve an alarm for a limited time, with a reason."""

    alarm_id: str = Field(max_length=300)
    reason: str = Reason
    minutes: float = Field(gt=0, le=7 * 24 * 60)


class AlarmReasonIn(Strict):
    """Unshelve, take out of service or return to service, with a reason."""

    alarm_id: str = Field(max_length=300)
    reason: str = Reason


@router.get("/api/alarms", response_model=list[AlarmOut], tags=["alarms"])
def active_alarms(request: Request, who: Principal = READ) -> list[AlarmOut]:
    """Alarms not in the normal state (active, unacknowledged, shelved, out of service)."""
    return [alarm_out(a) for a in services_of(request).alarms.active()]


@router.get(
    "/api/alarms/history",
    response_model=list[TransitionOut],
    tags=["alarms"],
    responses=BAD_REQUEST,
)
def alarm_history(
    request: Request,
    tag: str | None = Query(None, max_length=300),
    start: datetime | None = Query(None, description="ISO 8601 with zone"),
    end: datetime | None = Query(None, description="ISO 8601 with zone"),
    limit: int = Query(1000, ge=1, le=100_000),
    who: Principal = READ,
) -> list[TransitionOut]:
    """Every alarm transition (oldest first), by tag and time."""
    s, e = request_us(start), request_us(end)
    return [
        from_record(
            TransitionOut,
            t,
            event=t.event.value,
            from_state=t.from_state.value,
            to_state=t.to_state.value,
            at=iso(t.at_us) or "",
            detail=dict(t.detail or {}),
        )
        for t in services_of(request).history.alarm_history(tag, s, e, limit)
    ]


@router.get(
    "/api/alarms/metrics",
    response_model=AlarmMetricsOut,
    tags=["alarms"],
    responses=BAD_REQUEST,
)
def alarm_metrics(
    request: Request,
    hours: float = Query(24, ge=0.01, le=24 * 90),
    who: Principal = READ,
) -> AlarmMetricsOut:
    """Chattering alarms, alarm floods and standing alarms (ISA-18.2 performance)."""
    p = services_of(request).history.alarm_performance(hours)
    return AlarmMetricsOut(
        start=iso(p.start_us) or "",
        end=iso(p.end_us) or "",
        annunciated=p.annunciated,
        chattering=[_iso_fields(_asdict(c)) for c in p.chattering],
        floods=[_iso_fields(_asdict(f)) for f in p.floods],
        time_in_flood_pct=round(100 * p.time_in_flood, 3),
        standing=[_iso_fields(_asdict(x)) for x in p.standing],
    )


def _asdict(obj: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(obj).items()}


ALARM_ACTION = {**BAD_REQUEST, **NOT_FOUND, 409: {"description": "not allowed in this state"}}


@router.post(
    "/api/alarms/acknowledge", response_model=AlarmOut, tags=["alarms"], responses=ALARM_ACTION
)
def acknowledge(body: AckIn, request: Request, who: Principal = ACK) -> AlarmOut:
    """Acknowledge an unacknowledged alarm (comment required; recorded with your name)."""
    require_person(who, request)
    return alarm_out(services_of(request).alarms.acknowledge(who.id, body.alarm_id, body.comment))


@router.post("/api/alarms/shelve", response_model=AlarmOut, tags=["alarms"], responses=ALARM_ACTION)
def shelve(body: ShelveIn, request: Request, who: Principal = ACK) -> AlarmOut:
    """Shelve an alarm until a time (never open-ended), with a reason."""
    require_person(who, request)
    alarms = services_of(request).alarms
    return alarm_out(alarms.shelve(who.id, body.alarm_id, body.reason, body.minutes))


@router.post(
    "/api/alarms/unshelve", response_model=AlarmOut, tags=["alarms"], responses=ALARM_ACTION
)
def unshelve(body: AlarmReasonIn, request: Request, who: Principal = ACK) -> AlarmOut:
    """End a shelve early."""
    require_person(who, request)
    return alarm_out(services_of(request).alarms.unshelve(who.id, body.alarm_id, body.reason))


@router.post(
    "/api/alarms/out-of-service",
    response_model=AlarmOut,
    tags=["alarms"],
    responses=ALARM_ACTION,
)
def out_of_service(body: AlarmReasonIn, request: Request, who: Principal = CONFIGURE) -> AlarmOut:
    """Take an alarm out of service (maintenance of its instrument), with a reason."""
    require_person(who, request)
    alarms = services_of(request).alarms
    return alarm_out(alarms.remove_from_service(who.id, body.alarm_id, body.reason))


@router.post(
    "/api/alarms/return-to-service",
    response_model=AlarmOut,
    tags=["alarms"],
    responses=ALARM_ACTION,
)
def return_to_service(
    body: AlarmReasonIn, request: Request, who: Principal = CONFIGURE
) -> AlarmOut:
    """Return an alarm to service."""
    require_person(who, request)
    alarms = services_of(request).alarms
    return alarm_out(alarms.return_to_service(who.id, body.alarm_id, body.reason))


# -- deviations --------------------------------------------------------------------------


class DeviationOut(BaseModel):
    """A deviation with its signature manifest and its own audit trail."""

    id: str
    title: str
    status: str
    source: str
    proposed_classification: str
    final_classification: str | None
    discovered: str
    report_due: str
    close_due: str
    affected_batch_ids: list[str] = Field(
        description="batches linked when it was raised or amended (the record's own field)"
    )
    batches: list[str] = Field(
        description="every batch it concerns: the linked ones and those in progress in its "
        "room or on its equipment during its excursion (also batches registered afterwards)"
    )
    version: int
    record: dict[str, Any] = Field(description="the whole record (timestamps also as UTC text)")
    content_sha256: str
    signatures: ManifestOut
    audit_trail: list[AuditEntryOut]


def deviation_out(request: Request, d: Deviation) -> DeviationOut:
    """A deviation as every route shows it, with manifest and trail."""
    m = manifest_out(request, "deviation", d.id)
    return DeviationOut(
        id=d.id,
        title=d.title,
        status=d.status.value,
        source=d.source.value,
        proposed_classification=d.proposed_classification.value,
        final_classification=d.final_classification.value if d.final_classification else None,
        discovered=iso(d.discovered_us) or "",
        report_due=iso(d.report_due_us) or "",
        close_due=iso(d.close_due_us) or "",
        affected_batch_ids=list(d.affected_batch_ids),
        batches=services_of(request).deviations.concerned_batches(d),
        version=d.version,
        record=_iso_fields(d.to_dict()),
        content_sha256=m.current_sha256 or "",
        signatures=m,
        audit_trail=entries_out(request, record_type="deviation", record_id=d.id),
    )


F = TypeVar("F", bound=Callable[..., Any])


def deviation_action(name: str, more: Responses | None = None) -> Callable[[F], F]:
    """``POST /api/deviations/{dev_id}/<name>``: a lifecycle step answering the deviation."""
    return router.post(
        f"/api/deviations/{{dev_id}}/{name}",
        response_model=DeviationOut,
        tags=["deviations"],
        responses={**DEV_ACTION, **(more or {})},
    )


class InvestigateIn(Strict):
    """Start the investigation."""

    expected_version: int = Field(ge=1, le=2**31, description="the version you read")
    investigator: str = UserId
    note: str = Field(min_length=1, max_length=10_000)


class AmendIn(Strict):
    """Record findings on an open deviation."""

    expected_version: int = Field(ge=1, le=2**31)
    reason: str = Reason
    impact_assessment: str | None = Field(None, max_length=20_000)
    root_cause: str | None = Field(None, max_length=20_000)
    capa_ref: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=20_000)
    affected_batch_ids: list[str] | None = None


class CloseIn(Strict):
    """Close a deviation; signed with your password (meaning: approval)."""

    expected_version: int = Field(ge=1, le=2**31)
    impact_assessment: str | None = Field(None, max_length=20_000)
    root_cause: str | None = Field(None, max_length=20_000)
    final_classification: Classification
    capa_ref: str | None = Field(None, max_length=200)
    classification_rationale: str | None = Field(None, max_length=20_000)
    note: str = Field("", max_length=10_000)
    user_id: str = UserId
    password: str = Password


class CancelIn(Strict):
    """Cancel a deviation raised in error."""

    expected_version: int = Field(ge=1, le=2**31)
    reason: str = Reason


DEV_ACTION = {**BAD_REQUEST, **NOT_FOUND, **CONFLICT}


@router.get("/api/deviations", response_model=list[DeviationOut], tags=["deviations"])
def list_deviations(
    request: Request,
    status: str | None = Query(None, pattern="^(open|under_investigation|closed|cancelled)$"),
    who: Principal = READ,
) -> list[DeviationOut]:
    """Deviations, newest first."""
    return [deviation_out(request, d) for d in services_of(request).deviations.list(status)]


@router.get(
    "/api/deviations/{dev_id}",
    response_model=DeviationOut,
    tags=["deviations"],
    responses=NOT_FOUND,
)
def get_deviation(dev_id: str, request: Request, who: Principal = READ) -> DeviationOut:
    """One deviation with its evidence, signatures and audit trail."""
    return deviation_out(request, services_of(request).deviations.get(dev_id))


@deviation_action("investigate")
def investigate(
    dev_id: str, body: InvestigateIn, request: Request, who: Principal = REVIEW
) -> DeviationOut:
    """Open -> under investigation."""
    require_person(who, request)
    d = services_of(request).deviations.investigate(
        who.id, dev_id, body.expected_version, body.investigator, body.note
    )
    return deviation_out(request, d)


@deviation_action("amend")
def amend_deviation(
    dev_id: str, body: AmendIn, request: Request, who: Principal = REVIEW
) -> DeviationOut:
    """Record impact assessment, root cause, CAPA reference, affected batches."""
    require_person(who, request)
    changes = body.model_dump(exclude={"expected_version", "reason"}, exclude_none=True)
    if "affected_batch_ids" in changes:
        changes["affected_batch_ids"] = tuple(changes["affected_batch_ids"])
    d = services_of(request).deviations.amend(
        who.id, dev_id, body.expected_version, body.reason, changes
    )
    return deviation_out(request, d)


@deviation_action("close", {401: {"description": "password wrong: nothing closed"}})
def close_deviation(
    dev_id: str, body: CloseIn, request: Request, who: Principal = APPROVE
) -> DeviationOut:
    """Under investigation -> closed, signed by you (password asked again)."""
    signer = reauthenticate(
        request, who, body.user_id, body.password, "deviation", dev_id, "not closed"
    )
    d = services_of(request).deviations.close(
        signer,
        dev_id,
        body.expected_version,
        body.final_classification,
        impact_assessment=body.impact_assessment,
        root_cause=body.root_cause,
        capa_ref=body.capa_ref,
        classification_rationale=body.classification_rationale,
        note=body.note,
    )
    return deviation_out(request, d)


@deviation_action("cancel")
def cancel_deviation(
    dev_id: str, body: CancelIn, request: Request, who: Principal = APPROVE
) -> DeviationOut:
    """Cancel a deviation raised in error (reason required)."""
    require_person(who, request)
    d = services_of(request).deviations.cancel(who.id, dev_id, body.expected_version, body.reason)
    return deviation_out(request, d)


# -- limit sets --------------------------------------------------------------------------


class CancelReasonIn(Strict):
    """Why."""

    reason: str = Reason


class LimitSetOut(BaseModel):
    """A limit set version with its status and signature manifest."""

    id: str
    version: int
    status: str
    effective_from: str | None
    reason: str
    proposed_by: str
    approved_by: str | None
    limits: list[dict[str, Any]]
    record_id: str = Field(description="sign with record_type limit_set and this record_id")
    content_sha256: str
    signatures: ManifestOut


class ProposalIn(Strict):
    """A new version of the limit set (the whole set), with why."""

    reason: str = Reason
    # typed and strict, as in the plant file: a misspelt key or "false" for a bool is a 422
    limits: list[LimitSetEntry] = Field(min_length=1, max_length=5000)


class WhatIfIn(Strict):
    """A stored period to re-evaluate (nothing is written)."""

    start: datetime
    end: datetime


class WhatIfOut(BaseModel):
    """What the proposed set would have raised over the period."""

    limit_set: str
    start: str
    end: str
    readings: int
    excursions: int
    per_tag: dict[str, dict[str, Any]]
    seconds: float


def limit_set_out(request: Request, ls: LimitSet, status: str) -> LimitSetOut:
    """A limit set version as the API shows it."""
    rid = f"{ls.id}@v{ls.version}"
    m = manifest_out(request, "limit_set", rid)
    return from_record(
        LimitSetOut,
        ls,
        status=status,
        effective_from=iso(ls.effective_from_us),
        limits=[t.to_dict() for t in ls.limits],
        record_id=rid,
        content_sha256=m.current_sha256 or "",
        signatures=m,
    )


@router.get("/api/limit-sets", response_model=list[LimitSetOut], tags=["limits"])
def limit_sets(request: Request, who: Principal = READ) -> list[LimitSetOut]:
    """Every version (in force, proposed, superseded, rejected), newest first."""
    return [limit_set_out(request, ls, st) for ls, st in services_of(request).limit_sets.history()]


@router.post(
    "/api/limit-sets",
    response_model=LimitSetOut,
    status_code=201,
    tags=["limits"],
    responses=BAD_REQUEST,
)
def propose(body: ProposalIn, request: Request, who: Principal = CONFIGURE) -> LimitSetOut:
    """Propose a new version; a QA approver (not you) approves it by signing it."""
    require_person(who, request)
    try:
        entries = tuple(TagLimits.from_dict(e.model_dump()) for e in body.limits)
    except (KeyError, TypeError, ValueError) as exc:
        raise HTTPException(400, f"limits: {exc}") from None
    stored = services_of(request).limit_sets.propose(who.id, body.reason, entries)
    return limit_set_out(request, stored, "proposed")


@router.post(
    "/api/limit-sets/{set_id}/{version}/what-if",
    response_model=WhatIfOut,
    tags=["limits"],
    responses={**BAD_REQUEST, **NOT_FOUND},
)
def what_if_route(
    set_id: str, version: Version, body: WhatIfIn, request: Request, who: Principal = READ
) -> WhatIfOut:
    """Re-evaluate stored readings against a limit set version; writes nothing."""
    w = services_of(request).limit_sets.what_if(
        set_id, version, request_us(body.start), request_us(body.end)
    )
    per_tag = {
        tag: {
            "excursions": {c.value: k for c, k in s.excursions.items()},
            "seconds_beyond": {c.value: round(v / 1e6, 3) for c, v in s.time_beyond_us.items()},
        }
        for tag, s in w.result.summary.items()
    }
    return WhatIfOut(
        limit_set=f"{w.limit_set.id} v{w.limit_set.version}",
        start=iso(w.start_us) or "",
        end=iso(w.end_us) or "",
        readings=w.readings,
        excursions=len(w.result.excursions),
        per_tag=per_tag,
        seconds=round(w.seconds, 3),
    )


@router.post(
    "/api/limit-sets/{set_id}/{version}/reject",
    response_model=LimitSetOut,
    tags=["limits"],
    responses={**BAD_REQUEST, **NOT_FOUND},
)
def reject(
    set_id: str, version: Version, body: CancelReasonIn, request: Request, who: Principal = APPROVE
) -> LimitSetOut:
    """Reject a proposed version, with a reason."""
    require_person(who, request)
    ls = services_of(request).limit_sets.reject(who.id, set_id, version, body.reason)
    return limit_set_out(request, ls, "rejected")


# -- batches -----------------------------------------------------------------------------


class BatchOut(BaseModel):
    """A batch (from the equipment's batch tag, or started through the API by the MES)."""

    id: str
    product: str
    equipment: list[str]
    rooms: list[str]
    start: str
    end: str | None
    in_progress: bool
    deviations: list[str]


class BatchIn(Strict):
    """Start a batch (MES or operator)."""

    id: str = Field(max_length=64, pattern=BATCH_ID.pattern, description=BATCH_ID_RULE)
    product: str = Field(min_length=1, max_length=200)
    equipment: list[str] = Field(default_factory=list, max_length=50)
    rooms: list[str] = Field(min_length=1, max_length=50)
    start: datetime | None = None
    reason: str = Field("", max_length=2000)


def batch_out(request: Request, b: Batch) -> BatchOut:
    """A batch with the deviations that name it."""
    devs = services_of(request).deviations.for_batch(b)
    return from_record(
        BatchOut,
        b,
        equipment=list(b.equipment),
        rooms=list(b.rooms),
        start=iso(b.start_us) or "",
        end=iso(b.end_us),
        in_progress=b.end_us is None,
        deviations=[d.id for d in devs],
    )


@router.get("/api/batches", response_model=list[BatchOut], tags=["batches"])
def batches(request: Request, who: Principal = READ) -> list[BatchOut]:
    """Every batch, newest first."""
    return [batch_out(request, b) for b in services_of(request).batches.list()]


@router.post(
    "/api/batches",
    response_model=BatchOut,
    status_code=201,
    tags=["batches"],
    responses=BAD_REQUEST,
)
def start_batch(body: BatchIn, request: Request, who: Principal = ACK) -> BatchOut:
    """Start a batch in rooms and on equipment (the MES may do this with its token)."""
    b = services_of(request).batches.start(
        who.actor,
        body.id,
        body.product,
        body.rooms,
        body.equipment,
        request_us(body.start),
        body.reason,
    )
    return batch_out(request, b)


@router.post(
    "/api/batches/{batch_id}/end",
    response_model=BatchOut,
    tags=["batches"],
    responses={**BAD_REQUEST, **NOT_FOUND},
)
def end_batch(
    batch_id: str, body: CancelReasonIn, request: Request, who: Principal = ACK
) -> BatchOut:
    """End a batch now."""
    b = services_of(request).batches.end(who.actor, batch_id, reason=body.reason)
    return batch_out(request, b)
