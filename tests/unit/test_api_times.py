"""Every route that takes a time refuses one the store cannot hold (before 1970, from 9999 on)
with the same 400 the process-validation route gives, and a time without a zone with 400."""

from __future__ import annotations

import warnings

import pytest

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.edge.api_wiring import build_api
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.identity.roles import Role

from .conftest import small_plant

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

BEFORE_EPOCH = "1969-12-31T23:59:59Z"
YEAR_9999 = "9999-06-01T00:00:00Z"
OUTSIDE = "is outside 1970-01-01 to 9999-01-01"


@pytest.fixture
def api(tmp_path):
    cfg, sha = small_plant().load(tmp_path)
    store, trail = Store(cfg.store.path), AuditTrail(cfg.store.path)
    parts = build_api(cfg, EdgeService(cfg, sha, store), trail)

    def as_role(role: Role) -> TestClient:
        name = f"t-{role.value}".replace("_", "-")
        token = parts.directory.create_token("system", name, role, "t")
        c = TestClient(parts.app, base_url="http://127.0.0.1")
        c.headers["Authorization"] = f"Bearer {token}"
        return c

    yield as_role
    parts.close()
    trail.close()
    store.close()


# (method, path, where the time goes): query parameters or the JSON body
TIMED_ROUTES = [
    ("GET", "/api/readings", "query"),
    ("GET", "/api/gaps", "query"),
    ("GET", "/api/audit", "query"),
    ("GET", "/api/alarms/history", "query"),
    ("GET", "/api/excursions", "query"),
    ("POST", "/api/limit-sets/room-limits/1/what-if", "body"),
    ("POST", "/api/batches", "body"),
]


def _request(c: TestClient, method: str, path: str, where: str, field: str, when: str):
    if where == "query":
        params = {field: when}
        if path == "/api/readings":
            params["tag"] = c.get("/api/tags").json()[0]["path"]
        return c.request(method, path, params=params)
    body: dict[str, object] = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}
    if path == "/api/batches":
        body = {"id": "B-T-1", "product": "P", "rooms": ["r"]}
    body[field] = when
    return c.request(method, path, json=body)


@pytest.mark.parametrize("method, path, where", TIMED_ROUTES)
@pytest.mark.parametrize("when", [BEFORE_EPOCH, YEAR_9999])
def test_a_time_the_store_cannot_hold_is_refused_with_400(api, method, path, where, when):
    c = api(Role.OPERATOR if path == "/api/batches" else Role.QA_APPROVER)
    r = _request(c, method, path, where, "start", when)
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == f"{when.replace('Z', '+00:00')!r} {OUTSIDE}"


@pytest.mark.parametrize("method, path, where", TIMED_ROUTES)
def test_year_10000_and_a_time_without_zone_are_refused(api, method, path, where):
    c = api(Role.OPERATOR if path == "/api/batches" else Role.QA_APPROVER)
    assert _request(c, method, path, where, "start", "10000-01-01T00:00:00Z").status_code == 422
    r = _request(c, method, path, where, "start", "2026-01-01T00:00:00")
    assert r.status_code == 400 and "has no time zone" in r.json()["detail"], r.text
