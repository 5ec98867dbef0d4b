"""GMP / 21 CFR Part 11 account hardening: every finding of the issue, reproduced against
the real app (real SQLite store, real FastAPI routes) and the real command line.

1. lockout of the only administrator: it ends by itself after ``lockout_minutes`` (audited)
   and the box's command line unlocks or resets an account, audited with the reason;
2. weak, padded, invisible and reused passwords are refused (NFKC, zxcvbn, history);
3. a password change ends the person's other sessions;
4. an unknown user id costs one password verification, as a known one does;
5. the live page's background refresh does not keep an unattended session alive.
"""

from __future__ import annotations

import io
import sqlite3
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from argon2 import PasswordHasher

import gmp_edge.api.security
import gmp_edge.api.session_routes
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.edge.api_wiring import build_api
from gmp_edge.edge.cli import main
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.identity.roles import Role
from gmp_edge.integrity.anchoring import anchor_now, preflight
from gmp_edge.integrity.anchors import anchors_path_for, read_anchors
from gmp_edge.services.integrity import verify_store
from tests.unit.conftest import small_plant

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ADMIN_PW = "Vault-Keeper-2026!"
PW = "People-Pass-2026!"
WRONG = "Wrong-Pass-2026!"
STATIC = Path(gmp_edge.api.security.__file__).parent / "static"
BACKGROUND_HEADER = "X-Background-Refresh"  # what the live page's refresh sends


class Box:
    """The API over a fresh store with an administrator and an operator, and its config."""

    def __init__(self, tmp: Path):
        cfg, sha = small_plant().load(tmp)
        self.config = tmp / "plant.toml"
        self.db = cfg.store.path
        self.cfg = cfg
        self.store = Store(cfg.store.path)
        self.trail = AuditTrail(cfg.store.path)
        self.parts = build_api(cfg, EdgeService(cfg, sha, self.store), self.trail)
        self.directory = self.parts.directory
        self.directory.create_first_administrator("admin", "Ada Admin", ADMIN_PW)
        self.directory.create_user(
            "admin", "olga", "Olga Operator", Role.OPERATOR, PW, "test", must_change=False
        )

    def client(self) -> TestClient:
        return TestClient(self.parts.app, base_url="http://127.0.0.1")

    def sign_in(self, user: str, password: str) -> TestClient:
        c = self.client()
        r = c.post("/api/session", json={"user_id": user, "password": password})
        assert r.status_code == 200, r.text
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return c

    def entries(self, user: str, action: str):
        return [e for e in self.trail.entries(record_id=user) if e.action == action]

    def close(self) -> None:
        self.parts.close()
        self.trail.close()
        self.store.close()


@pytest.fixture
def box(tmp_path):
    b = Box(tmp_path)
    yield b
    b.close()


def _mid_minute() -> datetime:
    # the sign-in limiter counts per epoch minute: start 20 s into one, so a burst of five
    # never straddles a boundary
    t = time.time()
    return datetime.fromtimestamp((t // 60 + 1) * 60 + 20, UTC)


def _lock_out(c: TestClient, user: str) -> None:
    for _ in range(5):
        r = c.post("/api/session", json={"user_id": user, "password": WRONG})
        assert r.status_code == 401
    assert "locked" in r.json()["detail"]


# --- 1. lockout of the only administrator ---------------------------------------------------


def test_a_lockout_ends_by_itself_after_lockout_minutes_and_that_is_audited(box):
    assert box.cfg.security.lockout_minutes == 30  # the default, typed in SecurityConfig
    with time_machine.travel(_mid_minute(), tick=True) as clock:
        c = box.client()
        _lock_out(c, "admin")  # anyone can do this to the only administrator
        clock.shift(10 * 60)
        r = c.post("/api/session", json={"user_id": "admin", "password": ADMIN_PW})
        assert r.status_code == 401 and "try again in 20 min" in r.json()["detail"]
        clock.shift(21 * 60)
        r = c.post("/api/session", json={"user_id": "admin", "password": ADMIN_PW})
        assert r.status_code == 200, r.text
    (lifted,) = box.entries("admin", "user.unlocked")
    assert lifted.actor == "system:gmp-edge" and "expired after 30 min" in lifted.reason
    assert not box.directory.get("admin").locked


def _stdin(monkeypatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_the_box_command_line_unlocks_and_resets_the_only_administrator_audited(
    box, monkeypatch, capsys
):
    c = box.client()
    # the limiter counts per epoch minute: the whole test runs in travelled time, the
    # lockout burst a minute before the sign-ins (the real clock may cross a minute
    # meanwhile: a sixth attempt for the user in the burst's minute would be a 429)
    with time_machine.travel(_mid_minute(), tick=True) as clock:
        _lock_out(c, "admin")
        clock.shift(120)
        args = ["users", "unlock", "--config", str(box.config), "--user-id", "admin"]
        assert main(args) == 2  # no reason, no unlock
        assert box.directory.get("admin").locked
        assert main([*args, "--reason", "only administrator locked out; ticket 4711"]) == 0
        (entry,) = box.entries("admin", "user.unlocked")
        assert entry.actor.startswith("system:cli@") and "ticket 4711" in entry.reason
        # the running API reads the change at once
        admin = box.sign_in("admin", ADMIN_PW)
        assert admin.get("/api/users").status_code == 200

        # the password is lost: reset on the box, to be changed at the next sign-in
        reset = [
            "users",
            "reset-password",
            "--config",
            str(box.config),
            "--user-id",
            "admin",
            "--reason",
            "password lost; identity checked by QA",
            "--password-stdin",
        ]
        _stdin(monkeypatch, "Password1234\n")
        assert main(reset) == 1 and "harder to guess" in capsys.readouterr().err
        _stdin(monkeypatch, "Recovered-Keeper-2026!\n")
        assert main(reset) == 0, capsys.readouterr().err
        (entry,) = box.entries("admin", "user.password_reset")
        assert entry.actor.startswith("system:cli@") and "identity checked" in entry.reason
        # the API process ends the sessions opened with the old password at their next request
        assert admin.get("/api/users").status_code == 401
        r = box.client().post(
            "/api/session", json={"user_id": "admin", "password": "Recovered-Keeper-2026!"}
        )
        assert r.status_code == 200 and r.json()["password_expired"] is True
        assert "Recovered-Keeper" not in str(
            [(e.old, e.new, e.reason) for e in box.trail.entries()]
        )


def test_the_command_line_recovery_on_a_stopped_store_lets_the_service_start_again(tmp_path):
    b = Box(tmp_path)
    with time_machine.travel(_mid_minute(), tick=True):
        _lock_out(b.client(), "admin")
    b.close()
    anchor_now(b.db, "stop")  # stopped cleanly
    reason = ["--reason", "locked out over the weekend"]
    assert main(["users", "unlock", "--config", str(b.config), "--user-id", "admin", *reason]) == 0
    anchors, _ = read_anchors(anchors_path_for(b.db))
    assert anchors[-1].kind == "cli"
    preflight(b.db)  # not refused: the command's own entries are anchored
    assert verify_store(b.db).problems() == []  # and sealed like any other write


def test_an_administrator_unlocks_through_the_api_with_a_reason(box):
    with time_machine.travel(_mid_minute(), tick=True):
        _lock_out(box.client(), "olga")
    admin = box.sign_in("admin", ADMIN_PW)
    r = admin.post("/api/users/olga/unlock", json={"reason": "identity confirmed by phone"})
    assert r.status_code == 200 and r.json()["locked"] is False
    (entry,) = box.entries("olga", "user.unlocked")
    assert (entry.actor, entry.reason) == ("admin", "identity confirmed by phone")


# --- 2. password rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("Password1234", "harder to guess"),
        ("Qwerty123456", "harder to guess"),
        (" " * 11 + "A1", "other than spaces"),
        ("\u200b" * 11 + "A1", "invisible"),
        ("Tablet-Press\x00-2026", "control"),
        ("Tablet\u2028Press-2026!", "control or invisible"),  # a line separator (Zl)
    ],
)
def test_weak_padded_and_invisible_passwords_are_refused_naming_the_rule(box, password, rule):
    admin = box.sign_in("admin", ADMIN_PW)
    r = admin.post(
        "/api/users",
        json={
            "user_id": "jdoe",
            "full_name": "Jane Doe",
            "role": "operator",
            "password": password,
            "reason": "new shift operator",
        },
    )
    assert r.status_code == 400 and rule in r.json()["detail"], r.text
    assert password.strip() not in r.text and password not in r.text
    assert [u.id for u in box.directory.users()] == ["admin", "olga"]


def test_the_current_and_recent_passwords_cannot_be_set_again(box):
    olga = box.sign_in("olga", PW)

    def change(current: str, new: str) -> tuple[int, str]:
        r = olga.post(
            "/api/session/password", json={"current_password": current, "new_password": new}
        )
        return r.status_code, r.text

    code, text = change(PW, PW)
    assert code == 400 and "differ from the current one" in text and PW not in text
    seen = [PW]
    for n in range(1, 5):  # four changes: with the current one, the last five passwords
        new = f"Compression-Room-{n}-Shift!"
        assert change(seen[-1], new)[0] == 204
        seen.append(new)
    for old in seen[:-1]:
        code, text = change(seen[-1], old)
        assert code == 400 and "and the 4 before it" in text
    # the sixth-last is out of the window of five
    assert change(seen[-1], "Compression-Room-5-Shift!")[0] == 204
    assert change("Compression-Room-5-Shift!", PW)[0] == 204
    # only what the rule needs is kept
    conn = sqlite3.connect(box.db)
    try:
        (kept,) = conn.execute(
            "select count(*) from password_history where user_id='olga'"
        ).fetchone()
    finally:
        conn.close()
    assert kept == 4


def test_passwords_are_nfkc_normalised_when_set_and_when_checked(box):
    admin = box.sign_in("admin", ADMIN_PW)
    # full-width letters and digits, as an East Asian input method types them
    wide = "\uff27ranulat-\uff12\uff10\uff12\uff16!x"
    r = admin.post(
        "/api/users",
        json={
            "user_id": "kenji",
            "full_name": "Kenji Tanaka",
            "role": "viewer",
            "password": wide,
            "reason": "inspector",
        },
    )
    assert r.status_code == 201, r.text
    for typed in (wide, "Granulat-2026!x"):  # the same password in either form
        r = box.client().post("/api/session", json={"user_id": "kenji", "password": typed})
        assert r.status_code == 200, typed


# --- 3. a password change ends the other sessions ---------------------------------------------


def test_changing_ones_password_ends_ones_other_sessions(box):
    laptop = box.sign_in("olga", PW)
    stolen = box.sign_in("olga", PW)
    assert stolen.get("/api/tags").status_code == 200
    r = laptop.post(
        "/api/session/password",
        json={"current_password": PW, "new_password": "Granulation-Suite-2027!"},
    )
    assert r.status_code == 204, r.text
    assert stolen.get("/api/tags").status_code == 401
    assert laptop.get("/api/tags").status_code == 200  # the session that changed it stays
    (ended,) = box.entries("olga", "sessions.ended")
    assert "1 other session" in ended.reason


def test_an_administrators_reset_ends_every_session_of_the_person(box):
    olga = box.sign_in("olga", PW)
    admin = box.sign_in("admin", ADMIN_PW)
    r = admin.post(
        "/api/users/olga/password",
        json={"new_password": "Temporary-Tablet-2026!", "reason": "forgot it"},
    )
    assert r.status_code == 204, r.text
    assert olga.get("/api/tags").status_code == 401
    (entry,) = box.entries("olga", "user.password_reset")
    assert (entry.actor, entry.reason) == ("admin", "forgot it")


# --- 4. no user enumeration by timing -------------------------------------------------------


def test_an_unknown_user_id_costs_one_password_verification_like_a_known_one(box, monkeypatch):
    verified: list[str] = []
    real = PasswordHasher.verify

    def counting(self, stored, password):
        verified.append(stored if isinstance(stored, str) else stored.decode())
        return real(self, stored, password)

    conn = sqlite3.connect(box.db)
    try:
        (real_hash,) = conn.execute("select password_hash from users where id='olga'").fetchone()
    finally:
        conn.close()
    monkeypatch.setattr(PasswordHasher, "verify", counting)
    c = box.client()
    answers = {}
    for user in ("nobody", "olga"):
        verified.clear()
        r = c.post("/api/session", json={"user_id": user, "password": WRONG})
        answers[user] = (r.status_code, r.json())
        assert len(verified) == 1, user
        # the same scheme and cost: "$argon2id$v=19$m=...,t=...,p=..." up to the salt
        assert verified[0].split("$")[:4] == real_hash.split("$")[:4]
    assert answers["nobody"] == answers["olga"]
    # a locked account is verified too (its answer differs, its cost does not)
    box.directory.max_failed_attempts = 1
    c.post("/api/session", json={"user_id": "olga", "password": WRONG})
    verified.clear()
    c.post("/api/session", json={"user_id": "olga", "password": PW})
    assert len(verified) == 1


# --- 5. background refreshes do not keep a session alive ------------------------------------


def test_background_refresh_does_not_extend_the_idle_timeout_but_a_request_does(box, monkeypatch):
    idle_us = box.parts.app.state.access.sessions.idle_us
    start = now_us()
    page = box.sign_in("olga", PW)
    person = box.sign_in("olga", PW)
    poll = {BACKGROUND_HEADER: "1"}

    def clock_at(us: int) -> None:  # the sessions' clock, moved instead of waiting
        monkeypatch.setattr(gmp_edge.api.security, "now_us", lambda: us)
        monkeypatch.setattr(gmp_edge.api.session_routes, "now_us", lambda: us)

    later = start + idle_us - 60 * 1_000_000  # a minute before the idle time ends
    clock_at(later)
    for path in ("/api/health", "/api/status/rooms", "/api/deviations", "/api/tags"):
        assert page.get(path, headers=poll).status_code == 200  # still signed in ...
    assert page.get("/api/session", headers=poll).status_code == 200
    assert person.get("/api/tags").status_code == 200  # ... the person did something
    clock_at(start + idle_us + 1_000_000)
    r = page.get("/api/health", headers=poll)
    assert r.status_code == 401 and "expired" in r.json()["detail"]  # polls kept nothing
    assert person.get("/api/tags", headers=poll).status_code == 200  # its request did


def test_the_live_page_marks_its_refresh_as_background():
    js = (STATIC / "status.js").read_text()
    assert f'"{BACKGROUND_HEADER}": "1"' in js
    refresh = js[js.index("async function refresh()") :]
    refresh = refresh[: refresh.index("\n}\n")]
    assert 'api("' not in refresh and refresh.count('poll("') == 4
