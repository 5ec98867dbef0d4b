"""Limits as people write them are strict typed input, in the plant file and in the API:
a misspelt key or a string where a bool or number belongs is refused with the field named."""

from __future__ import annotations

import warnings

import pytest

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.edge.api_wiring import build_api
from gmp_edge.edge.config import ConfigError
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.identity.roles import Role

from .conftest import TEMP, small_plant

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ADMIN_PW = "Vault-Keeper-2026!"
PW = "People-Pass-2026!"


# ----------------------------------------------------------------------------- plant file


def _limits_of(plant, path):
    return next(e for e in plant.data["limits"] if e["tag"] == path)


def test_toml_limit_inclusive_must_be_a_bool():
    plant = small_plant()
    _limits_of(plant, TEMP)["inclusive"] = "false"  # lax parsing would read this as False
    with pytest.raises(ConfigError) as exc:
        plant.build()
    assert any("inclusive" in p and "'false'" in p for p in exc.value.problems), exc.value


def test_toml_limit_misspelt_key_is_named():
    plant = small_plant()
    _limits_of(plant, TEMP)["action_hihg"] = 30.0
    with pytest.raises(ConfigError) as exc:
        plant.build()
    assert any("action_hihg" in p and "Extra inputs" in p for p in exc.value.problems)


def test_toml_limit_number_given_as_text_is_refused():
    plant = small_plant()
    _limits_of(plant, TEMP)["alert_high"] = "24"
    with pytest.raises(ConfigError) as exc:
        plant.build()
    assert any("alert_high" in p for p in exc.value.problems)


# ----------------------------------------------------------------------------- API proposal


@pytest.fixture
def engineer(tmp_path):
    cfg, sha = small_plant().load(tmp_path)
    store = Store(cfg.store.path)
    trail = AuditTrail(cfg.store.path)
    parts = build_api(cfg, EdgeService(cfg, sha, store), trail)
    parts.directory.create_first_administrator("admin", "Ada Admin", ADMIN_PW)
    parts.directory.create_user(
        "admin", "engineer", "Pat Engineer", Role.ENGINEER, PW, "test", must_change=False
    )
    c = TestClient(parts.app, base_url="http://127.0.0.1")
    r = c.post("/api/session", json={"user_id": "engineer", "password": PW})
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    yield c
    parts.close()
    trail.close()
    store.close()


def _current(c) -> list[dict]:
    r = c.get("/api/limit-sets")
    assert r.status_code == 200, r.text
    return [dict(t) for t in r.json()[0]["limits"]]


def _entry(limits: list[dict]) -> dict:
    return next(t for t in limits if t["tag"] == TEMP and t["action_high"] is not None)


def _errors(r) -> list[tuple[str, ...]]:
    return [tuple(str(x) for x in e["loc"]) for e in r.json()["detail"]]


def test_api_proposal_as_read_is_accepted(engineer):
    r = engineer.post("/api/limit-sets", json={"reason": "unchanged", "limits": _current(engineer)})
    assert r.status_code == 201, r.text


def test_api_proposal_inclusive_text_is_422_naming_the_field(engineer):
    limits = _current(engineer)
    e = _entry(limits)
    e["action_high"] = {"value": e["action_high"]["value"], "inclusive": "false"}
    r = engineer.post("/api/limit-sets", json={"reason": "typo", "limits": limits})
    assert r.status_code == 422, r.text
    i = limits.index(e)
    assert ("body", "limits", str(i), "action_high", "inclusive") in _errors(r)


def test_api_proposal_misspelt_key_is_422_naming_it(engineer):
    limits = _current(engineer)
    e = _entry(limits)
    e["action_hihg"] = e.pop("action_high")
    r = engineer.post("/api/limit-sets", json={"reason": "typo", "limits": limits})
    assert r.status_code == 422, r.text
    i = limits.index(e)
    assert ("body", "limits", str(i), "action_hihg") in _errors(r)


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [("grade", None, None), ("grade", "A", "grade 'A' given"), ("kind", "other", "kind 'other'")],
)
def test_api_proposal_cannot_choose_its_own_regulatory_ceiling(engineer, key, value, named):
    """Kind and grade choose the ceiling: they come from the plant configuration."""
    limits = _current(engineer)
    configured = _entry(limits)[key]
    _entry(limits)[key] = value
    r = engineer.post("/api/limit-sets", json={"reason": "dodge", "limits": limits})
    if named is None:  # left out: taken from the configuration, not dropped
        assert r.status_code == 201, r.text
        assert _entry(r.json()["limits"])[key] == configured
    else:
        assert r.status_code == 400, r.text
        assert any(named in d for d in r.json()["detail"]), r.text
