"""The batch review's response model: it describes the compiled document exactly.

A review is compiled from a real store (the evidence tests' batch with its gap, deviation and
limit set, plus temperature limits and an acknowledged action excursion recorded the way the
monitoring engine records them) and validated through the models, which refuse unknown
fields: a field the compiler gains, or loses, without the models fails here. The JSON the
route serves must equal the compiled document.
"""

from __future__ import annotations

import copy
import json
import warnings
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import time_machine
from pydantic import ValidationError

from gmp_edge.alarms import machine as am
from gmp_edge.alarms.model import AlarmEvent, ConditionKind, Priority
from gmp_edge.api.review_models import (
    EXAMPLE,
    BatchReviewDocument,
    BatchReviewTag,
    BatchReviewTracedTag,
)
from gmp_edge.edge.api_wiring import build_api
from gmp_edge.edge.service import EdgeService
from gmp_edge.identity.roles import Role
from gmp_edge.limits.model import LimitSet, TagLimits, Threshold
from gmp_edge.review.gather import review_batch

from .conftest import TEMP
from .test_evidence import NOW, T0, Env, populate
from .test_review_compile import TAG, lset, review, tag_input, tr

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

S = 1_000_000


def at(us: int) -> datetime:
    return datetime.fromtimestamp(us / S, UTC)


def as_json(doc: dict[str, Any]) -> Any:
    """The document as a client reads it."""
    return json.loads(json.dumps(doc))


def round_trip(doc: dict[str, Any]) -> BatchReviewDocument:
    """Validate ``doc`` and check the model writes it back unchanged."""
    model = BatchReviewDocument.model_validate(doc)
    assert model.model_dump(mode="json", by_alias=True) == as_json(doc)
    return model


def excursion(e: Env) -> None:
    """Temperature limits in force from 20 s into the batch, and an action excursion as the
    monitoring engine records it (the evidence tests' alarm has an id of its own, which the
    review does not read as a limit alarm)."""
    limits = TagLimits(TEMP, alert_high=Threshold(23.0), action_high=Threshold(24.0))
    proposed = e.books.limit_sets.propose(
        "eng.eve", LimitSet("LS-comp", 0, 0, "temperature", "eng.eve", None, (limits,)), "SOP"
    )
    e.books.limit_sets.approve("qa.ann", "LS-comp", proposed.version, T0 + 20 * S)
    alarm = am.new_alarm(f"{TEMP}#action_high", TEMP, ConditionKind.ACTION_HIGH, Priority.HIGH)
    alarm, on = am.activate(alarm, T0 + 40 * S, value=24.5, limit=24.0, limit_set_id="LS-comp")
    alarm, ack = am.acknowledge(alarm, T0 + 50 * S, user="op.olga", comment="doors closed")
    alarm, off = am.clear(alarm, T0 + 70 * S, value=23.0)
    e.books.alarms.save(alarm, [on, ack, off])


@pytest.fixture
def served(tmp_path):
    """The evidence tests' batch B-1 in a real store, with a service run and an action
    excursion, behind the API."""
    e = Env(tmp_path)
    sha = "c0ffee" * 10 + "c0ff"
    e.store.start_run(sha, [t.path for t in e.cfg.tags], at_us=T0 - 60 * S)
    populate(e)
    excursion(e)
    parts = build_api(e.cfg, EdgeService(e.cfg, sha, e.store), e.trail)
    parts.directory.create_first_administrator("admin", "Ada Admin", "Vault-Keeper-2026!")
    token = parts.directory.create_token("admin", "qa-bot", Role.QA_REVIEWER, "review model")
    c = TestClient(parts.app, base_url="http://127.0.0.1")
    c.headers["Authorization"] = f"Bearer {token}"
    yield e, c
    parts.close()
    e.close()


@pytest.mark.parametrize("traces", [False, True])
def test_the_served_review_is_the_compiled_document(served, traces):
    e, c = served
    with time_machine.travel(at(NOW), tick=False):  # the route compiles "now": make it NOW
        r = c.get("/api/batches/B-1/review", params={"traces": traces})
        compiled = review_batch(e.store, e.books, e.trail, e.cfg, "B-1", NOW)
    assert r.status_code == 200, r.text
    doc = compiled.to_dict(traces=traces)
    model = round_trip(doc)
    assert r.json()["review"] == as_json(doc)
    # the document holds what the models describe, so the check above covers real content
    temp = next(t for t in model.tags if t.tag == TEMP)
    assert type(temp) is (BatchReviewTracedTag if traces else BatchReviewTag)
    assert temp.excursions[0].level == "action" and temp.excursions[0].acknowledgements
    assert temp.gaps and temp.limits[-1].action_high == 24.0 and model.deviations
    assert [v.version for v in model.limit_sets] == [1, 2]
    assert model.config_versions and model.config_versions[0].run_id >= 1
    assert model.audit.intact and model.audit_entries and model.equipment
    assert model.readiness is not None and model.readiness.blockers
    if traces:
        assert isinstance(temp, BatchReviewTracedTag) and temp.trace is not None
        assert len(temp.trace.start_us) == len(temp.trace.mean) > 0


def test_capability_and_out_of_trend_parts_round_trip():
    rng = np.random.default_rng(1)
    press = tag_input(value=15 + 0.5 * rng.standard_normal(3600), kind="press_parameter")
    oot = tr(f"{TAG}#oot", AlarmEvent.CONDITION_ACTIVE, T0 + 5 * S, value_at_trip=21.0)
    limits = [(lset(action_low=12.0, action_high=18.0, alert_high=17.0), "approved")]
    compiled = review([press], limit_sets=limits)
    assert compiled.tags[0].capability is not None
    model = round_trip(compiled.to_dict(traces=True))
    assert model.tags[0].capability is not None and model.tags[0].capability.cpk is not None
    with_oot = round_trip(review([tag_input(transitions=[oot])]).to_dict())
    assert with_oot.tags[0].oot[0].value == 21.0


def test_a_field_the_models_do_not_describe_is_refused(served):
    e, _ = served
    doc = as_json(review_batch(e.store, e.books, e.trail, e.cfg, "B-1", NOW).to_dict())
    grown = copy.deepcopy(doc)
    temp = next(t for t in grown["tags"] if t["tag"] == TEMP)
    temp["excursions"][0]["new_field"] = 1
    with pytest.raises(ValidationError, match="new_field"):
        BatchReviewDocument.model_validate(grown)
    shrunk = copy.deepcopy(doc)
    del shrunk["audit"]["head"]
    with pytest.raises(ValidationError, match="head"):
        BatchReviewDocument.model_validate(shrunk)


def test_the_openapi_document_describes_the_review_with_an_example(served):
    _, c = served
    spec = c.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    ok = spec["paths"]["/api/batches/{batch_id}/review"]["get"]["responses"]["200"]
    out = schemas[ok["content"]["application/json"]["schema"]["$ref"].rpartition("/")[2]]
    assert out["properties"]["review"]["$ref"].endswith("/BatchReviewDocument")
    doc = schemas["BatchReviewDocument"]
    assert doc["additionalProperties"] is False
    # every field of every part says what it is
    parts = [name for name in schemas if name.startswith("BatchReview")]
    assert len(parts) > 20
    for name in parts:
        for field, prop in schemas[name]["properties"].items():
            assert prop.get("description"), (name, field)
    # the example is the compiler's form; the OpenAPI text leaves its nulls out
    [shown] = doc["examples"]
    assert shown["batch"]["id"] == EXAMPLE["batch"]["id"] and "start_us" in shown["period"]
    example = round_trip(EXAMPLE)
    assert example.tags[0].excursions and example.readiness is not None
