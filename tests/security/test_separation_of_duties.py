"""Separation of duties, as the probe found it broken.

1. One QA approver signed both the review and the approval of an audit review: one person
   now signs a record with one meaning only, whatever version of its content.
2. An administrator's machine token created a person with the QA approver role and a
   password it knew: people, roles and tokens are now changed by a signed-in person only.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gmp_edge.identity.roles import Role
from tests.apibox import ADMIN_PW, PW, ApiBox, TestClient


@pytest.fixture
def box(tmp_path):
    b = ApiBox(tmp_path)
    b.person("qa.reviewer", Role.QA_REVIEWER)
    b.person("qa.approver", Role.QA_APPROVER)
    b.person("qa.approver2", Role.QA_APPROVER)
    yield b
    b.close()


def sign(c: TestClient, rec: dict, user: str, meaning: str):
    return c.post(
        "/api/signatures",
        json={
            "record_type": "audit_review",
            "record_id": rec["id"],
            "content_sha256": rec["content_sha256"],
            "meaning": meaning,
            "reason": "periodic audit trail review",
            "user_id": user,
            "password": PW,
        },
    )


def audit_review(box: ApiBox) -> tuple[TestClient, dict]:
    reviewer = box.signed_in("qa.reviewer")
    r = reviewer.post(
        "/api/audit-reviews",
        json={
            "start": "2020-01-01T00:00:00Z",
            "end": datetime.now(UTC).isoformat(),
            "comment": "All entries checked; no unexplained changes.",
        },
    )
    assert r.status_code == 201, r.text
    return reviewer, r.json()


def test_one_person_cannot_sign_review_and_approval_of_one_record(box):
    reviewer, rec = audit_review(box)
    approver = box.signed_in("qa.approver")
    assert sign(approver, rec, "qa.approver", "review").status_code == 201
    r = sign(approver, rec, "qa.approver", "approval")
    assert r.status_code == 403, r.text
    assert "separation of duties" in r.json()["detail"] and "review" in r.json()["detail"]
    # the refusal is audited, and a second approver completes the record
    refused = box.trail.entries(record_id=rec["id"])
    assert refused[-1].action == "signature.refused" and refused[-1].actor == "qa.approver"
    other = box.signed_in("qa.approver2")
    assert sign(other, rec, "qa.approver2", "approval").status_code == 201
    manifest = other.get(
        "/api/signatures", params={"record_type": "audit_review", "record_id": rec["id"]}
    ).json()
    assert [(s["signer"], s["meaning"]) for s in manifest["signatures"]] == [
        ("qa.approver", "review"),
        ("qa.approver2", "approval"),
    ]


def test_the_rule_holds_across_versions_of_the_content(box):
    reviewer, rec = audit_review(box)
    approver = box.signed_in("qa.approver")
    assert sign(approver, rec, "qa.approver", "review").status_code == 201
    r = reviewer.patch(
        f"/api/audit-reviews/{rec['id']}",
        json={"comment": "All entries checked again.", "reason": "wording"},
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    # the same reviewer may review the new content; approving it is still refused
    assert sign(approver, changed, "qa.approver", "review").status_code == 201
    assert sign(approver, changed, "qa.approver", "approval").status_code == 403


def test_a_machine_token_cannot_create_people_grant_roles_or_mint_tokens(box):
    m = box.machine("mes", Role.ADMINISTRATOR)
    reason = {"reason": "attack"}
    writes = [
        (
            "post",
            "/api/users",
            {
                "user_id": "mallory",
                "full_name": "Mallory",
                "role": "qa_approver",
                "password": "Correct-Horse-Battery-77",
                **reason,
            },
        ),
        ("patch", "/api/users/qa.reviewer", {"role": "qa_approver", **reason}),
        ("post", "/api/users/qa.reviewer/unlock", reason),
        (
            "post",
            "/api/users/qa.reviewer/password",
            {"new_password": "Correct-Horse-Battery-77", **reason},
        ),
        ("post", "/api/tokens", {"token_id": "mes2", "role": "administrator", **reason}),
        ("post", "/api/tokens/mes/revoke", reason),
    ]
    for method, path, body in writes:
        r = m.request(method, path, json=body)
        assert r.status_code == 403, (path, r.status_code, r.text)
        assert "person" in r.json()["detail"]
    # nothing changed, and every attempt is in the audit trail
    d = box.directory
    assert "mallory" not in [u.id for u in d.users()]
    assert d.get("qa.reviewer").role is Role.QA_REVIEWER
    assert [t["id"] for t in d.tokens()] == ["mes"]
    refused = box.trail.entries(actor="token:mes")
    assert len(refused) >= len(writes)
    # reading the account list stays open to an administrator token (inventory tools)
    assert m.get("/api/users").status_code == 200
    # a signed-in administrator still administers
    admin = box.signed_in("admin", ADMIN_PW)
    r = admin.patch("/api/users/qa.reviewer", json={"role": "qa_approver", "reason": "promotion"})
    assert r.status_code == 200, r.text
