"""Fuzz the whole OpenAPI surface (schemathesis): no 5xx, responses match the schema, and
nothing succeeds without credentials; hostile numbers, times and strings in every field are
no 5xx either."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.edge.api_wiring import build_api
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.gaps import GapOpened
from gmp_edge.historian.store import Store
from gmp_edge.identity.roles import Permission, Role, allowed
from tests.security.test_hostile_numbers import (
    SENTINEL,
    Fill,
    Slot,
    Spec,
    encode,
    permission_of,
    place,
    slots_of,
    values_for,
)

from .conftest import TEMP, small_plant


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    cfg, sha = small_plant().load(tmp_path_factory.mktemp("fuzz"))
    db = cfg.store.path
    store = Store(db)
    svc = EdgeService(cfg, sha, store)  # not running: the API reads what the store holds
    t0 = now_us() - 600 * 1_000_000
    tag = TEMP
    store.commit(
        [Reading(tag, 20.0 + i / 100, Quality.GOOD, t0 + i * 1_000_000) for i in range(300)]
        + [Reading.bad(tag, t0 + 301 * 1_000_000, "FC03 0+8: no answer", Cause.NETWORK)],
        [GapOpened(tag, t0 + 301 * 1_000_000, Cause.NETWORK, "no answer")],
    )
    trail = AuditTrail(db)
    parts = build_api(cfg, svc, trail)
    parts.directory.create_first_administrator("admin", "Ada Admin", "Vault-Keeper-2026!")
    tokens = {
        role: parts.directory.create_token(
            "admin", f"fuzz-{role.value}".replace("_", "-"), role, "fuzzing"
        )
        for role in FUZZED_ROLES
    }
    yield schemathesis.openapi.from_asgi("/openapi.json", parts.app), tokens
    parts.close()
    trail.close()
    store.close()


# the roles whose tokens the schema is fuzzed with (one test each: each stays well inside
# the per-test timeout on a busy machine)
FUZZED_ROLES = (Role.ADMINISTRATOR, Role.QA_APPROVER, Role.ENGINEER)

# The examples are derived from a fixed seed (and no example database is kept between runs):
# every run sends the same requests, so a failure is a finding that reproduces, never a
# one-off draw. New request shapes come from changing the API or the schema.
FUZZ = settings(
    deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)

# open without credentials: the page shell, sign-in, and the API's own description
PUBLIC = {("POST", "/api/session")}


def _authorised_fuzz(operation, token):
    @given(case=operation.as_strategy())
    @settings(FUZZ, max_examples=25)
    def fuzz(case):
        # A schema cannot say "start before end" or "a configured tag"; those 4xx
        # answers are checked by name in tests/system/test_service.py.
        response = case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"},
            excluded_checks=[positive_data_acceptance],
        )
        assert response.status_code < 500

    return fuzz


def _anonymous_fuzz(operation):
    key = (operation.method.upper(), operation.path)

    @given(case=operation.as_strategy())
    @settings(FUZZ, max_examples=15)
    def fuzz(case):
        response = case.call()
        assert response.status_code < 500
        if key not in PUBLIC:
            assert response.status_code == 401, (key, response.status_code, response.text)
        else:
            assert response.status_code in (401, 422, 429), response.text

    return fuzz


@pytest.mark.parametrize("role", FUZZED_ROLES, ids=[r.value for r in FUZZED_ROLES])
def test_no_server_errors_and_schema_conformance(api_schema, role):
    # Driven by hand, not by the schemathesis pytest plugin, which does not load under
    # pytest 9 (it reads a private pytest attribute).
    schema, tokens = api_schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        _authorised_fuzz(operation, tokens[role])()


def test_nothing_succeeds_without_credentials(api_schema):
    schema, _ = api_schema
    for result in schema.get_all_operations():
        _anonymous_fuzz(result.ok())()


# --- hostile values (issue 14) ------------------------------------------------------------------
# Schemathesis draws a well-formed case for each operation; a schema-local ``flatmap_case``
# hook then puts one hostile value into one numeric, date-time or string field of it: raw
# JSON tokens in a body (NaN, Infinity, 1e309, 2**64 ...), sent as the body's bytes since
# the HTTP client refuses to encode NaN, and texts in a query or path. The slots and values
# are those of tests/security/test_hostile_numbers.py, whose walk sends every value to every
# slot; here they travel inside generated requests, with generated neighbours.


def _with_hostile(case: Any, slot: Slot, value: str, spec: Spec) -> Any:
    """A copy of ``case`` with ``value`` in ``slot``."""
    hostile = case.derive()
    if slot.location == "query":
        hostile.query = {**(case.query or {}), slot.name: value}
    elif slot.location == "path":
        hostile.path_parameters = {**case.path_parameters, slot.name: value}
    else:
        body = case.body if isinstance(case.body, dict) else {}
        body = json.loads(json.dumps(body))  # a deep copy the sentinel can go into
        fill = Fill("admin")
        place(body, slot.steps, SENTINEL, lambda sub, key: fill.value(spec, sub, str(key)))
        hostile.body = encode(body, value)
        hostile.media_type = "application/json"
    return hostile


@pytest.fixture(scope="module")
def hostile_schema(api_schema):
    schema, tokens = api_schema
    hostile = schemathesis.openapi.from_asgi("/openapi.json", schema.app)
    spec = Spec(schema.app.openapi())
    by_operation: dict[tuple[str, str], list[tuple[Slot, str]]] = defaultdict(list)
    for slot in slots_of(spec):
        by_operation[(slot.method, slot.path)] += [(slot, v) for v in values_for(slot)]

    @hostile.hook
    def flatmap_case(ctx, case):
        variants = by_operation[(ctx.operation.method.upper(), ctx.operation.path)]
        return st.sampled_from(variants).map(lambda sv: _with_hostile(case, *sv, spec))

    return hostile, tokens, by_operation


def _token_for(app: Any, method: str, path: str, tokens: dict[Role, str]) -> dict[str, str]:
    need = permission_of(app, method, path)
    if need == "public":
        return {}
    for role in FUZZED_ROLES:
        if need is None or (isinstance(need, Permission) and allowed(role, need)):
            return {"Authorization": f"Bearer {tokens[role]}"}
    raise AssertionError(f"no fuzzed role may call {method} {path}")


def _hostile_fuzz(operation, headers: dict[str, str]):
    @given(case=operation.as_strategy())
    @settings(FUZZ, max_examples=12)
    def fuzz(case):
        response = case.call(headers=headers)
        assert response.status_code < 500, (
            case.method,
            case.formatted_path[:200],
            case.query,
            case.body[:300] if isinstance(case.body, bytes) else None,
            response.status_code,
            response.text[:300],
        )

    return fuzz


def test_hostile_values_in_generated_requests_are_never_a_server_error(hostile_schema):
    schema, tokens, by_operation = hostile_schema
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed = [op for op in operations if by_operation[(op.method.upper(), op.path)]]
    assert len(fuzzed) >= 40
    for operation in fuzzed:
        headers = _token_for(schema.app, operation.method.upper(), operation.path, tokens)
        _hostile_fuzz(operation, headers)()
