"""FastAPI application: the live data routes and the status page; assembles the routers.

Every route needs a signed-in person or a machine token (see ``gmp_edge.api.security``); only
sign-in, the status page shell and the OpenAPI document are open."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from datetime import datetime
from enum import Enum
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from gmp_edge.api import (
    admin_routes,
    audit_routes,
    monitoring_routes,
    release_routes,
    session_routes,
    validation_routes,
)
from gmp_edge.api.live_json import SharedAnswer, ValueFragments, accepts_gzip, quality_name
from gmp_edge.api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gmp_edge.api.metrics import registry_of, render, service_families
from gmp_edge.api.middleware import BodyLimit, SecurityHeaders
from gmp_edge.api.models import AUTH, ErrorOut, Responses
from gmp_edge.api.monitoring_routes import AlarmOut, alarm_out
from gmp_edge.api.records import from_record
from gmp_edge.api.runtime import RoomInfo, Runtime, TagInfo
from gmp_edge.api.security import CSRF_HEADER, READ, SAFE_METHODS, Access, cookie_scheme
from gmp_edge.api.strict_json import StrictJson
from gmp_edge.api.times import request_us
from gmp_edge.api.unavailable import add_store_unavailable
from gmp_edge.clock import now_us
from gmp_edge.collector.reading import Reading
from gmp_edge.historian.store import StoredReading
from gmp_edge.services import Conflict, GmpServices, Invalid, NotFound, Refused, WorkflowError
from gmp_edge.timefmt import iso

MAX_RAW = 100_000


#: Files the pages load (an allow-list: nothing else under /static is served).
STATIC_ASSETS = {
    "status.js": "text/javascript",
    "status.css": "text/css",
    "batch.js": "text/javascript",
    "batch.css": "text/css",
    "signin.js": "text/javascript",  # the batch and validation pages' sign-in form
}
#: Swagger UI and ReDoc as files of the fastapi-offline package, served from this box under
#: DOCS_STATIC: an offline edge box still shows its API docs, and no script from a CDN runs
#: in the API's origin (where it could read the session's CSRF token). An allow-list again.
DOCS_PACKAGE = "fastapi_offline"
DOCS_STATIC = "/static/docs"
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
#: the OpenAPI security scheme of the CSRF header (see declare_csrf)
CSRF_SCHEME = "csrfToken"
# The docs pages' CSP: scripts from this origin only. Swagger UI is started by the one inline
# script FastAPI writes, allowed by its hash (added per page); ReDoc writes its styles at run
# time (styled-components) and searches in a worker it makes from a blob.
SWAGGER_CSP = (
    "default-src 'none'; script-src 'self' {hashes}; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
REDOC_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "unknown tag"}}
BAD_RANGE: Responses = {400: {"model": ErrorOut, "description": "timestamp or range not usable"}}


class DeviceOut(BaseModel):
    """A device's connection state and collection health."""

    id: str
    protocol: str
    endpoint: str
    state: str
    last_good: str | None = Field(description="last poll with at least one good value (UTC)")
    lag_s: float | None = Field(description="seconds since last_good")
    last_error: str | None
    last_error_at: str | None
    connects: int
    disconnects: int
    polls: int
    failed_polls: int
    missed_polls: int
    readings: int
    backfilled: int
    last_poll_ms: float | None


class HealthReasonOut(BaseModel):
    """One thing that keeps health from ok."""

    code: str = Field(
        description="stable code: store_failing, task_died, device_down, tag_bad, "
        "clock_unsynchronised, clock_unknown, monitoring_failing, notifications_dropped"
    )
    severity: Literal["degraded", "failed"]
    text: str = Field(description="what is wrong, for a person")


class AlarmSummaryOut(BaseModel):
    """The plant's alarm state, beside (never part of) the box's health."""

    active: int = Field(description="alarms not back to normal")
    unacknowledged: int = Field(description="of those, not acknowledged")


class HealthOut(BaseModel):
    """Service health: is the box doing its job? The verdict with every reason for it,
    then store, monitoring, notifications and devices; the plant's alarms beside it."""

    status: Literal["starting", "ok", "degraded", "failed"] = Field(
        description="failed: the record is at risk (store refuses commits, a task died); "
        "degraded: part of it is missing or less trustworthy; ok: neither"
    )
    reasons: list[HealthReasonOut] = Field(description="why it is not ok (empty when ok)")
    alarms: AlarmSummaryOut
    site: str
    now: str
    started: str | None
    config_sha256: str
    store: dict[str, object]
    monitoring: dict[str, object] = Field(
        description="limit set in force, evaluation lag and latency, alarms, deviations"
    )
    notifications: dict[str, object] | None = Field(description="per-sink delivery counters")
    devices: list[DeviceOut]


class ValueOut(BaseModel):
    """One reading."""

    tag: str
    ts: str = Field(description="time the value belongs to: device time if known, else edge (UTC)")
    ts_edge: str
    ts_source: str | None
    value: float | str | None
    quality: Literal["good", "uncertain", "bad"]
    message: str | None
    cause: str | None = None


class BucketOut(BaseModel):
    """Downsampled window."""

    start: str = Field(description="window start, ISO 8601 UTC")
    min: float | None = Field(description="lowest Good value (null: none in the window)")
    max: float | None = Field(description="highest Good value")
    mean: float | None = Field(description="mean of the Good values")
    count: int = Field(description="readings in the window, of any quality")
    good: int = Field(description="Good readings")
    uncertain: int = Field(description="Uncertain readings")
    bad: int = Field(description="Bad readings (a failed read, with its message)")


class ReadingsOut(BaseModel):
    """Readings of one tag over a range: raw or downsampled."""

    tag: str
    start: str
    end: str
    window_s: float | None
    truncated: bool = False
    readings: list[ValueOut] | None = None
    buckets: list[BucketOut] | None = None


class GapOut(BaseModel):
    """A period without values for a tag, with its cause."""

    id: int
    tag: str
    start: str
    end: str | None
    open: bool
    cause: str
    message: str


class RoomStatusOut(BaseModel):
    """A room with its latest values, for the live page."""

    room: RoomInfo
    tags: int = Field(description="tags configured in the room")
    values: list[ValueOut]
    production_state: str | None = Field(description="at_rest / in_operation, if known")
    batch: str | None = Field(description="the batch running in the room, if any")
    alarms: list[AlarmOut] = Field(description="alarms of the room not in normal state")


def _value(r: Reading | StoredReading) -> ValueOut:
    """A reading as the API shows it, live (collector) or stored (historian) alike."""
    cause = r.cause.value if isinstance(r.cause, Enum) else r.cause
    return from_record(
        ValueOut,
        r,
        ts=iso(r.ts_us) or "",
        ts_edge=iso(r.ts_edge_us) or "",
        ts_source=iso(r.ts_source_us),
        quality=quality_name(r.quality),
        cause=cause,
    )


# a RoomStatusOut written with no values: the place the values' text goes (no field before
# "values" is a list named so, and a string cannot hold the unescaped quotes)
_NO_VALUES = '"values":[]'


def _json_text(text: str) -> Response:
    """A JSON answer already written as text in the shape of its declared model."""
    return Response(text, media_type="application/json")


def _shared(request: Request, shared: SharedAnswer, text: str) -> Response:
    """A shared live answer, gzipped (once per answer) for a caller that accepts gzip."""
    if not accepts_gzip(request.headers.get("accept-encoding", "")):
        return _json_text(text)
    return Response(
        shared.gzipped(text),
        media_type="application/json",
        headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
    )


def _range(start: datetime | None, end: datetime | None, default_s: int = 3600) -> tuple[int, int]:
    end_us = request_us(end) if end else now_us()
    start_us = request_us(start) if start else end_us - default_s * 1_000_000
    if start_us >= end_us:
        raise HTTPException(400, f"start {start} is not before end {end}")
    return start_us, end_us


# what a refused workflow means over HTTP, decided here once for every route
_WORKFLOW_STATUS: tuple[tuple[type[WorkflowError], int], ...] = (
    (NotFound, 404),
    (Invalid, 400),
    (Conflict, 409),
    (Refused, 403),
)


async def refused_workflow(request: Request, exc: Exception) -> JSONResponse:
    """A refused GMP workflow as an HTTP answer: nothing was written."""
    assert isinstance(exc, WorkflowError)
    code = next((c for kind, c in _WORKFLOW_STATUS if isinstance(exc, kind)), 400)
    return JSONResponse({"detail": exc.details or str(exc)}, status_code=code)


def inline_script_hashes(html: str) -> str:
    """CSP sources allowing exactly the inline scripts of ``html`` (by SHA-256), no others."""
    scripts = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in scripts
    )


@functools.cache
def docs_asset(name: str) -> bytes:
    """One of DOCS_ASSETS as shipped by fastapi-offline (read once: Swagger UI is 1.5 MB)."""
    return resources.files(DOCS_PACKAGE).joinpath("static", name).read_bytes()


def declare_csrf(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare in the OpenAPI document the CSRF header that a session's writes need.

    ``Access.principal`` refuses a write made with the session cookie unless
    ``X-CSRF-Token`` holds the session's token. The document says so: an API key in that
    header which every write requires together with the cookie (a bearer token needs none),
    so Swagger UI's Authorize takes the token and "Try it out" sends it.
    """
    cookie = cookie_scheme.scheme_name
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[CSRF_SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": CSRF_HEADER,
        "description": "The session's CSRF token (`csrf_token` in the answer of `POST` or "
        "`GET /api/session`), needed with the session cookie on every write.",
    }
    for operations in schema.get("paths", {}).values():
        for method, op in operations.items():
            if method.upper() in SAFE_METHODS or not isinstance(op, dict) or "security" not in op:
                continue
            op["security"] = [
                {**need, CSRF_SCHEME: []} if cookie in need else need for need in op["security"]
            ]
    return schema


def add_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` from local files, each with a strict CSP, and
    the OpenAPI document with the CSRF header declared."""
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{DOCS_STATIC}/favicon.png"
    swagger = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{app.title} API",
        swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
        swagger_favicon_url=favicon,
        # no badge fetched from the online validator: nothing leaves the box
        swagger_ui_parameters={"validatorUrl": None},
    ).body
    swagger_csp = SWAGGER_CSP.format(hashes=inline_script_hashes(bytes(swagger).decode()))
    redoc = get_redoc_html(
        openapi_url=openapi_url,
        title=f"{app.title} API",
        redoc_js_url=f"{DOCS_STATIC}/redoc.standalone.js",
        redoc_favicon_url=favicon,
        with_google_fonts=False,
    ).body

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger, headers={"content-security-policy": swagger_csp})

    @app.get("/redoc", response_class=HTMLResponse, include_in_schema=False)
    def redoc_page() -> HTMLResponse:
        return HTMLResponse(redoc, headers={"content-security-policy": REDOC_CSP})

    @app.get(f"{DOCS_STATIC}/{{name}}", include_in_schema=False)
    def docs_file(name: str) -> Response:
        kind = DOCS_ASSETS.get(name)
        if kind is None:
            raise HTTPException(404, "no such file")
        return Response(docs_asset(name), media_type=kind)

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = declare_csrf(default_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    rt: Runtime,
    access: Access,
    services: GmpServices,
    tls: bool = False,
    live_max_age_s: float = 0.0,
) -> FastAPI:
    """The API over a running service, with authentication and authorisation on every route.

    ``live_max_age_s``: how long an answer of every tag's newest value (``/api/latest``
    without a tag filter, ``/api/status/rooms``) is given again to whoever asks (0: made for
    each request)."""
    app = FastAPI(
        title="gmp-edge",
        version="0.1.0",
        description=(
            "Edge data acquisition for GMP plants. Every timestamp is UTC (ISO 8601, `Z`). "
            "Tag paths are ISA-95 style `site/area/room/equipment/signal`, passed as the "
            "`tag` query parameter.\n\nAuthentication: people sign in with `POST /api/session` "
            "(session cookie, and the CSRF token in `X-CSRF-Token` on writes); machines send "
            "`Authorization: Bearer <token>`. What a caller may do depends on its role."
        ),
        # served by add_docs from local files, with a CSP, instead of FastAPI's CDN pages
        docs_url=None,
        redoc_url=None,
    )
    add_docs(app)
    app.state.access = access
    app.state.services = services
    app.add_exception_handler(WorkflowError, refused_workflow)
    add_store_unavailable(app)  # full disk, busy or damaged store: 503 with the reason
    # no CORS middleware on purpose: only pages served from here may call the API
    app.add_middleware(StrictJson)  # inside the body limit: it reads bounded bodies only
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders, hsts=tls)
    live = APIRouter(dependencies=[READ], responses=AUTH)
    tags_by_path = {t.path: t for t in rt.tag_infos()}
    all_paths = sorted(tags_by_path)
    paths_by_room: dict[str, list[str]] = {}
    for t in tags_by_path.values():
        paths_by_room.setdefault(t.room, []).append(t.path)
    fragments = ValueFragments()
    latest_all = SharedAnswer(live_max_age_s)
    rooms_all = SharedAnswer(live_max_age_s)

    def known(tag: str) -> str:
        if tag not in tags_by_path:
            raise HTTPException(404, f"unknown tag {tag!r}")
        return tag

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files("gmp_edge.api").joinpath("static/status.html").read_text("utf-8")

    @app.get("/batch", response_class=HTMLResponse, include_in_schema=False)
    def batch_page() -> str:
        return resources.files("gmp_edge.api").joinpath("static/batch.html").read_text("utf-8")

    @app.get("/static/{name}", include_in_schema=False)
    def static_asset(name: str) -> Response:
        # the pages' scripts and styles live in files so the CSP can forbid inline code
        kind = STATIC_ASSETS.get(name)
        if kind is None:
            raise HTTPException(404, "no such file")
        text = resources.files("gmp_edge.api").joinpath(f"static/{name}").read_text("utf-8")
        return Response(text, media_type=kind)

    @live.get("/api/health", response_model=HealthOut, tags=["status"])
    def health() -> HealthOut:
        """Per-device connection state, last good reading, lag; store health."""
        now = now_us()
        devices = [
            from_record(
                DeviceOut,
                s,
                id=s.device_id,
                state=s.state.value,
                last_good=iso(s.last_good_us),
                lag_s=None if s.last_good_us is None else round((now - s.last_good_us) / 1e6, 3),
                last_error_at=iso(s.last_error_us),
            )
            for s in rt.device_statuses()
        ]
        store = rt.store_health()
        status_of = services.status
        mon = status_of.monitoring()
        notify = status_of.notifications()
        verdict = status_of.health(rt.health_inputs(now), notify)
        return HealthOut(
            status=verdict.status,
            reasons=[
                HealthReasonOut(code=r.code, severity=r.severity, text=r.text)
                for r in verdict.reasons
            ],
            alarms=AlarmSummaryOut(**status_of.alarm_summary()),
            site=rt.site_id,
            now=iso(now) or "",
            started=iso(rt.started_us),
            config_sha256=rt.config_sha256,
            store=store,
            monitoring=mon,
            notifications=notify,
            devices=devices,
        )

    # a registry per app (not prometheus-client's global one): two apps in a process, as in
    # the tests, each expose their own service
    registry = registry_of(lambda: service_families(rt, services.status))

    @live.get(
        "/metrics",
        response_class=PlainTextResponse,
        tags=["status"],
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
    )
    def metrics() -> Response:
        """The service's own health for Prometheus (scrape with a viewer token)."""
        return Response(render(registry), media_type=METRICS_CONTENT_TYPE)

    @live.get("/api/tags", response_model=list[TagInfo], tags=["tags"])
    def tags(room: str | None = None, kind: str | None = None) -> list[TagInfo]:
        """Configured tags, optionally filtered by room or kind."""
        return [
            t
            for t in tags_by_path.values()
            if (room is None or t.room == room) and (kind is None or t.kind == kind)
        ]

    @live.get("/api/rooms", response_model=list[RoomInfo], tags=["tags"])
    def rooms() -> list[RoomInfo]:
        """Configured rooms with grade / ISO class and adjacency."""
        return rt.room_infos()

    @live.get("/api/latest", response_model=list[ValueOut], tags=["readings"], responses=NOT_FOUND)
    def latest(request: Request, tag: Annotated[list[str] | None, Query()] = None) -> Response:
        """Newest value of each tag (all tags, or the ones named)."""
        wanted = [known(t) for t in tag] if tag else None

        def make() -> str:
            live = rt.latest_readings()
            out: list[Reading | StoredReading] = []
            for path in wanted or all_paths:
                r: Reading | StoredReading | None = live.get(path)
                if r is None:
                    r = rt.store.latest(path)
                if r is not None:
                    out.append(r)
            return fragments.array(out)

        if wanted:
            return _json_text(make())
        return _shared(request, latest_all, latest_all.get(make))

    @live.get("/api/status/rooms", response_model=list[RoomStatusOut], tags=["status"])
    def room_status(request: Request) -> Response:
        """Each room with the latest value of its tags (what the live page shows)."""

        def make() -> str:
            live = rt.latest_readings()
            states = services.status.rooms()
            out = []
            for room in rt.room_infos():
                in_room = paths_by_room.get(room.id, ())
                state = states.get(room.id)
                head = RoomStatusOut(
                    room=room,
                    tags=len(in_room),
                    values=[],
                    production_state=state.production_state if state else None,
                    batch=state.batch if state else None,
                    alarms=[alarm_out(a) for a in state.alarms] if state else [],
                ).model_dump_json()
                # the values written once per reading (live_json), spliced in for the empty list
                values = fragments.array(live[p] for p in in_room if p in live)
                out.append(head.replace(_NO_VALUES, f'"values":{values}', 1))
            return "[" + ",".join(out) + "]"

        return _shared(request, rooms_all, rooms_all.get(make))

    @live.get(
        "/api/readings",
        response_model=ReadingsOut,
        tags=["readings"],
        responses={**NOT_FOUND, **BAD_RANGE},
    )
    def readings(
        tag: str,
        start: datetime | None = Query(None, description="ISO 8601 with zone; default end - 1 h"),
        end: datetime | None = Query(None, description="ISO 8601 with zone; default now"),
        window_s: float | None = Query(
            None, ge=0.001, le=86_400, description="downsample to min/max/mean per window"
        ),
        limit: int = Query(10_000, ge=1, le=MAX_RAW),
    ) -> ReadingsOut:
        """Readings of one tag over ``[start, end)``: raw, or downsampled when ``window_s``."""
        known(tag)
        start_us, end_us = _range(start, end)
        out = ReadingsOut(
            tag=tag, start=iso(start_us) or "", end=iso(end_us) or "", window_s=window_s
        )
        if window_s is not None:
            buckets = rt.store.downsample(tag, start_us, end_us, int(window_s * 1_000_000))
            out.buckets = [from_record(BucketOut, b, start=iso(b.start_us) or "") for b in buckets]
            return out
        rows = rt.store.readings(tag, start_us, end_us, limit + 1)
        out.truncated = len(rows) > limit
        out.readings = [_value(r) for r in rows[:limit]]
        return out

    @live.get(
        "/api/gaps",
        response_model=list[GapOut],
        tags=["readings"],
        responses={**NOT_FOUND, **BAD_RANGE},
    )
    def gaps(
        tag: str | None = None,
        start: datetime | None = Query(None, description="ISO 8601 with zone; default end - 24 h"),
        end: datetime | None = Query(None, description="ISO 8601 with zone; default now"),
    ) -> list[GapOut]:
        """Gaps (with cause) overlapping the range, for one tag or all."""
        if tag is not None:
            known(tag)
        start_us, end_us = _range(start, end, 86_400)
        return [
            from_record(
                GapOut, g, start=iso(g.start_us) or "", end=iso(g.end_us), open=g.end_us is None
            )
            for g in rt.store.gaps(tag, start_us, end_us)
        ]

    app.include_router(live)
    app.include_router(session_routes.router)
    app.include_router(admin_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(monitoring_routes.router)
    app.include_router(release_routes.router)
    app.include_router(validation_routes.router)
    return app
