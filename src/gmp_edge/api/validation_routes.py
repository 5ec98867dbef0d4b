"""Process validation summary and equipment qualification status (read-only), and the page
that shows them to inspectors and QA.

Both answers are compiled on request from the stored record (``gmp_edge.review.validation``); they
need the permission a batch review needs. The software summarises; a person concludes.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from gmp_edge.api.models import AUTH, ErrorOut, Responses
from gmp_edge.api.security import READ_AUDIT, Principal, services_of
from gmp_edge.api.times import request_us
from gmp_edge.review.validation import Policy
from gmp_edge.services.history import MAX_BATCHES

router = APIRouter(responses=AUTH)

# the page loads its script and style from here: nothing inline, nothing else
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# as everywhere in this API: a time without a zone or an empty range is 400, a value of
# the wrong type or outside its bounds 422 (FastAPI's validation)
BAD_QUERY: Responses = {
    400: {"model": ErrorOut, "description": "a time or range is not usable; the detail says why"}
}


class _Out(BaseModel):
    # an answer field the model does not declare is a bug, not something to drop quietly
    model_config = ConfigDict(extra="forbid")


class CapabilityOut(_Out):
    """Capability against the validated range (action limits).

    Cp/Cpk: within sigma (average moving range / 1.128, inside batches); Pp/Ppk: overall
    sample standard deviation. One-sided range: Cp and Pp are null. Null indices: fewer
    than 2 Good values, no spread, or no range.
    """

    lsl: float | None = Field(description="lower limit of the range (action low)")
    usl: float | None = Field(description="upper limit of the range (action high)")
    n: int = Field(description="Good values used")
    mean: float | None = Field(description="mean")
    sigma_within: float | None = Field(description="within sigma (MR-bar / 1.128)")
    sigma_overall: float | None = Field(description="overall sample standard deviation")
    cp: float | None = Field(description="Cp: (USL - LSL) / 6 sigma within")
    cpk: float | None = Field(description="Cpk: distance to the nearer limit / 3 sigma within")
    pp: float | None = Field(description="Pp: as Cp with the overall sigma")
    ppk: float | None = Field(description="Ppk: as Cpk with the overall sigma")


class DeviationLinkOut(_Out):
    """A deviation naming the batch whose evidence is this CPP."""

    id: str
    title: str
    status: str
    classification: str = Field(description="final class, else the proposed one")


class BatchFiguresOut(_Out):
    """One CPP in one batch: the figures its batch review shows."""

    batch_id: str
    product: str
    start_us: int
    start: str
    end_us: int
    end: str
    n: int = Field(description="Good values in the batch period")
    completeness_pct: float | None
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    capability: CapabilityOut | None = Field(
        description="against the range in force at the batch end; null: no range"
    )
    limit_set: str | None = Field(description="limit-set version the range comes from")
    excursions: int = Field(description="alert and action excursions (alarm activations)")
    action_excursions: int
    deviations: list[DeviationLinkOut]
    below_target: bool = Field(description="Cpk below the target")
    below_minimum: bool = Field(description="Cpk below 1.0: not capable")
    note: str


class TrendOut(_Out):
    """How the batch means move, batch after batch."""

    points: int = Field(description="batches with a mean")
    slope_per_batch: float | None = Field(description="least-squares slope (3+ batches)")
    slope_pct_of_range: float | None
    run: int = Field(description="length of the last rising or falling run of batch means")
    direction: Literal["rising", "falling"] | None
    drift: bool = Field(description="run of at least trend_run (Nelson rule 3: 6)")
    batches_to_limit: float | None = Field(description="until the fitted line meets a limit")
    limit_side: Literal["usl", "lsl"] | None
    text: str


class CppOut(_Out):
    """One press CPP across the batches."""

    tag: str
    room: str
    equipment: str
    signal: str
    unit: str
    lsl: float | None = Field(description="validated range in force at the latest batch's end")
    usl: float | None
    limit_set: str | None
    batches: list[BatchFiguresOut]
    overall: CapabilityOut = Field(description="all batches pooled against the latest range")
    batches_with_index: int
    below_target: int = Field(description="batches with Cpk below the target")
    below_minimum: int = Field(description="batches with Cpk below 1.0")
    trend: TrendOut
    verdict: Literal["capable", "marginal", "not capable", "insufficient data"]
    text: str = Field(
        description="the verdict's reasons; the software summarises, a person concludes"
    )
    notes: list[str]


class BatchRefOut(_Out):
    """A batch the summary covers."""

    id: str
    product: str
    start_us: int
    start: str
    end_us: int
    end: str
    equipment: list[str]


class ExcludedOut(_Out):
    """A batch of the period left out, and why."""

    batch_id: str
    product: str
    reason: str


class PeriodOut(_Out):
    """The period asked for (null: open)."""

    start_us: int | None
    start: str | None
    end_us: int | None
    end: str | None


class PolicyOut(_Out):
    """Thresholds the verdicts used."""

    cpk_target: float
    cpk_minimum: float
    min_batches: int
    trend_run: int


class ProcessValidationOut(_Out):
    """Continued process verification of the press CPPs across batches."""

    product: str | None
    period: PeriodOut
    compiled_us: int
    compiled: str
    policy: PolicyOut
    batches: list[BatchRefOut]
    excluded: list[ExcludedOut]
    cpps: list[CppOut]
    text: str
    notes: list[str]


class OutOfStatusOut(_Out):
    """A batch that used the equipment while its qualification or calibration had lapsed."""

    batch_id: str
    product: str
    start_us: int
    start: str
    end_us: int | None
    end: str | None
    qualification_status: str
    calibration_status: str
    reason: str


class EquipmentOut(_Out):
    """A piece of equipment: qualification and calibration now, and lapsed uses."""

    id: str
    kind: str
    room: str
    name: str
    qualified_until: str | None = Field(description="ISO date, valid through that UTC day")
    calibration_due: str | None
    qualification_status: Literal["qualified", "expired", "not_recorded"]
    calibration_status: Literal["in_date", "overdue", "not_recorded"]
    qualification_days_remaining: int | None = Field(description="negative: days since")
    calibration_days_remaining: int | None
    batches_used: int
    out_of_status: list[OutOfStatusOut]
    text: str


@router.get(
    "/api/process-validation",
    response_model=ProcessValidationOut,
    tags=["validation"],
    responses=BAD_QUERY,
    summary="Process validation summary (continued process verification of press CPPs)",
)
def process_validation_summary(
    request: Request,
    product: str | None = Query(
        None, min_length=1, max_length=200, description="exact product name; omit for all"
    ),
    start: datetime | None = Query(None, description="ISO 8601 with zone; omit for all history"),
    end: datetime | None = Query(None, description="ISO 8601 with zone; omit for now"),
    cpk_target: float = Query(
        1.33, ge=1.0, le=3.0, description="Cpk below it is marginal (below 1.0: not capable)"
    ),
    min_batches: int = Query(
        3, ge=1, le=100, description="batches with an index needed to call a CPP capable"
    ),
    max_batches: int = Query(
        MAX_BATCHES, ge=1, le=500, description="at most this many newest ended batches"
    ),
    who: Principal = READ_AUDIT,
) -> ProcessValidationOut:
    """Per press CPP: each ended batch's n, mean, std, min, max, Cp/Cpk/Pp/Ppk against the
    validated range in force at its end, excursions and linked deviations; across the
    batches the pooled capability, batches below the Cpk target, the trend of the batch
    means and a verdict (capable / marginal / not capable / insufficient data). Batches are
    those in progress at some time in ``[start, end)``. The software summarises the stored
    record; a person concludes whether the process remains in its validated state."""
    s, e = request_us(start, "start"), request_us(end, "end")
    if s is not None and e is not None and s >= e:
        raise HTTPException(400, f"start {start} is not before end {end}")
    summary = services_of(request).history.process_validation(
        product, s, e, Policy(cpk_target=cpk_target, min_batches=min_batches), max_batches
    )
    return ProcessValidationOut.model_validate(summary.to_dict())


@router.get(
    "/api/equipment",
    response_model=list[EquipmentOut],
    tags=["validation"],
    summary="Equipment qualification and calibration status",
)
def equipment(request: Request, who: Principal = READ_AUDIT) -> list[EquipmentOut]:
    """Each configured piece of equipment: kind, room, qualified until, calibration due,
    status now (qualified / expired / not recorded; in date / overdue / not recorded) with
    the days remaining, and the batches that used it while its qualification or
    calibration had lapsed (the batch review's rule; dates hold through their UTC day)."""
    return [
        EquipmentOut.model_validate(e.to_dict()) for e in services_of(request).history.equipment()
    ]


# -- the page ------------------------------------------------------------------------------


def _static(name: str) -> str:
    return resources.files("gmp_edge.api").joinpath(f"static/{name}").read_text("utf-8")


@router.get("/validation", response_class=HTMLResponse, include_in_schema=False)
def validation_page() -> HTMLResponse:
    """The process validation and equipment page (data needs a sign-in)."""
    return HTMLResponse(_static("validation.html"), headers={"content-security-policy": PAGE_CSP})


@router.get("/validation.js", include_in_schema=False)
def validation_script() -> Response:
    """The page's script (a file, so the page's CSP can forbid inline scripts)."""
    return Response(_static("validation.js"), media_type="text/javascript")


@router.get("/validation.css", include_in_schema=False)
def validation_style() -> Response:
    """The page's style sheet."""
    return Response(_static("validation.css"), media_type="text/css")
