"""Batch release review: the compiled review with readiness, the PDF report, the evidence
package, signed decisions, and the excursion history."""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from gmp_edge.api.audit_routes import ManifestOut, manifest_out
from gmp_edge.api.models import AUTH, CONFLICT, NOT_FOUND, Password, Responses, Strict, UserId
from gmp_edge.api.records import from_record
from gmp_edge.api.review_models import BatchReviewDocument
from gmp_edge.api.security import (
    APPROVE,
    READ,
    READ_AUDIT,
    Principal,
    reauthenticate,
    services_of,
)
from gmp_edge.api.streaming import stream_writes
from gmp_edge.api.times import request_us
from gmp_edge.csvcell import neutralise_row
from gmp_edge.release.decisions import Decision, review_sha256
from gmp_edge.review.model import BatchReview
from gmp_edge.timefmt import iso

router = APIRouter(tags=["release"], responses=AUTH)
F = TypeVar("F", bound=Callable[..., Any])
#: what a downloaded file is, by its name's ending
FILE_TYPES = {".pdf": "application/pdf", ".zip": "application/zip"}


def _download(path: str, media_type: str, refusals: Responses = NOT_FOUND) -> Callable[[F], F]:
    """The decorator of a route that answers with a file of ``media_type`` (its kind by
    its ending: ``FILE_TYPES``), or with one of ``refusals`` (404 unless told)."""
    responses = {**NOT_FOUND, **refusals, 200: {"content": {media_type: {}}}}
    return router.get(path, response_class=FileResponse, responses=responses)


def _review(request: Request, batch_id: str) -> BatchReview:
    return services_of(request).release.review(batch_id)


class DecisionOut(BaseModel):
    """A recorded decision with its signature manifest."""

    id: str
    decision: Decision
    comment: str
    decided_by: str
    decided: str
    review_sha256: str
    blockers: int
    signatures: ManifestOut


class ReviewOut(BaseModel):
    """The compiled review with its readiness, the hash to sign against, and the decisions."""

    review: BatchReviewDocument = Field(description="the compiled review, as the compiler wrote it")
    review_sha256: str = Field(description="send it back with a decision")
    decisions: list[DecisionOut]


def _decisions(request: Request, batch_id: str) -> list[DecisionOut]:
    return [
        from_record(
            DecisionOut,
            d,
            decided=iso(d.decided_us) or "",
            signatures=manifest_out(request, "batch_decision", d.id),
        )
        for d in services_of(request).release.decisions_on(batch_id)
    ]


@router.get("/api/batches/{batch_id}/review", response_model=ReviewOut, responses=NOT_FOUND)
def batch_review(
    batch_id: str,
    request: Request,
    traces: bool = Query(False, description="include the downsampled trace of every tag"),
    who: Principal = READ_AUDIT,
) -> ReviewOut:
    """Everything that happened in the batch's rooms and equipment, and release readiness."""
    compiled = _review(request, batch_id)
    r = compiled.to_dict(traces=traces)
    digest = review_sha256(r if not traces else compiled.to_dict())
    return ReviewOut(
        review=BatchReviewDocument.model_validate(r),
        review_sha256=digest,
        decisions=_decisions(request, batch_id),
    )


@_download("/api/batches/{batch_id}/report.pdf", "application/pdf")
def batch_report(batch_id: str, request: Request, who: Principal = READ_AUDIT) -> FileResponse:
    """The batch environmental-monitoring report (PDF) for the batch dossier."""
    decisions = [
        {"name": s.printed_name, "meaning": s.meaning, "time": s.signed_at, "valid": s.valid}
        for d in _decisions(request, batch_id)
        for s in d.signatures.signatures
    ]
    services_of(request).release.review(batch_id)  # 404 before a temporary folder exists
    exports = services_of(request).exports
    return _file_answer(
        f"EM-report-{batch_id}.pdf",
        lambda path: exports.batch_report(who.actor, batch_id, path, decisions),
    )


@_download("/api/batches/{batch_id}/evidence.zip", "application/zip", CONFLICT)
def batch_evidence(batch_id: str, request: Request, who: Principal = READ_AUDIT) -> FileResponse:
    """The signed evidence package (verify offline: `gmp-edge evidence verify FILE`)."""
    exports = services_of(request).exports
    return _file_answer(
        f"evidence-{batch_id}.zip", lambda path: exports.evidence_package(who.actor, batch_id, path)
    )


@router.get(
    "/api/batches/{batch_id}/readings.csv",
    response_class=StreamingResponse,
    responses={**NOT_FOUND, 200: {"content": {"text/csv": {}}}},
)
def batch_readings(batch_id: str, request: Request, who: Principal = READ_AUDIT) -> Response:
    """The raw data of the batch: every reading of the tags in its rooms and equipment in
    its window, all columns of the original record, in commit order, streamed. The same
    bytes as ``readings.csv`` in the evidence package (which adds hashes and a signature)."""
    from gmp_edge.evidence.readings_csv import write_readings

    x = services_of(request).exports.batch_readings(who.actor, batch_id)

    def produce(write: Callable[[bytes], None]) -> None:
        try:
            write_readings(x.conns, x.tag_ids, x.start_us, x.end_us, write)
        finally:
            for c in x.conns:
                c.close()

    return StreamingResponse(
        stream_writes(produce),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="readings-{batch_id}.csv"'},
    )


@_download("/api/deviations/{dev_id}/report.pdf", "application/pdf")
def deviation_report(dev_id: str, request: Request, who: Principal = READ_AUDIT) -> FileResponse:
    """The deviation investigation file (PDF): evidence with its trace, alarm history,
    investigation, signatures with their validity, and the record's audit trail."""
    services_of(request).deviations.get(dev_id)  # 404 before a temporary folder exists
    exports = services_of(request).exports
    return _file_answer(
        f"investigation-{dev_id}.pdf",
        lambda path: exports.investigation_file(who.actor, dev_id, path),
    )


def _file_answer(name: str, write: Callable[[Path], object]) -> FileResponse:
    """A file written by ``write`` into a temporary folder, served and then deleted (also
    when writing it fails); its media type follows from its name's ending."""
    suffix = Path(name).suffix
    # the caller's ids name the download, never a file here: a 16,000-character batch id
    # must be a 404, not a file name the disk refuses
    tmp = Path(tempfile.mkdtemp(prefix="gmp-edge-")) / f"download{suffix}"
    media_type = FILE_TYPES[suffix]
    try:
        write(tmp)
    except BaseException:
        _cleanup(tmp)
        raise
    return FileResponse(
        tmp, media_type=media_type, filename=name, background=BackgroundTask(_cleanup, tmp)
    )


def _cleanup(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()


class DecisionIn(Strict):
    """Release, reject or hold, signed: the password is asked again."""

    decision: Decision
    comment: str = Field(min_length=1, max_length=10_000)
    review_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the review you saw")
    user_id: str = UserId
    password: str = Password


@router.get("/api/batches/{batch_id}/decisions", response_model=list[DecisionOut])
def batch_decisions(
    batch_id: str, request: Request, who: Principal = READ_AUDIT
) -> list[DecisionOut]:
    """Every decision on the batch with its signatures (and their validity)."""
    return _decisions(request, batch_id)


@router.post(
    "/api/batches/{batch_id}/decision",
    response_model=DecisionOut,
    status_code=201,
    responses={**NOT_FOUND, **CONFLICT, 401: {"description": "password wrong: nothing recorded"}},
)
def decide(
    batch_id: str, body: DecisionIn, request: Request, who: Principal = APPROVE
) -> DecisionOut:
    """Record and sign a decision on the review you saw (meaning: responsibility): the
    decision and its signature are one record; if either is refused, nothing is recorded."""
    signer = reauthenticate(
        request, who, body.user_id, body.password, "batch", batch_id, "not decided"
    )
    d = services_of(request).release.decide(
        signer, batch_id, body.decision, body.comment, body.review_sha256
    )
    (out,) = [x for x in _decisions(request, batch_id) if x.id == d.id]
    return out


# -- excursion history -----------------------------------------------------------------


class ExcursionOut(BaseModel):
    """One excursion: an activation of a condition until it cleared."""

    alarm_id: str
    tag: str
    room: str
    kind: str
    level: str
    priority: str
    start: str
    end: str | None
    open: bool
    value_at_trip: float | None = Field(description="the reading that tripped the limit")
    limit: float | None = Field(description="the limit crossed, in the tag's unit")
    limit_set: str | None = Field(description="limit-set version in force: <id>@v<n>")
    acknowledged_by: str | None = Field(description="user id (null: not acknowledged)")
    ack_comment: str | None = Field(description="the acknowledgement comment")
    deviation_id: str | None = Field(description="the deviation raised for it (null: none)")


class ExcursionPage(BaseModel):
    """A page of the excursion history."""

    total: int
    offset: int
    items: list[ExcursionOut]


@router.get(
    "/api/excursions",
    response_model=ExcursionPage,
    responses={**NOT_FOUND, 400: {"description": "bad filter"}, 200: {"content": {"text/csv": {}}}},
)
def excursion_history(
    request: Request,
    room: str | None = Query(None, max_length=64),
    tag: str | None = Query(None, max_length=300),
    level: Literal["alert", "action", "monitoring", "oot"] | None = None,
    status: Literal["open", "closed"] | None = None,
    batch: str | None = Query(None, max_length=64, description="the batch's window and scope"),
    start: datetime | None = Query(None, description="ISO 8601 with zone"),
    end: datetime | None = Query(None, description="ISO 8601 with zone"),
    offset: int = Query(0, ge=0, le=10_000_000),
    limit: int = Query(100, ge=1, le=10_000),
    format: Literal["json", "csv"] = "json",
    who: Principal = READ,
) -> Any:
    """Search excursions by room, tag, level, batch, time and status; page; export CSV."""
    items = services_of(request).history.excursions(
        room=room,
        tag=tag,
        level=level,
        status=status,
        batch=batch,
        start_us=request_us(start),
        end_us=request_us(end),
    )
    page = [
        from_record(ExcursionOut, x, start=iso(x.start_us) or "", end=iso(x.end_us))
        for x in items[offset : offset + limit]
    ]
    if format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        fields = list(ExcursionOut.model_fields)
        w.writerow(fields)
        for x in page:
            # comments, tags and ids are text and made inert for spreadsheets; the value and
            # limit stay numbers (floats), a negative one included
            w.writerow(neutralise_row(getattr(x, f) for f in fields))
        return Response(
            buf.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="excursions.csv"'},
        )
    return ExcursionPage(total=len(items), offset=offset, items=page)
