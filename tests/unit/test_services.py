"""The service layer: one workflow per GMP action, a record and its signature together.

Against real stores (SQLite) and the real API where the entry point matters; the API,
MQTT and the CLI all reach the same services, so the rules are tested once here.
"""

from __future__ import annotations

import pytest

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.deviations.batch import batch_id_problem
from gmp_edge.deviations.lifecycle import raise_deviation
from gmp_edge.deviations.model import Classification, Source
from gmp_edge.identity.roles import Role
from gmp_edge.identity.users import User
from gmp_edge.release.decisions import Decision, review_sha256
from gmp_edge.services import Conflict, Invalid, NotFound, Refused

from .conftest import COMPRESSION, CORRIDOR, PRESS
from .test_api_security import PW, env, signed_in, uid

__all__ = ["env"]  # the fixture, shared with the API security tests

APPROVER = uid(Role.QA_APPROVER)


def person(user_id: str, role: Role) -> User:
    return User(user_id, f"Pat {user_id}", role, True, False, 0, 0)


# -- the transaction a workflow opens --------------------------------------------------


def _count(trail: AuditTrail) -> int:
    return len(list(trail.entries()))


def test_nested_transactions_commit_together_or_not_at_all(tmp_path):
    trail = AuditTrail(tmp_path / "s.db")
    try:
        before = _count(trail)
        with pytest.raises(RuntimeError), trail.atomic():
            trail.append("a", "x.one", "x", "1")  # a book's own transaction, nested
            trail.append("a", "x.two", "x", "2")
            raise RuntimeError("the signature is refused")
        assert _count(trail) == before  # neither entry landed
        with trail.atomic():
            trail.append("a", "x.one", "x", "1")
            with pytest.raises(RuntimeError), trail.atomic():
                trail.append("a", "x.inner", "x", "2")
                raise RuntimeError("undo the inner block only")
            trail.append("a", "x.three", "x", "3")
        assert [e.action for e in trail.entries()][-2:] == ["x.one", "x.three"]
        assert trail.verify()[2] is None
    finally:
        trail.close()


# -- batches: one rule for every entry point ------------------------------------------


@pytest.mark.parametrize(
    ("batch_id", "ok"),
    [
        ("B-2026-0001", True),
        ("G.2026:42_a", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("B/1", False),  # would not address /api/batches/{id}/...
        ("-B", False),
        ("", False),
        (" B", False),
        ("B#1", False),  # the decision record id is <batch>#<n>
        ("B+1", False),  # an MQTT wildcard
        (None, False),
    ],
)
def test_batch_id_rule(batch_id, ok):
    assert (batch_id_problem(batch_id) is None) is ok


def test_batch_start_checks_id_and_rooms_whatever_the_caller(env):
    parts, _ = env
    batches = parts.services.batches
    with pytest.raises(Invalid, match="unknown rooms"):
        batches.start("mqtt:mes:mes", "B-1", "P", ["warehouse"])  # as the MQTT link calls it
    with pytest.raises(Invalid, match="not valid"):
        batches.start("mqtt:mes:mes", "B/1", "P", [COMPRESSION])
    with pytest.raises(Invalid, match="at least one room"):
        batches.start("mqtt:mes:mes", "B-1", "P", [])
    b = batches.start("mqtt:mes:mes", "B-1", "P", [COMPRESSION, CORRIDOR], [PRESS], 1_000)
    assert b.start_us == 1_000 and b.rooms == (COMPRESSION, CORRIDOR)
    with pytest.raises(Invalid, match="exists already"):
        batches.start("api", "B-1", "P", [COMPRESSION])
    with pytest.raises(NotFound):
        batches.end("api", "B-2")
    assert batches.end("api", "B-1", 2_000).end_us == 2_000
    with pytest.raises(Invalid, match="ended already"):
        batches.end("api", "B-1", 3_000)


def test_the_books_refuse_a_bad_batch_id_too(env):
    parts, _ = env
    from gmp_edge.deviations.batch import Batch

    with pytest.raises(ValueError, match="not valid"):
        parts.engine.books.batches.start("x", Batch("a b", "P", (), (COMPRESSION,), 1, None))


# -- release decision: decision and signature are one record --------------------------


def test_a_refused_signature_records_no_decision(env):
    parts, trail = env
    services = parts.services
    end = now_us()
    services.batches.start("api", "B-1", "P", [COMPRESSION], start_us=end - 60_000_000)
    services.batches.end("api", "B-1", end)

    def digest_now() -> str:
        return review_sha256(services.release.review("B-1").to_dict())

    digest = digest_now()
    operator = person(uid(Role.OPERATOR), Role.OPERATOR)  # may not take responsibility
    with pytest.raises(Refused, match="not decided"):
        services.release.decide(operator, "B-1", Decision.HOLD, "wait for QC", digest)
    assert services.release.decisions_on("B-1") == []
    refused = [e for e in trail.entries() if e.action == "signature.refused"]
    assert refused and refused[-1].record_id == "B-1"
    assert not [e for e in trail.entries() if e.action == "batch.decision_recorded"]
    approver = person(APPROVER, Role.QA_APPROVER)
    digest = digest_now()  # the refusal is part of the batch's audit trail
    with pytest.raises(Conflict, match="review changed"):
        services.release.decide(approver, "B-1", Decision.HOLD, "wait", "0" * 64)
    d = services.release.decide(approver, "B-1", Decision.HOLD, "wait for QC", digest)
    (sig,) = services.signing.register.signatures("batch_decision", d.id)
    assert sig.signer == APPROVER and sig.meaning.value == "responsibility"
    assert trail.verify()[2] is None


# -- deviation closure: closed and signed, or not closed -------------------------------


def test_closing_a_deviation_the_approver_raised_leaves_it_open_and_unsigned(env):
    """Before the service layer the route closed the deviation and then answered
    403 "closed, but not signed": a closed deviation without its approval signature."""
    parts, trail = env
    dev, tr = raise_deviation(
        deviation_id="DEV-T-0001",
        title="Door left open",
        source=Source.MANUAL,
        proposed_classification=Classification.MINOR,
        discovered_us=now_us(),
        actor=APPROVER,
        description="found by the approver on a walk-through",
    )
    parts.engine.books.deviations.create(dev, tr)
    reviewer = signed_in(parts, uid(Role.QA_REVIEWER))
    r = reviewer.post(
        f"/api/deviations/{dev.id}/investigate",
        json={"expected_version": 1, "investigator": uid(Role.QA_REVIEWER), "note": "looking"},
    )
    assert r.status_code == 200, r.text
    approver = signed_in(parts, APPROVER)
    r = approver.post(
        f"/api/deviations/{dev.id}/close",
        json={
            "expected_version": 2,
            "final_classification": "minor",
            "impact_assessment": "none",
            "root_cause": "door closer broken",
            "user_id": APPROVER,
            "password": PW,
        },
    )
    assert r.status_code == 403, r.text
    assert "not closed" in r.json()["detail"] and "separation of duties" in r.json()["detail"]
    after = parts.services.deviations.get(dev.id)
    assert after.status.value == "under_investigation" and after.version == 2
    assert parts.services.signing.register.signatures("deviation", dev.id) == []
    assert [e.action for e in trail.entries() if e.record_id == dev.id][-1] == "signature.refused"


def test_workflow_refusals_map_to_one_http_answer_each(env):
    parts, _ = env
    operator = signed_in(parts, uid(Role.OPERATOR))
    r = operator.post("/api/batches", json={"id": "B-1", "product": "P", "rooms": ["nowhere"]})
    assert r.status_code == 400 and "unknown rooms" in r.json()["detail"]
    # a mistyped press would leave its parameters out of the review: refused, nothing kept
    body = {"id": "B-1", "product": "P", "rooms": [COMPRESSION], "equipment": ["press-1O"]}
    r = operator.post("/api/batches", json=body)
    assert r.status_code == 400 and "unknown equipment 'press-1O'" in r.json()["detail"]
    assert "press-01" in r.json()["detail"]
    assert operator.get("/api/batches").json() == []
    body["equipment"] = ["press-01"]
    assert operator.post("/api/batches", json=body).status_code == 201
    r = operator.post("/api/batches/B-9/end", json={"reason": "done"})
    assert r.status_code == 404
    r = operator.post("/api/alarms/acknowledge", json={"alarm_id": "nope", "comment": "seen"})
    assert r.status_code == 404
    r = operator.post("/api/batches", json={"id": "B/1", "product": "P", "rooms": [COMPRESSION]})
    assert r.status_code == 422  # the same rule, declared in the OpenAPI schema
