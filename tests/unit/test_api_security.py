"""Authentication, authorisation (every route x every role), sessions, CSRF, rate limits,
signatures and the audit API, against the real app in process."""

from __future__ import annotations

import time
import warnings
from datetime import UTC, datetime
from typing import Any

import pytest

import gmp_edge.api.security
import gmp_edge.api.session_routes
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.edge.api_wiring import build_api
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.identity.roles import PERMISSIONS, Permission, Role

from .conftest import TRH, small_plant

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ADMIN_PW = "Vault-Keeper-2026!"
PW = "People-Pass-2026!"

# The access table a validation engineer reads: every route and what it needs.
# None = any signed-in person or token; "public" = no credentials needed.
P = Permission
EXPECTED: dict[tuple[str, str], Permission | str | None] = {
    ("GET", "/api/health"): P.READ_LIVE,
    ("GET", "/api/tags"): P.READ_LIVE,
    ("GET", "/api/rooms"): P.READ_LIVE,
    ("GET", "/api/latest"): P.READ_LIVE,
    ("GET", "/api/status/rooms"): P.READ_LIVE,
    ("GET", "/api/readings"): P.READ_LIVE,
    ("GET", "/api/gaps"): P.READ_LIVE,
    ("POST", "/api/session"): "public",
    ("GET", "/api/session"): None,
    ("DELETE", "/api/session"): None,
    ("POST", "/api/session/password"): None,
    ("GET", "/api/users"): P.MANAGE_USERS,
    ("POST", "/api/users"): P.MANAGE_USERS,
    ("PATCH", "/api/users/{user_id}"): P.MANAGE_USERS,
    ("POST", "/api/users/{user_id}/unlock"): P.MANAGE_USERS,
    ("POST", "/api/users/{user_id}/password"): P.MANAGE_USERS,
    ("GET", "/api/tokens"): P.MANAGE_USERS,
    ("POST", "/api/tokens"): P.MANAGE_USERS,
    ("POST", "/api/tokens/{token_id}/revoke"): P.MANAGE_USERS,
    ("GET", "/api/audit"): P.READ_AUDIT,
    ("GET", "/api/audit/head"): P.READ_AUDIT,
    ("GET", "/api/audit/verify"): P.READ_AUDIT,
    ("GET", "/api/audit/export"): P.READ_AUDIT,
    ("GET", "/api/signatures"): None,
    ("POST", "/api/signatures"): None,
    ("GET", "/api/audit-reviews"): P.READ_AUDIT,
    ("GET", "/api/audit-reviews/{review_id}"): P.READ_AUDIT,
    ("POST", "/api/audit-reviews"): P.REVIEW,
    ("PATCH", "/api/audit-reviews/{review_id}"): P.REVIEW,
    ("GET", "/metrics"): P.READ_LIVE,
    ("GET", "/api/alarms"): P.READ_LIVE,
    ("GET", "/api/alarms/history"): P.READ_LIVE,
    ("GET", "/api/alarms/metrics"): P.READ_LIVE,
    ("POST", "/api/alarms/acknowledge"): P.ACKNOWLEDGE,
    ("POST", "/api/alarms/shelve"): P.ACKNOWLEDGE,
    ("POST", "/api/alarms/unshelve"): P.ACKNOWLEDGE,
    ("POST", "/api/alarms/out-of-service"): P.CONFIGURE,
    ("POST", "/api/alarms/return-to-service"): P.CONFIGURE,
    ("GET", "/api/deviations"): P.READ_LIVE,
    ("GET", "/api/deviations/{dev_id}"): P.READ_LIVE,
    ("POST", "/api/deviations/{dev_id}/investigate"): P.REVIEW,
    ("POST", "/api/deviations/{dev_id}/amend"): P.REVIEW,
    ("POST", "/api/deviations/{dev_id}/close"): P.APPROVE,
    ("POST", "/api/deviations/{dev_id}/cancel"): P.APPROVE,
    ("GET", "/api/limit-sets"): P.READ_LIVE,
    ("POST", "/api/limit-sets"): P.CONFIGURE,
    ("POST", "/api/limit-sets/{set_id}/{version}/what-if"): P.READ_LIVE,
    ("POST", "/api/limit-sets/{set_id}/{version}/reject"): P.APPROVE,
    ("GET", "/api/batches"): P.READ_LIVE,
    ("POST", "/api/batches"): P.ACKNOWLEDGE,
    ("POST", "/api/batches/{batch_id}/end"): P.ACKNOWLEDGE,
    ("GET", "/api/batches/{batch_id}/review"): P.READ_AUDIT,
    ("GET", "/api/batches/{batch_id}/report.pdf"): P.READ_AUDIT,
    ("GET", "/api/deviations/{dev_id}/report.pdf"): P.READ_AUDIT,
    ("GET", "/api/batches/{batch_id}/evidence.zip"): P.READ_AUDIT,
    ("GET", "/api/batches/{batch_id}/readings.csv"): P.READ_AUDIT,
    ("GET", "/api/batches/{batch_id}/decisions"): P.READ_AUDIT,
    ("POST", "/api/batches/{batch_id}/decision"): P.APPROVE,
    ("GET", "/api/excursions"): P.READ_LIVE,
    ("GET", "/api/process-validation"): P.READ_AUDIT,
    ("GET", "/api/equipment"): P.READ_AUDIT,
}


def uid(role: Role) -> str:
    return role.value.replace("_", ".")


@pytest.fixture
def env(tmp_path):
    cfg, sha = small_plant().load(tmp_path)
    store = Store(cfg.store.path)
    trail = AuditTrail(cfg.store.path)
    parts = build_api(cfg, EdgeService(cfg, sha, store), trail)
    d = parts.directory
    d.create_first_administrator("admin", "Ada Admin", ADMIN_PW)
    for role in Role:
        if role is not Role.ADMINISTRATOR:
            d.create_user(
                "admin", uid(role), f"Pat {role.value.title()}", role, PW, "test", must_change=False
            )
    yield parts, trail
    parts.close()
    trail.close()
    store.close()


def client(parts) -> TestClient:
    return TestClient(parts.app, base_url="http://127.0.0.1")


def signed_in(parts, user: str, password: str = PW) -> TestClient:
    c = client(parts)
    r = c.post("/api/session", json={"user_id": user, "password": password})
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c


def route_permissions(app) -> dict[tuple[str, str], object]:
    """What each route's dependencies actually demand (read from the app itself)."""
    found: dict[tuple[str, str], object] = {}
    routes: list[Any] = []  # routes of any kind, read by duck typing below
    for r in app.routes:  # FastAPI >= 0.16x keeps included routers as lazy wrappers
        routes += r.effective_candidates() if hasattr(r, "effective_candidates") else [r]
    for route in routes:
        methods = getattr(route, "methods", None)
        if not methods or not route.path.startswith(("/api/", "/metrics")):
            continue

        def walk(dep):
            for sub in dep.dependencies:
                if hasattr(sub.call, "permission"):
                    return sub.call.permission
                got = walk(sub)
                if got != "public":
                    return got
            return "public"

        for m in methods:
            found[(m, route.path)] = walk(route.dependant)
    return found


def test_every_route_declares_exactly_the_permission_in_the_table(env):
    parts, _ = env
    assert route_permissions(parts.app) == EXPECTED


def fill(path: str) -> str:
    return (
        path.replace("{user_id}", "viewer")
        .replace("{token_id}", "nope")
        .replace("{review_id}", "AR-00009")
    )


@pytest.mark.parametrize("role", list(Role))
def test_role_matrix_every_route_every_role(env, role):
    parts, _ = env
    user = "admin" if role is Role.ADMINISTRATOR else uid(role)
    pw = ADMIN_PW if role is Role.ADMINISTRATOR else PW
    c = signed_in(parts, user, pw)
    for (method, path), need in EXPECTED.items():
        if (method, path) in {("POST", "/api/session"), ("DELETE", "/api/session")}:
            continue  # signing in / out changes the session the loop runs on
        r = c.request(method, fill(path), json={})
        allowed = need in (None, "public") or need in PERMISSIONS[role]
        if allowed:
            assert r.status_code not in (401, 403), (role, method, path, r.status_code, r.text)
        else:
            assert r.status_code == 403, (role, method, path, r.status_code, r.text)
            assert "lacks permission" in r.json()["detail"]


@pytest.mark.parametrize("role", list(Role))
def test_role_matrix_for_machine_tokens(env, role):
    parts, _ = env
    token = parts.directory.create_token("admin", f"m-{role.value}".replace("_", "-"), role, "t")
    c = client(parts)
    c.headers["Authorization"] = f"Bearer {token}"
    for (method, path), need in EXPECTED.items():
        if need == "public":
            continue
        r = c.request(method, fill(path), json={})
        if need is not None and need not in PERMISSIONS[role]:
            assert r.status_code == 403, (role, method, path, r.status_code)
        else:
            assert r.status_code not in (401, 403) or "person" in r.text, (method, path, r.text)


def test_no_credentials_no_access_and_writes_refused(env):
    parts, trail = env
    c = client(parts)
    for (method, path), need in EXPECTED.items():
        if need == "public":
            continue
        r = c.request(method, fill(path), json={})
        assert r.status_code == 401, (method, path)
        assert r.headers["www-authenticate"] == "Bearer"
    assert trail.entries(record_type="user", record_id="viewer")[-1].action == "user.created"


def test_sign_in_wrong_password_and_lockout_are_audited(env):
    parts, trail = env
    c = client(parts)
    for _ in range(5):
        r = c.post("/api/session", json={"user_id": "operator", "password": "Wrong-Pass-2026!"})
        assert r.status_code == 401
    assert "locked" in r.json()["detail"]
    # even the right password does not open a locked account
    r = c.post("/api/session", json={"user_id": "operator", "password": PW})
    assert r.status_code in (401, 429) and "set-cookie" not in r.headers
    actions = [e.action for e in trail.entries(record_type="user", record_id="operator")]
    assert actions.count("signin.failed") >= 5 and "user.locked" in actions
    # an administrator unlocks with a reason; the person can sign in again
    admin = signed_in(parts, "admin", ADMIN_PW)
    assert admin.post(
        "/api/users/operator/unlock", json={"reason": "called the helpdesk"}
    ).is_success


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(env):
    parts, _ = env
    c = client(parts)
    a = c.post("/api/session", json={"user_id": "nobody", "password": PW})
    b = c.post("/api/session", json={"user_id": "viewer", "password": "Wrong-Pass-2026!"})
    assert a.status_code == b.status_code == 401 and a.json() == b.json()


@pytest.fixture
def mid_window(monkeypatch):
    """The wall clock moved forward to 20 s into a minute, running on from there.

    The sign-in limiter counts per minute window (the library's sliding window counter,
    aligned to the epoch minute); a burst of attempts that straddles a minute boundary may
    be allowed one more. Placed mid-window, the test's burst never straddles one.
    """
    real = time.time
    now = real()
    target = (now // 60) * 60 + 20  # forward only: nothing recorded earlier comes later
    offset = target - now if target >= now else target + 60 - now
    monkeypatch.setattr(time, "time", lambda: real() + offset)


def test_sign_in_is_rate_limited_per_user(env, mid_window):
    parts, trail = env
    c = client(parts)
    codes = [
        c.post("/api/session", json={"user_id": "inspector", "password": "x"}).status_code
        for _ in range(7)
    ]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
    r = c.post("/api/session", json={"user_id": "inspector", "password": "x"})
    assert int(r.headers["retry-after"]) >= 1
    assert any(e.action == "signin.rate_limited" for e in trail.entries(record_id="inspector"))


def test_sign_in_is_rate_limited_per_client_address(env, mid_window):
    parts, trail = env
    c = client(parts)
    # a different user id each time: only the client's limit (20 a minute) is reached
    codes = [
        c.post("/api/session", json={"user_id": f"guess{i}", "password": "x"}).status_code
        for i in range(22)
    ]
    assert codes[:20] == [401] * 20 and codes[20:] == [429, 429]
    r = c.post("/api/session", json={"user_id": "viewer", "password": PW})
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    # audited per client and window: the first refusal at once, the others counted
    refused = [
        e for e in trail.entries(actor="client:testclient") if e.action == "signin.rate_limited"
    ]
    assert [e.record_id for e in refused] == ["guess20"]
    assert gmp_edge.api.session_routes.flush_signin_refusals(parts.app) == 1
    (summary,) = [
        e
        for e in trail.entries(actor="client:testclient")
        if e.action == "signin.rate_limited.summary"
    ]
    assert summary.new["refused"] == 3


def test_session_cookie_flags_csrf_and_sign_out(env):
    parts, trail = env
    c = client(parts)
    r = c.post("/api/session", json={"user_id": "qa.reviewer", "password": PW})
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert c.get("/api/audit").status_code == 200
    # a write with the cookie but without the CSRF token is refused
    body = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z", "comment": "ok"}
    r = c.post("/api/audit-reviews", json=body)
    assert r.status_code == 403 and "X-CSRF-Token" in r.json()["detail"]
    c.headers["X-CSRF-Token"] = c.get("/api/session").json()["csrf_token"]
    assert c.post("/api/audit-reviews", json=body).status_code == 201
    assert c.delete("/api/session").status_code == 204
    assert c.get("/api/audit").status_code == 401
    assert trail.entries(actor="qa.reviewer")[-1].action == "signout"


def test_session_expires_when_idle(env, monkeypatch):
    parts, _ = env
    idle_us = parts.app.state.access.sessions.idle_us  # the configured 15 minutes
    c = signed_in(parts, "viewer")
    assert c.get("/api/tags").status_code == 200
    # the sessions' clock is moved on instead of waiting: a request a minute before the idle
    # time keeps the session alive (and touches it) ...
    later = now_us() + idle_us - 60 * 1_000_000
    monkeypatch.setattr(gmp_edge.api.security, "now_us", lambda: later)
    assert c.get("/api/tags").status_code == 200
    # ... and one just past the idle time after that finds it expired
    monkeypatch.setattr(gmp_edge.api.security, "now_us", lambda: later + idle_us + 1)
    r = c.get("/api/tags")
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_new_user_must_change_the_administrators_password_first(env):
    parts, trail = env
    admin = signed_in(parts, "admin", ADMIN_PW)
    r = admin.post(
        "/api/users",
        json={
            "user_id": "jdoe",
            "full_name": "Jane Doe",
            "role": "operator",
            "password": "Temp-Start-2026!",
            "reason": "new shift operator",
        },
    )
    assert r.status_code == 201 and r.json()["must_change_password"] is True
    c = signed_in(parts, "jdoe", "Temp-Start-2026!")
    r = c.get("/api/tags")
    assert r.status_code == 403 and "expired" in r.json()["detail"]
    r = c.post(
        "/api/session/password",
        json={"current_password": "Temp-Start-2026!", "new_password": "Own-Secret-2026!"},
    )
    assert r.status_code == 204, r.text
    r = c.get("/api/tags")
    assert r.status_code == 200, r.text
    e = trail.entries(record_id="jdoe")
    assert [x.action for x in e][:2] == ["user.created", "signin.succeeded"]
    assert "Own-Secret" not in str([(x.old, x.new, x.reason) for x in e])


def test_role_change_is_audited_and_ends_sessions(env):
    parts, trail = env
    viewer = signed_in(parts, "viewer")
    admin = signed_in(parts, "admin", ADMIN_PW)
    r = admin.patch("/api/users/viewer", json={"role": "operator", "reason": "moved to ops"})
    assert r.status_code == 200 and r.json()["role"] == "operator"
    assert viewer.get("/api/tags").status_code == 401
    e = trail.entries(record_id="viewer")[-1]
    assert (e.actor, e.action, e.old, e.new, e.reason) == (
        "admin",
        "user.role_changed",
        {"role": "viewer"},
        {"role": "operator"},
        "moved to ops",
    )
    # nobody changes their own role
    r = admin.patch("/api/users/admin", json={"role": "qa_approver", "reason": "why not"})
    assert r.status_code == 400


def test_bad_bodies_get_clear_errors_and_change_nothing(env):
    parts, trail = env
    admin = signed_in(parts, "admin", ADMIN_PW)
    n = trail.head()[0]
    r = admin.post(
        "/api/users",
        json={
            "user_id": "x1",
            "full_name": "X",
            "role": "operator",
            "password": PW,
            "reason": "r",
            "isAdmin": True,
        },
    )
    assert r.status_code == 422 and "isAdmin" in r.text
    r = admin.post(
        "/api/users",
        json={"user_id": "x1", "full_name": "X", "role": "god", "password": PW, "reason": "r"},
    )
    assert r.status_code == 422
    r = admin.post("/api/users", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = admin.post(
        "/api/users", content=b"x" * 70_000, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert trail.head()[0] == n


def test_security_headers_and_no_cors(env):
    parts, _ = env
    c = client(parts)
    page = c.get("/", headers={"Origin": "https://evil.example"})
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    for path in ("/", "/batch"):
        csp = c.get(path).headers["content-security-policy"]
        # scripts and styles come from files: an injected inline script would not run
        assert "script-src 'self';" in csp and "style-src 'self';" in csp, csp
        assert "unsafe" not in csp and "<script>" not in c.get(path).text
    for name, kind in (("batch.js", "text/javascript"), ("status.css", "text/css")):
        r = c.get(f"/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
    assert c.get("/static/..%2Fapp.py").status_code == 404
    assert c.get("/static/status.html").status_code == 404  # only the allow-listed assets
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "access-control-allow-origin" not in page.headers
    pre = c.options(
        "/api/tags",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in pre.headers
    assert c.get("/api/tags").headers["cache-control"] == "no-store"


# -- signatures ------------------------------------------------------------------------


def _review(parts) -> tuple[TestClient, dict]:
    reviewer = signed_in(parts, "qa.reviewer")
    # the period must have ended: it runs up to now (UTC), and so covers every entry so far
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


def sign(c: TestClient, rec: dict, user: str, meaning: str, password: str = PW, **kw):
    body = {
        "record_type": "audit_review",
        "record_id": rec["id"],
        "content_sha256": rec["content_sha256"],
        "meaning": meaning,
        "reason": "periodic audit trail review",
        "user_id": user,
        "password": password,
    }
    body.update(kw)
    return c.post("/api/signatures", json=body)


def test_signature_manifest_and_invalidation_by_a_later_change(env):
    parts, trail = env
    reviewer, rec = _review(parts)
    assert rec["entries"] > 5 and rec["last_hash"]
    r = sign(reviewer, rec, "qa.reviewer", "authorship")
    assert r.status_code == 201, r.text
    approver = signed_in(parts, "qa.approver")
    r = sign(approver, rec, "qa.approver", "approval")
    assert r.status_code == 201, r.text
    manifest = r.json()["signatures"]
    assert [(s["printed_name"], s["meaning"], s["valid"]) for s in manifest] == [
        ("Pat Qa_Reviewer", "authorship", True),
        ("Pat Qa_Approver", "approval", True),
    ]
    assert all(s["signed_at"].endswith("Z") for s in manifest)
    # the record changes afterwards: both signatures show as no longer valid
    r = reviewer.patch(
        f"/api/audit-reviews/{rec['id']}",
        json={"comment": "Corrected: one entry explained later.", "reason": "typo in finding"},
    )
    assert r.status_code == 200
    after = r.json()
    assert after["content_sha256"] != rec["content_sha256"]
    assert [s["valid"] for s in after["signatures"]["signatures"]] == [False, False]
    assert "changed after it was signed" in after["signatures"]["signatures"][0]["validity"]
    # the record's own trail shows creation, amendment (old/new) and both signatures
    actions = [e["action"] for e in after["audit_trail"]]
    assert actions == [
        "audit_review.created",
        "signature.executed",
        "signature.executed",
        "audit_review.amended",
    ]
    amended = after["audit_trail"][-1]
    assert amended["old"]["comment"].startswith("All entries") and amended["reason"]
    # signing the old content again is refused: the signer must look at the new one
    r = sign(approver, rec, "qa.approver", "approval")
    assert r.status_code == 409 and "changed since" in r.json()["detail"]
    assert sign(approver, after, "qa.approver", "approval").status_code == 201


def test_signature_refusals(env):
    parts, trail = env
    reviewer, rec = _review(parts)
    approver = signed_in(parts, "qa.approver")
    # wrong password: not signed, counted toward lockout, audited
    r = sign(approver, rec, "qa.approver", "approval", password="Wrong-Pass-2026!")
    assert r.status_code == 401
    assert trail.entries(record_id="qa.approver")[-1].action == "signature.failed"
    # forged: signing as someone else
    r = sign(approver, rec, "qa.reviewer", "approval")
    assert r.status_code == 403 and "as yourself" in r.json()["detail"]
    # separation of duties: the author cannot approve (even with the right role)
    r = sign(reviewer, rec, "qa.reviewer", "review")
    assert r.status_code == 403 and "separation of duties" in r.json()["detail"]
    # role: an operator cannot approve; an administrator cannot approve
    op = signed_in(parts, "operator")
    assert sign(op, rec, "operator", "approval").status_code == 403
    admin = signed_in(parts, "admin", ADMIN_PW)
    assert sign(admin, rec, "admin", "approval", password=ADMIN_PW).status_code == 403
    # replay: the same signature request twice
    assert sign(approver, rec, "qa.approver", "approval").status_code == 201
    r = sign(approver, rec, "qa.approver", "approval")
    assert r.status_code == 403 and "already signed" in r.json()["detail"]
    # a forged hash
    assert sign(approver, rec, "qa.approver", "review", content_sha256="0" * 64).status_code == 409
    # machines never sign
    token = parts.directory.create_token("admin", "mes", Role.QA_APPROVER, "MES link")
    m = client(parts)
    m.headers["Authorization"] = f"Bearer {token}"
    assert sign(m, rec, "mes", "approval").status_code == 403
    manifest = approver.get(
        "/api/signatures", params={"record_type": "audit_review", "record_id": rec["id"]}
    ).json()
    assert len(manifest["signatures"]) == 1
    refused = [e for e in trail.entries(record_id=rec["id"]) if e.action == "signature.refused"]
    assert len(refused) >= 4


def test_audit_api_filters_export_and_verify(env):
    parts, trail = env
    insp = signed_in(parts, "inspector")
    by_user = insp.get("/api/audit", params={"actor": "admin"}).json()
    assert by_user and all(e["actor"] == "admin" for e in by_user)
    by_record = insp.get("/api/audit", params={"record_type": "user", "record_id": "viewer"})
    assert [e["action"] for e in by_record.json()] == ["user.created"]
    assert all(e["ts"].endswith("Z") for e in by_user)
    r = insp.get("/api/audit", params={"start": "2026-01-01T00:00:00"})
    assert r.status_code == 400 and "time zone" in r.json()["detail"]
    v = insp.get("/api/audit/verify").json()
    assert v["intact"] is True and v["head_sha256"] == trail.head()[1]
    exp = insp.get("/api/audit/export", params={"format": "csv"})
    assert exp.status_code == 200 and exp.text.startswith("ts,seq,")
    assert exp.headers["x-audit-head-sha256"] in exp.text
    assert trail.entries()[-1].action == "audit.exported"
    # the file is named by its UTC time, zone marked, like every time we write
    stamp = exp.headers["content-disposition"].split('filename="audit-')[1].split(".")[0]
    exported = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    entry_at = datetime.fromtimestamp(trail.entries()[-1].ts_us / 1e6, tz=UTC)
    assert abs((exported - entry_at).total_seconds()) < 5


def test_prometheus_metrics_for_a_viewer_token(env):
    parts, _ = env
    token = parts.directory.create_token("admin", "prometheus", Role.VIEWER, "scraping")
    c = client(parts)
    assert c.get("/metrics").status_code == 401
    r = c.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert "# TYPE gmp_edge_store_committed_total counter" in text
    assert "gmp_edge_store_committed_total 0.0" in text
    assert f'gmp_edge_device_connected{{device="{TRH}",protocol="modbus"}} 0.0' in text
    assert "gmp_edge_active_alarms 0.0" in text
