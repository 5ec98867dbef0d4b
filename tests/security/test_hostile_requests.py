"""Issue 14: hostile requests the black-box probe answered with 500, reproduced.

Bodies with NaN, Infinity or 1e309 (Python's JSON reader accepts what RFC 8259 does not),
windows below a microsecond, and times at the edges of the years a datetime can hold. Each
must be a 4xx that says what is wrong, also before sign-in.
"""

from __future__ import annotations

import warnings

import pytest

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.edge.api_wiring import build_api
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.identity.roles import Role
from tests.unit.conftest import TEMP, small_plant

with warnings.catch_warnings():  # starlette asks for httpx2, which is not on PyPI for us yet
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    cfg, sha = small_plant().load(tmp_path_factory.mktemp("hostile"))
    store = Store(cfg.store.path)
    trail = AuditTrail(cfg.store.path)
    parts = build_api(cfg, EdgeService(cfg, sha, store), trail)
    parts.directory.create_first_administrator("admin", "Ada Admin", "Vault-Keeper-2026!")
    token = parts.directory.create_token("admin", "probe", Role.ADMINISTRATOR, "probe")
    operator = parts.directory.create_token("admin", "probe-op", Role.OPERATOR, "probe")
    client = TestClient(parts.app, raise_server_exceptions=False)
    client.operator = {"Authorization": f"Bearer {operator}"}
    yield client, {"Authorization": f"Bearer {token}"}
    client.close()
    parts.close()
    trail.close()
    store.close()


HOSTILE_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e309"]


@pytest.mark.parametrize("number", HOSTILE_NUMBERS)
def test_a_hostile_number_in_the_sign_in_body_is_a_4xx(api, number) -> None:
    client, _ = api
    body = f'{{"user_id": "admin", "password": {number}}}'
    r = client.post("/api/session", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)


@pytest.mark.parametrize("number", HOSTILE_NUMBERS)
def test_a_hostile_number_in_a_signed_in_body_is_a_4xx(api, number) -> None:
    client, _ = api
    body = f'{{"id": "B-1", "product": "P", "rooms": [{number}], "equipment": []}}'
    r = client.post(
        "/api/batches",
        content=body,
        headers={**client.operator, "Content-Type": "application/json"},
    )
    assert r.status_code == 400, (r.status_code, r.text)
    assert "not a JSON number" in r.text or "beyond the range" in r.text


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2099-01-01T00:00:00Z"]
)
def test_a_batch_at_the_edge_of_the_calendar_or_in_2099_is_refused(api, when) -> None:
    client, _ = api
    room = TEMP.split("/")[2]
    body = {"id": "B-2", "product": "P", "rooms": [room], "equipment": [], "start": when}
    r = client.post("/api/batches", json=body, headers=client.operator)
    assert r.status_code == 400, (r.status_code, r.text)


@pytest.mark.parametrize("window", ["1e-9", "1e-7", "0.0000001"])
def test_a_window_below_a_microsecond_is_a_4xx(api, window) -> None:
    client, auth = api
    r = client.get("/api/readings", params={"tag": TEMP, "window_s": window}, headers=auth)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)


EDGE_TIMES = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
]


def _time_parameters(client) -> list[tuple[str, str]]:
    """(path, parameter) of every GET route with a date-time query parameter."""
    spec = client.get("/openapi.json").json()
    found = []
    for path, ops in spec["paths"].items():
        for p in ops.get("get", {}).get("parameters", []):
            schema = p.get("schema", {})
            formats = [schema.get("format")] + [a.get("format") for a in schema.get("anyOf", [])]
            if p["in"] == "query" and "date-time" in formats:
                found.append((path, p["name"]))
    return found


@pytest.mark.parametrize("value", EDGE_TIMES)
def test_times_at_the_edges_of_the_calendar_are_a_4xx_on_every_route(api, value) -> None:
    client, auth = api
    routes = _time_parameters(client)
    assert len(routes) >= 8
    for path, name in routes:
        url = path.replace("{batch_id}", "B-1").replace("{tag}", TEMP)
        r = client.get(url, params={"tag": TEMP, name: value}, headers=auth)
        assert r.status_code < 500, (path, name, r.status_code, r.text)
