"""The audit trail (query by record, user and time; export; chain head and verification),
audit-trail reviews, and electronic signatures with their manifests."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gmp_edge.api.models import (
    AUTH,
    BAD_REQUEST,
    CONFLICT,
    NOT_FOUND,
    Password,
    Reason,
    Strict,
    UserId,
)
from gmp_edge.api.records import from_record
from gmp_edge.api.security import (
    READ_AUDIT,
    REVIEW,
    SIGNED_IN,
    Principal,
    access_of,
    reauthenticate,
    require_person,
    services_of,
)
from gmp_edge.api.times import request_us
from gmp_edge.clock import now_us
from gmp_edge.services.audit_reviews import AuditReview
from gmp_edge.signatures.manifest import Meaning
from gmp_edge.timefmt import iso, utc_datetime

router = APIRouter(responses=AUTH)


class AuditEntryOut(BaseModel):
    """One audit entry: who, what, when (UTC), why, old and new value, chain hashes."""

    seq: int = Field(description="position in the chain, from 1, without gaps")
    ts: str = Field(description="when it happened, ISO 8601 UTC")
    actor: str = Field(description="the user id, or 'system' for the edge service itself")
    action: str = Field(description="what was done, e.g. deviation.close, batch.start")
    record_type: str = Field(description="the kind of record changed, e.g. deviation, batch")
    record_id: str = Field(description="which record")
    reason: str = Field(description="why, as the person gave it (empty where none is asked)")
    old: object = Field(description="the changed fields before (null on creation)")
    new: object = Field(description="the changed fields after")
    prev_hash: str = Field(description="SHA-256 of the previous entry (zeros for the first)")
    hash: str = Field(description="SHA-256 over the previous hash and this entry's content")


class ChainOut(BaseModel):
    """The chain head (anchor it elsewhere) and, when verified, the verdict."""

    entries: int
    head_seq: int
    head_sha256: str
    at: str
    intact: bool | None = None
    first_break_seq: int | None = None
    break_reason: str | None = None


def entries_out(request: Request, **filters: object) -> list[AuditEntryOut]:
    """Audit entries matching ``filters``, as the API shows them."""
    trail = access_of(request).trail
    return [
        from_record(AuditEntryOut, e, ts=iso(e.ts_us) or "")
        for e in trail.entries(**filters)  # type: ignore[arg-type]
    ]


@router.get("/api/audit", response_model=list[AuditEntryOut], tags=["audit"], responses=BAD_REQUEST)
def audit_entries(
    request: Request,
    record_type: str | None = Query(None, max_length=64),
    record_id: str | None = Query(None, max_length=256),
    actor: str | None = Query(None, max_length=128, description="user id, token:<id>, system:…"),
    start: datetime | None = Query(None, description="ISO 8601 with zone"),
    end: datetime | None = Query(None, description="ISO 8601 with zone"),
    limit: int = Query(1000, ge=1, le=100_000),
    who: Principal = READ_AUDIT,
) -> list[AuditEntryOut]:
    """Audit entries by record, user and time, oldest first."""
    start_us, end_us = request_us(start), request_us(end)
    if start_us is not None and end_us is not None and start_us >= end_us:
        raise HTTPException(400, "start must be before end")
    return entries_out(
        request,
        record_type=record_type,
        record_id=record_id,
        actor=actor,
        start_us=start_us,
        end_us=end_us,
        limit=limit,
    )


@router.get("/api/audit/head", response_model=ChainOut, tags=["audit"])
def audit_head(request: Request, who: Principal = READ_AUDIT) -> ChainOut:
    """The newest entry's sequence and hash: write it down to anchor the chain."""
    seq, digest = access_of(request).trail.head()
    return ChainOut(entries=seq, head_seq=seq, head_sha256=digest, at=iso(now_us()) or "")


@router.get("/api/audit/verify", response_model=ChainOut, tags=["audit"])
def audit_verify(request: Request, who: Principal = READ_AUDIT) -> ChainOut:
    """Walk the whole hash chain; names the first broken entry if any."""
    n, head, brk = access_of(request).trail.verify()
    return ChainOut(
        entries=n,
        head_seq=n,
        head_sha256=head,
        at=iso(now_us()) or "",
        intact=brk is None,
        first_break_seq=brk.seq if brk else None,
        break_reason=brk.reason if brk else None,
    )


@router.get(
    "/api/audit/export",
    tags=["audit"],
    response_class=Response,
    responses={
        200: {
            "content": {"text/csv": {}, "application/json": {}},
            "description": "the whole trail with its head",
        }
    },
)
def audit_export(
    request: Request,
    format: Literal["csv", "json"] = "csv",
    who: Principal = READ_AUDIT,
) -> Response:
    """The whole trail as CSV or JSON; the chain head is in the headers (and audited)."""
    trail = access_of(request).trail
    seq, digest = trail.head()
    trail.append(
        who.actor,
        "audit.exported",
        "audit",
        "trail",
        f"export as {format}",
        None,
        {"head_seq": seq, "head_sha256": digest},
    )
    body = trail.export(format)
    stamp = utc_datetime(now_us()).strftime("%Y%m%dT%H%M%SZ")  # UTC, like every record
    return Response(
        body,
        media_type="text/csv" if format == "csv" else "application/json",
        headers={
            "Content-Disposition": f'attachment; filename="audit-{stamp}.{format}"',
            "X-Audit-Head-Seq": str(seq),
            "X-Audit-Head-Sha256": digest,
        },
    )


# -- signatures ------------------------------------------------------------------------


class SignatureOut(BaseModel):
    """One signature as the manifest shows it: name, UTC time, meaning, and validity."""

    id: int
    signer: str
    printed_name: str
    meaning: Meaning
    signed_at: str
    reason: str
    content_sha256: str
    valid: bool
    validity: str


class ManifestOut(BaseModel):
    """Every signature on a record, checked against the record as it is now."""

    record_type: str
    record_id: str
    current_sha256: str | None
    signatures: list[SignatureOut]


class SignIn(Strict):
    """A signature: the signer gives user id and password again (21 CFR 11.200)."""

    record_type: str = Field(max_length=64)
    record_id: str = Field(max_length=256)
    content_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="hash of the content shown to the signer"
    )
    meaning: Meaning
    reason: str = Field("", max_length=2000)
    user_id: str = UserId
    password: str = Password


def manifest_out(request: Request, record_type: str, record_id: str) -> ManifestOut:
    """The manifest of a record, for every route that shows the record."""
    m = services_of(request).signing.manifest(record_type, record_id)
    return ManifestOut(
        record_type=record_type,
        record_id=record_id,
        current_sha256=m.content_sha256,
        signatures=[
            SignatureOut(
                id=s.signature.id,
                signer=s.signature.signer,
                printed_name=s.signature.printed_name,
                meaning=s.signature.meaning,
                signed_at=iso(s.signature.ts_us) or "",
                reason=s.signature.reason,
                content_sha256=s.signature.content_sha256,
                valid=s.valid,
                validity=s.why,
            )
            for s in m.signatures
        ],
    )


@router.get("/api/signatures", response_model=ManifestOut, tags=["signatures"], responses=NOT_FOUND)
def signatures_of(
    request: Request,
    record_type: str = Query(max_length=64),
    record_id: str = Query(max_length=256),
    who: Principal = SIGNED_IN,
) -> ManifestOut:
    """The signature manifest of one record."""
    return manifest_out(request, record_type, record_id)


@router.post(
    "/api/signatures",
    response_model=ManifestOut,
    status_code=201,
    tags=["signatures"],
    responses={**NOT_FOUND, **CONFLICT},
)
def sign(body: SignIn, request: Request, who: Principal = SIGNED_IN) -> ManifestOut:
    """Sign a record. The password is asked again; the signed content's hash must match."""
    signer = reauthenticate(
        request,
        who,
        body.user_id,
        body.password,
        body.record_type,
        body.record_id,
        "signature not executed",
    )
    services_of(request).signing.sign(
        signer, body.record_type, body.record_id, body.content_sha256, body.meaning, body.reason
    )
    return manifest_out(request, body.record_type, body.record_id)


# -- audit-trail reviews ---------------------------------------------------------------


class ReviewIn(Strict):
    """A review of the audit trail over a period that has ended."""

    start: datetime
    end: datetime
    comment: str = Field(min_length=1, max_length=10_000)


class ReviewAmendIn(Strict):
    """A corrected comment, with why."""

    comment: str = Field(min_length=1, max_length=10_000)
    reason: str = Reason


class ReviewOut(BaseModel):
    """A review record with its signature manifest and its own audit trail."""

    id: str
    period_start: str
    period_end: str
    first_seq: int | None = Field(description="first audit entry of the period (null: none)")
    last_seq: int | None = Field(description="last audit entry of the period (null: none)")
    last_hash: str | None = Field(description="hash of the last entry, pinning what was seen")
    entries: int = Field(description="audit entries in the period")
    comment: str = Field(description="the reviewer's findings")
    created_by: str = Field(description="user id of the reviewer")
    created: str
    updated: str
    content_sha256: str
    signatures: ManifestOut
    audit_trail: list[AuditEntryOut]


def _review_out(request: Request, r: AuditReview) -> ReviewOut:
    m = manifest_out(request, "audit_review", r.id)
    return from_record(
        ReviewOut,
        r,
        period_start=iso(r.start_us) or "",
        period_end=iso(r.end_us) or "",
        created=iso(r.created_us) or "",
        updated=iso(r.updated_us) or "",
        content_sha256=m.current_sha256 or "",
        signatures=m,
        audit_trail=entries_out(request, record_type="audit_review", record_id=r.id),
    )


@router.get("/api/audit-reviews", response_model=list[ReviewOut], tags=["audit"])
def list_reviews(request: Request, who: Principal = READ_AUDIT) -> list[ReviewOut]:
    """Every audit-trail review, newest first."""
    return [_review_out(request, r) for r in services_of(request).audit_reviews.list()]


@router.get(
    "/api/audit-reviews/{review_id}",
    response_model=ReviewOut,
    tags=["audit"],
    responses=NOT_FOUND,
)
def get_review(review_id: str, request: Request, who: Principal = READ_AUDIT) -> ReviewOut:
    """One review with its signatures (and whether each still applies) and its trail."""
    return _review_out(request, services_of(request).audit_reviews.get(review_id))


@router.post(
    "/api/audit-reviews",
    response_model=ReviewOut,
    status_code=201,
    tags=["audit"],
    responses=BAD_REQUEST,
)
def create_review(body: ReviewIn, request: Request, who: Principal = REVIEW) -> ReviewOut:
    """Record a review of the trail over a period (then sign it: review, approval)."""
    require_person(who, request)
    start_us, end_us = request_us(body.start), request_us(body.end)
    assert start_us is not None and end_us is not None
    r = services_of(request).audit_reviews.create(who.actor, start_us, end_us, body.comment)
    return _review_out(request, r)


@router.patch(
    "/api/audit-reviews/{review_id}",
    response_model=ReviewOut,
    tags=["audit"],
    responses={**BAD_REQUEST, **NOT_FOUND},
)
def amend_review(
    review_id: str, body: ReviewAmendIn, request: Request, who: Principal = REVIEW
) -> ReviewOut:
    """Amend the comment; signatures given before show as no longer valid."""
    require_person(who, request)
    r = services_of(request).audit_reviews.amend(who.actor, review_id, body.comment, body.reason)
    return _review_out(request, r)
